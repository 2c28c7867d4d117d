// The runtimes under comparison, each behind the same three calls: load the MNIST model
// (same weights), run a flat batch of 28×28 images in [0, 1], and give back the logits.
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

const brasaCpu = {
  async load() {
    const { loadModel } = await import('brasa');
    const model = await loadModel('mnist', { weights: './models/mnist.bpk', backend: 'cpu' });
    return { run: async (x) => (await model.run(x)).logits, wasmBytes: () => null };
  },
};

const brasaWebgpu = {
  async load() {
    const { loadModel } = await import('brasa');
    const model = await loadModel('mnist', { weights: './models/mnist.bpk', backend: 'webgpu' });
    return { run: async (x) => (await model.run(x)).logits };
  },
};

const ort = (threads) => ({
  async load() {
    const ortLib = await import('./ort/ort.wasm.min.mjs');
    ortLib.env.wasm.wasmPaths = new URL('./ort/', location.href).href;
    ortLib.env.wasm.numThreads = threads;
    ortLib.env.wasm.simd = true;
    const session = await ortLib.InferenceSession.create('./models/peers/mnist.onnx', { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
    return {
      async run(x) {
        const n = x.length / 784;
        const out = await session.run({ pixels: new ortLib.Tensor('float32', x, [n, 1, 28, 28]) });
        return out.logits.data;
      },
    };
  },
});

const tfjsWasm = {
  async load() {
    await loadScript('./tfjs/tf-core.min.js');
    await loadScript('./tfjs/tf-backend-wasm.min.js');
    const tf = window.tf;
    tf.wasm.setWasmPaths(new URL('./tfjs/', location.href).href);
    await tf.setBackend('wasm');
    await tf.ready();
    const manifest = await (await fetch('./models/peers/mnist-tfjs.json')).json();
    const blob = new Float32Array(await (await fetch('./models/peers/mnist-tfjs.bin')).arrayBuffer());
    const w = {};
    for (const t of manifest.tensors) w[t.name] = tf.tensor(blob.subarray(t.offset, t.offset + t.length), t.shape);
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
  'brasa-cpu': brasaCpu,
  'brasa-webgpu': brasaWebgpu,
  'ort-wasm': ort(Number(params.get('ortThreads') ?? 1)),
  'tfjs-wasm': tfjsWasm,
};

const loaded = {};

export const runtimes = {
  crossOriginIsolated: () => globalThis.crossOriginIsolated,
  async load(name) {
    const t = performance.now();
    loaded[name] = await all[name].load();
    return performance.now() - t;
  },
  /** Logits of a flat batch, as a plain array. */
  async run(name, pixels) {
    return Array.from(await loaded[name].run(Float32Array.from(pixels)));
  },
  /** Per-call milliseconds over `runs` calls after `warm` calls, input `batch` images. */
  async time(name, batch, warm, runs) {
    const x = new Float32Array(784 * batch).map((_, i) => ((i * 7919) % 255) / 255);
    const model = loaded[name];
    for (let i = 0; i < warm; i++) await model.run(x);
    const samples = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      await model.run(x);
      samples.push(performance.now() - t);
    }
    return samples;
  },
  /** From navigation start to the first prediction of a runtime loaded by this page alone. */
  async firstPrediction(name) {
    await runtimes.load(name);
    await loaded[name].run(new Float32Array(784));
    return performance.now();
  },
  /** Bytes of every wasm memory in the page (see index.html). */
  memory() {
    return window.wasmMemoryBytes();
  },
};
