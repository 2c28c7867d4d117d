// Real ONNX models built by `brasa build --onnx`, in headless Chromium on their CPU builds and
// their WebGPU builds (SwiftShader's adapter), against onnxruntime
// (tests/reference/onnx_reference.py): PP-OCRv4 text detection on two image sizes, and
// silero-vad over 32 chunks with the recurrent state carried in the page.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { CACHE, chromium, demoSite, maxDiff, open, serve, writeTestPage } from '../support.mjs';

const PAGE = 'onnx-models.html';
const reference = (name) => JSON.parse(readFileSync(join(CACHE, 'fixtures', `${name}-reference.json`), 'utf8'));
// WebGPU's reductions run in another order than onnxruntime's (SwiftShader: about 1e-6).
const TOLERANCE = { cpu: { output: 1e-4, state: 5e-4 }, webgpu: { output: 2e-4, state: 1e-3 } };

let server;
let site;

before(async () => {
  // The demo site holds brasa (`brasa/dist/`) and the packages (`packages/<name>/`, each with
  // the `weights.bpk` its ONNX import wrote).
  site = demoSite();
  writeTestPage(site.dir, PAGE, 'brasa: ONNX models', `
  window.load = async (name, backend) => {
    const pkg = (await import('./packages/' + name + '/index.js')).default;
    return window.brasa.loadModel(pkg, { weights: new URL('./packages/' + name + '/weights.bpk', location.href).href, backend });
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

    test('PP-OCRv4 detection matches onnxruntime on two image sizes', async () => {
      const ref = reference('ocr-det');
      const got = await page.evaluate(async ({ cases, backend }) => {
        const model = await window.load('ocr-det', backend);
        const out = [];
        for (const c of cases) {
          const x = c.inputs[0];
          const fetches = await model.run({ x: new window.brasa.Tensor('float32', Float32Array.from(x.data), x.dims) });
          const y = fetches[c.outputs[0].name];
          out.push({ dims: [...y.dims], data: Array.from(y.data) });
        }
        const ran = model.backend;
        model.dispose();
        return { out, ran };
      }, { cases: ref.cases, backend });
      assert.equal(got.ran, backend);
      ref.cases.forEach((c, i) => {
        assert.deepEqual(got.out[i].dims, c.outputs[0].dims);
        const worst = maxDiff(got.out[i].data, c.outputs[0].data);
        console.log(`# ocr-det ${backend} ${c.inputs[0].dims.join('x')}: max |brasa - onnxruntime| = ${worst.toExponential(2)}`);
        assert.ok(worst <= TOLERANCE[backend].output, `${c.inputs[0].dims}: ${worst}`);
      });
    });

    test('silero-vad: 32 chunks, state carried, match onnxruntime', async () => {
      const ref = reference('silero-vad');
      const got = await page.evaluate(async ({ ref, backend }) => {
        const { Tensor } = window.brasa;
        const model = await window.load('silero-vad', backend);
        const sr = new Tensor('int64', BigInt64Array.from([BigInt(ref.sr)]), []);
        let state = new Tensor('float32', Float32Array.from(ref.state.data), ref.state.dims);
        const out = [];
        for (const c of ref.chunks) {
          const fetches = await model.run({ input: new Tensor('float32', Float32Array.from(c.input.data), c.input.dims), sr, state });
          out.push({ output: Array.from(fetches.output.data), stateN: Array.from(fetches.stateN.data) });
          state = fetches.stateN;
        }
        model.dispose();
        return out;
      }, { ref, backend });
      let worstOut = 0;
      let worstState = 0;
      ref.chunks.forEach((c, i) => {
        worstOut = Math.max(worstOut, maxDiff(got[i].output, c.output.data));
        worstState = Math.max(worstState, maxDiff(got[i].stateN, c.stateN.data));
      });
      console.log(`# silero-vad ${backend}, ${ref.chunks.length} chunks: max |Δ| output ${worstOut.toExponential(2)}, state ${worstState.toExponential(2)}`);
      assert.ok(worstOut <= TOLERANCE[backend].output && worstState <= TOLERANCE[backend].state, `output ${worstOut}, state ${worstState}`);
    });

    test('no errors on the page', () => {
      assert.deepEqual(errors, []);
    });
  });
}
