// mnist 1.0.0 and 1.1.0 side by side (a pinned version list) in the endpoint's three homes:
// the worker in workerd (Miniflare), the Deno example, the Node example, each configured with
// BRASA_VERSIONS; weights from a real `brasa serve` registry the real CLI wrote. The checks are
// tests/serving/checks.mjs's `checkVersions` (numpy's logits of each version).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

import { CLI, expectedLogits, publishArgs, serve, variantWeightsPath } from '../support.mjs';
import { checkVersions } from './checks.mjs';
import { makeServingRegistry } from './models.mjs';
import { bundleWorker, startDeno, startNode, startWorkerd } from './runtimes.mjs';

const EXPECTED = expectedLogits();
const VERSIONS = { env: { BRASA_VERSIONS: 'mnist=1.0.0+1.1.0' } };
let registry;
let upstream;
let bundle;

before(async () => {
  registry = makeServingRegistry();
  execFileSync(CLI, ['registry', '--registry', registry.dir, ...publishArgs('1.1.0', variantWeightsPath(), { channel: 'canary', notes: 'recalibrated output layer' })], { stdio: 'pipe' });
  upstream = await serve(registry.dir);
  bundle = bundleWorker();
});
after(() => {
  upstream?.stop();
  registry?.remove();
  bundle?.remove();
});

const START = {
  workerd: (config) => startWorkerd(bundle, upstream.url, config),
  deno: (config) => startDeno(upstream.url, config),
  node: (config) => startNode(upstream.url, config),
};

for (const [runtime, start] of Object.entries(START)) {
  describe(runtime, () => {
    let server;
    before(async () => {
      server = await start(VERSIONS);
      // The first request loads the models (both versions, each checked against its golden).
      const ready = await fetch(`${server.url}v2/health/ready`);
      assert.equal(ready.status, 200, await ready.text());
    });
    after(() => server?.stop());

    test('pinned versions 1.0.0 and 1.1.0: each answers with its own logits, labelled by version', async () => {
      await checkVersions(server.url, EXPECTED);
    });
  });
}
