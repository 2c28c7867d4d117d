// The registry fetcher inside Deno (from npm, offline): the package's web entry with Deno's
// Cache Storage and the MNIST model package, against the fault proxy in front of the real
// `brasa serve`.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { useFaultProxy } from '../fault-proxy.mjs';
import { SCENARIO_NAMES } from '../registry/scenarios.js';
import { CACHE, DENO, ROOT, expectedLogits, packageDir } from '../support.mjs';

const under = useFaultProxy();
const denoDir = mkdtempSync(join(tmpdir(), 'brasa-deno-'));
after(() => rmSync(denoDir, { recursive: true, force: true }));

test('registry scenarios in Deno (Cache Storage)', async () => {
  const mnistUrl = pathToFileURL(join(packageDir('mnist'), 'index.js')).href;
  const args = JSON.stringify({ registry: under.proxy.registry, control: under.proxy.control, expected: expectedLogits(), mnistUrl });
  const { stdout, stderr } = await new Promise((resolve, reject) => {
    execFile(
      DENO,
      ['run', '--quiet', '--no-prompt', '--allow-net=127.0.0.1', `--allow-read=${ROOT},${CACHE}`, join(ROOT, 'tests/registry/deno-run.js'), args],
      { env: { ...process.env, DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: '1', XDG_RUNTIME_DIR: denoDir }, maxBuffer: 16 << 20, timeout: 300_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`deno failed: ${err.message}\n${stderr}`)) : resolve({ stdout, stderr })),
    );
  });
  const result = JSON.parse(stdout.trim().split('\n').at(-1));
  assert.deepEqual(result.failed, [], result.failed.map((f) => `${f.name}: ${f.error}`).join('\n\n') + stderr);
  assert.deepEqual(result.passed, SCENARIO_NAMES);
  assert.equal(result.info.first, '1.0.0');
  assert.equal(result.info.second, '1.0.0');
  assert.equal(result.info.secondCheck.status, 304, JSON.stringify(result.info));
});
