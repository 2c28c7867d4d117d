// The runtimes under comparison, each behind the same three calls: load a model (same
// weights everywhere), run a flat batch, and give back the outputs as one flat array.
// Models: `mnist` (28×28 images in [0, 1] → 10 logits) and `squeezenet` (3×224×224,
// channels first → 1000 probabilities; the identical ONNX graph for onnxruntime-web).
// `?ortThreads=N` picks onnxruntime-web's thread count (one per page: it is global).

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

const ort = (threads) => ({
  async load(name) {
    const ortLib = await import('./ort/ort.wasm.min.mjs');
    ortLib.env.wasm.wasmPaths = new URL('./ort/', location.href).href;
    ortLib.env.wasm.numThreads = threads;
    ortLib.env.wasm.simd = true;
    const m = MODELS[name];
    const session = await ortLib.InferenceSession.create(m.onnx, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
    return {
      async run(x) {
        const n = x.length / m.itemLen;
        const out = await session.run({ [m.input]: new ortLib.Tensor('float32', x, [n, ...m.shape]) });
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
