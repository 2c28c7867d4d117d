/** Stable categories of {@link BrasaError}; match on `code`, not on the message. */
export type BrasaErrorCode =
  /** The input does not fit the model's signature, has the wrong type, or holds NaN/Infinity. */
  | 'invalid_input'
  /** Weights are corrupt, truncated, or for another architecture. */
  | 'invalid_weights'
  /** The backend asked for cannot be used here (e.g. `webgpu` without WebGPU). */
  | 'backend_unavailable'
  /** The backend failed while running. */
  | 'execution'
  /** No model of that name is compiled into brasa. */
  | 'unknown_model'
  /** Weights or a manifest could not be fetched (HTTP error, timeout, no network). */
  | 'network'
  /** A model spec does not parse (`mnist@Canary!`). */
  | 'invalid_spec'
  /** The registry has no such channel or no version matching the spec. */
  | 'not_found'
  /** A registry manifest is malformed, breaks a rule, or has a newer schema. */
  | 'invalid_manifest'
  /** A downloaded file's size or sha256 differs from the manifest. */
  | 'integrity'
  /** A version's output on its golden input differs from what its publisher recorded. */
  | 'golden_check'
  /** The wasm module could not be fetched or instantiated. */
  | 'wasm_load'
  /** The model was disposed. */
  | 'disposed'
  /** The wasm instance aborted; load the model again. */
  | 'internal';

/** Every error brasa throws. */
export class BrasaError extends Error {
  override readonly name = 'BrasaError';
  readonly code: BrasaErrorCode;

  constructor(code: BrasaErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  /** Wrap anything thrown by the wasm bindings or the platform into a BrasaError. */
  static from(err: unknown, fallback: BrasaErrorCode = 'internal'): BrasaError {
    if (err instanceof BrasaError) return err;
    if (err instanceof Error && err.name === 'BrasaError' && typeof (err as { code?: unknown }).code === 'string') {
      return new BrasaError((err as unknown as { code: BrasaErrorCode }).code, err.message, { cause: err });
    }
    if (typeof WebAssembly !== 'undefined' && err instanceof WebAssembly.RuntimeError) {
      return new BrasaError('internal', `the wasm instance aborted (${err.message}); load the model again`, { cause: err });
    }
    const message = err instanceof Error ? err.message : String(err);
    return new BrasaError(fallback, message, { cause: err });
  }
}
