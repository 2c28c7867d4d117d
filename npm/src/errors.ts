import type { BrasaErrorCode } from './generated/types.js';

export type { BrasaErrorCode } from './generated/types.js';

/** Every error brasa throws: match on {@link BrasaError.code}, not on the message. */
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

/** A short description of a value, for error messages. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return `a ${(value as object).constructor?.name ?? 'object'}`;
  return `${typeof value} ${String(value).slice(0, 40)}`;
}

/** The message of anything thrown. */
export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
