// A KServe v2 endpoint for brasa model packages on Deno. It serves the packages named in
// BRASA_MODELS (comma-separated folder names `brasa build` wrote, default `mnist,two-heads`),
// found in BRASA_PACKAGES (default ./models/), weights from a brasa registry (each model's
// `stable` channel).
//   BRASA_REGISTRY=http://127.0.0.1:8080/registry/ BRASA_PACKAGES=../../.cache/packages \
//     deno run --allow-net --allow-read --allow-env main.ts
//   BRASA_MODELS=ocr-det,silero-vad BRASA_REGISTRY=... BRASA_PACKAGES=... deno run ... main.ts
// (In an app, import the packages: `import mnist from './models/mnist/index.js'`.)
import { createHandler, type ModelPackage } from 'brasa';

const env = (name: string, fallback: string) => Deno.env.get(name) ?? fallback;
const packages = new URL(env('BRASA_PACKAGES', new URL('./models/', import.meta.url).pathname).replace(/\/?$/, '/'), `file://${Deno.cwd()}/`);
const names = env('BRASA_MODELS', 'mnist,two-heads').split(',').map((s) => s.trim()).filter(Boolean);
if (names.length === 0) throw new Error('BRASA_MODELS names no model package');
const load = async (name: string): Promise<ModelPackage> => (await import(new URL(`${name}/index.js`, packages).href)).default;
const models = await Promise.all(names.map(load));

const limits = { maxBatch: Number(env('BRASA_MAX_BATCH', '32')), maxQueueRows: Number(env('BRASA_MAX_QUEUE_ROWS', '512')) };
const handler = createHandler({
  models: models.map((model: ModelPackage) => ({ model, ...limits })),
  registry: env('BRASA_REGISTRY', 'http://127.0.0.1:8080/registry/'),
});
Deno.serve(
  {
    hostname: env('HOST', '127.0.0.1'),
    port: Number(env('PORT', '8000')),
    onListen: ({ hostname, port }) => console.log(`brasa serving on http://${hostname}:${port}/ (${names.join(', ')})`),
  },
  handler.fetch,
);
handler.start().then(
  () => console.log('models ready'),
  (err) => console.error(`a model could not be loaded: ${err.message}`),
);
