/**
 * A model-serving endpoint in a `fetch(request)` handler, speaking the Open Inference
 * Protocol (KServe v2, JSON and the binary tensor extension): the same code in Cloudflare
 * Workers, Deno (`Deno.serve`) and Node (`node:http`, see `toNodeListener`).
 *
 * Each served model names its model package. Concurrent requests for a model with a batched
 * signature are coalesced into one forward pass (dynamic batching, as Triton does it), behind
 * a bounded queue (503 with `Retry-After` beyond it). Request parsing and validation,
 * responses, the batching policy and the metrics are brasa's Rust logic, from the model's
 * own build.
 * @module
 */
import { BrasaError } from './errors.js';
import type { WasmMetrics } from './glue.js';
import { abortOf, guardCall, type Ticket } from './internal.js';
import type { LoadModel } from './loader.js';
import { BatchTooLargeError, ModelEndpoint, NotReadyError, OverloadedError, isBatched } from './serve/endpoint.js';
import { memoryPlan, platformMemoryLimit, WASM32_MAX_BYTES, type MemoryPlan } from './serve/memory.js';
import { BodyTooLarge, errorResponse, json, notAllowed, readBody, JSON_HEADERS } from './serve/http.js';
import type { Backend, BackendPreference, LoadOptions, ModelPackage, ProgressInfo, RegistryEvent, WasmSource } from './types.js';

/** One model the endpoint serves. */
export interface ServedModel {
  /** The model package (`import mnist from 'mnist-model'`). */
  model: ModelPackage<any, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** The model's name in URLs (`/v2/models/{name}`); default the package's name. */
  name?: string;
  /** What to load from the registry; default `${package name}@stable`. */
  spec?: string;
  /** Most rows in one forward pass, and in one request (larger requests get 400
   * `batch_too_large`); 1 turns batching off. Default 32 (capped by the model's limit). */
  maxBatch?: number;
  /** Longest a request waits for others to join its batch (ms). Default 2. */
  maxQueueDelayMs?: number;
  /** Most rows waiting (requests, for a model without a batch); beyond, requests get 503
   * with `Retry-After`. Default 512 (at least `maxBatch`). */
  maxQueueRows?: number;
  /** This model's wasm modules, for runtimes that must bundle them (Cloudflare Workers:
   * `wasm: { cpu: (await import('mnist-model/cpu.wasm')).default }`); overrides `load.wasm`. */
  wasm?: Partial<Record<Backend, WasmSource>>;
}

