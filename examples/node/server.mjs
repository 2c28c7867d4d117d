// A KServe v2 endpoint for brasa model packages on Node's http server. It serves the packages
// named in BRASA_MODELS (comma-separated folder names `brasa build` wrote, default
// `mnist,two-heads`), found in BRASA_PACKAGES (default ./models/), weights from a brasa
// registry (each model's `stable` channel).
//   BRASA_REGISTRY=http://127.0.0.1:8080/registry/ BRASA_PACKAGES=../../.cache/packages PORT=8000 node server.mjs
//   BRASA_MODELS=ocr-det,silero-vad BRASA_REGISTRY=... BRASA_PACKAGES=... node server.mjs
// Text: BRASA_TOKENIZERS=minilm=path/or/url/of/tokenizer.json serves that sentence embedder as
// `text` (BYTES) in, embeddings out (BRASA_MAX_TEXT_BYTES: the byte limit of one text).
// Versions side by side: BRASA_VERSIONS=mnist=1.0.0+1.1.0 serves those versions of mnist
// (`/v2/models/mnist/versions/{v}/infer`), mnist=latest:2 the newest two published.
// (In an app, import the packages: `import mnist from 'mnist-model'`.)
import http from 'node:http';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

import { createHandler, toNodeListener } from 'brasa';

const packages = resolve(process.env.BRASA_PACKAGES ?? new URL('./models/', import.meta.url).pathname);
const names = (process.env.BRASA_MODELS ?? 'mnist,two-heads').split(',').map((s) => s.trim()).filter(Boolean);
if (names.length === 0) throw new Error('BRASA_MODELS names no model package');
const load = async (name) => (await import(pathToFileURL(join(packages, name, 'index.js')).href)).default;
const models = await Promise.all(names.map(load));

const limits = { maxBatch: Number(process.env.BRASA_MAX_BATCH ?? 32), maxQueueRows: Number(process.env.BRASA_MAX_QUEUE_ROWS ?? 512) };
// `name=tokenizer.json` pairs: those models take text.
const tokenizers = new Map((process.env.BRASA_TOKENIZERS ?? '').split(',').filter(Boolean).map((pair) => pair.split(/=(.*)/s, 2)));
const maxTextBytes = process.env.BRASA_MAX_TEXT_BYTES ? Number(process.env.BRASA_MAX_TEXT_BYTES) : undefined;
const text = (name) => (tokenizers.has(name) ? { tokenizer: tokenizers.get(name), maxTextBytes } : {});
// `name=1.0.0+1.1.0` or `name=latest:N` pairs: those models' version policies.
const policies = new Map((process.env.BRASA_VERSIONS ?? '').split(',').filter(Boolean).map((pair) => pair.split(/=(.*)/s, 2)));
const policy = (p) => (p === undefined ? {} : p.startsWith('latest:') ? { latest: Number(p.slice(7)) } : { versions: p.split('+') });
const handler = createHandler({
  models: models.map((model, i) => ({ model, ...limits, ...text(names[i]), ...policy(policies.get(names[i])) })),
  registry: process.env.BRASA_REGISTRY ?? 'http://127.0.0.1:8080/registry/',
});
const server = http.createServer(toNodeListener(handler));
server.listen(Number(process.env.PORT ?? 8000), process.env.HOST ?? '127.0.0.1', () => {
  console.log(`brasa serving on http://${server.address().address}:${server.address().port}/ (${names.join(', ')})`);
});
handler.start().then(
  () => console.log('models ready'),
  (err) => console.error(`a model could not be loaded: ${err.message}`),
);
