// Runs tests/runtime-suite.js inside Deno with the package's web entry, in the working
// directory it was started in (a user's project: mnist.bpk and registry/ there), and prints the
// outcome as JSON. Started by tests/deno/runtimes.test.mjs.
import * as brasa from '../../npm/dist/index.js';
import { runtimeSuite } from '../runtime-suite.js';

const { mnistUrl, pixels } = JSON.parse(Deno.args[0]);
const mnist = (await import(mnistUrl)).default;
const out = await runtimeSuite({ brasa, pkg: mnist, weights: 'mnist.bpk', registry: 'registry/', missing: 'no-such.bpk', pixels });
console.log(JSON.stringify(out));
