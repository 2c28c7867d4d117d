// Runs the registry scenarios inside Deno with the package's web entry (Cache Storage, fetch)
// and prints `{ passed, failed }` as JSON. Started by tests/deno/registry.test.mjs.
import * as brasa from '../../npm/dist/index.js';
import { runScenarios } from './scenarios.js';

const { registry, control, expected } = JSON.parse(Deno.args[0]);
const result = await runScenarios({
  brasa,
  registry,
  control,
  newCache: (name) => new brasa.CacheStorageCache(`test-${name}`),
  expected,
  options: { backend: 'cpu' },
});
// Also the default cache (Cache Storage `brasa-models`), twice: the second load is served from it.
const first = await brasa.loadModel('mnist@stable', { registry, backend: 'cpu' });
const second = await brasa.loadModel('mnist@stable', { registry, backend: 'cpu' });
const check = await second.updateCheck;
const info = { first: first.version, second: second.version, secondCheck: check, hasGpu: Boolean(navigator.gpu) };
console.log(JSON.stringify({ ...result, info }));
