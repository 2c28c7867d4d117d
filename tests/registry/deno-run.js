// Runs the registry scenarios inside Deno with the package's web entry (Cache Storage, fetch)
// and the MNIST model package (its index.js given as a file: URL; Deno fetches its CPU wasm
// from disk), and prints `{ passed, failed }` as JSON. Started by tests/deno/registry.test.mjs.
import * as brasa from '../../npm/dist/index.js';
import { runScenarios } from './scenarios.js';

const { registry, control, expected, mnistUrl } = JSON.parse(Deno.args[0]);
const mnist = (await import(mnistUrl)).default;
const result = await runScenarios({
  brasa,
  mnist,
  registry,
  control,
  newCache: (name) => new brasa.CacheStorageCache(`test-${name}`),
  expected,
  options: { backend: 'cpu' },
});
// Also the default cache (Cache Storage `brasa-models`), twice: the second load is served from it.
const first = await brasa.loadModel('mnist@stable', { registry, build: mnist, backend: 'cpu' });
const second = await brasa.loadModel(mnist, { registry, backend: 'cpu' });
const check = await second.updateCheck;
const info = { first: first.version, second: second.version, secondCheck: check, hasGpu: Boolean(navigator.gpu) };
console.log(JSON.stringify({ ...result, info }));
