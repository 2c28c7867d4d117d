// A KServe v2 endpoint for brasa models on Cloudflare Workers: the CPU wasm build ships in
// the bundle (Workers refuse to compile fetched wasm), weights come from a brasa registry
// through the Cache API.
import { createHandler } from 'brasa';
import cpu from 'brasa/wasm/cpu.wasm';

let handler;

export default {
  fetch(request, env, ctx) {
    handler ??= createHandler({
      models: [{ name: 'mnist', maxBatch: Number(env.BRASA_MAX_BATCH ?? 32), maxQueueRows: Number(env.BRASA_MAX_QUEUE_ROWS ?? 512) }],
      registry: env.BRASA_REGISTRY,
      load: { wasm: { cpu } },
    });
    return handler.fetch(request, env, ctx);
  },
};
