// The runtimes under comparison, each behind the same three calls: load a model (same
// weights everywhere), run a flat batch, and give back the outputs as one flat array.
// Models: `mnist` (28×28 images in [0, 1] → 10 logits) and `squeezenet` (3×224×224,
// channels first → 1000 probabilities; the identical ONNX graph for onnxruntime-web).
// `?ortThreads=N` picks onnxruntime-web's thread count (one per page: it is global).
// `onnxGraphs` (below): the models brasa builds from ONNX files, with named inputs and outputs.

const params = new URLSearchParams(location.search);

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src;
    s.onload = resolve;
    s.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(s);
  });
}

/** Per model: values per item, and the files each runtime reads. */
export const MODELS = {
  mnist: { itemLen: 784, shape: [1, 28, 28], bpk: './models/mnist.bpk', onnx: './models/peers/mnist.onnx', input: 'pixels', output: 'logits' },
  squeezenet: { itemLen: 3 * 224 * 224, shape: [3, 224, 224], bpk: './models/squeezenet/squeezenet.bpk', onnx: './models/squeezenet/squeezenet.onnx', input: 'data_0', output: 'softmaxout_1' },
};

// brasa: the model's package (`packages/<name>/`, made by `brasa build`) and the npm package.
const brasa = (backend) => ({
  async load(name) {
    const { loadModel, Tensor } = await import('brasa');
    const m = MODELS[name];
    const { default: pkg } = await import(`./packages/${name}/index.js`);
    const model = await loadModel(pkg, { weights: m.bpk, backend });
    return {
      async run(x) {
        const n = x.length / m.itemLen;
        const out = await model.run({ [m.input]: new Tensor('float32', x, [n, ...m.shape]) });
        return out[m.output].data;
      },
    };
  },
});

// onnxruntime-web, the one place it is set up: the wasm backend (SIMD), `threads` threads (a
// page-wide setting: `?ortThreads=N`), every graph optimisation. bench/compare.mjs and
// bench/onnx-models.mjs both run it through here.
let ortModule;
function ortLib(threads) {
  ortModule ??= import('./ort/ort.wasm.min.mjs').then((lib) => {
    lib.env.wasm.wasmPaths = new URL('./ort/', location.href).href;
    lib.env.wasm.numThreads = threads;
    lib.env.wasm.simd = true;
    return lib;
  });
  return ortModule;
}
// (Errors only in the console: its warnings about unused initialisers of exported graphs are noise.)
const ORT_SESSION_OPTIONS = { executionProviders: ['wasm'], graphOptimizationLevel: 'all', logSeverityLevel: 3 };

const ort = (threads) => ({
  async load(name) {
    const lib = await ortLib(threads);
    const m = MODELS[name];
    const session = await lib.InferenceSession.create(m.onnx, ORT_SESSION_OPTIONS);
    return {
      async run(x) {
        const n = x.length / m.itemLen;
        const out = await session.run({ [m.input]: new lib.Tensor('float32', x, [n, ...m.shape]) });
        return out[m.output].data;
      },
    };
  },
});

async function tfjsReady() {
  if (!window.tf) {
    await loadScript('./tfjs/tf-core.min.js');
    await loadScript('./tfjs/tf-backend-wasm.min.js');
    window.tf.wasm.setWasmPaths(new URL('./tfjs/', location.href).href);
  }
  const tf = window.tf;
  await tf.setBackend('wasm');
  await tf.ready();
  return tf;
}

/** Weights of a TF.js layout file pair (`.json` manifest + `.bin` float32 blob). */
async function tfjsWeights(tf, base) {
  const manifest = await (await fetch(`${base}.json`)).json();
  const blob = new Float32Array(await (await fetch(`${base}.bin`)).arrayBuffer());
  const w = {};
  for (const t of manifest.tensors) w[t.name] = tf.tensor(blob.subarray(t.offset, t.offset + t.length), t.shape);
  return { manifest, w };
}

