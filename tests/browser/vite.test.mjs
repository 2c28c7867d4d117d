// A Vite production build of examples/vite-app (brasa + the MNIST model package), served by
// `brasa serve`, run in Chromium.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { CACHE, ROOT, chromium, open, serve, weightsPath } from '../support.mjs';

test('a Vite production build of an app that imports brasa and a model package runs in the browser', async () => {
  const out = join(CACHE, 'vite-app-dist');
  rmSync(out, { recursive: true, force: true });
  execFileSync(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', '--logLevel', 'warn', '--outDir', out, '--emptyOutDir'], {
    cwd: join(ROOT, 'examples/vite-app'),
    env: { ...process.env, BRASA_MNIST_PACKAGE: join(CACHE, 'packages/mnist') },
    stdio: 'inherit',
  });
  const assets = readdirSync(join(out, 'assets'));
  const wasm = assets.filter((f) => f.endsWith('.wasm') && f.startsWith('model_bg'));
  // The package's builds (`cpu`, `webgpu` and the CPU variants); brasa itself brings only its
  // core module (the registry logic alone, for code from a registry), as a chunk of its own
  // that this app never fetches.
  const builds = Object.keys(JSON.parse(readFileSync(join(CACHE, 'packages/mnist/model.json'), 'utf8')).builds);
  assert.equal(wasm.length, builds.length, `every wasm build of the package is emitted as an asset: ${assets}`);
  const others = assets.filter((f) => f.endsWith('.wasm') && !wasm.includes(f));
  assert.ok(others.every((f) => f.startsWith('brasa_core_bg')), `no other wasm: ${others}`);
  copyFileSync(weightsPath(), join(out, 'mnist.bpk'));

  const server = await serve(out);
  const browser = await chromium({ webgpu: false });
  try {
    const { page, errors } = await open(browser.context, server.url);
    await page.waitForFunction(() => document.body.dataset.done === 'true', null, { timeout: 30000 });
    assert.equal(await page.locator('#answer').textContent(), '1');
    assert.equal(await page.locator('#backend').textContent(), 'cpu');
    const fetched = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name).filter((n) => n.endsWith('.wasm')));
    // The CPU build it runs, and beside a threaded one the `cpu` build the page runs the
    // registry and serving logic on; never brasa's core or the WebGPU build.
    assert.ok(fetched.length >= 1 && fetched.length <= 2, `only CPU builds are fetched (not brasa's core): ${fetched}`);
    for (const url of fetched) {
      const size = statSync(join(out, 'assets', wasm.find((f) => url.endsWith(f)))).size;
      assert.ok(size < 8 * 1024 * 1024, `a CPU build is a small one (${size} bytes)`);
    }
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    server.stop();
  }
});
