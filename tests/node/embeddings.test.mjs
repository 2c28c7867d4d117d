// Text in, embeddings out: all-MiniLM-L6-v2 (models/minilm, built by `brasa build`) behind
// `createEmbedder`, under Node, against the independent reference
// (tests/reference/minilm_reference.py): token ids from Hugging Face's Python `tokenizers` on
// the model's tokenizer.json, embeddings from a float64 numpy forward pass of the safetensors.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';

import { createEmbedder, loadModel } from '../../npm/dist/node.js';
import { CACHE } from '../support.mjs';

/** Lowest cosine similarity to numpy accepted per sentence (the bar). */
const MIN_COSINE = 0.9999;
const TOKENIZER = join(CACHE, 'models/minilm/tokenizer.json');
const reference = JSON.parse(readFileSync(join(CACHE, 'fixtures/minilm-reference.json'), 'utf8'));

let model;
let embedder;

async function packageOf(name) {
  return (await import(pathToFileURL(join(CACHE, 'packages', name, 'index.js')).href)).default;
}

before(async () => {
  model = await loadModel(await packageOf('minilm'), { weights: join(CACHE, 'models/minilm.bpk'), backend: 'cpu' });
  embedder = await createEmbedder(model, { tokenizer: TOKENIZER });
});
after(() => model?.dispose());

const row = (e, k) => e.data.subarray(k * e.dims[1], (k + 1) * e.dims[1]);
const dot = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);
const idsOf = (batch, k) => Array.from(batch.inputIds.subarray(k * batch.dims[1], k * batch.dims[1] + batch.lengths[k]), Number);

test('the package describes a sentence embedder', () => {
  assert.equal(embedder.dimensions, 384);
  assert.equal(embedder.maxLength, 256, "sentence-transformers' max_seq_length, from the package's metadata");
  assert.equal(embedder.normalized, true);
  assert.deepEqual(model.signature.inputs.map((t) => [t.name, t.dtype]), [['input_ids', 'int64'], ['attention_mask', 'int64']]);
});

test('token ids match Python tokenizers on tricky strings (accents, CJK, emoji, empty, whitespace, long) and 1,000 random ones', async () => {
  // Untruncated: the longest the model takes.
  const wide = await createEmbedder(model, { tokenizer: TOKENIZER, maxLength: 512 });
  const cases = reference.tokenizer_cases;
  const batch = wide.tokenize(cases.map((c) => c.text));
  let compared = 0;
  cases.forEach((c, k) => {
    if (c.ids.length > 512) {
      // Longer than the model: the first 511 tokens, then [SEP].
      assert.deepEqual(idsOf(batch, k), [...c.ids.slice(0, 511), c.ids.at(-1)], `truncated ${JSON.stringify(c.text.slice(0, 40))}`);
      assert.ok(batch.truncated.includes(k));
    } else {
      assert.deepEqual(idsOf(batch, k), c.ids, `ids of ${JSON.stringify(c.text.slice(0, 60))}`);
      compared++;
    }
  });
  assert.ok(compared >= 30, `compared ${compared} cases`);
  // 1,000 seeded random strings mixing scripts, emoji sequences, combining marks, whitespace
  // and control characters.
  const randoms = reference.tokenizer_random_cases;
  assert.equal(randoms.length, 1000);
  const random = wide.tokenize(randoms.map((c) => c.text));
  const wrong = randoms.flatMap((c, k) => (JSON.stringify(idsOf(random, k)) === JSON.stringify(c.ids) ? [] : [JSON.stringify(c.text)]));
  assert.deepEqual(wrong, [], `${wrong.length} of 1000 random strings tokenised differently`);
  // Padding: 0 after each text's tokens, mask 0 there.
  const seq = batch.dims[1];
  const k = cases.findIndex((c) => c.text === '');
  assert.deepEqual(Array.from(batch.attentionMask.subarray(k * seq, k * seq + 3), Number), [1, 1, 0]);
  assert.equal(batch.inputIds[k * seq + 2], 0n);
});

