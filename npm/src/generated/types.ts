// Generated from crates/brasa-types by `BRASA_BLESS=1 cargo test -p brasa-types`. Do not edit.

/** Element type of a tensor (onnxruntime-web's names). */
export type DType = 'float32' | 'float16' | 'int64' | 'int32' | 'uint8' | 'bool' | 'string';

/** Every dtype, in the order brasa lists them. */
export const DTYPES = ['float32', 'float16', 'int64', 'int32', 'uint8', 'bool', 'string'] as const;

/** The typed array that carries each dtype. */
export interface TypedArrayOf {
  float32: Float32Array;
  float16: Uint16Array;
  int64: BigInt64Array;
  int32: Int32Array;
  uint8: Uint8Array;
  bool: Uint8Array;
  string: string[];
}

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Record<DType, number> = {
  float32: 4,
  float16: 2,
  int64: 8,
  int32: 4,
  uint8: 1,
  bool: 1,
  string: 0,
};

/** The Open Inference Protocol (KServe v2) datatype of each dtype. */
export const KSERVE_DATATYPE: Record<DType, string> = {
  float32: 'FP32',
  float16: 'FP16',
  int64: 'INT64',
  int32: 'INT32',
  uint8: 'UINT8',
  bool: 'BOOL',
  string: 'BYTES',
};

/**
 * One dimension: a fixed size, `'batch'`, a named dynamic dimension, or a bounded one.
 * Dimensions of one name agree across every tensor of a call.
 */
export type Dim = number | 'batch' | string | { name: string; min?: number; max?: number };

/** One named tensor of a signature. */
export interface TensorSpec {
  /** The key in feeds and fetches; KServe's tensor name. */
  name: string;
  dtype: DType;
  /** Every dimension, the batch first when there is one. */
  dims: Dim[];
  description?: string;
  /** Values outside `[min, max]` are refused (`invalid_input`). */
  range?: [number, number];
  /** `string` tensors: the most UTF-8 bytes of one element; longer ones are refused. */
  maxBytes?: number;
}

/** What a model takes and gives. */
export interface Signature {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

/** How a weights file stores its float parameters (a manifest file's `dtype`, the `dtype` load option). */
export type WeightsDtype = 'f32' | 'f16' | 'q8';

/** Every weights dtype. */
export const WEIGHTS_DTYPES = ['f32', 'f16', 'q8'] as const;

/** Stable categories of `BrasaError`; match on `code`, not on the message. */
export type BrasaErrorCode =
  /** A feed does not match the model's signature (name, dtype, rank, a dimension, element count, bounds), holds NaN or Infinity, or a result was not finite. */
  | 'invalid_input'
  /** Weights are corrupt, truncated, non-finite, or for another architecture. */
  | 'invalid_weights'
  /** The backend asked for cannot be used here (not in this build, no adapter, a lost device). */
  | 'backend_unavailable'
  /** The backend failed while running or reading results back. */
  | 'execution'
  /** The model is not the one this build serves, or a spec names another model. */
  | 'unknown_model'
  /** Weights, code or a manifest could not be fetched (HTTP error, timeout, no network). */
  | 'network'
  /** A model spec does not parse (`mnist@Canary!`), or a load option is of the wrong type, out of range or contradicts another (`timeoutMs: 0`, `registry: ''`). */
  | 'invalid_spec'
  /** The registry has no such channel or no version matching the spec. */
  | 'not_found'
  /** A registry manifest is malformed, breaks a rule, or has a newer schema. */
  | 'invalid_manifest'
  /** A downloaded file's size or sha256 differs from the manifest. */
  | 'integrity'
  /** A version's output on its golden inputs differs from what its publisher recorded. */
  | 'golden_check'
  /** A version's signature is not the one this build implements. */
  | 'incompatible'
  /** The wasm module could not be fetched or instantiated. */
  | 'wasm_load'
  /** The model was disposed. */
  | 'disposed'
  /** The wasm instance aborted or brasa hit a bug; load the model again. */
  | 'internal';

/** Every error code. */
/** The wasm builds a model package may carry (`brasa build --backend`), CPU ones best last. */
export const BUILD_NAMES = ['cpu', 'cpu-relaxed', 'cpu-threads', 'cpu-threads-relaxed', 'webgpu'] as const;

export const ERROR_CODES: readonly BrasaErrorCode[] = ['invalid_input', 'invalid_weights', 'backend_unavailable', 'execution', 'unknown_model', 'network', 'invalid_spec', 'not_found', 'invalid_manifest', 'integrity', 'golden_check', 'incompatible', 'wasm_load', 'disposed', 'internal'];
