/**
 * One served model: its queue and dynamic batcher. Concurrent requests whose inputs agree on
 * every non-batch dimension are concatenated along the batch (dim 0), run once, and the
 * outputs split back by rows; a signature without a batch runs each request alone through
 * the same queue. Admission, batch sizes and timing are the Rust policy's.
 *
 * When the model's wasm instance aborts (a trap in a run, here or in another model of the
 * same build), the endpoint drops the model without calling into that instance again: the
 * failing batch gets `internal`, requests still queued get `not_ready` (503), and the handler
 * loads the model again.
 * @module
 */
import { BrasaError } from '../errors.js';
import type { BatchPolicySettings, Bindings, KserveRequest, Phases, WasmBatchPolicy, WasmMetrics, WasmTensor } from '../glue.js';
import { abortOf, guardCall, logicOf, runtimeOf, type Ticket } from '../internal.js';
import type { BrasaModel } from '../model.js';
import { concat } from '../tensor.js';
import type { Backend, Limits, ModelPackage, Signature, TypedArray, WasmSource } from '../types.js';
import { sleepOrSettle } from './http.js';
import { rowSize, type MemoryPlan } from './memory.js';
import type { ServedTask, TextServing } from './text.js';

/** Settings of one endpoint, defaults applied. */
export interface EndpointConfig {
  name: string;
  pkg: ModelPackage;
  spec: string;
  wasm: Partial<Record<Backend, WasmSource>> | undefined;
  maxBatch: number;
  maxQueueDelayMs: number;
  maxQueueRows: number;
  /** The body limit asked for (`undefined`: the default, raised to fit `maxBatch` rows). */
  maxBodyBytes: number | undefined;
  /** Serve text: the tokenizer (and byte limit) of a sentence embedder; `null`: the model's tensors. */
  text: Omit<TextServing, 'batchSize'> | null;
  /** The one version this endpoint serves (a version policy's); `null`: whatever `spec` resolves to. */
  version?: string | null;
}

/** The body limit when none is asked for (and a full batch fits in it). */
export const DEFAULT_MAX_BODY = 8 * 1024 * 1024;
/** Room for the JSON header of a binary request beside its tensors. */
const HEADER_ROOM = 64 * 1024;

/** One request's share of a run. */
export interface Outcome {
  fetches: WasmTensor[];
  /** Seconds from queueing to the start of its batch. */
  queueWait: number;
  /** Rows in its batch. */
  batch: number;
  /** Its own rows: its batch, or 1 for a model whose requests are not batched together (as
   * Triton counts inferences). */
  rows: number;
  /** Its batch's forward pass, phase by phase (Triton's compute_input/infer/output). */
  phases: Phases;
}

interface Pending {
  rows: number;
  /** Requests join a batch only with requests of the same key (their non-batch dims). */
  key: string;
  inputs: WasmTensor[];
  enqueued: number;
  settled: boolean;
  resolve(result: Outcome): void;
  reject(err: unknown): void;
}

/** The queue is full: 503 with `Retry-After`. */
export class OverloadedError extends Error {
  constructor(
    readonly retryAfter: number,
    readonly queuedRows: number,
  ) {
    super(`the model's queue is full (${queuedRows} rows waiting); retry after ${retryAfter} s`);
  }
}

/** The model is not loaded (it was dropped after its wasm instance aborted): 503 `not_ready`. */
export class NotReadyError extends Error {
  constructor(
    readonly model: string,
    readonly reason: BrasaError | null,
  ) {
    super(`model ${model} is reloading${reason ? ` (${reason.message})` : ''}; retry after 1 s`);
  }
}

/** A request that can never be admitted: 400 `batch_too_large`. */
export class BatchTooLargeError extends Error {
  constructor(rows: number, limit: number, why = 'maxBatch') {
    super(`the request has a batch of ${rows}; this server runs at most ${limit} rows at once (${why}): split it`);
  }
}

/** Whether every input and output has the batch as its first dim. */
export function isBatched(signature: Signature): boolean {
  return [...signature.inputs, ...signature.outputs].every((t) => t.dims[0] === 'batch');
}

let uniqueKey = 0;

/** What the handler gives each endpoint. */
export interface EndpointHooks {
  /** The handler's metrics (`null` while none can be had). */
  metrics(): WasmMetrics | null;
  /** The model was dropped: its wasm instance aborted (`reason`). */
  dropped(endpoint: ModelEndpoint, reason: BrasaError): void;
}

