// The runtimes under comparison, each behind the same three calls: load a model (same
// weights everywhere), run a batch of given dims, and give back the outputs as one flat array.
// Models: `mnist` (28×28 images in [0, 1] → 10 logits), `squeezenet` (3×224×224, channels
// first → 1000 probabilities; the identical ONNX graph for onnxruntime-web) and `ocr-det`
// (PP-OCRv4 text detection, 3×H×W → a 1×H×W probability map; its ONNX file for
// onnxruntime-web, no TF.js version).
// `?threads=N` is the page's thread count: onnxruntime-web's and TF.js's (page-wide settings,
// so one page per count) and what brasa's threaded builds are asked for.
// `onnxGraphs` (below): the models brasa builds from ONNX files, with named inputs and outputs.

const params = new URLSearchParams(location.search);
/** The page's thread count (`?threads=N`). */
export const THREADS = Number(params.get('threads') ?? 1);

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src;
    s.onload = resolve;
    s.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(s);
  });
}

/** Per model: the files each runtime reads, and the input and output names. */
export const MODELS = {
  mnist: { bpk: './models/mnist.bpk', onnx: './models/peers/mnist.onnx', input: 'pixels', output: 'logits' },
  squeezenet: { bpk: './models/squeezenet/squeezenet.bpk', onnx: './models/squeezenet/squeezenet.onnx', input: 'data_0', output: 'softmaxout_1' },
  'ocr-det': { bpk: './packages/ocr-det/weights.bpk', onnx: './models/ocr-det/ocr-det.onnx', input: 'x', output: 'sigmoid_0.tmp_0' },
};

/**
 * The `loadModel` options that ask for one build of a package: `webgpu`, or a CPU build named
 * as `brasa build` names them (`cpu`: simd128, one thread; `-relaxed`: relaxed-SIMD FMA;
 * `-threads`: wasm threads in a Worker the loader manages, the page's thread count).
 * bench/compare.mjs checks which build's wasm was fetched, so a name the loader reads
 * differently is an error, not a mislabelled row.
 */
export function brasaOptions(build) {
  if (build === 'webgpu') return { backend: 'webgpu' };
  return { backend: 'cpu', threads: build.includes('threads') ? THREADS : false, simd: build.includes('relaxed') ? 'relaxed' : 'simd128' };
}

/** What a loaded brasa model says about itself (`model.build`: which build, threads, relaxed SIMD, why not a faster one). */
function brasaInfo(model) {
  const b = model.build;
  const info = { backend: model.backend };
  if (b && typeof b === 'object') Object.assign(info, { build: b.name, threads: b.threads, relaxedSimd: b.relaxedSimd, reason: b.reason });
  return info;
}

// brasa: the model's package (`packages/<name>/`, made by `brasa build`) and the npm package.
const brasa = (build) => ({
  async load(name) {
    const { loadModel, Tensor } = await import('brasa');
    const m = MODELS[name];
    const { default: pkg } = await import(`./packages/${name}/index.js`);
    const model = await loadModel(pkg, { weights: m.bpk, ...brasaOptions(build) });
    return {
      async run(x, dims) {
        const out = await model.run({ [m.input]: new Tensor('float32', x, dims) });
        return out[m.output].data;
      },
      info: () => brasaInfo(model),
    };
  },
});

// onnxruntime-web, the one place it is set up: the wasm backend (SIMD), the page's thread
// count, every graph optimisation. bench/compare.mjs and bench/onnx-models.mjs both run it
// through here.
let ortModule;
function ortLib() {
  ortModule ??= import('./ort/ort.wasm.min.mjs').then((lib) => {
    lib.env.wasm.wasmPaths = new URL('./ort/', location.href).href;
    lib.env.wasm.numThreads = THREADS;
    lib.env.wasm.simd = true;
    return lib;
  });
  return ortModule;
}
// (Errors only in the console: its warnings about unused initialisers of exported graphs are noise.)
const ORT_SESSION_OPTIONS = { executionProviders: ['wasm'], graphOptimizationLevel: 'all', logSeverityLevel: 3 };

const ort = {
  async load(name) {
    const lib = await ortLib();
    const m = MODELS[name];
    const session = await lib.InferenceSession.create(m.onnx, ORT_SESSION_OPTIONS);
    return {
      async run(x, dims) {
        const out = await session.run({ [m.input]: new lib.Tensor('float32', x, dims) });
        return out[m.output].data;
      },
      info: () => ({ threads: lib.env.wasm.numThreads }),
    };
  },
};

/**
 * TF.js caps its thread pool at navigator.hardwareConcurrency / 2 (it assumes two hardware
 * threads per core), whatever setThreadsCount asks: 1 thread on a 2-vCPU machine. For a page
 * of more threads than that, the page shows it twice its thread count while the backend
 * starts (and only then), so setThreadsCount(THREADS) takes effect.
 */
export let tfjsHardwareConcurrencyShown = null;

async function tfjsReady() {
  if (!window.tf) {
    await loadScript('./tfjs/tf-core.min.js');
    await loadScript('./tfjs/tf-backend-wasm.min.js');
    window.tf.wasm.setWasmPaths(new URL('./tfjs/', location.href).href);
    // Before the backend starts; without it TF.js takes hardwareConcurrency / 2.
    window.tf.wasm.setThreadsCount(THREADS);
  }
  const tf = window.tf;
  const raise = Math.floor(navigator.hardwareConcurrency / 2) < THREADS;
  if (raise) {
    tfjsHardwareConcurrencyShown = THREADS * 2;
    Object.defineProperty(navigator, 'hardwareConcurrency', { configurable: true, get: () => THREADS * 2 });
  }
  try {
    await tf.setBackend('wasm');
    await tf.ready();
  } finally {
    if (raise) delete navigator.hardwareConcurrency;
  }
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
  return (x, dims) => forward(tf.tensor4d(x, dims));
}

