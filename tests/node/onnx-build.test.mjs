// `brasa build --onnx`: SqueezeNet's ONNX file built straight into a package (the crate and its
// adapter generated), run under Node against onnx's reference evaluator; and a graph with an
// operator burn-onnx cannot import is refused naming the operator and node, leaving no folder.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';

import { loadModel } from '../../npm/dist/node.js';
import { CACHE, CLI, ROOT } from '../support.mjs';

const PKG = join(CACHE, 'packages/squeezenet-onnx');
const PYTHON = process.env.BRASA_PYTHON ?? join(process.env.HOME, '.cache/brasa/venv/bin/python');

test('an ONNX file built with brasa build --onnx matches the reference evaluator', async () => {
  const pkg = (await import(pathToFileURL(join(PKG, 'index.js')).href)).default;
  // The file's own tensor names, the graph's shapes (batch symbolic).
  assert.deepEqual(pkg.signature.inputs.map((t) => [t.name, t.dtype, t.dims]), [['data_0', 'float32', ['batch', 3, 224, 224]]]);
  assert.equal(pkg.signature.outputs[0].name, 'softmaxout_1');
  const ref = JSON.parse(readFileSync(join(CACHE, 'models/squeezenet/squeezenet-reference.json'), 'utf8'));
  const model = await loadModel(pkg, { weights: join(PKG, 'weights.bpk'), backend: 'cpu' });
  const out = await model.run({ data_0: { dtype: 'float32', dims: [ref.inputs.length, 3, 224, 224], data: Float32Array.from(ref.inputs.flat()) } });
  const y = out.softmaxout_1;
  assert.equal(y.dims[0], ref.inputs.length);
  const want = ref.outputs.flat();
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(y.data[i] - want[i]));
  assert.ok(worst < 1e-5, `largest difference from the reference: ${worst}`);
  model.dispose();
});

test('an operator burn-onnx cannot import is a clear error naming it, and no folder is written', () => {
  const dir = mkdtempSync(join(tmpdir(), 'brasa-onnx-'));
  try {
    const onnx = join(dir, 'custom.onnx');
    // A one-node graph whose operator comes from a vendor domain.
    execFileSync(PYTHON, ['-c', `
import onnx, sys
from onnx import helper, TensorProto
x = helper.make_tensor_value_info('x', TensorProto.FLOAT, ['N', 4])
y = helper.make_tensor_value_info('y', TensorProto.FLOAT, ['N', 4])
node = helper.make_node('FancyActivation', ['x'], ['y'], name='fancy_1', domain='com.example')
graph = helper.make_graph([node], 'g', [x], [y])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17), helper.make_opsetid('com.example', 1)])
onnx.save(model, sys.argv[1])
`, onnx]);
    const out = join(dir, 'pkg');
    const run = spawnSync(CLI, ['build', '--onnx', onnx, '--name', 'custom-op', '--out', out, '--backend', 'cpu'], {
      encoding: 'utf8',
      env: { ...process.env, BRASA_SOURCE: ROOT },
    });
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /FancyActivation/);
    assert.match(run.stderr, /fancy_1/);
    assert.doesNotMatch(run.stderr, /panicked/);
    assert.equal(existsSync(out), false, 'a failed build leaves no package');
    const bad = spawnSync(CLI, ['build', '--onnx', onnx, '--out', out], { encoding: 'utf8' });
    assert.notEqual(bad.status, 0, '--onnx needs --name');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
