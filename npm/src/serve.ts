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
import type { VersionPolicy, WasmMetrics } from './glue.js';
import { abortOf, guardCall, type Ticket } from './internal.js';
import type { LoadModel } from './loader.js';
import type { BrasaModel } from './model.js';
import type { ParsedSpec } from './registry.js';
import { BatchTooLargeError, ModelEndpoint, NotReadyError, OverloadedError, isBatched, type Outcome } from './serve/endpoint.js';
import { memoryPlan, platformMemoryLimit, versionsThatFit, WASM32_MAX_BYTES, type MemoryPlan } from './serve/memory.js';
import { BodyTooLarge, errorResponse, json, notAllowed, readBody, JSON_HEADERS } from './serve/http.js';
import { checkTextOptions, textTask, type ServedTask } from './serve/text.js';
import { policyOf, publishedVersions, VersionGroup } from './serve/versions.js';
import type { EmbedderOptions } from './tasks/embeddings.js';
import type { Backend, BackendPreference, BuildName, LoadOptions, ModelPackage, ProgressInfo, RegistryEvent, WasmSource } from './types.js';

/** One model the endpoint serves. */
export interface ServedModel {
  /** The model package (`import mnist from 'mnist-model'`). */
  model: ModelPackage<any, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** The model's name in URLs (`/v2/models/{name}`); default the package's name. */
  name?: string;
  /** What to load from the registry; default `${package name}@stable`. */
  spec?: string;
  /**
   * Serve these versions side by side (Triton's `specific` version policy), each its own model
   * instance (weights; the same build), batching queue and metrics series:
   * `/v2/models/{name}/versions/{v}/…` reaches each, `/v2/models/{name}/…` the newest of them
   * that did not fail to load.
   * When the memory limit holds fewer at once, the least recently used idle one is unloaded and
   * a request for it loads it again first (see `memoryLimitBytes`). Not with `spec` or `latest`.
   */
  versions?: string[];
  /**
   * Serve the newest `latest` versions the registry's manifest lists (Triton's `latest` policy),
   * as `versions` does; the list is read again with each update check (`updateInterval`), a
   * newly published version loaded and the one it displaces unloaded. Not with `spec` or `versions`.
   */
  latest?: number;
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
  wasm?: Partial<Record<BuildName, WasmSource>>;
  /**
   * Serve a sentence-embedding package (metadata `task: 'sentence-embedding'`, e.g. MiniLM) as
   * text in, embeddings out: its `tokenizer.json` (an absolute URL — a path under Node and
   * Deno —, or the parsed object). The endpoint then takes input `text` (`BYTES`, shape
   * `[-1]`: one UTF-8 string per row, in JSON or the binary extension) and gives the model's
   * embeddings output (`FP32 [-1, D]`); texts are tokenised and padded per batch by
   * `createEmbedder` (truncated at the package's `max_length`).
   */
  tokenizer?: EmbedderOptions['tokenizer'];
  /** With `tokenizer`: most UTF-8 bytes of one text (longer: 400 `out_of_range`). Default
   * 16384; a request row in the binary format is then at most 4 + 16384 bytes. */
  maxTextBytes?: number;
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
   *
   * The versions of a model served side by side (`versions`, `latest`) share one wasm
   * instance: as many stay loaded as fit beside a full batch (measured on the first loaded,
   * each further one holding its weights); the others are loaded when a request asks for them,
   * in place of the least recently used version no request holds.
   */
  memoryLimitBytes?: number;
  /**
   * Check the registry for a new version at most this often (ms), on the back of a request
   * (edge runtimes run timers and I/O only inside requests), and switch to it once it passed
   * its checks; 0 turns it off. Default 60000.
   */
  updateInterval?: number;
  /** Anything else `loadModel` takes (cache, wasm module, clientId, timeoutMs…). Here
   * `threads` defaults to 1 and `simd` to `'simd128'`: one wasm instance per model, which the
   * memory plan counts, and answers that do not depend on the replica's engine and CPU. */
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
   * `/v2/models/{name}[/versions/{v}]/ready`, `/v2/models/{name}[/versions/{v}]/config`
   * (Triton's model configuration), `/v2/models[/{name}[/versions/{v}]]/stats` (Triton's
   * statistics), `POST /v2/models/{name}[/versions/{v}]/infer` (JSON, or binary tensors
   * with `Inference-Header-Content-Length`).
   *
   * Errors: `{ error, code }` with 400 (`malformed_request`, `unknown_input`,
   * `wrong_datatype`, `wrong_shape`, `wrong_element_count`, `non_finite`, `out_of_range`,
   * `batch_too_large`, `unknown_output`, `invalid_input`), 404 (`unknown_model`,
   * `unknown_version`, `not_found`), 405, 413 (`body_too_large`), 503 (`overloaded`,
   * `not_ready`, with `Retry-After`), 500, 501 (`not_implemented`: the configuration or
   * statistics of a package built by an older brasa).
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
  /** Every endpoint: a model's (its channel's version), or one version of a group (`name@version`). */
  const endpoints = new Map<string, ModelEndpoint>();
  /** Models served under a pinned-list or latest-N version policy. */
  const groups = new Map<string, VersionGroup>();
  const groupOf = new Map<ModelEndpoint, VersionGroup>();
  const creators = new Map<VersionGroup, { create(version: string): ModelEndpoint; model: string }>();
  /** Infer requests holding each endpoint (read, queued or running): such a version is not unloaded. */
  const inflight = new Map<ModelEndpoint, number>();
  /** Versions a latest-N policy no longer names, closed once no request holds them. */
  const retiring = new Set<ModelEndpoint>();