const tfjsWasm = {
  async load(name) {
    const tf = await tfjsReady();
    const info = () => ({ threads: tf.wasm.getThreadsCount(), ...(tfjsHardwareConcurrencyShown ? { hardwareConcurrencyShown: tfjsHardwareConcurrencyShown } : {}) });
    if (name === 'squeezenet') {
      const forward = await tfjsSqueezenet(tf);
      return {
        async run(x, dims) {
          const y = tf.tidy(() => forward(x, dims));
          const data = await y.data();
          y.dispose();
          return data;
        },
        info,
      };
    }
    if (name !== 'mnist') throw new Error(`no TF.js version of ${name}`);
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
      async run(x, dims) {
        // NCHW with one channel is NHWC with one channel: the same values.
        const y = tf.tidy(() => forward(tf.tensor4d(x, [dims[0], 28, 28, 1])));
        const data = await y.data();
        y.dispose();
        return data;
      },
      info,
    };
  },
};

/** A runtime by name: `brasa:<build>` (a build of the model's package), `ort-wasm`, `tfjs-wasm`. */
function runtime(name) {
  if (name.startsWith('brasa:')) return brasa(name.slice('brasa:'.length));
  const r = { 'ort-wasm': ort, 'tfjs-wasm': tfjsWasm }[name];
  if (!r) throw new Error(`unknown runtime ${name}`);
  return r;
}

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

/** `brasa:<build>`: a build of the model's package (see {@link brasaOptions}). */
const brasaGraph = (build) => ({
  /** The npm package (JS only: each model's wasm build is part of loading that model). */
  init: () => import('brasa'),
  async load(model) {
    const { loadModel, Tensor } = await import('brasa');
    const { default: pkg } = await import(`./packages/${model}/index.js`);
    const session = await loadModel(pkg, { weights: await fetchBytes(`./packages/${model}/weights.bpk`), ...brasaOptions(build) });
    return {
      async run(feeds) {
        const inputs = {};
        for (const [name, f] of Object.entries(feeds)) inputs[name] = new Tensor(f.dtype, f.data, f.dims);
        const out = await session.run(inputs);
        return Object.fromEntries(Object.entries(out).map(([name, t]) => [name, { dims: [...t.dims], data: t.data }]));
      },
      info: () => brasaInfo(session),
    };
  },
});

const ortGraph = {
  /** The wasm runtime (and its worker threads), started on a one-node graph. */
  async init() {
    const lib = await ortLib();
    const session = await lib.InferenceSession.create(identityOnnx(), ORT_SESSION_OPTIONS);
    await session.run({ x: new lib.Tensor('float32', Float32Array.of(1), [1]) });
    await session.release();
  },
  async load(model) {
    const lib = await ortLib();
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
};

const graphRuntime = (name) => (name.startsWith('brasa:') ? brasaGraph(name.slice('brasa:'.length)) : name === 'ort-wasm' ? ortGraph : null) ?? (() => { throw new Error(`unknown runtime ${name}`); })();

const graphs = {};

export const onnxGraphs = {
  /** Milliseconds to start a runtime in this page (not counted in any model's load). */
  async init(runtime) {
    const t = performance.now();
    await graphRuntime(runtime).init();
    return performance.now() - t;
  },
  /**
   * Milliseconds from fetching the model's weights (ONNX file or .bpk) to a model ready to run,
   * and what the runtime says about itself.
   */
  async load(runtime, model) {
    const t = performance.now();
    const runner = await graphRuntime(runtime).load(model);
    const ms = performance.now() - t;
    graphs[`${runtime}:${model}`] = runner;
    return { ms, info: runner.info?.() ?? {} };
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

const loaded = {};

/** Seeded values in [0, 1): the same input for every runtime and page. */
const input = (dims) => new Float32Array(dims.reduce((a, b) => a * b, 1)).map((_, i) => ((i * 7919) % 255) / 255);

export const runtimes = {
  crossOriginIsolated: () => globalThis.crossOriginIsolated,
  /** Milliseconds from nothing loaded to a model ready to run, and what the runtime says about itself. */
  async load(name, model) {
    const t = performance.now();
    const runner = await runtime(name).load(model);
    const ms = performance.now() - t;
    loaded[`${name}:${model}`] = runner;
    return { ms, info: runner.info?.() ?? {} };
  },
  /** Outputs of a batch of `dims`, as a plain array. */
  async run(name, model, x, dims) {
    return Array.from(await loaded[`${name}:${model}`].run(Float32Array.from(x), dims));
  },
  /** Per-call milliseconds over `runs` calls after `warm` calls, on an input of `dims`. */
  async time(name, model, dims, warm, runs) {
    const x = input(dims);
    const runner = loaded[`${name}:${model}`];
    for (let i = 0; i < warm; i++) await runner.run(x, dims);
    const samples = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      await runner.run(x, dims);
      samples.push(performance.now() - t);
    }
    return samples;
  },
  /** From navigation start to the first prediction (of `dims`) of a runtime loaded by this page alone. */
  async firstPrediction(name, model, dims) {
    await runtimes.load(name, model);
    await loaded[`${name}:${model}`].run(new Float32Array(dims.reduce((a, b) => a * b, 1)), dims);
    return performance.now();
  },
};