/**
 * SqueezeNet in TF.js: the ONNX graph's nodes interpreted with TF.js ops, NHWC (TF.js's
 * layout: the NCHW input is transposed inside the timed call, its cost is TF.js's).
 */
async function tfjsSqueezenet(tf) {
  const { manifest, w } = await tfjsWeights(tf, './models/squeezenet/squeezenet-tfjs');
  const forward = (x) => {
    const values = { [manifest.input]: tf.transpose(x, [0, 2, 3, 1]) };
    for (const node of manifest.nodes) {
      const [a] = node.inputs.map((i) => values[i] ?? w[i]);
      const at = node.attrs;
      let y;
      switch (node.op) {
        case 'Conv': {
          const [t, l, b, r] = at.pads ?? [0, 0, 0, 0];
          const pad = [[0, 0], [t, b], [l, r], [0, 0]];
          y = tf.add(tf.conv2d(a, w[node.inputs[1]], at.strides ?? 1, pad), w[node.inputs[2]]);
          break;
        }
        case 'Relu': y = tf.relu(a); break;
        case 'MaxPool': y = tf.maxPool(a, at.kernel_shape, at.strides, 'valid'); break;
        case 'Concat': y = tf.concat(node.inputs.map((i) => values[i]), 3); break;
        case 'Dropout': y = a; break;
        case 'GlobalAveragePool': y = tf.mean(a, [1, 2]); break;
        case 'Softmax': y = tf.softmax(a); break;
        default: throw new Error(`no TF.js op for ${node.op}`);
      }
      values[node.outputs[0]] = y;
    }
    return values[manifest.output];
  };
  return (x, n) => forward(tf.tensor4d(x, [n, 3, 224, 224]));
}

const tfjsWasm = {
  async load(name) {
    const tf = await tfjsReady();
    if (name === 'squeezenet') {
      const forward = await tfjsSqueezenet(tf);
      return {
        async run(x) {
          const y = tf.tidy(() => forward(x, x.length / MODELS.squeezenet.itemLen));
          const data = await y.data();
          y.dispose();
          return data;
        },
      };
    }
    const { w } = await tfjsWeights(tf, './models/peers/mnist-tfjs');
    const mean = 0.1307;
    const std = 0.3081;
    const forward = (x) => {
      let h = tf.div(tf.sub(x, mean), std);
      h = tf.maxPool(tf.relu(tf.add(tf.conv2d(h, w['conv1.kernel'], 1, 'same'), w['conv1.bias'])), 2, 2, 'valid');
      h = tf.maxPool(tf.relu(tf.add(tf.conv2d(h, w['conv2.kernel'], 1, 'same'), w['conv2.bias'])), 2, 2, 'valid');
      h = tf.reshape(h, [h.shape[0], 3136]);
      h = tf.relu(tf.add(tf.matMul(h, w['dense1.kernel']), w['dense1.bias']));
      return tf.add(tf.matMul(h, w['dense2.kernel']), w['dense2.bias']);
    };
    return {
      async run(x) {
        const n = x.length / 784;
        const y = tf.tidy(() => forward(tf.tensor4d(x, [n, 28, 28, 1])));
        const data = await y.data();
        y.dispose();
        return data;
      },
      threads: () => tf.wasm.getThreadsCount?.(),
    };
  },
};

const all = {
  'brasa-cpu': brasa('cpu'),
  'brasa-webgpu': brasa('webgpu'),
  'ort-wasm': ort(Number(params.get('ortThreads') ?? 1)),
  'tfjs-wasm': tfjsWasm,
};

const loaded = {};

