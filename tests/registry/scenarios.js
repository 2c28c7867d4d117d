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
 * @param {{ input: number[], v100: number[], v110: number[] }} env.expected  numpy reference logits
 * @param {object} [env.options]  extra load options (the backend)
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
  }

  cache() {
    return this.env.newCache(`${this.name}-${this.caches++}`);
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
    const want = version === '1.1.0' ? this.env.expected.v110 : this.env.expected.v100;
    const got = (await model.run(Float32Array.from(this.env.expected.input))).logits.data;
    const diff = Math.max(...want.map((v, i) => Math.abs(v - got[i])));
    check(diff < 1e-3, `outputs of ${model.version} differ from the ${version} reference by ${diff}`);
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
    // A spec without a package, or with a package of another model.
    await expectError(t.load('mnist@stable', { cache, build: undefined }), 'unknown_model', 'no package');
    await expectError(t.load('mnist@stable', { cache, build: { ...t.env.mnist, name: 'other' } }), 'unknown_model', 'package of another model');
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

  async 'truncated and tampered files are never used nor cached'(t) {
    const manifest = await t.manifest();
    const file = manifest.versions['1.0.0'].files[0];
    for (const fault of [{ truncate: 100_000 }, { tamper: true }]) {
      await t.ctl('reset');
      await t.fault('/files/', fault);
      const cache = t.cache();
      const err = await expectError(t.load('mnist@stable', { cache }), 'integrity', JSON.stringify(fault));
      check(err.message.includes(file.path) || err.message.includes(file.sha256.slice(0, 8)) || /integrity/.test(err.message), err.message);
      check((await cache.get(`sha256-${file.sha256}`)) === undefined, `${JSON.stringify(fault)}: bad bytes were cached`);
    }
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
