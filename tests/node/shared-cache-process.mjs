// One process of tests/node/shared-cache.test.mjs: a separate Node process on a FileCache
// folder that other processes use too. Its plan comes as JSON in argv[2]:
//   { dir, registry, cacheOptions?, steps: [...], stay? }
// Steps run in order: `{ spec, cacheBudget?, keep? }` loads a spec (CPU), runs the reference
// digit and prints `{ spec, version, logits, events }`; `{ wait: true }` waits for a line on
// stdin; `{ crashInLock: true }` dies by SIGKILL while holding the cache's lock. With `stay`,
// it keeps its models loaded until stdin closes or it is killed. Errors are printed as
// `{ error, message }` (exit code 1).
import { createInterface } from 'node:readline';

import { FileCache, loadModel } from 'brasa';

import { expectedLogits, loadPackage } from '../support.mjs';

const plan = JSON.parse(process.argv[2]);
const say = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);
const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

try {
  const mnist = await loadPackage('mnist');
  const cache = new FileCache(plan.dir, plan.cacheOptions);
  const input = new Float32Array(expectedLogits().input);
  for (const step of plan.steps) {
    if (step.wait) {
      await stdin.next();
    } else if (step.crashInLock) {
      await cache.lock(async () => {
        say({ locked: true });
        process.kill(process.pid, 'SIGKILL');
        await new Promise(() => {});
      });
    } else {
      const events = [];
      const model = await loadModel(step.spec, {
        registry: plan.registry,
        build: mnist,
        cache,
        backend: 'cpu',
        cacheBudget: step.cacheBudget,
        onEvent: (e) => events.push(e.type),
      });
      const { logits } = await model.run(input);
      say({ spec: step.spec, version: model.version, logits: [...logits.data], events });
      if (!step.keep) model.dispose();
    }
  }
  if (plan.stay) await stdin.next();
  process.exit(0);
} catch (err) {
  say({ error: err?.code ?? 'exception', message: String(err?.message ?? err) });
  process.exit(1);
}