export class ModelEndpoint {
  readonly name: string;
  readonly config: EndpointConfig;
  model: BrasaModel | null = null;
  /** The model's build, for its stateless KServe logic (see `logicOf`). */
  bindings: Bindings | null = null;
  /** The wasm instance the model and the batching policy live in. */
  instance: Ticket | null = null;
  error: BrasaError | null = null;
  /** Why the last model was dropped (its wasm instance aborted); cleared by the next attach. */
  dropped: BrasaError | null = null;
  /** The load in flight (the handler's). */
  loading: Promise<void> | null = null;
  /** When the last load failed (0: it did not). */
  failedAt = 0;
  /** Not loaded, and loaded only when a request asks for it (a version unloaded to make room,
   * or one that did not fit beside the others); metadata comes from its last load. */
  parked = false;
  /** What one request may hold here (also what metadata states). */
  limits: Limits = { maxBatch: 1, maxElements: 0 };
  /** Whether requests are batched together. */
  batched = false;
  /** Largest request body accepted (bytes). */
  maxBody = DEFAULT_MAX_BODY;
  /** Bytes of one row in the binary format at its largest (`null`: unbounded, or no batch). */
  rowBytes: number | null = null;
  /** What requests send and responses give: the model's signature, or its task's (text). */
  signature: Signature | null = null;
  #task: ServedTask | null = null;
  /** Most rows waiting. */
  maxQueueRows = 0;
  #policy: WasmBatchPolicy | null = null;
  #policySettings: BatchPolicySettings | null = null;
  /** What lowered `limits.maxBatch` below the configured `maxBatch`, if anything did. */
  #batchLimitReason: string | null = null;

  /** What lowered `limits.maxBatch` below the configured `maxBatch` (`null`: nothing did). */
  get batchLimitReason(): string | null {
    return this.#batchLimitReason;
  }

  /** The batching policy in force, effective `maxBatch` included (`null`: requests run
   * alone, the signature having no leading batch; or no model is attached). */
  get batchPolicy(): BatchPolicySettings | null {
    return this.batched ? this.#policySettings : null;
  }
  #queue: Pending[] = [];
  #queuedRows = 0;
  #running = false;
  /** Recent throughput (rows/s), for Retry-After. */
  #rate = 0;
  #metrics: () => WasmMetrics | null;
  #hooks: EndpointHooks;
  /** The labels of the model attached last (kept after a drop, for the failing requests' metrics). */
  #labels: Record<string, string>;

  constructor(config: EndpointConfig, hooks: EndpointHooks) {
    this.name = config.name;
    this.config = config;
    this.#hooks = hooks;
    this.#metrics = () => hooks.metrics();
    this.#labels = { model: config.name, version: config.version ?? '', backend: '' };
  }

