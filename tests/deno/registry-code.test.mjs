// A model's code from the registry inside Deno: `loadModel('minilm@stable', { registry })`
// with no package (the glue imported from a `blob:` URL of its verified bytes), its tokenizer
// from the version's assets, against the numpy reference.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CACHE, DENO, ROOT, serve } from '../support.mjs';

const denoDir = mkdtempSync(join(tmpdir(), 'brasa-deno-code-'));
let server;
before(async () => {
  server = await serve(join(CACHE, 'site'));
});
after(() => {
  server?.stop();
  rmSync(denoDir, { recursive: true, force: true });
});

test('Deno: MiniLM code, tokenizer and q8 weights from the registry alone', async () => {
  const reference = JSON.parse(readFileSync(join(CACHE, 'fixtures/minilm-reference.json'), 'utf8'));
  const sentences = reference.sentences.slice(0, 4);
  const args = JSON.stringify({ registry: `${server.url}registry/`, sentences });
  const stdout = await new Promise((resolve, reject) => {
    execFile(
      DENO,
      ['run', '--quiet', '--no-prompt', '--allow-net=127.0.0.1', `--allow-read=${ROOT}`, join(ROOT, 'tests/deno/registry-code.js'), args],
      { env: { ...process.env, DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: '1', XDG_RUNTIME_DIR: denoDir }, maxBuffer: 16 << 20, timeout: 120_000 },
      (err, out, stderr) => (err ? reject(new Error(`deno failed: ${err.message}\n${stderr}`)) : resolve(out)),
    );
  });
  const got = JSON.parse(stdout.trim().split('\n').at(-1));
  assert.equal(got.version, '1.0.0');
  assert.equal(got.dtype, 'q8');
  assert.equal(got.backend, 'cpu');
  sentences.forEach((s, k) => {
    const row = got.embeddings.slice(k * 384, (k + 1) * 384);
    const cos = row.reduce((a, x, i) => a + x * reference.embeddings[k][i], 0);
    assert.ok(cos >= 0.999, `${JSON.stringify(s)}: cosine ${cos} (q8)`);
  });
});
