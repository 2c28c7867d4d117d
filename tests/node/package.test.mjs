// The `brasa` npm package under Node 20 with the MNIST and SqueezeNet model packages
// (`brasa build` wrote them to .cache/packages): the exports map picks the Node entry, which
// runs the packages' CPU builds and reads weights from files, file: URLs, bytes or HTTP
// (`brasa serve`).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { BrasaError, BrasaModel, Tensor, createClassifier, loadModel } from 'brasa';
import { BAD_INPUT_ROUND, CACHE, TOLERANCE, checkBadInputRound, loadPackage, maxDiff, reference, serve, weightsPath } from '../support.mjs';

const REF = reference();
const WEIGHTS = readFileSync(weightsPath());
const mnist = await loadPackage('mnist');
const squeezenet = await loadPackage('squeezenet');
let server;

before(async () => { server = await serve(dirname(weightsPath())); });
after(() => server?.stop());

const isCode = (code) => (e) => e instanceof BrasaError && e.code === code;

test('the exports map resolves brasa to its Node entry', () => {
  assert.match(import.meta.resolve('brasa'), /\/npm\/dist\/node\.js$/);
});

test('the MNIST package: its signature and metadata reach the model', async () => {
  assert.equal(mnist.format, 'brasa-model@1');
  assert.equal(mnist.name, 'mnist');
  const model = await loadModel(mnist, { weights: WEIGHTS, backend: 'cpu' });
  assert.deepEqual(model.inputNames, ['pixels']);
  assert.deepEqual(model.outputNames, ['logits']);
  const [input] = model.signature.inputs;
  assert.equal(input.dtype, 'float32');
  assert.deepEqual(input.dims.slice(1), [1, 28, 28]);
  assert.equal(model.signature.outputs[0].dtype, 'float32');
  assert.deepEqual(model.signature.outputs[0].dims.slice(1), [10]);
  const plain = (v) => JSON.parse(JSON.stringify(v));
  assert.deepEqual(plain(model.signature), plain(mnist.signature));
  const meta = model.info.metadata;
  assert.equal(meta.task, 'classification');
  assert.equal(meta.output, 'logits');
  assert.equal(meta.activation, 'softmax');
  assert.deepEqual(meta.labels, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  assert.equal(model.info.backend, 'cpu');
  assert.ok(model.info.weightBytes > 0);
  assert.ok(model.info.parameters > 0);
  assert.ok(model.info.limits.maxBatch > 0);
  model.dispose();
});

test('auto runs on CPU under Node and says why; webgpu is a clear error', async () => {
  const fallbacks = [];
  const model = await loadModel(mnist, { weights: WEIGHTS, onFallback: (e) => fallbacks.push(e) });
  assert.ok(model instanceof BrasaModel);
  assert.equal(model.backend, 'cpu');
  if (mnist.builds.webgpu) {
    // A package with a WebGPU build: auto tried it and fell back.
    assert.match(model.fallbackReason, /navigator\.gpu is undefined/);
    assert.equal(fallbacks.length, 1);
    assert.equal(fallbacks[0].to, 'cpu');
  } else {
    assert.equal(model.fallbackReason, null);
  }
  model.dispose();
  await assert.rejects(loadModel(mnist, { weights: WEIGHTS, backend: 'webgpu' }), isCode('backend_unavailable'));
  const cpu = await loadModel(mnist, { weights: WEIGHTS, backend: 'cpu' });
  assert.equal(cpu.fallbackReason, null);
  cpu.dispose();
});

test('logits match numpy within 1e-4 through run() and the classifier, singly, batched and concurrently', async () => {
  const model = await loadModel(mnist, { weights: weightsPath(), backend: 'cpu' });
  const n = REF.items.length;
  const flat = new Float32Array(REF.items.flatMap((i) => i.pixels));

  // The raw model: named tensors in, named tensors out.
  const { logits } = await model.run({ pixels: new Tensor('float32', flat, [n, 1, 28, 28]) });
  assert.ok(logits instanceof Tensor);
  assert.equal(logits.dtype, 'float32');
  assert.deepEqual(logits.dims, [n, 10]);
  const bare = await model.run(flat); // one input: the array itself, the batch from its length
  assert.deepEqual(bare.logits.dims, [n, 10]);
  assert.deepEqual([...bare.logits.data], [...logits.data]);
  assert.ok(model.lastLatencyMs > 0);

  // The classifier: the old Prediction.
  const classifier = createClassifier(model);
  assert.equal(classifier.input, 'pixels');
  assert.equal(classifier.output, 'logits');
  assert.equal(classifier.activation, 'softmax');
  assert.equal(classifier.labels.length, 10);
  const batch = await classifier.run(flat);
  assert.equal(batch.batch, n);
  assert.equal(batch.classes, 10);
  assert.equal(batch.backend, 'cpu');
  assert.ok(batch.latencyMs > 0);
  assert.ok(batch.labels instanceof Uint32Array);
  const concurrent = await Promise.all(REF.items.map((i) => classifier.run(i.pixels)));
  REF.items.forEach((item, i) => {
    assert.ok(maxDiff(logits.data.subarray(i * 10, i * 10 + 10), item.logits) <= TOLERANCE, item.name);
    assert.ok(maxDiff(batch.logits.subarray(i * 10, i * 10 + 10), item.logits) <= TOLERANCE, item.name);
    assert.ok(maxDiff(concurrent[i].logits, item.logits) <= TOLERANCE, item.name);
    assert.equal(concurrent[i].batch, 1);
    const p = concurrent[i].probabilities;
    assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-5);
    assert.equal(batch.labels[i], concurrent[i].label, item.name);
    if (item.label !== null) assert.equal(concurrent[i].label, item.label, item.name);
  });
  model.dispose();
});