  /**
   * Serve `model`, or `task` over it (text in place of the model's tensors). `memory`: its
   * rows within the platform's memory limit (see `memoryPlan`), which cap `maxBatch` and
   * `maxQueueRows` when smaller.
   */
  attach(model: BrasaModel, memory: MemoryPlan | null = null, task: ServedTask | null = null): void {
    const { maxBatch, maxQueueDelayMs } = this.config;
    let { maxQueueRows } = this.config;
    const info = model.info;
    const runtime = runtimeOf(model);
    const instance = runtime.instance;
    const signature = task?.signature ?? info.signature;
    this.batched = isBatched(signature);
    // A text row: its tokens at the most the embedder keeps, its bytes at the byte limit.
    const row = task ? task.row : this.batched ? rowSize(info.signature) : null;
    this.rowBytes = row?.bytes ?? null;
    // Every limit that bounds the rows of one call, with why: the smallest decides, and its
    // reason goes into `batch_too_large`'s message. All of them hold at once, so a request of
    // `maxBatch` rows always gets through (metadata states the result).
    const mib = (n: number) => (n / (1 << 20)).toFixed(1);
    const caps: [number, string][] = [
      [maxBatch, 'maxBatch'],
      [info.limits.maxBatch, "the model's limit"],
    ];
    if (row) {
      caps.push([Math.floor(info.limits.maxElements / row.elements), `the model's limit of ${info.limits.maxElements} elements per call, at ${row.elements} a row`]);
      if (this.config.maxBodyBytes !== undefined) {
        caps.push([Math.floor(this.config.maxBodyBytes / row.bytes), `the ${this.config.maxBodyBytes} byte body limit, at ${row.bytes} bytes a row in the binary format`]);
      }
      if (memory) caps.push([memory.maxBatch, `what fits the ${mib(memory.limit)} MiB memory limit, at ${mib(memory.bytesPerRow)} MiB a row`]);
    }
    let [rows, why] = caps.reduce((a, b) => (b[0] < a[0] ? b : a));
    if (rows < 1) {
      console.warn(`brasa: ${this.name} cannot take even one row within ${why}; serving batches of 1 anyway`);
      rows = 1;
    }
    this.limits = { maxBatch: rows, maxElements: info.limits.maxElements };
    this.#batchLimitReason = why === 'maxBatch' ? null : why;
    if (memory && row) maxQueueRows = Math.min(maxQueueRows, memory.maxQueueRows);
    if (memory && memory.base > memory.limit) {
      console.warn(`brasa: ${this.name} already holds ${mib(memory.base)} MiB at batch 1, above the ${mib(memory.limit)} MiB memory limit`);
    }
    // Without a batch, each request is one row of the queue and runs alone.
    const perRun = this.batched ? this.limits.maxBatch : 1;
    // A request of `maxBatch` rows in the binary format must get past the body limit.
    this.maxBody = this.config.maxBodyBytes ?? Math.max(DEFAULT_MAX_BODY, row === null ? 0 : row.bytes * perRun + HEADER_ROOM);
    this.maxQueueRows = Math.max(maxQueueRows, perRun);
    const settings: BatchPolicySettings = {
      maxBatch: perRun,
      maxQueueDelayUs: Math.round(maxQueueDelayMs * 1000),
      // A request of maxBatch rows must always fit once the queue drains.
      maxQueueRows: this.maxQueueRows,
    };
    this.#policy = guardCall(instance, () => new runtime.bindings.WasmBatchPolicy(settings));
    this.#policySettings = settings;
    this.bindings = logicOf(runtime.bindings);
    this.instance = instance;
    this.signature = signature;
    this.#task = task;
    this.model = model;
    this.dropped = null;
    this.parked = false;
    this.#labels = { model: this.name, version: model.version ?? '', backend: model.backend };
  }

  labels(): Record<string, string> {
    if (this.model) this.#labels = { model: this.name, version: this.model.version ?? '', backend: this.model.backend };
    return this.#labels;
  }

  /** Whether the model is attached and its wasm instance alive; drops it when that aborted. */
  alive(): boolean {
    if (!this.model || !this.instance) return false;
    const reason = abortOf(this.instance);
    if (!reason) return true;
    this.drop(reason);
    return false;
  }