/** Options of {@link createHandler}. */
export interface HandlerOptions {
  /** Models to serve: packages (served under their name, `stable` channel) or descriptions. */
  models: (ServedModel | ModelPackage<any, any>)[]; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** The brasa registry the weights come from (through the platform's cache). */
  registry: string | URL;
  /** Backend; default `cpu` (servers and workers have no GPU, and a GPU has no use for tiny batches). */
  backend?: BackendPreference;
  /** Largest request body accepted, in bytes (413 beyond). Default 8 MiB, or what a batch
   * of `maxBatch` rows takes in the binary format when that is more (so the stated
   * `max_batch` can always be sent). Metadata states it (`max_body_bytes`). */
  maxBodyBytes?: number;
  /**
   * Most bytes a model's wasm instance may reach. When set, each model with a batch (and
   * no unbounded dim besides it) is measured at load (zeros at batch 1, 2 and 4) and its
   * `maxBatch` and `maxQueueRows` lowered so that an accepted request cannot exhaust it
   * (larger requests get 400 `batch_too_large` saying so; metadata states the limit).
   * Default: 128 MiB on Cloudflare Workers (their per-isolate limit), elsewhere the 4 GiB a
   * wasm32 instance can address (past which a run traps); 0 turns it off.
   */
  memoryLimitBytes?: number;
  /**
   * Check the registry for a new version at most this often (ms), on the back of a request
   * (edge runtimes run timers and I/O only inside requests), and switch to it once it passed
   * its checks; 0 turns it off. Default 60000.
   */
  updateInterval?: number;
  /** Anything else `loadModel` takes (cache, wasm module, clientId, timeoutMs…). */
  load?: Omit<LoadOptions, 'registry' | 'weights' | 'backend' | 'onProgress' | 'build'>;
}

/** What {@link createHandler} returns. */
export interface Handler {
  /**
   * Answer one HTTP request. Never throws: every failure is an HTTP error response. The
   * signature is a Workers module's: `export default createHandler({...})` serves; `ctx`
   * (with `waitUntil`) keeps background update checks alive past the response.
   *
   * Routes: `GET /v2/health/live`, `/v2/health/ready`, `/v2`, `/metrics`,
   * `/v2/models/{name}[/versions/{v}]` (metadata, with `max_batch`/limits),
   * `/v2/models/{name}[/versions/{v}]/ready`, `POST /v2/models/{name}[/versions/{v}]/infer`
   * (JSON, or binary tensors with `Inference-Header-Content-Length`).
   *
   * Errors: `{ error, code }` with 400 (`malformed_request`, `unknown_input`,
   * `wrong_datatype`, `wrong_shape`, `wrong_element_count`, `non_finite`, `out_of_range`,
   * `batch_too_large`, `unknown_output`, `invalid_input`), 404 (`unknown_model`,
   * `unknown_version`, `not_found`), 405, 413 (`body_too_large`), 503 (`overloaded`,
   * `not_ready`, with `Retry-After`), 500.
   */
  fetch(request: Request, env?: unknown, ctx?: { waitUntil(promise: Promise<unknown>): void }): Promise<Response>;
  /**
   * Load every model now (otherwise the first request does: Workers allow no I/O outside a
   * request). Resolves when all are loaded and passed their golden checks; rejects if one
   * cannot be.
   *
   * A model whose wasm instance aborted while running (a trap: `internal`) is dropped and
   * loaded again by itself, on a fresh instance, weights from the cache: until then readiness
   * says why it is not ready, and its requests wait for the reload (or get 503 `not_ready`).
   */
  start(): Promise<void>;
  /** The metrics in Prometheus text format. */
  metrics(): string;
  /** Stop update checks and free the models. */
  close(): void;
}

const LOAD_RETRY_MS = 2_000;

function isPackage(value: unknown): value is ModelPackage {
  return typeof value === 'object' && value !== null && 'format' in value && 'builds' in value;
}

/** Build a KServe v2 endpoint for `loadModel` (the platform's). */
export function createHandlerFor(loadModel: LoadModel, options: HandlerOptions): Handler {
  if (!options || !Array.isArray(options.models) || options.models.length === 0) {
    throw new BrasaError('invalid_spec', 'createHandler needs { models: [{ name, model: pkg }, ...], registry }');
  }
  if (options.registry === undefined) throw new BrasaError('invalid_spec', 'createHandler needs a registry');
  // The handler's metrics live in one model's build (the first loaded): should that wasm
  // instance abort, they start over in a live one (as after a restart).
  let metricsHost: WasmMetrics | null = null;
  let metricsInstance: Ticket | null = null;
  const endpoints = new Map<string, ModelEndpoint>();
  /** The handler's metrics, in a live wasm instance; `null` while no model is loaded. */
  function liveMetrics(): WasmMetrics | null {
    if (metricsHost && metricsInstance && !abortOf(metricsInstance)) return metricsHost;
    metricsHost = null;
    metricsInstance = null;
    for (const e of endpoints.values()) {
      const instance = e.instance;
      if (!e.model || !instance || abortOf(instance)) continue;
      try {
        const created = guardCall(instance, () => new e.bindings!.WasmMetrics());
        metricsHost = created;
        metricsInstance = instance;
      } catch {
        continue;
      }
      for (const other of endpoints.values()) {
        if (other.model && other.instance && !abortOf(other.instance)) metricsHost.set('brasa_model_ready', other.labels(), 1);
      }
      return metricsHost;
    }
    return null;
  }
  /** Record into the metrics; they never fail a request. */
  function record(write: (m: WasmMetrics) => void): void {
    const m = liveMetrics();
    if (!m) return;
    try {
      write(m);
    } catch {
      // A metrics instance that aborted meanwhile is replaced on the next call.
    }
  }
  const hooks = {
    metrics: liveMetrics,
    dropped(endpoint: ModelEndpoint, reason: BrasaError) {
      // Allow the reload at once.
      endpoint.failedAt = 0;
      record((m) => m.set('brasa_model_ready', endpoint.labels(), 0));
      console.error(`brasa: dropped model ${endpoint.name}, loading it again: ${reason.message}`);
    },
  };
  for (const entry of options.models) {
    const served: ServedModel = isPackage(entry) ? { model: entry } : (entry as ServedModel);
    if (!served || !isPackage(served.model)) {
      const name = typeof entry === 'string' ? entry : (served as { name?: string })?.name;
      throw new BrasaError('unknown_model', `served model ${name ?? ''} has no model package: pass { name, model: pkg } (brasa holds no models)`.replace('  ', ' '));
    }
    const pkg = served.model;
    const name = served.name ?? pkg.name;
    const endpoint = new ModelEndpoint(
      {
        name,
        pkg,
        spec: served.spec ?? `${pkg.name}@stable`,
        wasm: served.wasm,
        maxBatch: served.maxBatch ?? 32,
        maxQueueDelayMs: served.maxQueueDelayMs ?? 2,
        maxQueueRows: served.maxQueueRows ?? 512,
        maxBodyBytes: options.maxBodyBytes,
      },
      hooks,
    );
    if (endpoints.has(name)) throw new BrasaError('invalid_spec', `model ${name} is listed twice`);
    endpoints.set(name, endpoint);
  }
  const startedAt = Date.now();

  let warnedNotPersisted = false;
  const memoryLimit = options.memoryLimitBytes === undefined ? platformMemoryLimit() : options.memoryLimitBytes > 0 ? Math.min(options.memoryLimitBytes, WASM32_MAX_BYTES) : null;
  const fileCounted = new Set<string>();
  const pendingFileMetrics: { name: string; version: string; fromCache: boolean; bytes: number }[] = [];
  function flushFileMetrics() {
    const metrics = liveMetrics();
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

  const load = async (endpoint: ModelEndpoint) => {
    const onProgress = (p: ProgressInfo) => {
      const key = `${endpoint.name}/${p.version}/${p.file}/${p.fromCache}`;
      if (p.loaded !== p.total || fileCounted.has(key)) return;
      fileCounted.add(key);
      pendingFileMetrics.push({ name: endpoint.name, version: p.version, fromCache: p.fromCache, bytes: p.total });
      flushFileMetrics();
    };
    endpoint.error = null;
    let persistent = 1;
    const onEvent = (event: RegistryEvent) => {
      if (event.type === 'cache-not-persisted') {
        persistent = 0;
        if (!warnedNotPersisted) console.warn(`brasa: ${event.reason}`);
        warnedNotPersisted = true;
      }
      options.load?.onEvent?.(event);
    };
    try {
      const model = await loadModel(endpoint.config.spec, {
        ...options.load,
        wasm: endpoint.config.wasm ?? options.load?.wasm,
        build: endpoint.config.pkg,
        registry: options.registry,
        backend: options.backend ?? 'cpu',
        onProgress,
        onEvent,
        autoUpdate: true,
      });
      let plan: MemoryPlan | null = null;
      if (memoryLimit !== null && isBatched(model.signature)) {
        let why = 'a dim besides the batch has no upper bound, or the build cannot report its memory';
        try {
          plan = await memoryPlan(model, memoryLimit);
        } catch (err) {
          why = BrasaError.from(err).message;
        }
        // (Said only where a limit below the address space was asked for, or is the platform's.)
        if (!plan && memoryLimit < WASM32_MAX_BYTES) console.warn(`brasa: ${endpoint.name}'s limits are not derived from the ${memoryLimit} byte memory limit (${why}): bound its requests with maxBatch and maxBodyBytes`);
      }
      endpoint.attach(model, plan);
      record((m) => {
        m.set('brasa_model_ready', endpoint.labels(), 1);
        m.set('brasa_cache_persistent', { model: endpoint.name }, persistent);
      });
      model.addEventListener('updated', (event) => {
        const { from } = (event as unknown as { detail: { from: string } }).detail;
        record((m) => {
          m.set('brasa_model_ready', { ...endpoint.labels(), version: from }, 0);
          m.set('brasa_model_ready', endpoint.labels(), 1);
        });
      });
      flushFileMetrics();
    } catch (err) {
      endpoint.error = BrasaError.from(err);
      throw endpoint.error;
    }
  };

  /** Drop every model whose wasm instance aborted (a trap here, or in a model of the same build). */
  function sweep(): void {
    for (const e of endpoints.values()) e.alive();
  }

  // A model that could not be loaded (registry down and nothing cached) is tried again by a
  // later request, at most every LOAD_RETRY_MS: the endpoint recovers without a restart. A
  // model dropped after its wasm instance aborted is loaded again at once.
  /** Start the loads that are due; `ctx.waitUntil` keeps them alive past the request (Workers). */
  function kick(ctx?: { waitUntil(promise: Promise<unknown>): void }): void {
    sweep();
    for (const e of endpoints.values()) {
      if (e.model || e.loading) continue;
      if (e.failedAt !== 0 && Date.now() - e.failedAt < LOAD_RETRY_MS) continue;
      const loading = load(e).then(
        () => {
          e.failedAt = 0;
        },
        () => {
          e.failedAt = Date.now();
        },
      );
      e.loading = loading;
      void loading.finally(() => {
        if (e.loading === loading) e.loading = null;
      });
      ctx?.waitUntil(loading);
    }
  }

  /** Settles when the loads of `which` in flight settled; rejects when one of them has no model. */
  async function settle(which: ModelEndpoint[]): Promise<void> {
    await Promise.all(which.map((e) => e.loading));
    const failed = which.find((e) => !e.model);
    if (failed) throw failed.error ?? new BrasaError('internal', `model ${failed.name} is not loaded`);
  }

  const start = (): Promise<void> => {
    kick();
    // Settle only when every model settled, so readiness reports each model's outcome.
    return settle([...endpoints.values()]);
  };
  const updateEvery = options.updateInterval ?? 60_000;
  let lastCheck = Date.now();
  /** A due update check, run beside the request that noticed it is due. */
  function maybeCheckForUpdates(ctx?: { waitUntil(promise: Promise<unknown>): void }): void {
    if (updateEvery <= 0 || Date.now() - lastCheck < updateEvery) return;
    lastCheck = Date.now();
    const checks = [...endpoints.values()].filter((e) => e.alive()).map((e) => e.model!.checkForUpdate().catch(() => undefined));
    ctx?.waitUntil(Promise.all(checks));
  }

  function count(endpoint: ModelEndpoint | null, outcome: string, started: number): void {
    const labels = endpoint ? endpoint.labels() : { model: '', version: '', backend: '' };
    record((metrics) => {
      metrics.inc('brasa_requests_total', { ...labels, outcome }, 1);
      if (outcome !== 'ok') metrics.inc('brasa_request_errors_total', { model: labels.model, code: outcome }, 1);
      metrics.observe('brasa_request_duration_seconds', labels, (performance.now() - started) / 1000);
    });
  }

  function notReady(endpoint: ModelEndpoint): Response {
    const reason = endpoint.error ? `could not be loaded: ${endpoint.error.message}` : endpoint.dropped ? `is loading again: ${endpoint.dropped.message}` : 'is loading';
    return errorResponse(503, 'not_ready', `model ${endpoint.name} ${reason}`, { 'retry-after': '1' });
  }

  async function infer(endpoint: ModelEndpoint, request: Request, started: number, ctx?: { waitUntil(promise: Promise<unknown>): void }): Promise<Response> {
    try {
      return await inferOnce(endpoint, request, started);
    } finally {
      // A run that aborted its wasm instance dropped the model (and maybe others of its
      // build): load them again now, not on the next request.
      if (!endpoint.model) kick(ctx);
    }
  }

  async function inferOnce(endpoint: ModelEndpoint, request: Request, started: number): Promise<Response> {
    const model = endpoint.model!;
    const wasm = endpoint.bindings!;
    const declared = Number(request.headers.get('content-length') ?? NaN);
    const maxBody = endpoint.maxBody;
    const headerText = request.headers.get('inference-header-content-length');
    // JSON numbers take 2-3 times the bytes of the binary format the limit is sized for.
    const hint = headerText === null && endpoint.rowBytes !== null && endpoint.rowBytes * endpoint.limits.maxBatch <= maxBody ? `; the binary tensor format (Inference-Header-Content-Length) carries ${endpoint.limits.maxBatch} rows within it` : '';
    if (declared > maxBody) {
      count(endpoint, 'body_too_large', started);
      return errorResponse(413, 'body_too_large', `request body is ${declared} bytes; the limit is ${maxBody}${hint}`);
    }
    let headerLength: number | undefined;
    if (headerText !== null) {
      // Decimal digits only (RFC 9110's Content-Length grammar): `Number()` alone takes 0x6b, 1e2, +107.
      headerLength = /^\d+$/.test(headerText.trim()) ? Number(headerText.trim()) : NaN;
      if (!Number.isSafeInteger(headerLength)) {
        count(endpoint, 'malformed_request', started);
        return errorResponse(400, 'malformed_request', `Inference-Header-Content-Length is ${JSON.stringify(headerText)}; it must be a byte count`);
      }
    }
    let body: Uint8Array;
    try {
      body = await readBody(request, maxBody);
    } catch (err) {
      const tooLarge = err instanceof BodyTooLarge;
      count(endpoint, tooLarge ? 'body_too_large' : 'malformed_request', started);
      return errorResponse(tooLarge ? 413 : 400, tooLarge ? 'body_too_large' : 'malformed_request', `${(err as Error).message}${tooLarge ? hint : ''}`);
    }
    let parsed;
    try {
      parsed = wasm.kserveParseInfer(body, headerLength, model.signature, endpoint.limits, maxBody);
    } catch (err) {
      if (err instanceof BrasaError && err.code === 'internal') {
        count(endpoint, err.code, started);
        return errorResponse(500, err.code, err.message);
      }
      const e = err as { code?: string; status?: number; message?: string };
      count(endpoint, e.code ?? 'malformed_request', started);
      const why = e.code === 'batch_too_large' && endpoint.batchLimitReason ? ` (the limit is ${endpoint.batchLimitReason})` : '';
      return errorResponse(e.status ?? 400, e.code ?? 'malformed_request', `${e.message ?? String(err)}${why}`);
    }
    try {
      const result = await endpoint.infer(parsed);
      record((m) => m.observe('brasa_queue_wait_seconds', endpoint.labels(), result.queueWait));
      const out = wasm.kserveInferResponse(endpoint.name, model.version ?? '', parsed.id ?? undefined, parsed.outputs, result.fetches);
      count(endpoint, 'ok', started);
      const headers: Record<string, string> =
        out.headerLength === null || out.headerLength === undefined
          ? JSON_HEADERS
          : { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(out.headerLength) };
      return new Response(out.body as Uint8Array<ArrayBuffer>, { status: 200, headers });
    } catch (err) {
      if (err instanceof OverloadedError) {
        count(endpoint, 'overloaded', started);
        return errorResponse(503, 'overloaded', err.message, { 'retry-after': String(err.retryAfter) });
      }
      if (err instanceof BatchTooLargeError) {
        count(endpoint, 'batch_too_large', started);
        return errorResponse(400, 'batch_too_large', err.message);
      }
      if (err instanceof NotReadyError) {
        count(endpoint, 'not_ready', started);
        return errorResponse(503, 'not_ready', err.message, { 'retry-after': '1' });
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
    // Everything below needs the models: the first request loads them, and waits for every
    // model that was never loaded (a later request retries one that failed). A model being
    // loaded again after its wasm instance aborted holds up only its own requests.
    kick(ctx);
    await settle([...endpoints.values()].filter((e) => !e.model && !e.dropped)).catch(() => undefined);
    maybeCheckForUpdates(ctx);
    if (path === '/v2/health/ready') {
      if (!get) return notAllowed('GET');
      const missing = [...endpoints.values()].filter((e) => !e.alive());
      if (missing.length === 0) return json(200, { ready: true });
      const reasons = missing.map((e) => `${e.name}: ${e.error ? e.error.message : e.dropped ? `loading again: ${e.dropped.message}` : 'loading'}`);
      return json(503, { ready: false, reasons }, { 'retry-after': '1' });
    }
    if (path === '/metrics') {
      if (!get) return notAllowed('GET');
      return new Response(renderMetrics(), { headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' } });
    }
    if (path === '/v2') {
      if (!get) return notAllowed('GET');
      return json(200, { name: 'brasa', version: '0.1.0', extensions: [], uptime_seconds: (Date.now() - startedAt) / 1000 });
    }
    const match = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/infer|\/ready)?$/.exec(path);
    if (!match) return errorResponse(404, 'not_found', `no route ${method} ${path}`);
    const [, rawName, rawVersion, action] = match;
    let name: string;
    let version: string | null;
    try {
      name = decodeURIComponent(rawName);
      version = rawVersion === undefined ? null : decodeURIComponent(rawVersion);
    } catch {
      if (action === '/infer') count(null, 'malformed_request', started);
      return errorResponse(400, 'malformed_request', `the path ${path} is not valid percent-encoding (RFC 3986 §2.1)`);
    }
    const endpoint = endpoints.get(name);
    if (!endpoint) {
      if (action === '/infer') count(null, 'unknown_model', started);
      return errorResponse(404, 'unknown_model', `unknown model \`${name}\`; this server serves: ${[...endpoints.keys()].join(', ')}`);
    }
    // Being loaded again (its wasm instance aborted): wait for it.
    if (!endpoint.alive() && endpoint.loading) await endpoint.loading;
    const model = endpoint.model;
    if (!model) return notReady(endpoint);
    if (version !== null && version !== model.version) {
      if (action === '/infer') count(endpoint, 'unknown_version', started);
      return errorResponse(404, 'unknown_version', `model ${name} has no version ${version} loaded; it serves ${model.version}`);
    }
    if (action === '/infer') return method === 'POST' ? infer(endpoint, request, started, ctx) : notAllowed('POST');
    if (!get) return notAllowed('GET');
    if (action === '/ready') return json(200, { name, ready: true });
    const stated = { ...endpoint.limits, maxBodyBytes: endpoint.maxBody, maxQueueRows: endpoint.maxQueueRows };
    return json(200, endpoint.bindings!.kserveModelMetadata(name, [model.version ?? ''], model.signature, stated));
  }

  function renderMetrics(): string {
    sweep();
    const metrics = liveMetrics();
    if (!metrics) return '# brasa: models are loading\n';
    try {
      return metrics.render();
    } catch {
      return '# brasa: the metrics are being moved to a live wasm instance\n';
    }
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
