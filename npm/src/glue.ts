/**
 * The exports of a build's wasm-bindgen glue (`--target web`), as brasa uses them. Internal:
 * the contract between this package and the wasm `brasa build` produces.
 * @module
 */
import type { RegistryWasm } from './registry.js';
import type { Backend, DType, GoldenCheck, GoldenOutcome, Limits, ModelCard, ModelInfo, Signature, TypedArray } from './types.js';

/** A tensor crossing the wasm boundary: `dims` a plain array, `data` the dtype's typed array. */
export interface WasmTensor {
  name: string;
  dtype: DType;
  dims: number[];
  data: TypedArray;
}

/** `info()` of a loaded model: the public {@link ModelInfo}. */
export type WasmModelInfo = ModelInfo;

/** A model with weights inside one wasm instance. */
export interface WasmModel {
  /** Rejects with an Error named `BrasaError` with a `code` (`invalid_input`, `execution`…). */
  run(feeds: WasmTensor[]): Promise<WasmTensor[]>;
  /** Validates, then swaps; throws a `BrasaError`-named Error and keeps the old weights on
   * failure (a threaded build's model, in its Worker, answers with a promise). */
  setWeights(bytes: Uint8Array): void | Promise<void>;
  info(): WasmModelInfo;
  /** The id of the GPU device it runs on (`undefined` on the CPU, and in builds before it). */
  gpuDevice?(): number | undefined;
  free(): void;
}

/** The dynamic batching policy (Rust). */
export interface WasmBatchPolicy {
  /** 0 to admit `rows` more, else the seconds to advertise in `Retry-After`. */
  admit(queuedRows: number, rows: number, rowsPerSec: number): number;
  /** Microseconds until the queue's next batch is due (0: now). */
  dispatchIn(queuedRows: number, oldestWaitUs: number): number;
  /** How many of the queued requests (their row counts, oldest first) form the next batch. */
  nextBatch(queued: Uint32Array): number;
  free(): void;
}

/** Prometheus metrics (Rust). */
export interface WasmMetrics {
  inc(name: string, labels: Record<string, string>, by: number): void;
  set(name: string, labels: Record<string, string>, value: number): void;
  observe(name: string, labels: Record<string, string>, value: number): void;
  render(): string;
  snapshot(): unknown;
  /** Count a request or a forward pass in the Triton statistics (absent from builds before them). */
  statsRecord?(event: StatsEvent): void;
  /** Triton's `{ model_stats }` of these model versions, as JSON text. */
  tritonStatistics?(served: { name: string; version: string }[]): string;
  free(): void;
}

/** Seconds spent assembling a batch's inputs, running the model, and splitting its outputs. */
export interface Phases {
  input: number;
  infer: number;
  output: number;
}

/** What the endpoint tells the statistics (durations in seconds, `at` in ms since the epoch). */
export type StatsEvent =
  | { kind: 'success'; model: string; version: string; rows: number; request: number; queue: number; phases: Phases; at: number }
  | { kind: 'failure'; model: string; version: string; request: number; at: number }
  | { kind: 'execution'; model: string; version: string; batch: number; phases: Phases };

/** Triton's version policy, as its model configuration states it. */
export type VersionPolicy = { latest: { num_versions: number } } | { all: Record<string, never> } | { specific: { versions: string[] } };

/** One parsed KServe v2 input. */
export type KserveInput = WasmTensor;

/** What `kserveParseInfer` returns. */
export interface KserveRequest {
  id: string | null;
  /** The batch size when the signature has a batch dimension. */
  batch: number | null;
  inputs: KserveInput[];
  /** The outputs asked for (all of them when the request names none). */
  outputs: { name: string; binary: boolean }[];
}

/** The KServe v2 logic (Rust). */
export interface KserveWasm {
  /** Throws an Error named `BrasaError` with `code` (`malformed_request`, `body_too_large`,
   * `unknown_input`, `wrong_datatype`, `wrong_shape`, `wrong_element_count`, `non_finite`,
   * `out_of_range`, `batch_too_large`, `unknown_output`) and an HTTP `status`. */
  kserveParseInfer(body: Uint8Array, headerLength: number | undefined, signature: Signature, limits: Limits, maxBody: number): KserveRequest;
  kserveInferResponse(
    model: string,
    version: string,
    id: string | undefined,
    outputs: { name: string; binary: boolean }[],
    fetches: WasmTensor[],
  ): { body: Uint8Array; headerLength: number | null };
  /** JSON text. */
  kserveModelMetadata(name: string, versions: string[], signature: Signature, limits: Limits & { maxBodyBytes?: number; maxQueueRows?: number }): string;
  /** Triton's model configuration, JSON text (absent from builds before it). `policy`: the
   * endpoint's batching policy, null when requests are not batched together. */
  tritonModelConfig?(name: string, signature: Signature, policy: BatchPolicySettings | null, versionPolicy: VersionPolicy, backend: Backend): string;
}

/** A dynamic batching policy's settings, as `WasmBatchPolicy` takes them. */
export interface BatchPolicySettings {
  maxBatch: number;
  maxQueueDelayUs: number;
  maxQueueRows: number;
}

/** The golden checks of registry versions (Rust): any model, any number of named tensors. */
export interface GoldenWasm {
  /** The golden feeds as tensors for `WasmModel.run`; throws `invalid_manifest` when the
   * golden tensors are malformed (dims and data disagree, an unknown dtype). */
  registryGoldenFeeds(golden: GoldenCheck): WasmTensor[];
  /** Judge the fetches of a run on `registryGoldenFeeds(golden)`: every expected output
   * present, same dims, every value within the tolerance. */
  registryGoldenCheck(golden: GoldenCheck, fetches: WasmTensor[]): GoldenOutcome;
}

/** Everything one instantiated build exports. (`RegistryWasm`'s single-array
 * `registryGoldenCheck` is the old form; the named one of {@link GoldenWasm} replaces it.) */
export interface Bindings extends RegistryWasm, KserveWasm, GoldenWasm {
  loadModel(weights: Uint8Array, backend: Backend): Promise<WasmModel>;
  modelCard(): ModelCard;
  compiledBackends(): string[];
  WasmBatchPolicy: new (policy: BatchPolicySettings) => WasmBatchPolicy;
  WasmMetrics: new () => WasmMetrics;
  /** Resolves with the reason once GPU device `id` is lost (absent from builds before it). */
  gpuDeviceLost?(id: number): Promise<string>;
  /** Why GPU device `id` was lost, `undefined` while it works. */
  gpuDeviceLostReason?(id: number): string | undefined;
  /** Bytes of the instance's linear memory (absent from builds made before it existed). */
  memoryBytes?(): number;
  /** Threads a run may use (threaded builds only: the size of the started pool). */
  threadCount?(): number;
  /** `true`: the build was compiled with relaxed SIMD (only such builds export it). */
  relaxedSimd?(): boolean;
}

/** A glue module before instantiation: its exports plus wasm-bindgen's two initialisers. */
export interface Glue extends Bindings {
  initSync(init: { module: BufferSource | WebAssembly.Module }): unknown;
  default(init?: { module_or_path: unknown }): Promise<unknown>;
  /** A fresh instance of the same compiled module (wasm-bindgen's
   * `--experimental-reset-state-function`; builds before it lack it): objects of the old
   * instance throw from then on. Used after the instance aborted. */
  __wbg_reset_state?(): void;
}
