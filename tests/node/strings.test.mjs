// Strings are a dtype (`string`: KServe's BYTES) that only a signature declaring one takes: a
// `Tensor` of strings is built and checked in JS, and a model whose inputs are numbers
// (all-MiniLM-L6-v2's int64 token ids, built by `brasa build`) refuses it in Rust, naming the
// input, and keeps working. createHandler refuses text options that cannot work (the endpoint
// serving text is tests/serving/text.test.mjs).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';

import { BrasaError, Tensor, createHandler, loadModel } from '../../npm/dist/node.js';
import { CACHE } from '../support.mjs';

let model;
let pkg;

before(async () => {
  pkg = (await import(pathToFileURL(join(CACHE, 'packages/minilm/index.js')).href)).default;
  model = await loadModel(pkg, { weights: join(CACHE, 'models/minilm.bpk'), backend: 'cpu' });
});
after(() => model?.dispose());

const refused = (fn, needle) =>
  assert.throws(fn, (err) => err instanceof BrasaError && err.code === 'invalid_input' && err.message.includes(needle), needle);

test('a string tensor holds an Array of strings, checked', () => {
  const source = ['A man is eating food.', '', '日本 🎉'];
  const t = new Tensor('string', source, [3]);
  assert.equal(t.dtype, 'string');
  assert.deepEqual(t.data, source);
  assert.notEqual(t.data, source, 'the data is a copy');
  refused(() => new Tensor('string', ['a', 3]), 'tensor[1] is number 3; a string tensor holds strings');
  refused(() => new Tensor('string', new Uint8Array([65])), "a string tensor's data is an Array of strings");
  refused(() => new Tensor('string', ['a', 'b'], [3]), 'hold 3 values, but data has 2');
  refused(() => new Tensor('int64', ['1']), 'an int64 input takes integers');
});

test('a model that takes numbers refuses strings, naming the input, and runs on', async () => {
  const ids = new Tensor('int64', BigInt64Array.from([101n, 2158n, 102n]), [1, 3]);
  const mask = new Tensor('int64', BigInt64Array.from([1n, 1n, 1n]), [1, 3]);
  const first = await model.run({ input_ids: ids, attention_mask: mask });
  await assert.rejects(
    model.run({ input_ids: new Tensor('string', ['101', '2158', '102'], [1, 3]), attention_mask: mask }),
    (err) => err instanceof BrasaError && err.code === 'invalid_input' && /input `input_ids` is string; the model takes int64/.test(err.message),
  );
  const again = await model.run({ input_ids: ids, attention_mask: mask });
  assert.deepEqual(Array.from(again.embeddings.data), Array.from(first.embeddings.data));
});

test('createHandler refuses text options that cannot work, naming the model', () => {
  const handler = (served) => () => createHandler({ models: [{ model: pkg, ...served }], registry: 'http://127.0.0.1:9/' });
  const spec = (needle) => (err) => err instanceof BrasaError && err.code === 'invalid_spec' && err.message.includes(needle);
  const tokenizer = join(CACHE, 'models/minilm/tokenizer.json');
  for (const maxTextBytes of [0, -1, 1.5, '100', NaN]) {
    assert.throws(handler({ tokenizer, maxTextBytes }), spec('served model minilm: maxTextBytes must be a positive integer'), String(maxTextBytes));
  }
  assert.throws(handler({ maxTextBytes: 100 }), spec('maxTextBytes applies to text, which needs a tokenizer'));
  assert.throws(handler({ tokenizer: 42 }), spec('tokenizer must be the URL of a tokenizer.json or the parsed object'));
  handler({ tokenizer, maxTextBytes: 100 })().close();
});