// ---- ONNX graphs (bench/onnx-models.mjs) -------------------------------------------------
// Models brasa builds straight from an ONNX file (`brasa build --onnx`), against that same
// file in onnxruntime-web: `packages/<model>/` (the package, with the `weights.bpk` its import
// wrote) and `onnx/<model>.onnx`. Named inputs of any dtype, named outputs.
//
// A feed, as the benchmark script passes it: `{ dtype, dims, data }` (numbers, int64 too) or
// `{ dtype, dims, random: { seed, lo, hi } }` (uniform, seeded: the same values in every page).

const ARRAYS = { float32: Float32Array, int64: BigInt64Array, int32: Int32Array };

function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `{ name: feed }` → `{ name: { dtype, dims, data: TypedArray } }`. */
function materialize(feeds) {
  const out = {};
  for (const [name, f] of Object.entries(feeds)) {
    const Array_ = ARRAYS[f.dtype];
    let data;
    if (f.random) {
      const next = mulberry32(f.random.seed);
      const { lo = 0, hi = 1 } = f.random;
      data = new Array_(f.dims.reduce((a, b) => a * b, 1)).map(() => lo + (hi - lo) * next());
    } else {
      data = f.dtype === 'int64' ? BigInt64Array.from(f.data, BigInt) : Array_.from(f.data);
    }
    out[name] = { dtype: f.dtype, dims: f.dims, data };
  }
  return out;
}

