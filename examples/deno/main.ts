// A KServe v2 endpoint for brasa models on Deno.
//   BRASA_REGISTRY=http://127.0.0.1:8080/registry/ deno run --allow-net --allow-read --allow-env main.ts
import { createHandler } from 'brasa';

const env = (name: string, fallback: string) => Deno.env.get(name) ?? fallback;
const handler = createHandler({
  models: [{ name: 'mnist', maxBatch: Number(env('BRASA_MAX_BATCH', '32')), maxQueueRows: Number(env('BRASA_MAX_QUEUE_ROWS', '512')) }],
  registry: env('BRASA_REGISTRY', 'http://127.0.0.1:8080/registry/'),
});
Deno.serve(
  {
    hostname: env('HOST', '127.0.0.1'),
    port: Number(env('PORT', '8000')),
    onListen: ({ hostname, port }) => console.log(`brasa serving on http://${hostname}:${port}/`),
  },
  handler.fetch,
);
handler.start().then(
  () => console.log('models ready'),
  (err) => console.error(`a model could not be loaded: ${err.message}`),
);
