/**
 * What both entries (`index.ts` for the web, `node.ts` for Node) export besides their
 * platform's `loadModel` and `createHandler`.
 * @module
 */
export { BrasaEvent, BrasaModel } from './model.js';
export { Tensor } from './tensor.js';
export { createClassifier, softmaxRows, type Classifier, type ClassifierOptions, type ClassificationMetadata } from './tasks/classification.js';
export {
  createEmbedder,
  type Embedder,
  type EmbedderOptions,
  type Embeddings,
  type SentenceEmbeddingMetadata,
  type TextTokenizer,
  type TokenizedBatch,
} from './tasks/embeddings.js';
export { CacheStorageCache, MemoryCache, type ModelCache } from './cache.js';
export { BrasaError, type BrasaErrorCode } from './errors.js';
export type { Handler, HandlerOptions, ServedModel } from './serve.js';
export type { LoadModel } from './loader.js';
export { DTYPES, DTYPE_BYTES, ERROR_CODES, KSERVE_DATATYPE, WEIGHTS_DTYPES } from './generated/types.js';
export type * from './types.js';
