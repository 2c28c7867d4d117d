// The registry fetcher's scenarios, written once and run inside headless Chromium, Node and
// Deno against the fault proxy (tests/fault-proxy.mjs) in front of the real `brasa serve`.
// Faults and registry changes go through the proxy's control port over HTTP, so this module
// needs nothing but `fetch`, the brasa package and the MNIST model package (`brasa build`).
//
// The registry starts as: 1.0.0 (ccexam's weights) on `stable`, 1.1.0 (recalibrated weights,
// other logits) on `canary`. Every scenario leaves it that way.

/**
 * Run every scenario (or those named in `only`); resolves to `{ passed, failed }`.
 * @param {object} env
 * @param {typeof import('../../npm/dist/index.js')} env.brasa  the package
 * @param {import('../../npm/dist/index.js').ModelPackage} env.mnist  the MNIST model package
 *   (default export of `.cache/packages/mnist/index.js`), passed as `build` to every load
 * @param {string} env.registry  registry base URL (through the proxy)
 * @param {string} env.control   the proxy's control URL
 * @param {(name: string) => import('../../npm/dist/cache.js').ModelCache} env.newCache  a fresh, empty cache
 * @param {{ input: number[], v100: number[], v110: number[], blank: { input: number[], logits: number[] } }} env.expected
 *   numpy reference logits (`blank`: the blank image and its 1.0.0 logits)
 * @param {object} [env.options]  extra load options (the backend; `webgpu` where the runtime has a GPU)
 */
export async function runScenarios(env, only = null) {
  const passed = [];
  const failed = [];
  for (const [name, scenario] of Object.entries(SCENARIOS)) {
    if (only && !only.includes(name)) continue;
    const t = new Harness(env, name);
    try {
      await t.ctl('reset');
      await scenario(t);
      passed.push(name);
    } catch (err) {
      failed.push({ name, error: `${err?.name}: ${err?.message}\n${err?.stack ?? ''}`.slice(0, 2000) });
    } finally {
      await t.cleanup();
    }
  }
  return { passed, failed };
}

class Harness {
  constructor(env, name) {
    this.env = env;
    this.name = name;
    this.models = [];
    this.caches = 0;
    this.names = new Map();
  }

  cache() {
    const name = `${this.name}-${this.caches++}`;
    const cache = this.env.newCache(name);
    this.names.set(cache, name);
    return cache;
  }

  /** A new cache object on the storage of `cache`, as a reloaded page or a new process opens it. */
  reopen(cache) {
    const name = this.names.get(cache);
    const again = this.env.newCache(name);
    this.names.set(again, name);
    return again;
  }

  /** Load through the registry with the scenario's defaults; events collected on `events`. */
  async load(spec, options = {}) {
    const events = [];
    const progress = [];
    const model = await this.env.brasa.loadModel(spec, {
      registry: this.env.registry,
      build: this.env.mnist,
      ...this.env.options,
      onEvent: (e) => events.push(e),
      onProgress: (p) => progress.push(p),
      ...options,
    });
    model.events = events;
    model.progress = progress;
    this.models.push(model);
    return model;
  }

  async ctl(path, body) {
    const response = await fetch(this.env.control + path, { method: path === 'log' ? 'GET' : 'POST', body: path === 'log' ? undefined : JSON.stringify(body ?? {}) });
    return response.json();
  }

  fault(path, fault) {
    return this.ctl('fault', { path, ...fault });
  }

  /** `brasa registry <command> --model mnist ...rest` on the registry behind the proxy. */
  async registryCli(command, ...rest) {
    const args = [command, '--model', 'mnist', ...rest];
    const out = await this.ctl('registry', { args });
    if (out.code !== 0) throw new Error(`brasa registry ${args.join(' ')} failed: ${out.stderr}`);
    return out;
  }

  async log() {
    return this.ctl('log');
  }

  async weightGets() {
    return (await this.log()).filter((e) => e.method === 'GET' && e.path.includes('/files/'));
  }

  async manifestGets() {
    return (await this.log()).filter((e) => e.method === 'GET' && e.path.endsWith('/manifest.json'));
  }

  async manifest() {
    return (await fetch(`${this.env.registry}mnist/manifest.json`, { cache: 'no-store' })).json();
  }

  /** The model answers like the numpy reference of `version`. */
  async expectVersion(model, version) {
    check(model.version === version, `model.version is ${model.version}, expected ${version}`);
    await this.expectAnswers(model, version === '1.1.0' ? this.env.expected.v110 : this.env.expected.v100);
  }

  /** The model's logits for the reference input are `want` (numpy) within 1e-3. */
  async expectAnswers(model, want) {
    const got = (await model.run(Float32Array.from(this.env.expected.input))).logits.data;
    const diff = Math.max(...want.map((v, i) => Math.abs(v - got[i])));
    check(diff < 1e-3, `outputs of ${model.version} (${model.backend}) differ from the reference by ${diff}`);
  }