test('embeddings match numpy (cosine ≥ 0.9999), padded in batches, in the order given', async () => {
  const out = await embedder.embed(reference.sentences);
  assert.deepEqual(out.dims, [reference.sentences.length, 384]);
  assert.equal(out.backend, 'cpu');
  let worst = 1;
  let maxDelta = 0;
  reference.sentences.forEach((s, k) => {
    const got = row(out, k);
    const cos = dot(got, reference.embeddings[k]) / Math.sqrt(dot(got, got) * dot(reference.embeddings[k], reference.embeddings[k]));
    assert.ok(cos >= MIN_COSINE, `${JSON.stringify(s.slice(0, 40))}: cosine ${cos}`);
    worst = Math.min(worst, cos);
    for (let i = 0; i < 384; i++) maxDelta = Math.max(maxDelta, Math.abs(got[i] - reference.embeddings[k][i]));
    assert.equal(out.tokens[k], reference.ids[k].length, `tokens of sentence ${k}`);
  });
  console.log(`# minilm cpu: worst cosine ${worst.toFixed(7)}, max |brasa - numpy| ${maxDelta.toExponential(2)} over ${reference.sentences.length} sentences`);
  // The one over 256 tokens was truncated, as sentence-transformers does (its ids are the
  // reference's, which Python truncated).
  const long = reference.sentences.findIndex((s) => s.length > 1000);
  assert.deepEqual(out.truncated, [long]);
  assert.equal(out.tokens[long], 256);
  // One sentence alone gives the same row as inside a padded batch.
  const alone = await embedder.embed(reference.sentences[3]);
  assert.deepEqual(alone.dims, [1, 384]);
  assert.ok(dot(row(alone, 0), row(out, 3)) > 0.999999);
});

test('related sentences are closer than unrelated ones', async () => {
  const { data, dims } = await embedder.embed(['A man is eating food.', 'A man is eating a piece of bread.', 'A monkey is playing drums.']);
  const e = (k) => data.subarray(k * dims[1], (k + 1) * dims[1]);
  assert.ok(dot(e(0), e(1)) > dot(e(0), e(2)) + 0.3);
});

test('no texts give no rows', async () => {
  const out = await embedder.embed([]);
  assert.deepEqual(out.dims, [0, 384]);
  assert.equal(out.data.length, 0);
});

test('bad input and bad configuration are typed errors, and the embedder stays usable', async () => {
  await assert.rejects(embedder.embed(['fine', 42]), (e) => e.code === 'invalid_input' && /text 1/.test(e.message));
  await assert.rejects(embedder.embed(null), (e) => e.code === 'invalid_input');
  await assert.rejects(embedder.embed({ length: 1, 0: 'x' }), (e) => e.code === 'invalid_input');
  await assert.rejects(createEmbedder(model, { tokenizer: join(CACHE, 'models/minilm/no-such-tokenizer.json') }), (e) => e.code === 'network' && /tokenizer/.test(e.message));
  await assert.rejects(createEmbedder(model, { tokenizer: join(CACHE, 'models/minilm/config.json') }), (e) => e.code === 'invalid_input' && /tokenizer/.test(e.message));
  await assert.rejects(createEmbedder(model, { tokenizer: { model: { type: 'NoSuchModel' } } }), (e) => e.code === 'invalid_input');
  await assert.rejects(createEmbedder(model, { tokenizer: TOKENIZER, maxLength: 513 }), (e) => e.code === 'invalid_spec' && /512/.test(e.message));
  await assert.rejects(createEmbedder(model, { tokenizer: TOKENIZER, maxLength: 2 }), (e) => e.code === 'invalid_spec' && /special/.test(e.message));
  await assert.rejects(createEmbedder(model, { tokenizer: TOKENIZER, batchSize: 0 }), (e) => e.code === 'invalid_spec');
  await assert.rejects(createEmbedder(model), (e) => e.code === 'invalid_spec');
  const mnist = await loadModel(await packageOf('mnist'), { weights: join(CACHE, 'models/mnist.bpk'), backend: 'cpu' });
  try {
    await assert.rejects(createEmbedder(mnist, { tokenizer: TOKENIZER }), (e) => e.code === 'invalid_spec' && /input_ids/.test(e.message));
  } finally {
    mnist.dispose();
  }
  const out = await embedder.embed('still works');
  assert.deepEqual(out.dims, [1, 384]);
});

test("another model's tokenizer, or one that gives no id, is refused; a disposed model gets no embedder", async () => {
  // WordLevel: ids past MiniLM's vocabulary (another model's), and an unknown token that is
  // not in its vocabulary (no id for unknown words).
  const wordLevel = (vocab) => ({
    version: '1.0',
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: '[UNK]' },
  });
  await assert.rejects(createEmbedder(model, { tokenizer: wordLevel({ '[UNK]': 0, hello: 50000 }) }), (e) => e.code === 'invalid_spec' && /50000/.test(e.message) && /30521/.test(e.message));
  const noUnk = await createEmbedder(model, { tokenizer: wordLevel({ hello: 7 }) });
  await assert.rejects(noUnk.embed(['hello other']), (e) => e.code === 'invalid_input' && /text 0/.test(e.message));
  const other = await loadModel(await packageOf('minilm'), { weights: join(CACHE, 'models/minilm.bpk'), backend: 'cpu' });
  other.dispose();
  await assert.rejects(createEmbedder(other, { tokenizer: TOKENIZER }), (e) => e.code === 'disposed');
});