  /**
   * Let go of a model whose wasm instance aborted, without calling into it: requests still
   * queued get {@link NotReadyError}; the handler loads the model again.
   */
  drop(reason: BrasaError): void {
    const model = this.model;
    if (!model) return;
    this.labels();
    this.model = null;
    this.bindings = null;
    this.instance = null;
    this.#task = null;
    this.#policy = null;
    this.dropped = reason;
    for (const p of this.#queue.splice(0)) p.reject(new NotReadyError(this.name, reason));
    this.#queuedRows = 0;
    model.dispose();
    this.#hooks.dropped(this, reason);
  }

  /**
   * Unload the model to make room for another version (least recently used first): dispose
   * it, keep what metadata and configuration state (`bindings` are the build's stateless
   * logic), and wait to be loaded again on demand. Only for an endpoint no request holds.
   */
  unload(): void {
    const model = this.model;
    if (!model) return;
    this.labels();
    this.model = null;
    this.instance = null;
    this.#task = null;
    this.#policy = null;
    this.parked = true;
    for (const p of this.#queue.splice(0)) p.reject(new NotReadyError(this.name, null));
    this.#queuedRows = 0;
    model.dispose();
  }

  /**
   * Queue a parsed request; resolves with this request's own rows of its batch's outputs.
   *
   * Every waiting request keeps its own timer and runs the batch itself when the policy says
   * it is due, rather than relying on one shared timer: Cloudflare Workers cancel a request
   * that waits only on another request's timer ("hung"), and run a request's timers and
   * I/O only in its own context. The first due timer runs the batch; the others' requests
   * are resolved by it.
   */
  async infer(request: KserveRequest): Promise<Outcome> {
    // Dropped while the request was read, or its instance aborted since.
    if (!this.alive()) throw new NotReadyError(this.name, this.dropped);
    const signature = this.signature!;
    const byName = new Map(request.inputs.map((t) => [t.name, t]));
    const inputs = signature.inputs.map((s) => byName.get(s.name)).filter((t): t is WasmTensor => t !== undefined);
    let rows = 1;
    let key: string;
    if (this.batched) {
      rows = request.batch ?? inputs[0]?.dims[0] ?? 1;
      if (rows > this.limits.maxBatch) throw new BatchTooLargeError(rows, this.limits.maxBatch, this.#batchLimitReason ?? 'maxBatch');
      key = inputs.map((t) => `${t.name}:${t.dtype}:${t.dims.slice(1).join('x')}`).join('|');
    } else {
      key = `#${uniqueKey++}`;
    }
    const retryAfter = this.#policy!.admit(this.#queuedRows, rows, this.#rate);
    if (retryAfter > 0) throw new OverloadedError(retryAfter, this.#queuedRows);
    let settle!: { resolve(o: Outcome): void; reject(e: unknown): void };
    const done = new Promise<Outcome>((resolve, reject) => (settle = { resolve, reject }));
    const entry: Pending = { rows, key, inputs, enqueued: performance.now(), settled: false, ...settle };
    entry.resolve = (o) => {
      entry.settled = true;
      settle.resolve(o);
    };
    entry.reject = (e) => {
      entry.settled = true;
      settle.reject(e);
    };
    this.#queue.push(entry);
    this.#queuedRows += rows;
    this.#gauge();
    while (!entry.settled) {
      // A model of the same build trapped meanwhile: this drops the model and settles `entry`.
      if (!this.alive()) break;
      // Due now: run it (yielding once first, so requests already read off the network join).
      const us = this.#running ? 1000 : this.#dueIn();
      await sleepOrSettle(done, us / 1000);
      if (!entry.settled && !this.#running && this.#dueIn() === 0) await this.#runBatch();
    }
    if (!entry.settled) entry.reject(new NotReadyError(this.name, this.dropped));
    return done;
  }

  /** Microseconds until the queue's next batch is due (0: now). */
  #dueIn(): number {
    // Never into an aborted instance (alive() drops the model and empties the queue).
    if (this.#queue.length === 0 || !this.alive()) return 0;
    const waited = (performance.now() - this.#queue[0].enqueued) * 1000;
    return Math.max(0, this.#policy!.dispatchIn(this.#queuedRows, waited));
  }

  #gauge(): void {
    try {
      this.#metrics()?.set('brasa_queue_rows', this.labels(), this.#queuedRows);
    } catch {
      // Metrics never fail a request.
    }
  }

  /** The next batch: the oldest request and those queued after it with the same dims. */
  #take(): Pending[] {
    const head = this.#queue[0];
    if (!this.batched) {
      this.#queue.shift();
      return [head];
    }
    const group = this.#queue.filter((p) => p.key === head.key);
    const n = Math.max(1, this.#policy!.nextBatch(Uint32Array.from(group, (p) => p.rows)));
    const batch = group.slice(0, n);
    const taken = new Set(batch);
    this.#queue = this.#queue.filter((p) => !taken.has(p));
    return batch;
  }

  async #runBatch(): Promise<void> {
    if (this.#running || this.#queue.length === 0 || !this.alive()) return;
    const model = this.model!;
    this.#running = true;
    const batch = this.#take();
    const rows = batch.reduce((sum, p) => sum + p.rows, 0);
    this.#queuedRows -= rows;
    this.#gauge();
    const assembling = performance.now();
    const feeds: Record<string, WasmTensor> = {};
    if (batch.length === 1) {
      for (const t of batch[0].inputs) feeds[t.name] = t;
    } else {
      batch[0].inputs.forEach((first, i) => {
        // Strings (text) are an Array; numbers a typed array.
        const data = Array.isArray(first.data) ? batch.flatMap((p) => p.inputs[i].data as string[]) : concat(batch.map((p) => p.inputs[i].data) as TypedArray[]);
        feeds[first.name] = { name: first.name, dtype: first.dtype, dims: [rows, ...first.dims.slice(1)], data };
      });
    }
    const started = performance.now();
    try {
      const fetches = await this.#run(model, feeds);
      const ran = performance.now();
      // Each request's own rows of the outputs.
      const shares: WasmTensor[][] = [];
      if (batch.length === 1) {
        shares.push(fetches);
      } else {
        const bad = fetches.find((t) => t.dims[0] !== rows);
        if (bad) throw new BrasaError('execution', `output \`${bad.name}\` has ${bad.dims[0]} rows for a batch of ${rows}`);
        let row = 0;
        for (const p of batch) {
          shares.push(
            fetches.map((t) => {
              const per = rows === 0 ? 0 : t.data.length / rows;
              const [from, to] = [row * per, (row + p.rows) * per];
              const data = Array.isArray(t.data) ? t.data.slice(from, to) : t.data.subarray(from, to);
              return { name: t.name, dtype: t.dtype, dims: [p.rows, ...t.dims.slice(1)], data: data as TypedArray };
            }),
          );
          row += p.rows;
        }
      }
      const phases = { input: (started - assembling) / 1000, infer: (ran - started) / 1000, output: (performance.now() - ran) / 1000 };
      this.#record(rows, phases);
      batch.forEach((p, i) => p.resolve({ fetches: shares[i], queueWait: (assembling - p.enqueued) / 1000, batch: rows, rows: p.rows, phases }));
    } catch (err) {
      // A result that depends on one request's data (a non-finite output from huge inputs)
      // must not fail the requests it was batched with: run each alone to find whose it is.
      if (batch.length > 1 && BrasaError.from(err).code === 'invalid_input' && this.alive()) {
        await this.#runAlone(batch);
        return;
      }
      for (const p of batch) if (!p.settled) p.reject(err);
      // The run aborted the wasm instance: drop the model (the queue gets not_ready).
      this.alive();
    } finally {
      this.#running = false;
    }
  }

  /** Metrics and statistics of one forward pass of `rows` rows, phase by phase (seconds). */
  #record(rows: number, phases: Phases): void {
    const metrics = this.#metrics();
    const labels = this.labels();
    const compute = phases.infer;
    // Metrics never fail a request (a build from an older brasa may lack a family).
    try {
      metrics?.observe('brasa_compute_seconds', labels, compute);
      metrics?.observe('brasa_batch_size', labels, rows);
      metrics?.inc('brasa_inferences_total', labels, rows);
      const memory = this.model?.memoryBytes;
      if (memory != null) metrics?.set('brasa_wasm_memory_bytes', labels, memory);
      metrics?.statsRecord?.({ kind: 'execution', model: labels.model, version: labels.version, batch: rows, phases });
    } catch {
      // The next call goes to a live metrics host (the handler replaces an aborted one).
    }
    // Exponentially weighted throughput, for Retry-After.
    const rate = rows / Math.max(compute, 1e-6);
    this.#rate = this.#rate === 0 ? rate : 0.8 * this.#rate + 0.2 * rate;
  }

  /** Run each request of a failed batch on its own, settling each with its own outcome. */
  async #runAlone(batch: Pending[]): Promise<void> {
    for (const p of batch) {
      if (p.settled) continue;
      if (!this.alive()) {
        p.reject(new NotReadyError(this.name, this.dropped));
        continue;
      }
      const feeds: Record<string, WasmTensor> = {};
      for (const t of p.inputs) feeds[t.name] = t;
      const started = performance.now();
      try {
        const fetches = await this.#run(this.model!, feeds);
        const ran = performance.now();
        const phases = { input: 0, infer: (ran - started) / 1000, output: (performance.now() - ran) / 1000 };
        this.#record(p.rows, phases);
        p.resolve({ fetches, queueWait: (started - p.enqueued) / 1000, batch: p.rows, rows: p.rows, phases });
      } catch (err) {
        p.reject(err);
      }
    }
  }

  /** One forward pass: the model's, or its task's (tokenization included). */
  async #run(model: BrasaModel, feeds: Record<string, WasmTensor>): Promise<WasmTensor[]> {
    return this.#task ? this.#task.run(feeds) : fetchesOf(await model.run(feeds));
  }

  close(): void {
    for (const p of this.#queue.splice(0)) p.reject(new BrasaError('disposed', 'the endpoint was closed'));
    this.#queuedRows = 0;
    this.model?.dispose();
  }
}

/** A run's named outputs as the wire layer's tensors. */
function fetchesOf(result: Record<string, { dtype: WasmTensor['dtype']; dims: readonly number[]; data: WasmTensor['data'] }>): WasmTensor[] {
  return Object.entries(result).map(([name, t]) => ({ name, dtype: t.dtype, dims: [...t.dims], data: t.data }));
}
