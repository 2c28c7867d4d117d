// The CPU builds of issue 13 in Deno: it validates relaxed SIMD and runs the threaded build
// (module Workers, nested ones for the pool, `fetch` of `file:` URLs, blob-URL Workers) with no
// shim, when asked: `auto` stays single-threaded, as a live Worker keeps Deno from exiting. The
// reference batch against numpy on each, and Deno exits once the models are disposed.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { CACHE, DENO, ROOT, maxDiff, packageDir, reference, weightsPath } from '../support.mjs';

const REF = reference();
const denoDir = mkdtempSync(join(tmpdir(), 'brasa-deno-'));
after(() => rmSync(denoDir, { recursive: true, force: true }));

/** Run cpu-builds-run.js in Deno with `args`; its JSON line. */
async function runDeno(args) {
  const stdout = await new Promise((resolve, reject) => {
    execFile(
      DENO,
      ['run', '--quiet', '--no-prompt', `--allow-read=${ROOT},${CACHE}`, join(ROOT, 'tests/deno/cpu-builds-run.js'), JSON.stringify(args)],
      { env: { ...process.env, DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: '1', XDG_RUNTIME_DIR: denoDir }, maxBuffer: 16 << 20, timeout: 120_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`deno failed: ${err.message}\n${stderr}`)) : resolve(stdout)),
    );
  });
  return JSON.parse(stdout.trim().split('\n').at(-1));
}

test("Deno: auto picks the relaxed-SIMD build and says why it is single-threaded; threads: 2 runs the threaded builds; all match numpy", async () => {
  const out = await runDeno({
    mnistUrl: pathToFileURL(join(packageDir('mnist'), 'index.js')).href,
    weights: weightsPath(),
    reference: join(CACHE, 'fixtures/mnist-reference.json'),
  });
  const [auto, threaded, both] = out.runs;
  assert.deepEqual([auto.build.name, auto.build.threads, auto.build.relaxedSimd], ['cpu-relaxed', 1, true]);
  assert.match(auto.build.reason, /^single-threaded: in Deno a Worker keeps the process running/);
  assert.deepEqual([threaded.build.name, threaded.build.threads, threaded.build.relaxedSimd], ['cpu-threads', 2, false]);
  assert.deepEqual([both.build.name, both.build.threads, both.build.relaxedSimd, both.build.reason], ['cpu-threads-relaxed', 2, true, null]);
  const expected = REF.items.flatMap((i) => i.logits);
  for (const run of out.runs) assert.ok(maxDiff(run.logits, expected) <= 2e-4, `${run.build.name}: off numpy by ${maxDiff(run.logits, expected)}`);
});

// The trap happens on a thread of the pool (a Worker nested in the model's Worker, which is
// blocked waiting for it): the pool's Worker reports it, the run rejects and the model stays
// dead. (The script ends with Deno.exit: Deno cannot terminate the blocked Worker.)
test('Deno: a trap on a thread of the pool rejects the run `internal`; the model stays dead', async () => {
  const out = await runDeno({ ocrUrl: pathToFileURL(join(packageDir('ocr-det'), 'index.js')).href, ocrWeights: join(packageDir('ocr-det'), 'weights.bpk') });
  const dead = new RegExp(`the wasm instance of ocr-det \\(${out.build.name}\\) aborted while running: .*a thread of the pool aborted: .*unreachable.*; load the model again`);
  assert.match(out.build.name, /^cpu-threads/);
  assert.equal(out.trap?.code, 'internal', JSON.stringify(out.trap));
  assert.match(out.trap.message, dead);
  assert.equal(out.afterTrap?.code, 'internal', JSON.stringify(out.afterTrap));
  assert.match(out.afterTrap.message, dead);
});