/** Bytes of a file, past the HTTP cache (every runtime, every page, pays the same fetch). */
async function fetchBytes(url) {
  const res = await fetch(url, { cache: 'no-store' });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** A one-node ONNX graph (Identity, float32[1]): starts onnxruntime-web's wasm runtime untimed. */
function identityOnnx() {
  const varint = (n) => { const b = []; while (n > 127) { b.push((n & 127) | 128); n >>>= 7; } b.push(n); return b; };
  const int = (no, v) => [...varint(no << 3), ...varint(v)];
  const field = (no, bytes) => [...varint((no << 3) | 2), ...varint(bytes.length), ...bytes];
  const str = (no, text) => field(no, [...new TextEncoder().encode(text)]);
  // ValueInfoProto { name, type: TypeProto { tensor_type { elem_type: FLOAT, shape { dim { dim_value: 1 } } } } }
  const valueInfo = (name) => [...str(1, name), ...field(2, field(1, [...int(1, 1), ...field(2, field(1, int(1, 1)))]))];
  const node = [...str(1, 'x'), ...str(2, 'y'), ...str(4, 'Identity')];
  const graph = [...field(1, node), ...str(2, 'warm-up'), ...field(11, valueInfo('x')), ...field(12, valueInfo('y'))];
  // ModelProto { ir_version: 8, opset_import { version: 13 }, graph }
  return Uint8Array.from([...int(1, 8), ...field(8, int(2, 13)), ...field(7, graph)]);
}

const graphRuntimes = {
  'brasa-cpu': {
    /** The npm package (JS only: each model's wasm build is part of loading that model). */
    init: () => import('brasa'),
    async load(model) {
      const { loadModel, Tensor } = await import('brasa');
      const { default: pkg } = await import(`./packages/${model}/index.js`);
      const session = await loadModel(pkg, { weights: await fetchBytes(`./packages/${model}/weights.bpk`), backend: 'cpu' });
      return {
        async run(feeds) {
          const inputs = {};
          for (const [name, f] of Object.entries(feeds)) inputs[name] = new Tensor(f.dtype, f.data, f.dims);
          const out = await session.run(inputs);
          return Object.fromEntries(Object.entries(out).map(([name, t]) => [name, { dims: [...t.dims], data: t.data }]));
        },
      };
    },
  },
  'ort-wasm': {
    /** The wasm runtime (and its worker threads), started on a one-node graph. */
    async init() {
      const lib = await ortLib(Number(params.get('ortThreads') ?? 1));
      const session = await lib.InferenceSession.create(identityOnnx(), ORT_SESSION_OPTIONS);
      await session.run({ x: new lib.Tensor('float32', Float32Array.of(1), [1]) });
      await session.release();
    },
    async load(model) {
      const lib = await ortLib(Number(params.get('ortThreads') ?? 1));
      const session = await lib.InferenceSession.create(await fetchBytes(`./onnx/${model}.onnx`), ORT_SESSION_OPTIONS);
      return {
        async run(feeds) {
          const inputs = {};
          for (const [name, f] of Object.entries(feeds)) inputs[name] = new lib.Tensor(f.dtype, f.data, f.dims);
          const out = await session.run(inputs);
          return Object.fromEntries(Object.entries(out).map(([name, t]) => [name, { dims: [...t.dims], data: t.data }]));
        },
      };
    },
  },
};

const graphs = {};

export const onnxGraphs = {
  /** Milliseconds to start a runtime in this page (not counted in any model's load). */
  async init(runtime) {
    const t = performance.now();
    await graphRuntimes[runtime].init();
    return performance.now() - t;
  },
  /** Milliseconds from fetching the model's weights (ONNX file or .bpk) to a model ready to run. */
  async load(runtime, model) {
    const t = performance.now();
    graphs[`${runtime}:${model}`] = await graphRuntimes[runtime].load(model);
    return performance.now() - t;
  },
  /**
   * Outputs of a sequence of calls, as plain arrays: `carry` maps an output to the input it
   * feeds on the next call (a recurrent state).
   */
  async check(runtime, model, steps, carry = {}) {
    const runner = graphs[`${runtime}:${model}`];
    const results = [];
    let carried = {};
    for (const step of steps) {
      const x = { ...materialize(step), ...carried };
      const out = await runner.run(x);
      results.push(Object.fromEntries(Object.entries(out).map(([name, t]) => [name, { dims: t.dims, data: Array.from(t.data, Number) }])));
      carried = Object.fromEntries(Object.entries(carry).map(([from, to]) => [to, { dtype: x[to].dtype, dims: out[from].dims, data: out[from].data }]));
    }
    return results;
  },
  /** Per-call milliseconds over `runs` calls after `warm` calls of the same feeds (outputs carried per `carry`). */
  async time(runtime, model, feeds, carry, warm, runs) {
    const runner = graphs[`${runtime}:${model}`];
    let x = materialize(feeds);
    const samples = [];
    for (let i = 0; i < warm + runs; i++) {
      const t = performance.now();
      const out = await runner.run(x);
      const ms = performance.now() - t;
      if (i >= warm) samples.push(ms);
      for (const [from, to] of Object.entries(carry)) x = { ...x, [to]: { dtype: x[to].dtype, dims: out[from].dims, data: out[from].data } };
    }
    return samples;
  },
};

export const runtimes = {
  crossOriginIsolated: () => globalThis.crossOriginIsolated,
  async load(name, model) {
    const t = performance.now();
    loaded[`${name}:${model}`] = await all[name].load(model);
    return performance.now() - t;
  },
  /** Outputs of a flat batch, as a plain array. */
  async run(name, model, input) {
    return Array.from(await loaded[`${name}:${model}`].run(Float32Array.from(input)));
  },
  /** Per-call milliseconds over `runs` calls after `warm` calls, input `batch` items. */
  async time(name, model, batch, warm, runs) {
    const x = new Float32Array(MODELS[model].itemLen * batch).map((_, i) => ((i * 7919) % 255) / 255);
    const runner = loaded[`${name}:${model}`];
    for (let i = 0; i < warm; i++) await runner.run(x);
    const samples = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      await runner.run(x);
      samples.push(performance.now() - t);
    }
    return samples;
  },
  /** From navigation start to the first prediction of a runtime loaded by this page alone. */
  async firstPrediction(name, model) {
    await runtimes.load(name, model);
    await loaded[`${name}:${model}`].run(new Float32Array(MODELS[model].itemLen));
    return performance.now();
  },
  /** Bytes of every wasm memory in the page (see index.html). */
  memory() {
    return window.wasmMemoryBytes();
  },
};
