// tests/runtime-suite.js inside Deno (from npm, offline), started without `--location` in a
// folder laid out like a user's project: relative paths are files in the working directory,
// as Deno.readFile reads them (and as under Node).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { CACHE, DENO, ROOT, checkRuntimeSuite, expectedLogits, makeRegistry, packageDir, weightsPath } from '../support.mjs';

const project = mkdtempSync(join(tmpdir(), 'brasa-deno-project-'));
const denoDir = mkdtempSync(join(tmpdir(), 'brasa-deno-'));
after(() => {
  rmSync(project, { recursive: true, force: true });
  rmSync(denoDir, { recursive: true, force: true });
});

test('Deno: load, run, a bad input; relative paths are files in the working directory', async () => {
  copyFileSync(weightsPath(), join(project, 'mnist.bpk'));
  makeRegistry(join(project, 'registry'));
  const args = JSON.stringify({ mnistUrl: pathToFileURL(join(packageDir('mnist'), 'index.js')).href, pixels: expectedLogits().input });
  const stdout = await new Promise((resolve, reject) => {
    execFile(
      DENO,
      ['run', '--quiet', '--no-prompt', `--allow-read=${ROOT},${CACHE},${project}`, join(ROOT, 'tests/deno/runtime-run.js'), args],
      { cwd: project, env: { ...process.env, DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: '1', XDG_RUNTIME_DIR: denoDir }, maxBuffer: 16 << 20, timeout: 120_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`deno failed: ${err.message}\n${stderr}`)) : resolve(stdout)),
    );
  });
  const out = JSON.parse(stdout.trim().split('\n').at(-1));
  // `auto`: WebGPU where Deno's navigator.gpu has an adapter (lavapipe's Vulkan), else the CPU.
  checkRuntimeSuite(assert, out, { backend: ['webgpu', 'cpu'], missingUrl: new RegExp(`file://${join(project, 'no-such.bpk')}`) });
});
