// The sentence-similarity demo page (web/similarity.html) in headless Chromium, served by
// `brasa serve`: MiniLM loaded from the registry alone (`minilm@stable`: its code, tokenizer
// and q8 weights are the version's files; the page imports no model package), with download
// progress; the similarity matrix of the sentences typed, against the numpy reference.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { CACHE, chromium, demoSite, open, serve } from '../support.mjs';

const reference = JSON.parse(readFileSync(join(CACHE, 'fixtures/minilm-reference.json'), 'utf8'));
let server;
let site;
let browser;

before(async () => {
  site = demoSite({ minilm: true });
  server = await serve(site.dir);
  browser = await chromium({ webgpu: false });
});
after(async () => {
  await browser?.close();
  server?.stop();
  site?.remove();
});

const cosine = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);

test('the page loads MiniLM from the registry and shows the similarity matrix numpy gives', async () => {
  const { page, errors } = await open(browser.context, server.url + 'similarity.html');
  await page.waitForSelector('body[data-state="ready"][data-sentences]', { timeout: 120_000 });
  assert.equal(await page.textContent('[data-testid=version]'), 'v1.0.0');
  assert.equal(await page.getAttribute('body', 'data-backend'), 'cpu', 'no WebGPU in this browser: the CPU build');
  assert.match(await page.textContent('#progress-text'), /minilm@stable → 1\.0\.0/);
  assert.equal(await page.getAttribute('body', 'data-dtype'), 'q8', 'the smallest weights by default');
  // What the page fetched: the CPU build only (content-addressed from the registry), the q8
  // weights only, the tokenizer; no model package.
  const fetched = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname));
  const manifest = JSON.parse(readFileSync(join(site.dir, 'registry/minilm/manifest.json'), 'utf8')).versions['1.0.0'];
  const got = (entry) => fetched.includes(`/registry/minilm/${entry.path}`);
  assert.ok(got(manifest.builds.cpu.wasm) && got(manifest.builds.cpu.glue), 'the CPU build');
  assert.ok(!got(manifest.builds.webgpu.wasm), 'not the WebGPU build');
  assert.deepEqual(manifest.files.filter(got).map((f) => f.name ?? f.dtype), ['q8', 'tokenizer', 'tokenizer_config']);
  assert.ok(!fetched.some((p) => p.startsWith('/packages/')), fetched.join(', '));

  const sentences = ['A man is eating food.', 'A man is eating a piece of bread.', 'A monkey is playing drums.'];
  await page.fill('[data-testid=sentences]', sentences.join('\n'));
  await page.waitForFunction(() => document.body.dataset.sentences === '3' && document.querySelectorAll('#matrix tr').length === 4);
  const values = await page.$$eval('#matrix tr', (rows) => rows.slice(1).map((r) => [...r.querySelectorAll('td[data-value]')].map((c) => Number(c.dataset.value))));
  const emb = sentences.map((s) => reference.embeddings[reference.sentences.indexOf(s)]);
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) {
      // q8 weights: the cosines move by about 1e-3 (worst embedding cosine to numpy 0.9992).
      assert.ok(Math.abs(values[i][j] - cosine(emb[i], emb[j])) < 1e-2, `cell ${i},${j}: ${values[i][j]} vs numpy ${cosine(emb[i], emb[j])}`);
    }
  }
  assert.ok(values[0][1] > values[0][2] + 0.3, 'eating sentences closer than drums');
  assert.match(await page.textContent('[data-testid=latency]'), /3 sentences: [\d.]+ ms/);
  assert.deepEqual(errors, []);
});