  /** Serve `versions` (oldest first) of `group`: new ones get endpoints, dropped ones retire. */
  function setVersions(group: VersionGroup, versions: string[]): void {
    const before = new Map(group.versions);
    group.versions.clear();
    for (const version of versions) {
      let endpoint = before.get(version);
      if (!endpoint) {
        endpoint = creators.get(group)!.create(version);
        groupOf.set(endpoint, group);
        endpoints.set(`${group.name}@${version}`, endpoint);
      }
      before.delete(version);
      group.versions.set(version, endpoint);
    }
    for (const [version, endpoint] of before) {
      endpoints.delete(`${group.name}@${version}`);
      groupOf.delete(endpoint);
      if (endpoint.model) record((m) => m.set('brasa_model_ready', endpoint.labels(), 0));
      retiring.add(endpoint);
      closeRetired(endpoint);
    }
  }

  function closeRetired(endpoint: ModelEndpoint): void {
    if (!retiring.has(endpoint) || (inflight.get(endpoint) ?? 0) > 0) return;
    retiring.delete(endpoint);
    endpoint.close();
  }
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
    if (served.maxTextBytes !== undefined && served.tokenizer === undefined) {
      throw new BrasaError('invalid_spec', `served model ${name}: maxTextBytes applies to text, which needs a tokenizer`);
    }
    if (served.tokenizer !== undefined) {
      const t = served.tokenizer;
      if (!(typeof t === 'string' || t instanceof URL || (typeof t === 'object' && t !== null))) {
        throw new BrasaError('invalid_spec', `served model ${name}: tokenizer must be the URL of a tokenizer.json or the parsed object; got ${typeof t}`);
      }
      checkTextOptions(name, served.maxTextBytes);
    }
    const policy = policyOf(name, served);
    const create = (spec: string, version: string | null) =>
      new ModelEndpoint(
        {
          name,
          pkg,
          spec,
          wasm: served.wasm,
          maxBatch: served.maxBatch ?? 32,
          maxQueueDelayMs: served.maxQueueDelayMs ?? 2,
          maxQueueRows: served.maxQueueRows ?? 512,
          maxBodyBytes: options.maxBodyBytes,
          text: served.tokenizer === undefined ? null : { tokenizer: served.tokenizer, maxTextBytes: served.maxTextBytes },
          version,
        },
        hooks,
      );
    if (endpoints.has(name) || groups.has(name)) throw new BrasaError('invalid_spec', `model ${name} is listed twice`);
    if (policy.kind === 'channel') {
      endpoints.set(name, create(served.spec ?? `${pkg.name}@stable`, null));
      continue;
    }
    const group = new VersionGroup(name, policy);
    groups.set(name, group);
    creators.set(group, { create: (version) => create(`${pkg.name}@${version}`, version), model: pkg.name });
    if (policy.kind === 'specific') setVersions(group, policy.versions);
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
    const group = groupOf.get(endpoint);
    const onProgress = (p: ProgressInfo) => {
      // What a loaded version holds, for how many fit at once.
      if (group && p.loaded === p.total) group.weightBytes.set(p.version, new Map(group.weightBytes.get(p.version)).set(p.file, p.total));
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
        // One instance per model, the same answers on every replica: the memory plan counts
        // versions in one wasm instance (a threaded build runs each in a Worker of its own),
        // and relaxed SIMD rounds as the engine and CPU decide. `load` may ask for either.
        threads: options.load?.threads ?? 1,
        simd: options.load?.simd ?? 'simd128',
        onProgress,
        onEvent,
        autoUpdate: true,
      });
      const pinned = endpoint.config.version;
      if (pinned && model.version !== pinned) {
        model.dispose();
        throw new BrasaError('internal', `model ${endpoint.name}: asked the registry for version ${pinned}, got ${model.version}`);
      }
      const text = endpoint.config.text;
      let task: ServedTask | null = null;
      try {
        if (text) task = await textTask(model, { ...text, batchSize: endpoint.config.maxBatch });
      } catch (err) {
        model.dispose();
        throw err;
      }
      let plan: MemoryPlan | null = null;
      if (memoryLimit !== null && isBatched(model.signature)) {
        let why = 'a dim besides the batch has no upper bound, or the build cannot report its memory';
        try {
          // Text rows are measured at the most tokens the embedder keeps.
          plan = await memoryPlan(model, memoryLimit, task?.longest, task?.row.bytes);
        } catch (err) {
          why = BrasaError.from(err).message;
        }
        // (Said only where a limit below the address space was asked for, or is the platform's.)
        if (!plan && memoryLimit < WASM32_MAX_BYTES) console.warn(`brasa: ${endpoint.name}'s limits are not derived from the ${memoryLimit} byte memory limit (${why}): bound its requests with maxBatch and maxBodyBytes`);
      }
      if (group && plan && group.capacityReason === null && pinned) {
        // Measured once, on the first version loaded (alone in its instance's memory).
        const weights = group.weightsOf(pinned);
        const rows = Math.min(endpoint.config.maxBatch, model.info.limits.maxBatch);
        group.capacity = versionsThatFit(plan, weights, rows);
        const mib = (n: number) => (n / (1 << 20)).toFixed(1);
        group.capacityReason = `${group.capacity} version${group.capacity === 1 ? '' : 's'} of ${mib(weights)} MiB of weights fit the ${mib(plan.limit)} MiB memory limit beside a batch of ${rows} (${mib(plan.base)} MiB measured with one loaded)`;
      }
      endpoint.attach(model, plan, task);
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
    for (const g of groups.values()) if (!g.resolved) resolveGroup(g, ctx);
    // Channel models, then each group's versions newest first: one load at a time per group
    // (the first measures how many fit), the versions beyond that parked until asked for.
    const order = [...endpoints.values()].filter((e) => !groupOf.has(e));
    for (const g of groups.values()) order.push(...[...g.versions.values()].reverse());
    for (const e of order) {
      if (e.model || e.loading || e.parked) continue;
      if (e.failedAt !== 0 && Date.now() - e.failedAt < LOAD_RETRY_MS) continue;
      const group = groupOf.get(e);
      if (group && [...group.versions.values()].some((v) => v.loading)) continue;
      if (group && group.occupied().length >= group.capacity) {
        e.parked = true;
        continue;
      }
      startLoad(e, ctx);
    }
  }

  function startLoad(e: ModelEndpoint, ctx?: { waitUntil(promise: Promise<unknown>): void }): void {
    const loading = load(e).then(
      () => {
        e.failedAt = 0;
        // A version a latest-N list dropped while it loaded.
        if (e.config.version && !groupOf.has(e)) e.close();
      },
      () => {
        e.failedAt = Date.now();
      },
    );
    e.loading = loading;
    void loading.finally(() => {
      if (e.loading === loading) e.loading = null;
      // The group's next version.
      if (groupOf.has(e)) kick(ctx);
    });
    ctx?.waitUntil(loading);
  }

  /** Read a latest-N group's versions from the registry (retried like a failed load). */
  function resolveGroup(group: VersionGroup, ctx?: { waitUntil(promise: Promise<unknown>): void }): void {
    if (group.resolving || (group.failedAt !== 0 && Date.now() - group.failedAt < LOAD_RETRY_MS)) return;
    const resolving = refreshGroup(group).then(
      () => kick(ctx),
      (err) => {
        group.error = BrasaError.from(err);
        group.failedAt = Date.now();
      },
    );
    group.resolving = resolving;
    void resolving.finally(() => {
      if (group.resolving === resolving) group.resolving = null;
    });
    ctx?.waitUntil(resolving);
  }

  /** A latest-N group's versions, as its registry lists them now. */
  async function refreshGroup(group: VersionGroup): Promise<void> {
    if (group.policy.kind !== 'latest') return;
    const listed = await publishedVersions(options.registry, creators.get(group)!.model, options.load?.timeoutMs);
    if (listed.length === 0) throw new BrasaError('not_found', `the registry lists no version of ${creators.get(group)!.model}`);
    setVersions(group, listed.slice(-group.policy.count));
    group.error = null;
    group.failedAt = 0;
  }

  /**
   * Settles when the loads (and version lists) in flight of the endpoints `pick` chooses
   * settled, following each group's next load; rejects when one of them has no model.
   */
  async function settle(pick: (e: ModelEndpoint) => boolean): Promise<void> {
    for (;;) {
      const pending: Promise<void>[] = [];
      for (const g of groups.values()) if (g.resolving) pending.push(g.resolving);
      for (const e of endpoints.values()) if (e.loading && pick(e)) pending.push(e.loading);
      if (pending.length === 0) break;
      await Promise.all(pending);
    }
    const unresolved = [...groups.values()].find((g) => !g.resolved);
    if (unresolved) throw unresolved.error ?? new BrasaError('internal', `the versions of ${unresolved.name} are not known yet`);
    const failed = [...endpoints.values()].find((e) => pick(e) && !e.model && !e.parked);
    if (failed) throw failed.error ?? new BrasaError('internal', `model ${failed.name} is not loaded`);
  }

  const start = (): Promise<void> => {
    kick();
    // Settle only when every model settled, so readiness reports each model's outcome.
    return settle(() => true);
  };
  const updateEvery = options.updateInterval ?? 60_000;
  let lastCheck = Date.now();
  /** A due update check, run beside the request that noticed it is due. */
  function maybeCheckForUpdates(ctx?: { waitUntil(promise: Promise<unknown>): void }): void {
    if (updateEvery <= 0 || Date.now() - lastCheck < updateEvery) return;
    lastCheck = Date.now();
    const checks: Promise<unknown>[] = [...endpoints.values()].filter((e) => e.alive()).map((e) => e.model!.checkForUpdate().catch(() => undefined));
    // A latest-N policy follows what is published: a new version loads, the oldest retires.
    for (const g of groups.values()) {
      if (g.policy.kind === 'latest' && g.resolved) checks.push(refreshGroup(g).then(() => kick(ctx), () => undefined));
    }
    ctx?.waitUntil(Promise.all(checks));
  }

  /** Count an infer request's outcome; `result`: its share of a run, when it was answered.
   * `endpoint`: the version it reached, or only the model's name (no version reached). */
  function count(endpoint: ModelEndpoint | string | null, outcome: string, started: number, result?: Outcome): void {
    const labels = endpoint instanceof ModelEndpoint ? endpoint.labels() : { model: endpoint ?? '', version: '', backend: '' };
    const request = (performance.now() - started) / 1000;
    record((metrics) => {
      metrics.inc('brasa_requests_total', { ...labels, outcome }, 1);
      if (outcome !== 'ok') metrics.inc('brasa_request_errors_total', { ...labels, code: outcome }, 1);
      metrics.observe('brasa_request_duration_seconds', labels, request);
    });
    // Triton's statistics count the requests that reached a version it serves.
    if (!(endpoint instanceof ModelEndpoint) || outcome === 'unknown_version') return;
    const { model, version } = labels;
    const at = Date.now();
    record((metrics) =>
      metrics.statsRecord?.(
        result
          ? { kind: 'success', model, version, rows: result.rows, request, queue: result.queueWait, phases: result.phases, at }
          : { kind: 'failure', model, version, request, at },
      ),
    );
  }

  /** The model versions served now (loaded), of model `name` and `version` when given. */
  function served(name?: string, version: string | null = null): { name: string; version: string }[] {
    // A version unloaded to make room is still served (and keeps its statistics).
    return [...endpoints.values()]
      .filter((e) => (name === undefined || e.name === name) && (e.alive() || (e.parked && e.bindings !== null)))
      .map((e) => ({ name: e.name, version: e.config.version ?? e.model!.version ?? '' }))
      .filter((v) => version === null || v.version === version);
  }

  /** Triton's statistics of `versions`. */
  function statistics(versions: { name: string; version: string }[]): Response {
    if (versions.length === 0) return json(200, { model_stats: [] });
    const metrics = liveMetrics();
    if (!metrics) return errorResponse(503, 'not_ready', 'the statistics are being moved to a live wasm instance; retry after 1 s', { 'retry-after': '1' });
    if (typeof metrics.tritonStatistics !== 'function') return notBuiltFor('statistics');
    return json(200, metrics.tritonStatistics(versions));
  }

  function notBuiltFor(what: string): Response {
    return errorResponse(501, 'not_implemented', `the model packages were built by a brasa without Triton's ${what}: rebuild them with \`brasa build\``);
  }

  /** Triton's version policy of what `endpoint` serves: its spec's one version at a time. */
  function versionPolicy(endpoint: ModelEndpoint, model: BrasaModel): VersionPolicy {
    const group = groupOf.get(endpoint);
    if (group) return group.tritonPolicy();
    const spec = endpoint.bindings!.registryParseSpec(endpoint.config.spec) as ParsedSpec;
    return spec.kind === 'exact' ? { specific: { versions: [model.version ?? ''] } } : { latest: { num_versions: 1 } };
  }

  function notReady(endpoint: ModelEndpoint): Response {
    const group = groupOf.get(endpoint);
    if (group && endpoint.parked && !endpoint.error) {
      const why = group.capacityReason ?? 'fewer versions fit the memory limit than the policy names';
      const state = endpoint.loading ? 'is being loaded' : endpoint.bindings ? 'was unloaded (least recently used) to make room' : 'is not loaded';
      return errorResponse(503, 'not_ready', `model ${endpoint.name} version ${endpoint.config.version} ${state}: ${why}; an inference request for it loads it`, { 'retry-after': '1' });
    }
    const what = endpoint.config.version ? `model ${endpoint.name} version ${endpoint.config.version}` : `model ${endpoint.name}`;
    const reason = endpoint.error ? `could not be loaded: ${endpoint.error.message}` : endpoint.dropped ? `is loading again: ${endpoint.dropped.message}` : 'is loading';
    return errorResponse(503, 'not_ready', `${what} ${reason}`, { 'retry-after': '1' });
  }

  /**
   * Have `endpoint` (a version of `group`) loaded for a request: loaded already, or loaded now
   * in place of the least recently used version no request holds. A response when it cannot
   * be: 503 `not_ready` with `Retry-After` (every loaded version busy, or its load failed).
   */
  async function ensureLoaded(group: VersionGroup, endpoint: ModelEndpoint, ctx?: { waitUntil(promise: Promise<unknown>): void }): Promise<Response | null> {
    group.touch(endpoint);
    if (endpoint.alive()) return null;
    if (!endpoint.loading) {
      if (endpoint.failedAt !== 0 && Date.now() - endpoint.failedAt < LOAD_RETRY_MS) return notReady(endpoint);
      while (group.occupied().length >= group.capacity) {
        const victim = group.victim(endpoint, (e) => (inflight.get(e) ?? 0) > 0);
        if (!victim) {
          const loaded = group.occupied().map((e) => e.config.version).join(', ');
          return errorResponse(503, 'not_ready', `model ${group.name} version ${endpoint.config.version} is not loaded, and the loaded versions (${loaded}) are all answering requests: ${group.capacityReason}; retry after 1 s`, { 'retry-after': '1' });
        }
        record((m) => m.set('brasa_model_ready', victim.labels(), 0));
        victim.unload();
      }
      // Parked while it loads, so that requests for other models do not wait for it.
      endpoint.parked = true;
      startLoad(endpoint, ctx);
    }
    await endpoint.loading;
    return endpoint.alive() ? null : notReady(endpoint);
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
      parsed = wasm.kserveParseInfer(body, headerLength, endpoint.signature!, endpoint.limits, maxBody);
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
      count(endpoint, 'ok', started, result);
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
    await settle((e) => !e.model && !e.dropped && !e.parked).catch(() => undefined);
    maybeCheckForUpdates(ctx);
    if (path === '/v2/health/ready') {
      if (!get) return notAllowed('GET');
      // A version parked to make room is loaded by the next request for it: not missing.
      const missing = [...endpoints.values()].filter((e) => !e.alive() && !e.parked);
      const unresolved = [...groups.values()].filter((g) => !g.resolved);
      if (missing.length === 0 && unresolved.length === 0) return json(200, { ready: true });
      const reasons = [
        ...unresolved.map((g) => `${g.name}: its versions are not known yet: ${g.error ? g.error.message : 'reading the registry'}`),
        ...missing.map((e) => `${e.config.version ? `${e.name} ${e.config.version}` : e.name}: ${e.error ? e.error.message : e.dropped ? `loading again: ${e.dropped.message}` : 'loading'}`),
      ];
      return json(503, { ready: false, reasons }, { 'retry-after': '1' });
    }
    if (path === '/metrics') {
      if (!get) return notAllowed('GET');
      return new Response(renderMetrics(), { headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' } });
    }
    if (path === '/v2') {
      if (!get) return notAllowed('GET');
      return json(200, { name: 'brasa', version: '0.1.0', extensions: ['binary_tensor_data', 'model_configuration', 'statistics'], uptime_seconds: (Date.now() - startedAt) / 1000 });
    }
    // Every served version's statistics (Triton's route: a model named `stats` is shadowed).
    if (path === '/v2/models/stats') return get ? statistics(served()) : notAllowed('GET');
    const match = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/infer|\/ready|\/config|\/stats)?$/.exec(path);
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
    const group = groups.get(name);
    if (group) return routeVersion(group, name, version, action, method, request, started, ctx);
    const endpoint = endpoints.get(name);
    if (!endpoint) {
      if (action === '/infer') count(null, 'unknown_model', started);
      const names = [...endpoints.values()].filter((e) => !groupOf.has(e)).map((e) => e.name);
      return errorResponse(404, 'unknown_model', `unknown model \`${name}\`; this server serves: ${[...names, ...groups.keys()].join(', ')}`);
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
    if (action === '/stats') return statistics(served(name, version));
    return describe(name, endpoint, action, [model.version ?? ''], model.backend, versionPolicy(endpoint, model));
  }

  /** Model metadata, or Triton's configuration (`/config`), as `view` serves it. */
  function describe(name: string, view: ModelEndpoint, action: string | undefined, versions: string[], backend: Backend, policy: VersionPolicy): Response {
    if (action === '/config') {
      const bindings = view.bindings!;
      if (typeof bindings.tritonModelConfig !== 'function') return notBuiltFor('model configuration');
      return json(200, bindings.tritonModelConfig(name, view.signature!, view.batchPolicy, policy, backend));
    }
    const stated = { ...view.limits, maxBodyBytes: view.maxBody, maxQueueRows: view.maxQueueRows };
    return json(200, view.bindings!.kserveModelMetadata(name, versions, view.signature!, stated));
  }

  /**
   * A request for a model served under a version policy: `version` (or the newest served, when
   * `null`), loaded first when a request to infer finds it unloaded.
   */
  async function routeVersion(
    group: VersionGroup,
    name: string,
    version: string | null,
    action: string | undefined,
    method: string,
    request: Request,
    started: number,
    ctx?: { waitUntil(promise: Promise<unknown>): void },
  ): Promise<Response> {
    if (!group.resolved && group.resolving) await group.resolving;
    if (!group.resolved) {
      if (action === '/infer') count(name, 'not_ready', started);
      return errorResponse(503, 'not_ready', `the versions of model ${name} are not known yet: ${group.error?.message ?? 'reading the registry'}`, { 'retry-after': '1' });
    }
    const endpoint = version === null ? group.default() : group.versions.get(version);
    if (!endpoint) {
      if (action === '/infer') count(name, 'unknown_version', started);
      const policy = group.policy.kind === 'latest' ? `the latest ${group.policy.count} published` : 'a pinned list';
      return errorResponse(404, 'unknown_version', `model ${name} has no version ${version}; it serves ${[...group.versions.keys()].join(', ')} (${policy})`);
    }
    if (action === '/infer') {
      if (method !== 'POST') return notAllowed('POST');
      inflight.set(endpoint, (inflight.get(endpoint) ?? 0) + 1);
      try {
        const refused = await ensureLoaded(group, endpoint, ctx);
        if (refused) {
          count(endpoint, 'not_ready', started);
          return refused;
        }
        return await infer(endpoint, request, started, ctx);
      } finally {
        inflight.set(endpoint, (inflight.get(endpoint) ?? 1) - 1);
        closeRetired(endpoint);
      }
    }
    if (method !== 'GET' && method !== 'HEAD') return notAllowed('GET');
    if (action === '/ready') return endpoint.alive() ? json(200, { name, version: endpoint.config.version, ready: true }) : notReady(endpoint);
    if (action === '/stats') return statistics(served(name, version));
    // A version not loaded now states what its last load (or another version of the build) did.
    const view = endpoint.bindings ? endpoint : [...group.versions.values()].find((e) => e.bindings);
    if (!view) return notReady(endpoint);
    return describe(name, view, action, [...group.versions.keys()], view.labels().backend as Backend, group.tritonPolicy());
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
