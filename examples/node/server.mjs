// A KServe v2 endpoint for brasa models on Node's http server.
//   BRASA_REGISTRY=http://127.0.0.1:8080/registry/ PORT=8000 node server.mjs
import http from 'node:http';

import { createHandler, toNodeListener } from 'brasa';

const handler = createHandler({
  models: [{ name: 'mnist', maxBatch: Number(process.env.BRASA_MAX_BATCH ?? 32), maxQueueRows: Number(process.env.BRASA_MAX_QUEUE_ROWS ?? 512) }],
  registry: process.env.BRASA_REGISTRY ?? 'http://127.0.0.1:8080/registry/',
});
const server = http.createServer(toNodeListener(handler));
server.listen(Number(process.env.PORT ?? 8000), process.env.HOST ?? '127.0.0.1', () => {
  console.log(`brasa serving on http://${server.address().address}:${server.address().port}/`);
});
handler.start().then(
  () => console.log('models ready'),
  (err) => console.error(`a model could not be loaded: ${err.message}`),
);