  async cleanup() {
    for (const m of this.models) if (!m.disposed) m.dispose();
    await this.ctl('reset');
    await this.ctl('start');
    const m = await this.manifest().catch(() => null);
    if (m?.channels?.stable?.version !== '1.0.0' || m.channels.stable.rollout) await this.registryCli('promote', '--channel', 'stable', '--version', '1.0.0', '--reason', 'test cleanup');
    if (m?.channels?.stable?.rollout) await this.registryCli('rollout', '--channel', 'stable', '--version', '1.1.0', '--percent', '0');
    if (m?.channels?.canary?.version !== '1.1.0') await this.registryCli('promote', '--channel', 'canary', '--version', '1.1.0', '--reason', 'test cleanup');
  }
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function expectError(promise, code, what) {
  try {
    const value = await promise;
    if (value && typeof value.dispose === 'function') value.dispose();
  } catch (err) {
    check(err?.name === 'BrasaError', `${what}: expected a BrasaError, got ${err?.name}: ${err?.message}`);
    check(err.code === code, `${what}: expected code ${code}, got ${err.code}: ${err.message}`);
    return err;
  }
  throw new Error(`${what}: expected a ${code} error, but it succeeded`);
}

function ofType(model, type) {
  return model.events.filter((e) => e.type === type);
}

/** A cache with `mnist@stable` (1.0.0) loaded into it once; returns [cache, model]. */
async function warmCache(t, options = {}) {
  const cache = t.cache();
  const model = await t.load('mnist@stable', { cache, ...options });
  await t.expectVersion(model, '1.0.0');
  return [cache, model];
}

const SCENARIOS = {
  async 'cold load, then a warm load downloads no weights and revalidates with 304'(t) {
    const cache = t.cache();
    const cold = await t.load('mnist@stable', { cache });
    await t.expectVersion(cold, '1.0.0');
    check(cold.channel === 'stable', `channel ${cold.channel}`);
    check(cold.spec === 'mnist@stable', `spec ${cold.spec}`);
    const last = cold.progress.at(-1);
    check(last && last.loaded === last.total && last.total > 1_000_000 && !last.fromCache, `progress ended at ${JSON.stringify(last)}`);
    check(cold.progress.length >= 2, 'progress reported once at most');
    check((await t.weightGets()).length === 1, 'cold load did not download the weights exactly once');
    const firstManifest = (await t.manifestGets())[0];
    check(firstManifest.status === 200 && firstManifest.ifNoneMatch === null, `first manifest request ${JSON.stringify(firstManifest)}`);

    await t.ctl('reset');
    const warm = await t.load('mnist', { cache });
    await t.expectVersion(warm, '1.0.0');
    check(warm.progress.every((p) => p.fromCache), 'warm load reported a download');
    const result = await warm.updateCheck;
    check(result.outcome === 'current' && result.status === 304, `background check: ${JSON.stringify(result)}`);
    check((await t.weightGets()).length === 0, 'warm load downloaded weights');
    const manifests = await t.manifestGets();
    check(manifests.length === 1 && manifests[0].status === 304 && manifests[0].ifNoneMatch?.startsWith('"'), `manifest requests: ${JSON.stringify(manifests)}`);
  },

  async 'specs: channels, exact versions, ranges, and typed errors'(t) {
    const cache = t.cache();
    const canary = await t.load('mnist@canary', { cache });
    await t.expectVersion(canary, '1.1.0');
    check(canary.channel === 'canary', `channel ${canary.channel}`);
    const exact = await t.load('mnist@1.0.0', { cache });
    await t.expectVersion(exact, '1.0.0');
    check(exact.channel === null, 'exact version has a channel');
    const range = await t.load('mnist@^1', { cache });
    await t.expectVersion(range, '1.1.0');
    check(range.release.files[0].sha256 === canary.release.files[0].sha256, 'range and canary resolve to other files');
    await expectError(t.load('mnist@Canary!', { cache }), 'invalid_spec', 'bad spec');
    await expectError(t.load('mnist@beta', { cache }), 'not_found', 'unknown channel');
    await expectError(t.load('mnist@^7', { cache }), 'not_found', 'unmatched range');
    await expectError(t.load('resnet@stable', { cache }), 'unknown_model', 'unknown model');
    // The package itself as the spec: its name, its stable channel.
    const viaPackage = await t.load(t.env.mnist, { cache });
    await t.expectVersion(viaPackage, '1.0.0');
    check(viaPackage.channel === 'stable', `package load: channel ${viaPackage.channel}`);
    // A spec without a package whose version has no code in the registry (1.1.0), or with a
    // package of another model.
    const noCode = await expectError(t.load('mnist@canary', { cache, build: undefined }), 'unknown_model', 'no package, no code');
    check(/--code/.test(noCode.message), noCode.message);
    await expectError(t.load('mnist@stable', { cache, build: { ...t.env.mnist, name: 'other' } }), 'unknown_model', 'package of another model');
    // What names no model at all is a bad spec, not another model.
    for (const bad of ['', ' ', '@stable', '../mnist@stable', 'mnist/../x@stable', 'MNIST@stable']) {
      const err = await expectError(t.load(bad, { cache }), 'invalid_spec', `spec ${JSON.stringify(bad)}`);
      check(err.message.includes(`\`${bad}\``) && /model name/.test(err.message), err.message);
    }
    // Partial versions as npm reads them: `1.0` is `1.0.x` (1.1.0 is newer, but not 1.0.x),
    // `1` is `1.x`; a full version is exact.
    const partial = await t.load('mnist@1.0', { cache });
    await t.expectVersion(partial, '1.0.0');
    check(partial.spec === 'mnist@1.0.*' && partial.channel === null, `spec ${partial.spec}`);
    await t.expectVersion(await t.load('mnist@1.1', { cache }), '1.1.0');
    await t.expectVersion(await t.load('mnist@1', { cache }), '1.1.0');
    await t.expectVersion(await t.load('mnist@~1.0', { cache }), '1.0.0');
    await expectError(t.load('mnist@1.2', { cache }), 'not_found', 'no 1.2.x');
  },

  async 'nonsense load options are refused before any work, naming the option'(t) {
    const cache = t.cache();
    const bad = [
      ['cacheBudget', 'abc'], ['cacheBudget', -1], ['cacheBudget', NaN],
      ['timeoutMs', 0], ['timeoutMs', -1], ['timeoutMs', '5000'], ['timeoutMs', Infinity], ['timeoutMs', 2 ** 31],
      ['timeoutMs', 0.5], ['updateInterval', -5], ['updateInterval', NaN], ['updateInterval', 2 ** 31], ['updateInterval', 1], ['updateInterval', 999],
      ['freshness', 'bogus'], ['autoUpdate', 'yes'],
      ['registry', ''], ['registry', '   '], ['registry', 42],
      ['clientId', ''], ['clientId', 7],
      ['onEvent', 'log'], ['onProgress', {}], ['onFallback', 1],
      ['cache', {}], ['signal', { aborted: false }], ['wasm', 'cpu.wasm'], ['wasm', { tpu: 'x.wasm' }],
    ];
    for (const [option, value] of bad) {
      const err = await expectError(t.load('mnist@stable', { cache, [option]: value }), 'invalid_spec', `${option}: ${String(value)}`);
      check(err.message.startsWith(`invalid option \`${option}\``) && / must be /.test(err.message), err.message);
    }
    // The same up front when loading weights directly: nothing is fetched first.
    const direct = await expectError(t.env.brasa.loadModel(t.env.mnist, { weights: `${t.env.registry}nowhere.bpk`, timeoutMs: -1 }), 'invalid_spec', 'weights with timeoutMs -1');
    check(direct.message.startsWith('invalid option `timeoutMs`'), direct.message);
    // An empty weights string would fetch the page (or the current folder) as weights.
    const empty = await expectError(t.env.brasa.loadModel(t.env.mnist, { weights: '' }), 'invalid_weights', 'weights ""');
    check(empty.message.startsWith('invalid option `weights`'), empty.message);
    check((await t.log()).length === 0, `refused options reached the registry: ${JSON.stringify(await t.log())}`);
    // Nothing was held against the cache: good options load.
    await t.expectVersion(await t.load('mnist@stable', { cache, cacheBudget: 0, updateInterval: 0, timeoutMs: 5000 }), '1.0.0');
  },

  async 'concurrent loads of one file share one download'(t) {
    const cache = t.cache();
    const [a, b, c] = await Promise.all([t.load('mnist@stable', { cache }), t.load('mnist@stable', { cache }), t.load('mnist@1.0.0', { cache })]);
    for (const m of [a, b, c]) await t.expectVersion(m, '1.0.0');
    check((await t.weightGets()).length === 1, `${(await t.weightGets()).length} downloads for three loads`);
    for (const m of [a, b, c]) {
      const last = m.progress.at(-1);
      check(last && last.loaded === last.total, `a load's progress ended at ${JSON.stringify(last)}`);
    }
  },

  async 'HTTP 404 and 500: errors without a cache, the last good version with one'(t) {
    await t.fault('/files/', { status: 404 });
    await expectError(t.load('mnist@stable', { cache: t.cache() }), 'network', 'weights 404');
    await t.ctl('reset');
    await t.fault('manifest.json', { status: 500 });
    const err = await expectError(t.load('mnist@stable', { cache: t.cache() }), 'network', 'manifest 500');
    check(/500/.test(err.message) && /no version .* is cached/.test(err.message), err.message);
    await t.ctl('reset');

    const [cache] = await warmCache(t);
    await t.fault('manifest.json', { status: 500 });
    const offline = await t.load('mnist@stable', { cache, freshness: 'network-first' });
    await t.expectVersion(offline, '1.0.0');
    const event = ofType(offline, 'offline')[0];
    check(event && event.code === 'network' && /500/.test(event.reason), `offline event ${JSON.stringify(offline.events)}`);
    const background = await t.load('mnist@stable', { cache });
    const result = await background.updateCheck;
    check(result.outcome === 'failed' && /500/.test(result.reason), `background check ${JSON.stringify(result)}`);
    await t.expectVersion(background, '1.0.0');
  },

  async 'slow responses time out; a stalled download is abandoned'(t) {
    await t.fault('manifest.json', { delayMs: 3000 });
    const err = await expectError(t.load('mnist@stable', { cache: t.cache(), timeoutMs: 300 }), 'network', 'slow manifest');
    check(/within 300 ms/.test(err.message), err.message);
    await t.ctl('reset');
    await t.fault('/files/', { stallAfter: 4096 });
    const stalled = await expectError(t.load('mnist@stable', { cache: t.cache(), timeoutMs: 300 }), 'network', 'stalled weights');
    check(/no data for 300 ms/.test(stalled.message), stalled.message);
    await t.ctl('reset');
    // Slow but alive: finishes.
    await t.fault('/files/', { delayMs: 500 });
    await t.expectVersion(await t.load('mnist@stable', { cache: t.cache(), timeoutMs: 5000 }), '1.0.0');
  },

  async 'truncated and tampered files are never used nor cached; only a tampered one is refused'(t) {
    const manifest = await t.manifest();
    const file = manifest.versions['1.0.0'].files[0];
    const key = `sha256-${file.sha256}`;
    // Cut short on every try: the transfer failed, not the version (a network error, after one
    // retry); nothing is cached, nothing remembered: once the fault is gone, the same cache loads.
    await t.fault('/files/', { truncate: 100_000 });
    const cache = t.cache();
    const cut = await expectError(t.load('mnist@stable', { cache }), 'network', 'truncated on every try');
    check(cut.message.includes(file.path) && cut.message.includes(`100000 of the ${file.size} bytes`), cut.message);
    check((await t.weightGets()).length === 2, `${(await t.weightGets()).length} downloads: not retried once`);
    check((await cache.get(key)) === undefined, 'truncated bytes were cached');
    await t.ctl('reset');
    await t.expectVersion(await t.load('mnist@stable', { cache }), '1.0.0');

    // Tampered on every try: after a retry past every HTTP cache the registry still serves bytes
    // that contradict its manifest. Refused (for every backend), and the reason is given.
    await t.ctl('reset');
    await t.fault('/files/', { tamper: true });
    const tampered = t.cache();
    const events = [];
    const err = await expectError(t.load('mnist@stable', { cache: tampered, onEvent: (e) => events.push(e) }), 'integrity', 'tampered on every try');
    check(err.message.includes(file.path) && err.message.includes(file.sha256) && /again/.test(err.message), err.message);
    check((await t.weightGets()).length === 2, 'a tampered download was not retried once');
    const retry = events.find((e) => e.type === 'retry');
    check(retry?.code === 'integrity' && retry.version === '1.0.0' && retry.file === file.path, JSON.stringify(events));
    const refused = events.find((e) => e.type === 'refused');
    check(refused?.code === 'integrity' && refused.version === '1.0.0' && refused.backend === null && refused.reason === err.message, JSON.stringify(events));
    check((await tampered.get(key)) === undefined, 'tampered bytes were cached');
    // Remembered: the next load says why at once, without downloading it again.
    await t.ctl('reset');
    const again = await expectError(t.load('mnist@stable', { cache: tampered }), 'integrity', 'refused version');
    check(/refused earlier/.test(again.message) && again.message.includes(file.sha256), again.message);
    check((await t.weightGets()).length === 0, 'a refused version was downloaded again');

    // A running model meets a tampered update: it stays on its version and says why.
    await t.ctl('reset');
    const [, model] = await warmCache(t);
    await t.registryCli('promote', '--channel', 'stable', '--version', '1.1.0');
    await t.fault('/files/', { tamper: true });
    const result = await model.checkForUpdate();
    check(result.outcome === 'rejected', `check: ${JSON.stringify(result)}`);
    const rollback = ofType(model, 'rollback')[0];
    check(rollback && rollback.code === 'integrity' && rollback.rejected === '1.1.0' && rollback.version === '1.0.0', JSON.stringify(model.events));
    check(ofType(model, 'update-available').length === 0, 'announced a tampered update');
    await t.expectVersion(model, '1.0.0');
  },

  async 'a download cut short is retried past HTTP caches; cut short twice, the next load downloads it again'(t) {
    const size = (await t.manifest()).versions['1.0.0'].files[0].size;
    // Once: the load retries and runs.
    await t.fault('/files/', { truncate: 100_000, times: 1 });
    const cache = t.cache();
    const model = await t.load('mnist@stable', { cache });
    await t.expectVersion(model, '1.0.0');
    const gets = await t.weightGets();
    check(gets.length === 2 && /truncate/.test(gets[0].fault) && gets[1].fault === null, JSON.stringify(gets));
    check(/no-cache/.test(gets[1].cacheControl ?? ''), `the retry did not bypass HTTP caches: ${JSON.stringify(gets[1])}`);
    const retry = ofType(model, 'retry')[0];
    check(retry?.code === 'network' && retry.version === '1.0.0' && retry.reason.includes(`100000 of the ${size} bytes`), JSON.stringify(model.events));
    check(ofType(model, 'refused').length === 0, `refused: ${JSON.stringify(model.events)}`);
    check(model.progress.at(-1)?.loaded === size, `progress ended at ${JSON.stringify(model.progress.at(-1))}`);

    // Twice (both tries of one load): that load fails, the version is not refused, and the next
    // load with the same cache (a new model, the same fetcher state) downloads it again and runs.
    await t.ctl('reset');
    await t.fault('/files/', { truncate: 100_000, times: 2 });
    const other = t.cache();
    const events = [];
    const err = await expectError(t.load('mnist@stable', { cache: other, onEvent: (e) => events.push(e) }), 'network', 'cut short twice');
    check(err.message.includes(`100000 of the ${size} bytes`), err.message);
    check(!events.some((e) => e.type === 'refused'), `refused: ${JSON.stringify(events)}`);
    const next = await t.load('mnist@stable', { cache: other });
    await t.expectVersion(next, '1.0.0');
    check((await t.weightGets()).length === 3, `${(await t.weightGets()).length} downloads, expected 2 cut short + 1`);
  },

  async 'code from the registry: no package, one build fetched and verified; a cut download retried, a tampered build refused, bundled clients unaffected'(t) {
    // 1.0.0 lists its builds (`publish --code`); no `build` given: the code comes from there.
    const code = (await t.log()).length;
    const m = await t.load('mnist@stable', { build: undefined, cache: t.cache() });
    await t.expectVersion(m, '1.0.0');
    const fetched = (await t.log()).slice(code).filter((e) => e.method === 'GET' && /\.(js|wasm)$/.test(e.path)).map((e) => e.path);
    const builds = (await t.manifest()).versions['1.0.0'].builds;
    const of = (backend) => [builds[backend].glue.path, builds[backend].wasm.path].map((p) => `/registry/mnist/${p}`);
    const ran = of(m.backend);
    check(ran.every((p) => fetched.includes(p)) && fetched.length === 2, `fetched ${fetched.join(', ')}; expected the ${m.backend} build only`);
    // Its wasm cut short once: retried, loaded.
    await t.fault('\\.wasm$', { truncate: 50_000, times: 1 });
    const again = await t.load('mnist@stable', { build: undefined, cache: t.cache() });
    await t.expectVersion(again, '1.0.0');
    await t.ctl('reset');
    // Tampered on every try: an integrity error naming the file, nothing loaded.
    await t.fault('\\.wasm$', { tamper: true });
    const err = await t.load('mnist@stable', { build: undefined, cache: t.cache() }).then(() => null, (e) => e);
    check(err?.code === 'integrity' && /\.wasm/.test(err.message), `tampered build: ${err?.code}: ${err?.message}`);
    // A client bundling its build never fetches code.
    const bundled = await t.load('mnist@stable', { cache: t.cache() });
    await t.expectVersion(bundled, '1.0.0');
  },

  async 'a manifest listing a file larger than its body: a network error, never a RangeError; an absurd size is refused'(t) {
    const size = (await t.manifest()).versions['1.0.0'].files[0].size;
    // Larger than what the registry sends (as a truncating proxy would look): the body ends
    // early, on both tries; a network error, not held against the version.
    for (const listed of [size + 1, 3_000_000_000]) {
      await t.ctl('reset');
      await t.fault('manifest.json', { transform: 'file-size', size: listed });
      const events = [];
      const err = await expectError(t.load('mnist@stable', { cache: t.cache(), onEvent: (e) => events.push(e) }), 'network', `size ${listed}`);
      check(err.message.includes(`ended after ${size} of the ${listed} bytes`), err.message);
      check((await t.weightGets()).length === 2, `${(await t.weightGets()).length} downloads for size ${listed}`);
      check(!events.some((e) => e.type === 'refused'), JSON.stringify(events));
    }
    // Absurd (1e12 bytes, past the 4 GiB a file may have): refused before any download.
    await t.ctl('reset');
    await t.fault('manifest.json', { transform: 'file-size', size: 1e12 });
    const absurd = await expectError(t.load('mnist@stable', { cache: t.cache() }), 'invalid_manifest', 'size 1e12');
    check(!/typed array|RangeError/i.test(absurd.message) && absurd.message.length > 20, absurd.message);
    check((await t.weightGets()).length === 0, 'a file of 1e12 bytes was requested');
  },

  async 'update() says why it did not switch'(t) {
    const [, model] = await warmCache(t);
    await t.registryCli('promote', '--channel', 'stable', '--version', '1.1.0');
    const lastCheck = () => ofType(model, 'update-check').at(-1);
    // The new version's download fails (HTTP 503 on both tries).
    await t.fault('/files/', { status: 503 });
    const failed = await model.update();
    check(!failed.updated && failed.version === '1.0.0' && /503/.test(failed.reason ?? ''), `update(): ${JSON.stringify(failed)}`);
    check(lastCheck()?.outcome === 'failed' && lastCheck().reason === failed.reason, `update-check: ${JSON.stringify(lastCheck())}`);
    await t.expectVersion(model, '1.0.0');
    // The registry cannot be asked at all.
    await t.ctl('reset');
    await t.ctl('stop');
    const down = await model.update();
    check(!down.updated && down.version === '1.0.0' && typeof down.reason === 'string' && down.reason === lastCheck()?.reason, `update() while down: ${JSON.stringify(down)} ${JSON.stringify(lastCheck())}`);
    await t.ctl('start');
    // The registry serves bytes that contradict its manifest: rejected, and why.
    await t.fault('/files/', { tamper: true });
    const rejected = await model.update();
    check(!rejected.updated && /sha256|integrity/.test(rejected.reason ?? '') && lastCheck()?.outcome === 'rejected', `update() of a tampered version: ${JSON.stringify(rejected)}`);
    await t.expectVersion(model, '1.0.0');
    // Nothing newer: no reason to give.
    await t.ctl('reset');
    await t.registryCli('promote', '--channel', 'stable', '--version', '1.0.0');
    const current = await model.update();
    check(!current.updated && current.version === '1.0.0' && current.reason === null, `update() when current: ${JSON.stringify(current)}`);
    // With autoUpdate, the check inside update() switches: update() says it did.
    const auto = await t.load('mnist@canary', { cache: t.cache(), autoUpdate: true });
    await t.registryCli('promote', '--channel', 'canary', '--version', '1.0.0');
    const switched = await auto.update();
    check(switched.updated && switched.version === '1.0.0' && switched.reason === null, `update() with autoUpdate: ${JSON.stringify(switched)}`);
    await t.expectVersion(auto, '1.0.0');
  },

  async 'a corrupt fetcher state is said, and the cached files still serve, offline too'(t) {
    const corruptions = {
      'not JSON': () => new TextEncoder().encode('garbage\n'),
      'cut short': (good) => good.slice(0, 300),
      'another schema': () => new TextEncoder().encode('{"schema":99}'),
      'fields of the wrong type': (good) => {
        const { clientId, rejected } = JSON.parse(new TextDecoder().decode(good));
        return new TextEncoder().encode(JSON.stringify({ schema: 1, clientId, rejected, good: 5, pending: { x: { version: 1 } }, files: 'x', manifests: [1] }));
      },
    };
    for (const [label, corrupt] of Object.entries(corruptions)) {
      await t.ctl('start');
      const [cache, warm] = await warmCache(t);
      await warm.updateCheck;
      const bucket = warm.release.bucket;
      warm.dispose();
      const good = await cache.get('state.json');
      check(good !== undefined, 'no state written');
      const reopened = t.reopen(cache);
      await reopened.put('state.json', corrupt(good));
      // The registry is down: the version cached before is found from what was kept apart.
      await t.ctl('stop');
      const offline = await t.load('mnist@stable', { cache: reopened });
      await t.expectVersion(offline, '1.0.0');
      const reset = ofType(offline, 'state-reset');
      check(reset.length === 1 && reset[0].reason.length > 10 && typeof reset[0].kind === 'string', `${label}: ${JSON.stringify(offline.events)}`);
      check(ofType(offline, 'offline')[0]?.version === '1.0.0', `${label}: ${JSON.stringify(offline.events)}`);
      // The rollout identity was kept apart too: the same bucket.
      check(offline.release.bucket === bucket, `${label}: bucket ${offline.release.bucket}, was ${bucket}`);
      // Written back whole: the next load (a reload, a new process) starts from the cache, silently.
      const again = await t.load('mnist@stable', { cache: t.reopen(cache) });
      await t.expectVersion(again, '1.0.0');
      check(ofType(again, 'state-reset').length === 0, `${label}, again: ${JSON.stringify(again.events)}`);
      await t.ctl('start');
      await t.ctl('reset');
    }
    // The registry up: the files in the cache are used, not downloaded again.
    const [cache] = await warmCache(t);
    await t.ctl('reset');
    const reopened = t.reopen(cache);
    await reopened.put('state.json', new TextEncoder().encode('{"schema":1,'));
    const online = await t.load('mnist@stable', { cache: reopened });
    await t.expectVersion(online, '1.0.0');
    check(ofType(online, 'state-reset').length === 1, JSON.stringify(online.events));
    check((await t.weightGets()).length === 0, 'the cached weights were downloaded again');
  },

  async 'broken manifests: malformed, missing version, future schema'(t) {
    for (const transform of ['malformed', 'missing-version', 'future-schema']) {
      await t.ctl('reset');
      await t.fault('manifest.json', { transform });
      const err = await expectError(t.load('mnist@stable', { cache: t.cache() }), 'invalid_manifest', transform);
      check(err.message.length > 20, err.message);
    }
    await t.ctl('reset');
    const [cache, model] = await warmCache(t);
    await t.fault('manifest.json', { transform: 'missing-version' });
    const result = await model.checkForUpdate();
    check(result.outcome === 'failed' && /9\.9\.9/.test(result.reason), JSON.stringify(result));
    const offline = await t.load('mnist@stable', { cache, freshness: 'network-first' });
    check(ofType(offline, 'offline')[0]?.code === 'invalid_manifest', JSON.stringify(offline.events));
    await t.expectVersion(offline, '1.0.0');
  },

  async 'a version failing its golden check is not adopted'(t) {
    await t.fault('manifest.json', { transform: 'bad-golden' });
    await expectError(t.load('mnist@stable', { cache: t.cache() }), 'golden_check', 'bad golden without a good version');
    await t.ctl('reset');
    const [cache, model] = await warmCache(t);
    await t.fault('manifest.json', { transform: 'bad-golden' });
    // Same file as 1.0.0: the check finds it cached, announces, and update() refuses it.
    const check1 = await model.checkForUpdate();
    check(check1.outcome === 'available' && check1.version === '1.0.1', JSON.stringify(check1));
    const result = await model.update();
    check(!result.updated && result.version === '1.0.0' && /golden/.test(result.reason), JSON.stringify(result));
    const rollback = ofType(model, 'rollback')[0];
    check(rollback?.code === 'golden_check' && rollback.rejected === '1.0.1', JSON.stringify(model.events));
    await t.expectVersion(model, '1.0.0');
    // Refused for good: the next check does not offer it again; a fresh load stays on 1.0.0.
    const check2 = await model.checkForUpdate();
    check(check2.outcome === 'rejected', JSON.stringify(check2));
    const again = await t.load('mnist@stable', { cache, freshness: 'network-first' });
    await t.expectVersion(again, '1.0.0');
    check(ofType(again, 'rollback')[0]?.rejected === '1.0.1', JSON.stringify(again.events));
  },

  async 'a golden check failing on one backend refuses the version there only'(t) {
    // 1.0.1: 1.0.0's file with a golden check on the blank image (numpy's logits) at a
    // tolerance between the two backends' errors, measured here first: on the CI machine kind
    // the CPU build is 4.0e-8 off numpy, Chromium's SwiftShader WebGPU 9.2e-8, but the
    // figures depend on the CPU SwiftShader runs on, so no constant is assumed. The CPU loads
    // take the simd128 build: the relaxed-SIMD one's fused multiply-adds round differently
    // and, since its convolutions are Winograd's, land as far from numpy as WebGPU (9.6e-8).
    const { blank, v100 } = t.env.expected;
    const load = (options) => t.load('mnist@stable', { simd: 'simd128', ...options });
    const errorOn = async (backend) => {
      const model = await load({ cache: t.cache(), backend });
      const got = (await model.run(Float32Array.from(blank.input))).logits.data;
      return Math.max(...blank.logits.map((v, i) => Math.abs(v - got[i])));
    };
    const cpuError = await errorOn('cpu');
    const withGpu = t.env.options?.backend === 'webgpu';
    const gpuError = withGpu ? await errorOn('webgpu') : Infinity;
    // WebGPU must be the worse of the two by a margin, or no golden can tell them apart.
    check(gpuError > cpuError * 1.2, `WebGPU (${gpuError}) is not worse than the CPU build (${cpuError}) on the blank image: no golden separates them on this machine`);
    const tolerance = withGpu ? Math.sqrt(cpuError * gpuError) : cpuError * 1.5;
    const shown = String(Number(tolerance.toPrecision(2)));
    const golden = {
      inputs: [{ name: 'pixels', dtype: 'float32', dims: [1, 1, 28, 28], data: blank.input }],
      outputs: [{ name: 'logits', dtype: 'float32', dims: [1, 10], data: blank.logits }],
      tolerance: Number(shown),
      source: 'numpy (tests/reference/mnist_reference.py)',
    };
    const toleranceSaid = new RegExp(`tolerance ${shown.replace(/[.+]/g, '\\$&')}`);
    await t.fault('manifest.json', { transform: 'with-golden', golden });
    const cache = t.cache();
    const cpu = await load({ cache, backend: 'cpu' });
    check(cpu.version === '1.0.1' && cpu.backend === 'cpu', `${cpu.version} on ${cpu.backend}`);
    await t.expectAnswers(cpu, v100);
    if (t.env.options?.backend !== 'webgpu') return; // no WebGPU in this runtime's run

    // WebGPU fails it: refused there, with the reason, and remembered for WebGPU only.
    const gpu = await expectError(load({ cache, backend: 'webgpu', freshness: 'network-first' }), 'golden_check', 'webgpu');
    check(/golden check failed: /.test(gpu.message) && toleranceSaid.test(gpu.message), gpu.message);
    const cpuAgain = await load({ cache, backend: 'cpu', freshness: 'network-first' });
    check(cpuAgain.version === '1.0.1' && cpuAgain.backend === 'cpu', `${cpuAgain.version} on ${cpuAgain.backend}`);
    await t.expectAnswers(cpuAgain, v100);
    const refusedGpu = await expectError(load({ cache, backend: 'webgpu', freshness: 'network-first' }), 'golden_check', 'webgpu again');
    check(/refused earlier on webgpu: golden check failed/.test(refusedGpu.message), refusedGpu.message);
    // `auto` runs it on the CPU build and says why.
    const fallbacks = [];
    const auto = await load({ cache, backend: 'auto', freshness: 'network-first', onFallback: (f) => fallbacks.push(f) });
    check(auto.version === '1.0.1' && auto.backend === 'cpu', `auto: ${auto.version} on ${auto.backend}`);
    check(/failed its golden check on WebGPU earlier/.test(auto.fallbackReason ?? '') && fallbacks.length === 1 && fallbacks[0].reason === auto.fallbackReason, `fallback: ${auto.fallbackReason} ${JSON.stringify(fallbacks)}`);
    await t.expectAnswers(auto, v100);

    // A fresh cache: `auto` tries WebGPU, whose golden check fails, and falls back to the CPU build.
    const fresh = t.cache();
    const seen = [];
    const first = await load({ cache: fresh, backend: 'auto', onFallback: (f) => seen.push(f) });
    check(first.version === '1.0.1' && first.backend === 'cpu', `fresh auto: ${first.version} on ${first.backend}`);
    check(/failed its golden check on WebGPU \(golden check failed: /.test(first.fallbackReason ?? '') && toleranceSaid.test(first.fallbackReason ?? '') && seen.length === 1, `fallback: ${first.fallbackReason}`);
    const refused = ofType(first, 'refused')[0];
    check(refused?.backend === 'webgpu' && refused.code === 'golden_check' && refused.version === '1.0.1', JSON.stringify(first.events));
    await t.expectAnswers(first, v100);
  },

  async 'behind a compressing proxy: weak ETags revalidate with a 304, gzip bodies verify'(t) {
    await t.fault('registry/', { compress: true });
    const cache = t.cache();
    const cold = await t.load('mnist@stable', { cache });
    await t.expectVersion(cold, '1.0.0');
    const [file] = await t.weightGets();
    check(file && file.bytes < cold.release.files[0].size, `the weights did not come compressed: ${JSON.stringify(file)}`);
    await t.ctl('reset');
    await t.fault('registry/', { compress: true });
    const warm = await t.load('mnist@stable', { cache, freshness: 'network-first' });
    await t.expectVersion(warm, '1.0.0');
    // (Only requests through the proxy's compression: a request an earlier scenario delayed may land here.)
    const manifests = (await t.manifestGets()).filter((e) => e.fault === 'compress');
    check(manifests.length === 1 && manifests[0].status === 304 && manifests[0].ifNoneMatch?.startsWith('W/"'), `manifest requests: ${JSON.stringify(manifests)}`);
    const result = await warm.updateCheck;
    check(result.outcome === 'current' && result.status === 304, JSON.stringify(result));
    check((await t.weightGets()).length === 0, 'the warm load downloaded weights');
  },

  async 'server stopped: cached versions keep serving, uncached specs fail clearly'(t) {
    const [cache, model] = await warmCache(t);
    await t.ctl('stop');
    const result = await model.checkForUpdate();
    check(result.outcome === 'failed', JSON.stringify(result));
    await t.expectVersion(model, '1.0.0');
    const cached = await t.load('mnist@stable', { cache });
    await t.expectVersion(cached, '1.0.0');
    check((await cached.updateCheck).outcome === 'failed', 'background check did not fail');
    const offline = await t.load('mnist@stable', { cache, freshness: 'network-first' });
    check(ofType(offline, 'offline')[0]?.code === 'network', JSON.stringify(offline.events));
    await expectError(t.load('mnist@canary', { cache }), 'network', 'uncached spec while down');
    await expectError(t.load('mnist@stable', { cache: t.cache() }), 'network', 'empty cache while down');
  },

  async 'updates: announce, switch on update(), follow a registry rollback, switch on next load'(t) {
    const [cache, model] = await warmCache(t);
    await t.registryCli('promote', '--channel', 'stable', '--version', '1.1.0', '--reason', 'recalibrated');
    const found = await model.checkForUpdate();
    check(found.outcome === 'available' && found.version === '1.1.0', JSON.stringify(found));
    const announced = ofType(model, 'update-available')[0];
    check(announced?.from === '1.0.0' && announced.to === '1.1.0' && announced.channel === 'stable', JSON.stringify(model.events));
    await t.expectVersion(model, '1.0.0');
    const switched = await model.update();
    check(switched.updated && switched.version === '1.1.0', JSON.stringify(switched));
    await t.expectVersion(model, '1.1.0');
    check(ofType(model, 'updated')[0]?.to === '1.1.0', 'no updated event');

    await t.registryCli('rollback', '--channel', 'stable', '--reason', 'test: roll back');
    const back = await model.checkForUpdate();
    check(back.outcome === 'available' && back.version === '1.0.0', JSON.stringify(back));
    check((await model.update()).version === '1.0.0', 'did not return to 1.0.0');
    await t.expectVersion(model, '1.0.0');

    // Next load: cache-first starts on 1.0.0, finds 1.1.0 in the background; the load after switches.
    await t.registryCli('promote', '--channel', 'stable', '--version', '1.1.0');
    const first = await t.load('mnist@stable', { cache });
    await t.expectVersion(first, '1.0.0');
    check((await first.updateCheck).outcome === 'available', 'background check found nothing');
    const second = await t.load('mnist@stable', { cache });
    await t.expectVersion(second, '1.1.0');
    check(ofType(second, 'updated')[0]?.from === '1.0.0', JSON.stringify(second.events));
    const auto = await t.load('mnist@1.0.0', { cache, autoUpdate: true });
    await t.expectVersion(auto, '1.0.0');
  },

  async 'staged rollout: the share follows percent, and each client is stable'(t) {
    await t.registryCli('rollout', '--channel', 'stable', '--version', '1.1.0', '--percent', '30');
    const cache = t.cache();
    let inside = 0;
    const n = 60;
    for (let i = 0; i < n; i++) {
      const model = await t.load('mnist@stable', { cache, clientId: `client-${i}`, freshness: 'network-first' });
      const release = model.release;
      check(release.viaRollout === release.bucket < 30, `client-${i}: bucket ${release.bucket}, viaRollout ${release.viaRollout}`);
      check(model.version === (release.viaRollout ? '1.1.0' : '1.0.0'), `client-${i} got ${model.version}`);
      if (release.viaRollout) inside++;
      model.dispose();
    }
    // Binomial(60, 0.3): mean 18, sd 3.5; the exact property is checked above and natively.
    check(inside >= 6 && inside <= 32, `${inside}/${n} clients in a 30% rollout`);
    const again = await t.load('mnist@stable', { cache, clientId: 'client-7', freshness: 'network-first' });
    const first = await t.load('mnist@stable', { cache, clientId: 'client-7', freshness: 'network-first' });
    check(again.version === first.version, 'the same client got two versions');
  },

  async 'cache budget: least recently used versions go, the one in use stays'(t) {
    const cache = t.cache();
    const manifest = await t.manifest();
    const key = (v) => `sha256-${manifest.versions[v].files[0].sha256}`;
    const size = manifest.versions['1.0.0'].files[0].size;
    const budget = size + size / 2; // room for one version
    const a = await t.load('mnist@1.0.0', { cache, cacheBudget: budget });
    const b = await t.load('mnist@1.1.0', { cache, cacheBudget: budget });
    check((await cache.get(key('1.0.0'))) !== undefined, '1.0.0 evicted while in use');
    check((await cache.get(key('1.1.0'))) !== undefined, '1.1.0 not cached');
    a.dispose();
    b.dispose();
    // 1.1.0 was used last; adopting it again with 1.0.0 unused evicts 1.0.0.
    const c = await t.load('mnist@1.1.0', { cache, cacheBudget: budget });
    await t.expectVersion(c, '1.1.0');
    check((await cache.get(key('1.0.0'))) === undefined, '1.0.0 kept past the budget');
    check((await cache.get(key('1.1.0'))) !== undefined, 'the version in use was evicted');
  },
};

export const SCENARIO_NAMES = Object.keys(SCENARIOS);
