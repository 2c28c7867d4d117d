// Triton's own Python client (PyPI tritonclient[http], in the project's venv) against the
// KServe endpoint of examples/node on 127.0.0.1, weights from a real `brasa serve` registry:
// health and server metadata, the model configuration of each model (checked against its
// package's signature), inference (binary and JSON, concurrent requests; logits against
// numpy), refusals, and the statistics extension: per model version, counts and nanoseconds
// that move with each answered and failed request and add up across batches.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';

import { ROOT, TOLERANCE, maxDiff, packageDir, reference, serve } from '../support.mjs';
import { makeServingRegistry, twoHeadsReference } from '../serving/models.mjs';
import { startNode } from '../serving/runtimes.mjs';

const PYTHON = process.env.BRASA_PYTHON ?? join(process.env.HOME, '.cache/brasa/venv/bin/python');
// Above the 22 reference images (sent as one request), below the default of 32.
const MAX_BATCH = 24;
const REF = reference();
const TWO_HEADS = twoHeadsReference();

let registry;
let upstream;
let server;
let scratch;
let session;

before(async () => {
  registry = makeServingRegistry();
  upstream = await serve(registry.dir);
  server = await startNode(upstream.url, { maxBatch: MAX_BATCH, maxQueueRows: 64 });
  for (let i = 0; i < 120 && (await fetch(`${server.url}v2/health/ready`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 250));
  scratch = mkdtempSync(join(tmpdir(), 'brasa-tritonclient-'));
  const inputs = join(scratch, 'inputs.json');
  const c = TWO_HEADS.cases.find((k) => k.features.dims[0] > 1) ?? TWO_HEADS.cases[0];
  writeFileSync(inputs, JSON.stringify({ mnist: REF.items.map((i) => i.pixels), two_heads: c }));
  const host = new URL(server.url).host;
  const { stdout } = await promisify(execFile)(PYTHON, [join(ROOT, 'tests/node/tritonclient_session.py'), host, inputs], { maxBuffer: 64 << 20 });
  session = { ...JSON.parse(stdout), twoHeadsCase: c };
});

after(async () => {
  await server?.stop();
  upstream?.stop();
  registry?.remove();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

const TRITON_TYPES = { float32: 'TYPE_FP32', float16: 'TYPE_FP16', int64: 'TYPE_INT64', int32: 'TYPE_INT32', uint8: 'TYPE_UINT8', bool: 'TYPE_BOOL' };

/** Triton's form of a package's tensors: dims without the leading batch, -1 where they vary. */
function tritonTensors(specs) {
  return specs.map((t) => ({ name: t.name, data_type: TRITON_TYPES[t.dtype], dims: t.dims.slice(1).map((d) => (typeof d === 'number' ? d : -1)) }));
}

test('server metadata lists the extensions; health through the client', () => {
  assert.equal(session.live, true);
  assert.equal(session.ready, true);
  assert.equal(session.server.name, 'brasa');
  for (const ext of ['model_configuration', 'statistics', 'binary_tensor_data']) assert.ok(session.server.extensions.includes(ext), JSON.stringify(session.server));
});

test('get_model_config: the signature, the batching limits and policy, the version policy', () => {
  for (const name of ['mnist', 'two-heads']) {
    const { signature } = JSON.parse(readFileSync(join(packageDir(name), 'model.json'), 'utf8'));
    const config = session.config[name];
    assert.equal(config.name, name);
    assert.equal(config.platform, 'brasa');
    assert.equal(config.backend, 'brasa');
    assert.equal(config.max_batch_size, MAX_BATCH);
    assert.deepEqual(config.input, tritonTensors(signature.inputs), name);
    assert.deepEqual(config.output, tritonTensors(signature.outputs), name);
    // Requests of up to MAX_BATCH rows run at once; one waits at most the 2 ms default.
    assert.deepEqual(config.dynamic_batching, { preferred_batch_size: [MAX_BATCH], max_queue_delay_microseconds: 2000 });
    // `mnist@stable`: the version the channel names, one at a time.
    assert.deepEqual(config.version_policy, { latest: { num_versions: 1 } });
    assert.deepEqual(config.instance_group, [{ name: `${name}_0`, kind: 'KIND_CPU', count: 1 }]);
  }
  assert.deepEqual(session.config.mnist.input, [{ name: 'pixels', data_type: 'TYPE_FP32', dims: [1, 28, 28] }]);
  assert.deepEqual(session.config['two-heads'].input.map((t) => t.dims), [[-1, 4], [3]]);
  assert.deepEqual(session.config_versioned, session.config.mnist);
  assert.equal(session.config_unknown_model.status, '404');
  assert.match(session.config_unknown_model.message, /unknown model `resnet`/);
  assert.equal(session.config_unknown_version.status, '404');
  assert.match(session.config_unknown_version.message, /no version 9\.9\.9/);
});

test('infer through the client agrees with numpy (binary, JSON, concurrent requests, INT64 inputs)', () => {
  REF.items.forEach((item, i) => {
    assert.ok(maxDiff(session.mnist_batch[i], item.logits) <= TOLERANCE, `${item.name} (batch)`);
    assert.ok(maxDiff(session.mnist_singles[i][0], item.logits) <= TOLERANCE, `${item.name} (single)`);
  });
  assert.ok(maxDiff(session.mnist_json[0], REF.items[0].logits) <= TOLERANCE);
  const c = session.twoHeadsCase;
  assert.ok(maxDiff(session.two_heads.pooled.flat(), c.pooled.data) <= TOLERANCE);
  assert.deepEqual(session.two_heads.class_id, c.class_id.data);
  assert.equal(session.bad_shape.status, '400');
  assert.match(session.bad_shape.message, /`pixels`/);
  assert.equal(session.bad_datatype.status, '400');
  assert.match(session.bad_datatype.message, /INT32/);
});

test('get_inference_statistics: counts and nanoseconds move with answered and failed requests, per version', () => {
  const [before] = session.stats_before.model_stats;
  const [after] = session.stats_after.model_stats;
  assert.equal(session.stats_before.model_stats.length, 1);
  assert.deepEqual([after.name, after.version], ['mnist', '1.0.0']);
  const { ok_requests: requests, ok_rows: rows, failed } = session.sent;
  const delta = (path) => path(after) - path(before);
  const stats = (s) => s.inference_stats;
  assert.equal(delta((s) => s.inference_count), rows);
  assert.equal(delta((s) => stats(s).success.count), requests);
  assert.equal(delta((s) => stats(s).fail.count), failed);
  assert.equal(delta((s) => stats(s).queue.count), requests);
  for (const phase of ['compute_input', 'compute_infer', 'compute_output']) assert.equal(delta((s) => stats(s)[phase].count), requests, phase);
  // Measured durations, in nanoseconds: a request takes time, and so does running the model.
  for (const what of ['success', 'fail', 'compute_infer']) assert.ok(delta((s) => stats(s)[what].ns) > 0, `${what}: ${JSON.stringify(after.inference_stats)}`);
  for (const d of Object.values(after.inference_stats)) assert.ok(Number.isInteger(d.count) && Number.isInteger(d.ns) && d.ns >= 0, JSON.stringify(d));
  // A request's time holds its queueing and its batch's forward pass.
  assert.ok(stats(after).success.ns >= stats(after).compute_infer.ns, JSON.stringify(after.inference_stats));
  // Forward passes: at most one per request (concurrent ones may share one), each batch size
  // counted once per pass, and the passes' rows are every row answered.
  const executions = delta((s) => s.execution_count);
  assert.ok(executions >= 1 && executions <= requests, `execution_count moved by ${executions}`);
  const passes = after.batch_stats.reduce((n, b) => n + b.compute_infer.count, 0);
  const passRows = after.batch_stats.reduce((n, b) => n + b.batch_size * b.compute_infer.count, 0);
  assert.equal(passes, after.execution_count);
  assert.equal(passRows, after.inference_count);
  assert.ok(after.batch_stats.some((b) => b.batch_size === REF.items.length), JSON.stringify(after.batch_stats));
  for (const b of after.batch_stats) assert.ok(b.batch_size >= 1 && b.batch_size <= MAX_BATCH, JSON.stringify(b));
  const [from, to] = session.window_ms;
  assert.ok(after.last_inference >= Math.floor(from) && after.last_inference <= Math.ceil(to), `last_inference ${after.last_inference} outside [${from}, ${to}]`);
  // The same version asked for by number; unknown ones are 404 with KServe's { error }.
  assert.deepEqual(session.stats_versioned.model_stats.map((s) => [s.name, s.version]), [['mnist', '1.0.0']]);
  assert.equal(session.stats_unknown_version.status, '404');
  assert.match(session.stats_unknown_version.message, /no version 9\.9\.9/);
  assert.equal(session.stats_unknown_model.status, '404');
  // Every model: two-heads answered one request of its case's rows.
  const all = Object.fromEntries(session.stats_all.model_stats.map((s) => [s.name, s]));
  assert.deepEqual(Object.keys(all).sort(), ['mnist', 'two-heads']);
  assert.equal(all['two-heads'].inference_count, session.twoHeadsCase.features.dims[0]);
  assert.equal(all['two-heads'].inference_stats.success.count, 1);
  assert.equal(all['two-heads'].version, '1.0.0');
});

test('Prometheus metrics label errors and latencies by version', async () => {
  const metrics = await (await fetch(`${server.url}metrics`)).text();
  assert.match(metrics, /^brasa_request_errors_total\{backend="cpu",code="wrong_shape",model="mnist",version="1\.0\.0"\} 1$/m);
  assert.match(metrics, /^brasa_request_errors_total\{backend="cpu",code="wrong_datatype",model="mnist",version="1\.0\.0"\} 1$/m);
  assert.match(metrics, /^brasa_request_duration_seconds_count\{backend="cpu",model="mnist",version="1\.0\.0"\} \d+$/m);
  assert.match(metrics, /^brasa_queue_wait_seconds_count\{backend="cpu",model="mnist",version="1\.0\.0"\} \d+$/m);
  // No per-model series without its version.
  for (const line of metrics.split('\n').filter((l) => l.startsWith('brasa_') && l.includes('model="') && !l.startsWith('brasa_cache_persistent'))) {
    assert.match(line, /version="/, line);
  }
});
