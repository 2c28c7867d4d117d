// The two text-embedding runtimes behind one call, `embed(texts)` → `{ data, dims }` (rows
// L2-normalised, mean-pooled), each tokenising in JS with tokenizers.js on the model's own
// tokenizer.json:
// - brasa: the `minilm` package's CPU build (`packages/minilm/`) with `createEmbedder`;
//   `?weights=f32|f16|q8` picks `models/minilm[-f16|-q8].bpk`.
// - Transformers.js: `pipeline('feature-extraction', …, { device: 'wasm', dtype: 'q8' })` on
//   the int8 ONNX of the same model (`tjs-models/all-MiniLM-L6-v2/onnx/model_quantized.onnx`),
//   local files only, onnxruntime-web's wasm from this site; `?threads=N` threads.
// `start` loads the runtime and embeds one sentence at once, so `firstEmbeddingMs` is
// navigation → first embedding.

const FIRST = 'A man is eating food.';

const runtimes = {
  async brasa(params) {
    const dtype = params.get('weights') ?? 'f32';
    const { loadModel, createEmbedder } = await import('brasa');
    const { default: pkg } = await import('./packages/minilm/index.js');
    // The `cpu` build (simd128, 1 thread), as labelled, whatever other CPU builds the package
    // has: the page is cross-origin isolated, so `threads: 'auto'` would pick a threaded one.
    const model = await loadModel(pkg, { weights: `./models/minilm${dtype === 'f32' ? '' : `-${dtype}`}.bpk`, backend: 'cpu', threads: false, simd: 'simd128' });
    const embedder = await createEmbedder(model, { tokenizer: './models/minilm/tokenizer.json' });
    return {
      threads: 1,
      async embed(texts) {
        const { data, dims } = await embedder.embed(texts);
        return { data, dims };
      },
    };
  },
  async transformers(params) {
    const threads = Number(params.get('threads') ?? 1);
    const { pipeline, env } = await import('@huggingface/transformers');
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = '/tjs-models/';
    const ortDir = new URL('./tjs/ort/', location.href).href;
    env.backends.onnx.wasm.wasmPaths = { mjs: `${ortDir}ort-wasm-simd-threaded.asyncify.mjs`, wasm: `${ortDir}ort-wasm-simd-threaded.asyncify.wasm` };
    env.backends.onnx.wasm.numThreads = threads;
    const extractor = await pipeline('feature-extraction', 'all-MiniLM-L6-v2', { device: 'wasm', dtype: 'q8' });
    return {
      threads: env.backends.onnx.wasm.numThreads,
      async embed(texts) {
        const out = await extractor(texts, { pooling: 'mean', normalize: true });
        const result = { data: out.data, dims: out.dims };
        out.dispose?.();
        return result;
      },
    };
  },
};

/** Load the runtime `?runtime=` names, embed one sentence, and give the benchmark's calls. */
export async function start(params) {
  const name = params.get('runtime');
  if (!runtimes[name]) throw new Error(`unknown runtime ${name}`);
  const runtime = await runtimes[name](params);
  const first = await runtime.embed([FIRST]);
  const firstEmbeddingMs = performance.now();
  if (first.dims[0] !== 1 || first.dims[1] !== 384) throw new Error(`first embedding has dims [${first.dims}]`);
  return {
    firstEmbeddingMs,
    threads: runtime.threads,
    crossOriginIsolated: globalThis.crossOriginIsolated,
    /** Embeddings of `texts`, as a plain array (for the accuracy check). */
    async embed(texts) {
      const { data, dims } = await runtime.embed(texts);
      return { data: Array.from(data), dims: Array.from(dims) };
    },
    /** `warm` untimed calls, then `runs` timed ones (ms each; tokenization included). */
    async time(texts, warm, runs) {
      for (let i = 0; i < warm; i++) await runtime.embed(texts);
      const samples = [];
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        const { data } = await runtime.embed(texts);
        samples.push(performance.now() - t0);
        if (!(data.length === texts.length * 384 && Number.isFinite(data[0]))) throw new Error(`embedding of ${texts.length} texts gave ${data.length} values`);
      }
      return samples;
    },
    memory: () => window.wasmMemoryBytes(),
  };
}