test('weights load from a path, a file: URL, bytes and HTTP', async () => {
  const sources = [weightsPath(), pathToFileURL(weightsPath()), WEIGHTS.buffer.slice(WEIGHTS.byteOffset, WEIGHTS.byteOffset + WEIGHTS.byteLength), `${server.url}mnist.bpk`];
  const pixels = REF.items[0].pixels;
  for (const weights of sources) {
    const model = await loadModel(mnist, { weights, backend: 'cpu' });
    assert.ok(maxDiff((await model.run(pixels)).logits.data, REF.items[0].logits) <= TOLERANCE, String(weights));
    model.dispose();
  }
});

test('missing weights and network failures are network errors', async () => {
  const network = isCode('network');
  await assert.rejects(loadModel(mnist, { weights: join(CACHE, 'no-such.bpk') }), network);
  await assert.rejects(loadModel(mnist, { weights: `${server.url}no-such.bpk` }), (e) => network(e) && /404/.test(e.message));
  // A port nothing listens on: the connection is refused.
  const closed = await serve(dirname(weightsPath()));
  closed.stop();
  await new Promise((r) => setTimeout(r, 200));
  await assert.rejects(loadModel(mnist, { weights: `${closed.url}mnist.bpk` }), network);
});

test('no package, a package of another name, or not a package: typed errors', async () => {
  // brasa holds no model: a name alone is not enough.
  await assert.rejects(loadModel('mnist', { weights: WEIGHTS }), (e) => isCode('unknown_model')(e) && /package/.test(e.message));
  await assert.rejects(loadModel('squeezenet@stable', { registry: 'http://127.0.0.1:9/', build: mnist }), isCode('unknown_model'));
  await assert.rejects(loadModel({ ...mnist, format: 'something-else@9' }, { weights: WEIGHTS }), isCode('incompatible'));
  await assert.rejects(loadModel(mnist, {}), BrasaError);
});

test('bad input and bad weights give typed errors and the model keeps working', async () => {
  const model = await loadModel(mnist, { weights: WEIGHTS, backend: 'cpu' });
  globalThis.brasaUnderTest = model;
  globalThis.brasaPackage = mnist;
  globalThis.brasaWeights = new Uint8Array(WEIGHTS);
  try {
    const badInputRound = new Function(`${BAD_INPUT_ROUND}; return badInputRound;`)();
    checkBadInputRound(assert, await badInputRound());
  } finally {
    model.dispose();
    delete globalThis.brasaUnderTest;
    delete globalThis.brasaPackage;
    delete globalThis.brasaWeights;
  }
});

