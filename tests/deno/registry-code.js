// Runs inside Deno (started by tests/deno/registry-code.test.mjs): MiniLM from a registry with
// no package — its code, tokenizer and weights are the version's files — then embeds the given
// sentences and prints `{ version, dtype, backend, embeddings }` as JSON.
import * as brasa from '../../npm/dist/index.js';

const { registry, sentences } = JSON.parse(Deno.args[0]);
const model = await brasa.loadModel('minilm@stable', { registry, backend: 'cpu', cache: new brasa.MemoryCache() });
const embedder = await brasa.createEmbedder(model);
const out = await embedder.embed(sentences);
console.log(JSON.stringify({ version: model.version, dtype: model.release.dtype, backend: model.backend, embeddings: Array.from(out.data) }));
