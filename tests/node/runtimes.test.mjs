// tests/runtime-suite.js under Node (the package's Node entry), as a user's project would run
// it: weights, registry folder and a missing file given as paths relative to the working
// directory. The browser runtimes run the same suite in tests/browser/runtimes.test.mjs, Deno
// in tests/deno/runtimes.test.mjs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as brasa from 'brasa';
import { checkRuntimeSuite, expectedLogits, loadPackage, makeRegistry, weightsPath } from '../support.mjs';
import { runtimeSuite } from '../runtime-suite.js';

const project = mkdtempSync(join(tmpdir(), 'brasa-node-project-'));
const home = process.cwd();
before(() => {
  copyFileSync(weightsPath(), join(project, 'mnist.bpk'));
  makeRegistry(join(project, 'registry'));
  process.chdir(project);
});
after(() => {
  process.chdir(home);
  rmSync(project, { recursive: true, force: true });
});

test('Node: load, run, a bad input; relative paths are files in the working directory', async () => {
  const out = await runtimeSuite({
    brasa,
    pkg: await loadPackage('mnist'),
    weights: 'mnist.bpk',
    registry: 'registry/',
    missing: 'no-such.bpk',
    pixels: expectedLogits().input,
  });
  checkRuntimeSuite(assert, out, { missingUrl: new RegExp(`${join(project, 'no-such.bpk')}`) });
});
