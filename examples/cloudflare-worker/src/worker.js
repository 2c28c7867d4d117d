// A KServe v2 endpoint for brasa model packages on Cloudflare Workers: mnist and two-heads.
// Each package's CPU wasm ships in the bundle (Workers refuse to compile fetched wasm; wrangler
// turns a `.wasm` import into a compiled WebAssembly.Module), weights come from a brasa
// registry through the Cache API. The packages are the folders `brasa build` wrote, in
// ./models/ next to this folder (in an app: `import mnist from 'mnist-model'` and
// `import mnistWasm from 'mnist-model/cpu.wasm'`).
import { createHandler } from 'brasa';

import mnist from '../models/mnist/index.js';
import mnistWasm from '../models/mnist/cpu/model_bg.wasm';
import twoHeads from '../models/two-heads/index.js';
import twoHeadsWasm from '../models/two-heads/cpu/model_bg.wasm';

let handler;

// BRASA_VERSIONS=mnist=1.0.0+1.1.0 (or mnist=latest:2): mnist's versions side by side.
function policy(env, name) {
  const pair = (env.BRASA_VERSIONS ?? '').split(',').find((p) => p.startsWith(`${name}=`));
  if (!pair) return {};
  const p = pair.slice(name.length + 1);
  return p.startsWith('latest:') ? { latest: Number(p.slice(7)) } : { versions: p.split('+') };
}

export default {
  fetch(request, env, ctx) {
    const limits = { maxBatch: Number(env.BRASA_MAX_BATCH ?? 32), maxQueueRows: Number(env.BRASA_MAX_QUEUE_ROWS ?? 512) };
    handler ??= createHandler({
      models: [
        // Each package's own bundled module (Workers refuse to compile fetched wasm).
        { model: mnist, wasm: { cpu: mnistWasm }, ...limits, ...policy(env, 'mnist') },
        { model: twoHeads, wasm: { cpu: twoHeadsWasm }, ...limits },
      ],
      registry: env.BRASA_REGISTRY,
      // On workers.dev the Cache API keeps nothing, so brasa's random rollout identity would
      // change with every cold start (an isolate flipping between a rollout's versions): pin
      // it with a variable when serving a staged rollout.
      load: env.BRASA_CLIENT_ID ? { clientId: env.BRASA_CLIENT_ID } : undefined,
    });
    return handler.fetch(request, env, ctx);
  },
};
