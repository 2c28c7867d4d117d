// Run inside Deno by cpu-builds.test.mjs: MNIST on the CPU builds Deno picks and is asked for,
// the reference batch through each; prints one JSON line.
import { loadModel } from '../../npm/dist/index.js';

const { mnistUrl, weights, reference } = JSON.parse(Deno.args[0]);
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
