// A second KServe v2 worker: three real ONNX models, each a package `brasa build --onnx` made
// (CPU build): PP-OCRv4 text detection (`ocr-det`, input `x` float32 [batch, 3, H, W] with H
// and W dynamic) and silero-vad (`silero-vad`: `input` float32 [batch, samples], `sr` int64
// scalar, `state` float32 [2, batch, 128]; the client carries `stateN` into the next request's
// `state`), and SqueezeNet 1.0 (`squeezenet-onnx`: `data_0` float32 [batch, 3, 224, 224] ->
// `softmaxout_1` float32 [batch, 1000, 1, 1]). As in worker.js, each package's CPU wasm ships in the bundle and weights come from
// a brasa registry through the Cache API; the packages are copied to ./models/ first.
//   npx wrangler dev --local --ip 127.0.0.1 src/onnx.js
import { createHandler } from 'brasa';

import ocrDet from '../models/ocr-det/index.js';
import ocrDetWasm from '../models/ocr-det/cpu/model_bg.wasm';
import sileroVad from '../models/silero-vad/index.js';
import sileroVadWasm from '../models/silero-vad/cpu/model_bg.wasm';
import squeezenet from '../models/squeezenet-onnx/index.js';
import squeezenetWasm from '../models/squeezenet-onnx/cpu/model_bg.wasm';

let handler;

export default {
  fetch(request, env, ctx) {
    const limits = { maxBatch: Number(env.BRASA_MAX_BATCH ?? 32), maxQueueRows: Number(env.BRASA_MAX_QUEUE_ROWS ?? 512) };
    handler ??= createHandler({
      models: [
        { model: ocrDet, wasm: { cpu: ocrDetWasm }, ...limits },
        { model: sileroVad, wasm: { cpu: sileroVadWasm }, ...limits },
        { model: squeezenet, wasm: { cpu: squeezenetWasm }, ...limits },
      ],
      registry: env.BRASA_REGISTRY,
    });
    return handler.fetch(request, env, ctx);
  },
};