test('setWeights swaps weights atomically; dispose ends the model', async () => {
  const model = await loadModel(mnist, { weights: WEIGHTS, backend: 'cpu' });
  const pixels = REF.items[1].pixels;
  const logits = async () => [...(await model.run(pixels)).logits.data];
  const before = await logits();
  await assert.rejects(model.setWeights(new Uint8Array(16)), isCode('invalid_weights'));
  assert.deepEqual(await logits(), before, 'a refused setWeights changed nothing');
  await model.setWeights(new Uint8Array(WEIGHTS));
  assert.deepEqual(await logits(), before);
  const inflight = model.run(pixels);
  model.dispose();
  assert.deepEqual([...(await inflight).logits.data], before, 'a run started before dispose completes');
  assert.equal(model.disposed, true);
  await assert.rejects(model.run(pixels), isCode('disposed'));
});

test('squeezenet (imported from ONNX) matches the onnx reference evaluator; mnist weights are refused for it', async () => {
  const dir = join(CACHE, 'models/squeezenet');
  const ref = JSON.parse(readFileSync(join(dir, 'squeezenet-reference.json'), 'utf8'));
  assert.equal(squeezenet.name, 'squeezenet');
  const model = await loadModel(squeezenet, { weights: join(dir, 'squeezenet.bpk'), backend: 'cpu' });
  assert.deepEqual(model.inputNames, ['data_0']);
  assert.deepEqual(model.outputNames, ['softmaxout_1']);
  assert.equal(model.signature.inputs[0].dtype, 'float32');
  assert.deepEqual(model.signature.inputs[0].dims.slice(1), [3, 224, 224]);
  assert.deepEqual(model.signature.outputs[0].dims.slice(1), [1000]);
  assert.equal(model.info.metadata.activation, 'none');

  const n = ref.inputs.length;
  const input = Float32Array.from(ref.inputs.flat());
  const { softmaxout_1: raw } = await model.run({ data_0: new Tensor('float32', input, [n, 3, 224, 224]) });
  assert.deepEqual(raw.dims, [n, 1000]);

  const classifier = createClassifier(model);
  assert.equal(classifier.activation, 'none');
  const out = await classifier.run(input);
  assert.equal(out.batch, n);
  assert.equal(out.classes, 1000);
  ref.outputs.forEach((expected, i) => {
    assert.ok(maxDiff(raw.data.slice(i * 1000, (i + 1) * 1000), expected) < 1e-5);
    assert.ok(maxDiff(out.logits.slice(i * 1000, (i + 1) * 1000), expected) < 1e-5);
    // The graph ends in a softmax: not taken a second time.
    assert.ok(maxDiff(out.probabilities.slice(i * 1000, (i + 1) * 1000), expected) < 1e-5);
    assert.equal(out.labels[i], ref.top1[i]);
  });
  await assert.rejects(model.run(new Float32Array(784)), isCode('invalid_input'));
  await assert.rejects(model.run({ pixels: new Float32Array(784) }), (e) => isCode('invalid_input')(e) && /`pixels`/.test(e.message));
  const single = await model.run({ data_0: input.subarray(0, 3 * 224 * 224) });
  assert.deepEqual(single.softmaxout_1.dims, [1, 1000]);
  assert.ok(maxDiff(single.softmaxout_1.data, raw.data.subarray(0, 1000)) < 1e-6);
  model.dispose();
  await assert.rejects(loadModel(squeezenet, { weights: WEIGHTS, backend: 'cpu' }), BrasaError);
  // And the other way round: the squeezenet package's weights are not MNIST's.
  await assert.rejects(loadModel(mnist, { weights: join(dir, 'squeezenet.bpk'), backend: 'cpu' }), BrasaError);
});
