/**
 * A model-serving endpoint in a `fetch(request)` handler, speaking the Open Inference
 * Protocol (KServe v2 over JSON): the same code in Cloudflare Workers, Deno (`Deno.serve`)
 * and Node (`node:http`, see `brasa/node`'s `toNodeListener`).
 *
 * Concurrent requests for a model are coalesced into one forward pass (dynamic batching, as
 * Triton does it), behind a bounded queue (503 with `Retry-After` beyond it). Request
 * validation, responses, the batching policy and the metrics are brasa's Rust logic.
 * @module
 */
import type { BrasaModel, WasmBindings } from './core.js';
import { BrasaError } from './errors.js';
import type { BackendPreference, LoadOptions, ModelInfo, ProgressInfo } from './types.js';

type Bindings = WasmBindings;
type Metrics = InstanceType<Bindings['WasmMetrics']>;
type Policy = InstanceType<Bindings['WasmBatchPolicy']>;

/** One model the endpoint serves. */
export interface ServedModel {
  /** The model's name in URLs (`/v2/models/{name}`). */
  name: string;
  /** What to load from the registry; default `${name}@stable`. */
  spec?: string;
  /** Most rows in one forward pass; 1 turns batching off. Default 32. */
  maxBatch?: number;
  /** Longest a request waits for others to join its batch (ms). Default 2. */
  maxQueueDelayMs?: number;
  /** Most rows waiting; beyond, requests get 503 with `Retry-After`. Default 512. */
  maxQueueRows?: number;
}

/** Options of {@link createHandler}. */
export interface HandlerOptions {
  /** Models to serve: names (their `stable` channel) or full descriptions. */
  models: (string | ServedModel)[];
  /** The brasa registry the weights come from (through the platform's cache). */
  registry: string | URL;
  /** Backend; default `cpu` (servers and workers have no GPU, and a GPU has no use for tiny batches). */
  backend?: BackendPreference;
  /** Largest request body accepted, in bytes (413 beyond). Default 8 MiB. */
  maxBodyBytes?: number;
  /**
   * Check the registry for a new version at most this often (ms), on the back of a request
   * (edge runtimes run timers and I/O only inside requests), and switch to it once it passed
   * its checks; 0 turns it off. Default 60000.
   */
  updateInterval?: number;
  /** Anything else `loadModel` takes (cache, wasm module, clientId, timeoutMs…). */
  load?: Omit<LoadOptions, 'registry' | 'weights' | 'backend' | 'onProgress'>;
}

/** What {@link createHandler} returns. */
export interface Handler {
  /**
   * Answer one HTTP request. Never throws: every failure is an HTTP error response. The
   * signature is a Workers module's: `export default createHandler({...})` serves; `ctx`
   * (with `waitUntil`) keeps background update checks alive past the response.
   */
  fetch(request: Request, env?: unknown, ctx?: { waitUntil(promise: Promise<unknown>): void }): Promise<Response>;
  /**
   * Load every model now (otherwise the first request does: Workers allow no I/O outside a
   * request). Resolves when all are loaded and passed their golden checks; rejects if one
   * cannot be.
   */
  start(): Promise<void>;
  /** The metrics in Prometheus text format. */
  metrics(): string;
  /** Stop update checks and free the models. */
  close(): void;
}

type LoadModel = (spec: string, options: LoadOptions) => Promise<BrasaModel>;

const JSON_HEADERS = { 'content-type': 'application/json' };
const LOAD_RETRY_MS = 2_000;

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(typeof body === 'string' ? body : JSON.stringify(body), { status, headers: { ...JSON_HEADERS, ...headers } });
}

function errorResponse(status: number, code: string, message: string, headers: Record<string, string> = {}): Response {
  // KServe's error body is `{ "error": "<message>" }`; `code` is brasa's addition.
  return json(status, { error: message, code }, headers);
}

interface Outcome {
  logits: Float32Array;
  probabilities: Float32Array;
  /** Seconds from queueing to the start of its batch. */
  queueWait: number;
  /** Rows in its batch. */
  batch: number;
}

interface Pending {
  rows: number;
  data: Float32Array;
  enqueued: number;
  settled: boolean;
  resolve(result: Outcome): void;
  reject(err: unknown): void;
}

