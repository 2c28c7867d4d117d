// Text in, embeddings out in headless Chromium: all-MiniLM-L6-v2 behind `createEmbedder`
// (tokenizers.js imported through the page's import map, the tokenizer.json fetched from the
// site), on the CPU build and the WebGPU build (SwiftShader's adapter), against the numpy
// reference (tests/reference/minilm_reference.py).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { CACHE, chromium, demoSite, open, serve, writeTestPage } from '../support.mjs';

const PAGE = 'embeddings.html';
/** Lowest cosine similarity to numpy accepted per sentence (the bar), both backends. */
const MIN_COSINE = 0.9999;
const reference = JSON.parse(readFileSync(join(CACHE, 'fixtures/minilm-reference.json'), 'utf8'));

let server;
let site;

before(async () => {
  site = demoSite();
  writeTestPage(site.dir, PAGE, 'brasa: sentence embeddings', `
  window.embedder = async (backend) => {
    const pkg = (await import('./packages/minilm/index.js')).default;
    const model = await window.brasa.loadModel(pkg, { weights: './models/minilm.bpk', backend });
    return window.brasa.createEmbedder(model, { tokenizer: './models/minilm/tokenizer.json' });
  };
`);
  server = await serve(site.dir);
});
after(() => {
  server?.stop();
  site?.remove();
});

for (const backend of ['cpu', 'webgpu']) {
  describe(backend, () => {
    let browser;
    let page;
    let errors;
    before(async () => {
      browser = await chromium({ webgpu: backend === 'webgpu' });
      ({ page, errors } = await open(browser.context, server.url + PAGE));
      await page.waitForSelector('body[data-ready="1"]', { state: 'attached' });
    });
    after(async () => {
      await browser?.close();
    });

    test('sentences in, numpy-matching embeddings out', async () => {
      // SwiftShader emulates the GPU on the CPU, slowly (seconds per sentence): there three
      // sentences of different lengths in one padded batch (every sentence runs on native
      // wgpu in models/minilm's tests, and on the CPU build here and under Node).
      const shortOnes = ['A man is eating food.', 'Café naïve résumé Ångström', 'I love 🍕 and 🤖!'];
      const cases = reference.sentences.map((s, k) => k).filter((k) => backend === 'cpu' || shortOnes.includes(reference.sentences[k]));
      const sentences = cases.map((k) => reference.sentences[k]);
      const started = performance.now();
      const got = await page.evaluate(async ({ sentences, backend }) => {
        const embedder = await window.embedder(backend);
        const out = await embedder.embed(sentences);
        const badText = await embedder.embed(['ok', 7]).then(() => null, (e) => e.code);
        const again = await embedder.embed('A man is eating food.');
        embedder.model.dispose();
        return { data: Array.from(out.data), dims: out.dims, truncated: out.truncated, ran: out.backend, badText, again: Array.from(again.data) };
      }, { sentences, backend });
      assert.equal(got.ran, backend);
      assert.deepEqual(got.dims, [sentences.length, 384]);
      let worst = 1;
      cases.forEach((k, r) => {
        const s = reference.sentences[k];
        const row = got.data.slice(r * 384, (r + 1) * 384);
        const want = reference.embeddings[k];
        let d = 0;
        let nr = 0;
        let nw = 0;
        for (let i = 0; i < 384; i++) [d, nr, nw] = [d + row[i] * want[i], nr + row[i] ** 2, nw + want[i] ** 2];
        const cos = d / Math.sqrt(nr * nw);
        assert.ok(cos >= MIN_COSINE, `${backend}: ${JSON.stringify(s.slice(0, 40))}: cosine ${cos}`);
        worst = Math.min(worst, cos);
      });
      console.log(`# minilm ${backend} in Chromium: worst cosine ${worst.toFixed(7)} over ${sentences.length} sentences (${Math.round(performance.now() - started)} ms with the load)`);
      assert.equal(got.truncated.length, backend === 'cpu' ? 1 : 0);
      assert.equal(got.badText, 'invalid_input');
      const first = reference.sentences.indexOf('A man is eating food.');
      assert.ok(got.again.reduce((s, x, i) => s + x * reference.embeddings[first][i], 0) > MIN_COSINE, 'usable after bad input');
      assert.deepEqual(errors, []);
    });
  });
}
