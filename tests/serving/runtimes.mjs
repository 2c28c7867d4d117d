// Start the three endpoint examples for tests and benchmarks, each on a free port on
// 127.0.0.1: examples/node under Node, examples/deno under Deno, examples/cloudflare-worker
// bundled by `wrangler deploy --dry-run` and run in workerd by Miniflare. Each serves model
// packages of tests/serving/models.mjs (by default MODELS, mnist and two-heads; the ONNX
// worker entry src/onnx.js serves ocr-det and silero-vad): Node and Deno import those named
// in BRASA_MODELS from BRASA_PACKAGES; the worker bundles them, so they are copied next to it
// first.
import { spawn, execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';

import { DENO, ROOT } from '../support.mjs';
import { MODELS, PACKAGES } from './models.mjs';

/** Spawn `cmd`, resolve once it prints `serving on http://…`. */
function spawnServer(cmd, args, env, cwd = ROOT) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => { child.kill(); reject(new Error(`${cmd} did not start: ${out}`)); }, 60_000);
    const onData = (chunk) => {
      out += chunk;
      const match = out.match(/serving on (http:\/\/[\d.]+:\d+\/)/);
      if (match) {
        clearTimeout(timer);
        resolve({ url: match[1], output: () => out, stop: () => child.kill() });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${cmd} exited with ${code}: ${out}`)); });
  });
}

function settings(registry, config) {
  return {
    BRASA_REGISTRY: registry,
    BRASA_PACKAGES: PACKAGES,
    BRASA_MODELS: (config.models ?? MODELS).join(','),
    BRASA_MAX_BATCH: String(config.maxBatch ?? 32),
    BRASA_MAX_QUEUE_ROWS: String(config.maxQueueRows ?? 512),
    // Anything else an example reads (BRASA_TOKENIZERS, BRASA_MAX_TEXT_BYTES…).
    ...config.env,
  };
}

// `config.cacheDir`: where the runtime keeps its model cache (a new temporary folder when
// absent); passing the same one again restarts with a warm cache. `config.models`: the
// packages Node and Deno serve (BRASA_MODELS; default MODELS); a worker serves what its
// bundle imports (see bundleWorker).

export function startNode(registry, config = {}) {
  const cacheHome = config.cacheDir ?? mkdtempSync(join(tmpdir(), 'brasa-node-serve-'));
  return spawnServer('node', ['examples/node/server.mjs'], { ...settings(registry, config), PORT: '0', XDG_CACHE_HOME: cacheHome });
}

export function startDeno(registry, config = {}) {
  const denoDir = config.cacheDir ?? mkdtempSync(join(tmpdir(), 'brasa-deno-serve-'));
  return spawnServer(
    DENO,
    ['run', '--quiet', '--no-prompt', '--config', 'examples/deno/deno.json', '--allow-net=127.0.0.1', `--allow-read=${ROOT},${PACKAGES}`, '--allow-env', 'examples/deno/main.ts'],
    { ...settings(registry, config), PORT: '0', DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: '1', XDG_RUNTIME_DIR: denoDir },
  );
}

const WRANGLER_ENV = { WRANGLER_SEND_METRICS: 'false', CI: 'true' };

/**
 * The worker as Cloudflare would receive it, with its sizes (raw and gzip, JS + wasm).
 * `entry`: the worker script inside examples/cloudflare-worker (default its `main`,
 * src/worker.js, which serves MODELS); `models`: the packages it imports from ./models/.
 */
export function bundleWorker({ entry = null, models = MODELS } = {}) {
  const out = mkdtempSync(join(tmpdir(), 'brasa-worker-'));
  const config = mkdtempSync(join(tmpdir(), 'brasa-wrangler-'));
  const example = join(ROOT, 'examples/cloudflare-worker');
  // The worker imports its packages from ./models/<name>/ (git-ignored): put the built ones there.
  const modelsDir = join(example, 'models');
  rmSync(modelsDir, { recursive: true, force: true });
  for (const name of models) cpSync(join(PACKAGES, name), join(modelsDir, name), { recursive: true });
  // A script path given to wrangler overrides wrangler.toml's `main`.
  const args = ['deploy', ...(entry ? [entry] : []), '--dry-run', '--outdir', out];
  try {
    execFileSync(join(ROOT, 'node_modules/.bin/wrangler'), args, {
      cwd: example,
      env: { ...process.env, ...WRANGLER_ENV, XDG_CONFIG_HOME: config },
      stdio: 'pipe',
    });
  } catch (err) {
    throw new Error(`wrangler could not bundle the worker: ${err.stderr ?? ''}${err.stdout ?? ''}`, { cause: err });
  } finally {
    rmSync(config, { recursive: true, force: true });
    rmSync(modelsDir, { recursive: true, force: true });
  }
  const files = readdirSync(out).filter((f) => f.endsWith('.js') || f.endsWith('.wasm'));
  const sizes = { raw: 0, gzip: 0, files: {} };
  for (const f of files) {
    const bytes = readFileSync(join(out, f));
    const gz = gzipSync(bytes, { level: 9 }).length;
    sizes.files[f] = { raw: statSync(join(out, f)).size, gzip: gz };
    sizes.raw += bytes.length;
    sizes.gzip += gz;
  }
  // wrangler names the bundled script after the entry (src/onnx.js -> onnx.js).
  const script = `${basename(entry ?? 'src/worker.js', '.js')}.js`;
  if (!files.includes(script)) throw new Error(`wrangler wrote no ${script} in ${out}: ${files.join(', ')}`);
  return { dir: out, script, models, sizes, remove: () => rmSync(out, { recursive: true, force: true }) };
}

export async function startWorkerd(bundle, registry, config = {}) {
  const { Miniflare } = await import('miniflare');
  const mf = new Miniflare({
    modules: true,
    scriptPath: join(bundle.dir, bundle.script ?? 'worker.js'),
    modulesRoot: bundle.dir,
    modulesRules: [
      { type: 'ESModule', include: ['**/*.js'] },
      { type: 'CompiledWasm', include: ['**/*.wasm'] },
    ],
    compatibilityDate: '2026-04-01',
    bindings: { ...settings(registry, { models: bundle.models, ...config }), ...(config.clientId ? { BRASA_CLIENT_ID: config.clientId } : {}) },
    // Workers' Cache API, kept on disk so a restarted isolate finds it (as a colo's cache
    // does); `cache: false` makes it accept and drop every write, as on workers.dev.
    ...(config.cache === false ? { cache: false } : { cachePersist: config.cacheDir ?? mkdtempSync(join(tmpdir(), 'brasa-workerd-cache-')) }),
    host: '127.0.0.1',
    port: 0,
  });
  // A worker Miniflare refuses must not keep this process alive.
  const url = await mf.ready.catch(async (err) => {
    await mf.dispose().catch(() => undefined);
    throw err;
  });
  return { url: url.href, stop: () => mf.dispose() };
}
