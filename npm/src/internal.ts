/**
 * What brasa's own modules (the server, the registry lifecycle) reach behind a
 * {@link BrasaModel}: its wasm instance and hooks. Not exported from the package.
 * @module
 */
import { BrasaError } from './errors.js';
import type { Bindings, WasmModel } from './glue.js';
import type { ModelPackage } from './types.js';

/** A loaded model's runtime bindings. */
export interface Runtime {
  /** The instantiated build the model runs in (also the registry and KServe logic). */
  readonly bindings: Bindings;
  /** The package it came from. */
  readonly pkg: ModelPackage;
  /** Replace the wasm model (after an update passed its checks); frees the old one. */
  swap(inner: WasmModel): void;
  /** A model file of `version` came from the cache, or was downloaded. */
  recordFile(version: string, fromCache: boolean, bytes: number): void;
}

const runtimes = new WeakMap<object, Runtime>();

/** Register `model`'s runtime (done by its constructor). */
export function bindRuntime(model: object, runtime: Runtime): void {
  runtimes.set(model, runtime);
}

/** The runtime of a model brasa loaded. */
export function runtimeOf(model: object): Runtime {
  const runtime = runtimes.get(model);
  if (!runtime) throw new BrasaError('internal', 'not a model loaded by brasa');
  return runtime;
}
