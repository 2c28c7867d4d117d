// A third KServe v2 worker: text in, embeddings out. all-MiniLM-L6-v2 (`minilm`, built from
// models/minilm) is served with its tokenizer, so the endpoint takes `text` (BYTES, shape
// [-1]: one UTF-8 string per row, JSON or the binary extension) and gives `embeddings` (FP32
// [-1, 384]); texts from concurrent requests are tokenised and run together. The tokenizer.json
// and the weights come from URLs (Workers have no files): BRASA_TOKENIZER and the registry.
// MiniLM's f32 weights are 86 MiB, which with the activations do not fit the 128 MB of a
// Worker isolate: BRASA_MEMORY_LIMIT states the memory the endpoint plans its batches in.
//   npx wrangler dev --local --ip 127.0.0.1 src/text.js
import { createHandler } from 'brasa';

import minilm from '../models/minilm/index.js';
import minilmWasm from '../models/minilm/cpu/model_bg.wasm';

let handler;

export default {
  fetch(request, env, ctx) {
    const limits = { maxBatch: Number(env.BRASA_MAX_BATCH ?? 32), maxQueueRows: Number(env.BRASA_MAX_QUEUE_ROWS ?? 512) };
    handler ??= createHandler({
      models: [
        {
          model: minilm,
          wasm: { cpu: minilmWasm },
          tokenizer: env.BRASA_TOKENIZER,
          ...(env.BRASA_MAX_TEXT_BYTES ? { maxTextBytes: Number(env.BRASA_MAX_TEXT_BYTES) } : {}),
          ...limits,
        },
      ],
      registry: env.BRASA_REGISTRY,
      ...(env.BRASA_MEMORY_LIMIT ? { memoryLimitBytes: Number(env.BRASA_MEMORY_LIMIT) } : {}),
    });
    return handler.fetch(request, env, ctx);
  },
};
