// Run inside Deno by cpu-builds.test.mjs: MNIST on the CPU builds Deno picks and is asked for,
// the reference batch through each; or (given `ocrUrl`) a trap on a thread of a threaded
// model's pool: PP-OCRv4 det given a height and width that are no multiples of 32. Prints one
// JSON line.
import { loadModel } from '../../npm/dist/index.js';

const { mnistUrl, weights, reference, ocrUrl, ocrWeights } = JSON.parse(Deno.args[0]);
if (ocrUrl) {
  const ocr = await loadModel((await import(ocrUrl)).default, { weights: await Deno.readFile(ocrWeights), backend: 'cpu', threads: 2 });
  const failure = (e) => ({ code: e.code, message: e.message });
  const trap = await ocr.run({ x: { dtype: 'float32', dims: [1, 3, 30, 50], data: new Float32Array(4500).fill(0.5) } }).then(() => null, failure);
  const afterTrap = await ocr.run({ x: { dtype: 'float32', dims: [1, 3, 64, 96], data: new Float32Array(3 * 64 * 96) } }).then(() => null, failure);
  ocr.dispose();
  console.log(JSON.stringify({ build: ocr.build, trap, afterTrap }));
  // Deno cannot end a Worker blocked in Atomics.wait (denoland/deno#13705's family): the
  // model's Worker, waiting for the pool thread that trapped, outlives terminate().
  Deno.exit(0);
}
const pkg = (await import(mnistUrl)).default;
const bytes = await Deno.readFile(weights);
const { items } = JSON.parse(await Deno.readTextFile(reference));
const pixels = items.flatMap((i) => i.pixels);
const dims = [items.length, 1, 28, 28];
const out = { cores: navigator.hardwareConcurrency, runs: [] };
for (const options of [{}, { threads: 2, simd: 'simd128' }, { threads: 2 }]) {
  const model = await loadModel(pkg, { weights: bytes, backend: 'cpu', ...options });
  const { logits } = await model.run({ pixels: { dtype: 'float32', dims, data: Float32Array.from(pixels) } });
  out.runs.push({ options, build: model.build, logits: Array.from(logits.data) });
  model.dispose();
}
console.log(JSON.stringify(out));