/** Wait `ms` (at least one macrotask), or less if `promise` settles first. */
function sleepOrSettle(promise: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    promise.then(
      () => { clearTimeout(timer); resolve(); },
      () => { clearTimeout(timer); resolve(); },
    );
  });
}

/** One model behind the endpoint: its queue and batcher. */
class ModelEndpoint {
  readonly name: string;
  readonly config: Required<Omit<ServedModel, 'spec'>> & { spec: string };
  model: BrasaModel | null = null;
  error: BrasaError | null = null;
  #policy: Policy | null = null;
  #queue: Pending[] = [];
  #queuedRows = 0;
  #running = false;
  /** Recent throughput (rows/s), for Retry-After. */
  #rate = 0;
  #metrics: () => Metrics | null;

  constructor(served: string | ServedModel, metrics: () => Metrics | null) {
    const s = typeof served === 'string' ? { name: served } : served;
    this.name = s.name;
    this.config = {
      name: s.name,
      spec: s.spec ?? `${s.name}@stable`,
      maxBatch: s.maxBatch ?? 32,
      maxQueueDelayMs: s.maxQueueDelayMs ?? 2,
      maxQueueRows: s.maxQueueRows ?? 512,
    };
    this.#metrics = metrics;
  }

  attach(model: BrasaModel): void {
    const { maxBatch, maxQueueDelayMs, maxQueueRows } = this.config;
    const maxBatchRows = Math.min(maxBatch, model.info.maxBatch);
    this.#policy = new model._wasm.WasmBatchPolicy({
      maxBatch: maxBatchRows,
      maxQueueDelayUs: Math.round(maxQueueDelayMs * 1000),
      maxQueueRows: Math.max(maxQueueRows, maxBatchRows),
    });
    this.model = model;
  }

  labels(): Record<string, string> {
    return { model: this.name, version: this.model?.version ?? '', backend: this.model?.backend ?? '' };
  }

  signature(info: ModelInfo) {
    return { input: info.input, output: info.output, maxBatch: info.maxBatch };
  }

  /**
   * Queue `rows` rows; resolves with this request's own rows of the batch's outputs.
   *
   * Every waiting request keeps its own timer and runs the batch itself when the policy says
   * it is due, rather than relying on one shared timer: Cloudflare Workers cancel a request
   * that waits only on another request's timer ("hung"), and run a request's timers and
   * I/O only in its own context. The first due timer runs the batch; the others' requests
   * are resolved by it.
   */
  async infer(rows: number, data: Float32Array): Promise<Outcome> {
    const retryAfter = this.#policy!.admit(this.#queuedRows, rows, this.#rate);
    if (retryAfter > 0) throw new OverloadedError(retryAfter, this.#queuedRows);
    let settle!: { resolve(o: Outcome): void; reject(e: unknown): void };
    const done = new Promise<Outcome>((resolve, reject) => (settle = { resolve, reject }));
    const entry: Pending = { rows, data, enqueued: performance.now(), settled: false, ...settle };
    entry.resolve = (o) => { entry.settled = true; settle.resolve(o); };
    entry.reject = (e) => { entry.settled = true; settle.reject(e); };
    this.#queue.push(entry);
    this.#queuedRows += rows;
    this.#gauge();
    while (!entry.settled) {
      // Due now: run it (yielding once first, so requests already read off the network join).
      const us = this.#running ? 1000 : this.#dueIn();
      await sleepOrSettle(done, us / 1000);
      if (!entry.settled && !this.#running && this.#dueIn() === 0) await this.#runBatch();
    }
    return done;
  }

  /** Microseconds until the queue's next batch is due (0: now). */
  #dueIn(): number {
    if (this.#queue.length === 0) return 0;
    const waited = (performance.now() - this.#queue[0].enqueued) * 1000;
    return Math.max(0, this.#policy!.dispatchIn(this.#queuedRows, waited));
  }

  #gauge(): void {
    this.#metrics()?.set('brasa_queue_rows', this.labels(), this.#queuedRows);
  }

  async #runBatch(): Promise<void> {
    if (this.#running || this.#queue.length === 0 || !this.model) return;
    const policy = this.#policy!;
    this.#running = true;
    const n = policy.nextBatch(Uint32Array.from(this.#queue, (p) => p.rows) as unknown as number[]);
    const batch = this.#queue.splice(0, n);
    const rows = batch.reduce((sum, p) => sum + p.rows, 0);
    this.#queuedRows -= rows;
    this.#gauge();
    const item = batch[0].data.length / batch[0].rows;
    let input: Float32Array;
    if (batch.length === 1) {
      input = batch[0].data;
    } else {
      input = new Float32Array(rows * item);
      let offset = 0;
      for (const p of batch) {
        input.set(p.data, offset);
        offset += p.data.length;
      }
    }
    const started = performance.now();
    try {
      const result = await this.model.run(input);
      const compute = (performance.now() - started) / 1000;
      const metrics = this.#metrics();
      const labels = this.labels();
      metrics?.observe('brasa_compute_seconds', labels, compute);
      metrics?.observe('brasa_batch_size', labels, rows);
      metrics?.inc('brasa_inferences_total', labels, rows);
      // Exponentially weighted throughput, for Retry-After.
      const rate = rows / Math.max(compute, 1e-6);
      this.#rate = this.#rate === 0 ? rate : 0.8 * this.#rate + 0.2 * rate;
      const classes = result.classes;
      let row = 0;
      for (const p of batch) {
        const from = row * classes;
        const to = (row + p.rows) * classes;
        p.resolve({
          logits: result.logits.subarray(from, to),
          probabilities: result.probabilities.subarray(from, to),
          queueWait: (started - p.enqueued) / 1000,
          batch: rows,
        });
        row += p.rows;
      }
    } catch (err) {
      for (const p of batch) p.reject(err);
    } finally {
      this.#running = false;
    }
  }

  close(): void {
    for (const p of this.#queue.splice(0)) p.reject(new BrasaError('disposed', 'the endpoint was closed'));
    this.model?.dispose();
  }
}

class OverloadedError extends Error {
  constructor(
    readonly retryAfter: number,
    readonly queuedRows: number,
  ) {
    super(`the model's queue is full (${queuedRows} rows waiting); retry after ${retryAfter} s`);
  }
}

/** Build a KServe v2 endpoint for `loadModel` (the platform's). */
export function createHandlerFor(loadModel: LoadModel, options: HandlerOptions): Handler {
  if (!options || !Array.isArray(options.models) || options.models.length === 0) {
    throw new BrasaError('invalid_spec', 'createHandler needs { models: [...], registry }');
  }
  if (options.registry === undefined) throw new BrasaError('invalid_spec', 'createHandler needs a registry');
  let metrics: Metrics | null = null;
  const endpoints = new Map<string, ModelEndpoint>();
  for (const served of options.models) {
    const endpoint = new ModelEndpoint(served, () => metrics);
    if (endpoints.has(endpoint.name)) throw new BrasaError('invalid_spec', `model ${endpoint.name} is listed twice`);
    endpoints.set(endpoint.name, endpoint);
  }
  const maxBody = options.maxBodyBytes ?? 8 * 1024 * 1024;
  const startedAt = Date.now();

  const fileCounted = new Set<string>();
  const load = async (endpoint: ModelEndpoint) => {
    const onProgress = (p: ProgressInfo) => {
      const key = `${p.version}/${p.file}/${p.fromCache}`;
      if (p.loaded !== p.total || fileCounted.has(key)) return;
      fileCounted.add(key);
      pendingFileMetrics.push({ name: endpoint.name, version: p.version, fromCache: p.fromCache, bytes: p.total });
      flushFileMetrics();
    };
    endpoint.error = null;
    try {
      const model = await loadModel(endpoint.config.spec, {
        ...options.load,
        registry: options.registry,
        backend: options.backend ?? 'cpu',
        onProgress,
        autoUpdate: true,
      });
      metrics ??= new model._wasm.WasmMetrics();
      endpoint.attach(model);
      metrics.set('brasa_model_ready', endpoint.labels(), 1);
      model.addEventListener('updated', (event) => {
        const { from } = (event as unknown as { detail: { from: string } }).detail;
        metrics?.set('brasa_model_ready', { ...endpoint.labels(), version: from }, 0);
        metrics?.set('brasa_model_ready', endpoint.labels(), 1);
      });
      flushFileMetrics();
    } catch (err) {
      endpoint.error = BrasaError.from(err);
      throw endpoint.error;
    }
  };
  const pendingFileMetrics: { name: string; version: string; fromCache: boolean; bytes: number }[] = [];
  function flushFileMetrics() {
    if (!metrics) return;
    for (const f of pendingFileMetrics.splice(0)) {
      const labels = { model: f.name, version: f.version };
      if (f.fromCache) metrics.inc('brasa_cache_hits_total', labels, 1);
      else {
        metrics.inc('brasa_cache_misses_total', labels, 1);
        metrics.inc('brasa_fetched_bytes_total', labels, f.bytes);
      }
    }
  }

  let loading: Promise<void> | null = null;
  let failedAt = 0;
  // A model that could not be loaded (registry down and nothing cached) is tried again by a
  // later request, at most every LOAD_RETRY_MS: the endpoint recovers without a restart.
  const start = (): Promise<void> => {
    if (loading === null || (failedAt !== 0 && Date.now() - failedAt >= LOAD_RETRY_MS)) {
      failedAt = 0;
      const pending = [...endpoints.values()].filter((e) => !e.model);
      loading = Promise.all(pending.map(load)).then(() => undefined);
      loading.catch(() => {
        failedAt = Date.now();
      });
    }
    return loading;
  };
  const updateEvery = options.updateInterval ?? 60_000;
  let lastCheck = Date.now();
  /** A due update check, run beside the request that noticed it is due. */
  function maybeCheckForUpdates(ctx?: { waitUntil(promise: Promise<unknown>): void }): void {
    if (updateEvery <= 0 || Date.now() - lastCheck < updateEvery) return;
    lastCheck = Date.now();
    const checks = [...endpoints.values()].filter((e) => e.model).map((e) => e.model!.checkForUpdate().catch(() => undefined));
    const all = Promise.all(checks);
    ctx?.waitUntil(all);
  }

  function count(endpoint: ModelEndpoint | null, outcome: string, started: number): void {
    if (!metrics) return;
    const labels = endpoint ? endpoint.labels() : { model: '', version: '', backend: '' };
    metrics.inc('brasa_requests_total', { ...labels, outcome }, 1);
    if (outcome !== 'ok') metrics.inc('brasa_request_errors_total', { model: labels.model, code: outcome }, 1);
    metrics.observe('brasa_request_duration_seconds', labels, (performance.now() - started) / 1000);
  }

  async function infer(endpoint: ModelEndpoint, request: Request, started: number): Promise<Response> {
    const model = endpoint.model!;
    const wasm = model._wasm;
    const declared = Number(request.headers.get('content-length') ?? NaN);
    if (declared > maxBody) {
      count(endpoint, 'body_too_large', started);
      return errorResponse(413, 'body_too_large', `request body is ${declared} bytes; the limit is ${maxBody}`);
    }
    let body: Uint8Array;
    try {
      body = await readBody(request, maxBody);
    } catch (err) {
      const tooLarge = err instanceof BodyTooLarge;
      count(endpoint, tooLarge ? 'body_too_large' : 'malformed_request', started);
      return errorResponse(tooLarge ? 413 : 400, tooLarge ? 'body_too_large' : 'malformed_request', (err as Error).message);
    }
    const signature = endpoint.signature(model.info);
    let parsed: { id: string | null; rows: number; data: Float32Array; outputs: string[] };
    try {
      parsed = wasm.kserveParseInfer(body, signature, maxBody);
    } catch (err) {
      const e = err as { code?: string; status?: number; message?: string };
      count(endpoint, e.code ?? 'malformed_request', started);
      return errorResponse(e.status ?? 400, e.code ?? 'malformed_request', e.message ?? String(err));
    }
    try {
      const result = await endpoint.infer(parsed.rows, parsed.data);
      metrics?.observe('brasa_queue_wait_seconds', endpoint.labels(), result.queueWait);
      const text = wasm.kserveInferResponse(
        endpoint.name, model.version ?? '', parsed.id ?? undefined, parsed.rows, parsed.outputs, signature, result.logits, result.probabilities,
      );
      count(endpoint, 'ok', started);
      return json(200, text);
    } catch (err) {
      if (err instanceof OverloadedError) {
        count(endpoint, 'overloaded', started);
        return errorResponse(503, 'overloaded', err.message, { 'retry-after': String(err.retryAfter) });
      }
      const e = BrasaError.from(err, 'execution');
      count(endpoint, e.code, started);
      return errorResponse(e.code === 'invalid_input' ? 400 : 500, e.code, e.message);
    }
  }

  async function route(request: Request, ctx?: { waitUntil(promise: Promise<unknown>): void }): Promise<Response> {
    const started = performance.now();
    const url = new URL(request.url);
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const method = request.method.toUpperCase();
    const get = method === 'GET' || method === 'HEAD';
    if (path === '/v2/health/live') return get ? json(200, { live: true }) : notAllowed('GET');
    // Everything below needs the models: the first request loads them.
    await start().catch(() => undefined);
    maybeCheckForUpdates(ctx);
    if (path === '/v2/health/ready') {
      if (!get) return notAllowed('GET');
      const missing = [...endpoints.values()].filter((e) => !e.model);
      if (missing.length === 0) return json(200, { ready: true });
      const reasons = missing.map((e) => `${e.name}: ${e.error ? e.error.message : 'loading'}`);
      return json(503, { ready: false, reasons }, { 'retry-after': '1' });
    }
    if (path === '/metrics') {
      if (!get) return notAllowed('GET');
      return new Response(renderMetrics(), { headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' } });
    }
    if (path === '/v2') {
      return json(200, { name: 'brasa', version: '0.1.0', extensions: [], uptime_seconds: (Date.now() - startedAt) / 1000 });
    }
    const match = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/infer|\/ready)?$/.exec(path);
    if (!match) return errorResponse(404, 'not_found', `no route ${method} ${path}`);
    const [, rawName, rawVersion, action] = match;
    const name = decodeURIComponent(rawName);
    const endpoint = endpoints.get(name);
    if (!endpoint) {
      if (action === '/infer') count(null, 'unknown_model', started);
      return errorResponse(404, 'unknown_model', `unknown model \`${name}\`; this server serves: ${[...endpoints.keys()].join(', ')}`);
    }
    const model = endpoint.model;
    if (!model) {
      const reason = endpoint.error ? `could not be loaded: ${endpoint.error.message}` : 'is loading';
      return errorResponse(503, 'not_ready', `model ${name} ${reason}`, { 'retry-after': '1' });
    }
    const version = rawVersion === undefined ? null : decodeURIComponent(rawVersion);
    if (version !== null && version !== model.version) {
      if (action === '/infer') count(endpoint, 'unknown_version', started);
      return errorResponse(404, 'unknown_version', `model ${name} has no version ${version} loaded; it serves ${model.version}`);
    }
    if (action === '/infer') return method === 'POST' ? infer(endpoint, request, started) : notAllowed('POST');
    if (!get) return notAllowed('GET');
    if (action === '/ready') return json(200, { name, ready: true });
    return json(200, model._wasm.kserveModelMetadata(name, [model.version ?? ''], endpoint.signature(model.info)));
  }

  function renderMetrics(): string {
    return metrics ? metrics.render() : '# brasa: models are loading\n';
  }

  return {
    async fetch(request: Request, _env?: unknown, ctx?: { waitUntil(promise: Promise<unknown>): void }): Promise<Response> {
      try {
        return await route(request, ctx);
      } catch (err) {
        return errorResponse(500, 'internal', `internal error: ${err instanceof Error ? err.message : String(err)}`);
      }
    },
    start,
    metrics: renderMetrics,
    close() {
      for (const e of endpoints.values()) e.close();
    },
  };
}

function notAllowed(allow: string): Response {
  return errorResponse(405, 'method_not_allowed', `method not allowed here; use ${allow}`, { allow });
}

class BodyTooLarge extends Error {}

/** The body, refusing more than `limit` bytes without reading them all. */
async function readBody(request: Request, limit: number): Promise<Uint8Array> {
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      throw new BodyTooLarge(`request body is over ${limit} bytes`);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}
