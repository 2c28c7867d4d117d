// A KServe v2 endpoint for brasa model packages on Deno. It serves the packages named in
// BRASA_MODELS (comma-separated folder names `brasa build` wrote, default `mnist,two-heads`),
// found in BRASA_PACKAGES (default ./models/), weights from a brasa registry (each model's
// `stable` channel).
//   BRASA_REGISTRY=http://127.0.0.1:8080/registry/ BRASA_PACKAGES=../../.cache/packages \
//     deno run --allow-net --allow-read --allow-env main.ts
//   BRASA_MODELS=ocr-det,silero-vad BRASA_REGISTRY=... BRASA_PACKAGES=... deno run ... main.ts
// Text: BRASA_TOKENIZERS=minilm=path/or/url/of/tokenizer.json serves that sentence embedder as
// `text` (BYTES) in, embeddings out (BRASA_MAX_TEXT_BYTES: the byte limit of one text).
// Versions side by side: BRASA_VERSIONS=mnist=1.0.0+1.1.0 serves those versions of mnist
// (`/v2/models/mnist/versions/{v}/infer`), mnist=latest:2 the newest two published.
// (In an app, import the packages: `import mnist from './models/mnist/index.js'`.)
import { createHandler, type ModelPackage } from 'brasa';

const env = (name: string, fallback: string) => Deno.env.get(name) ?? fallback;
const packages = new URL(env('BRASA_PACKAGES', new URL('./models/', import.meta.url).pathname).replace(/\/?$/, '/'), `file://${Deno.cwd()}/`);
const names = env('BRASA_MODELS', 'mnist,two-heads').split(',').map((s) => s.trim()).filter(Boolean);
if (names.length === 0) throw new Error('BRASA_MODELS names no model package');
const load = async (name: string): Promise<ModelPackage> => (await import(new URL(`${name}/index.js`, packages).href)).default;
const models = await Promise.all(names.map(load));

const limits = { maxBatch: Number(env('BRASA_MAX_BATCH', '32')), maxQueueRows: Number(env('BRASA_MAX_QUEUE_ROWS', '512')) };
// `name=tokenizer.json` pairs: those models take text.
const tokenizers = new Map(env('BRASA_TOKENIZERS', '').split(',').filter(Boolean).map((pair) => pair.split(/=(.*)/s, 2) as [string, string]));
const maxTextBytes = Deno.env.get('BRASA_MAX_TEXT_BYTES') ? Number(Deno.env.get('BRASA_MAX_TEXT_BYTES')) : undefined;
const text = (name: string) => (tokenizers.has(name) ? { tokenizer: tokenizers.get(name)!, maxTextBytes } : {});
// `name=1.0.0+1.1.0` or `name=latest:N` pairs: those models' version policies.
const policies = new Map(env('BRASA_VERSIONS', '').split(',').filter(Boolean).map((pair) => pair.split(/=(.*)/s, 2) as [string, string]));
const policy = (p: string | undefined) => (p === undefined ? {} : p.startsWith('latest:') ? { latest: Number(p.slice(7)) } : { versions: p.split('+') });
const handler = createHandler({
  models: models.map((model: ModelPackage, i: number) => ({ model, ...limits, ...text(names[i]), ...policy(policies.get(names[i])) })),
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
