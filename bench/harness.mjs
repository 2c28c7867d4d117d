// What bench/compare.mjs, bench/onnx-models.mjs and bench/browser-latency.mjs share: the
// machine they ran on, brasa's CPU builds of a package, which build a load really fetched,
// statistics, and page calls that fail instead of hanging.
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';

import { CACHE } from '../tests/support.mjs';

/**
 * The CPU, as /proc/cpuinfo names it. "AMD EPYC" alone names no generation, and brasa's kernels
 * are more sensitive to it than XNNPACK is (issue 13: the same run gave other ratios on Xeons),
 * so family, model, stepping and the SIMD extensions V8 can use come with it.
 */
export function machine() {
  const n = cpus().length;
  let model = cpus()[0]?.model ?? 'unknown CPU';
  let detail = '';
  try {
    const first = readFileSync('/proc/cpuinfo', 'utf8').split('\n\n')[0];
    const field = (key) => first.match(new RegExp(`^${key}\\s*:\\s*(.*)$`, 'm'))?.[1]?.trim();
    model = field('model name') ?? model;
    const flags = new Set((field('flags') ?? '').split(/\s+/));
    const simd = ['avx2', 'fma', 'avx512f'].filter((f) => flags.has(f));
    detail = ` (family ${field('cpu family')}, model ${field('model')}, stepping ${field('stepping')}; ${simd.join(', ') || 'no AVX2'})`;
  } catch {
    // Not Linux: the name Node gives is all there is.
  }
  return { cpus: n, model, description: `${n} × ${model}${detail}` };
}

/** Median, p90 and count of samples. */
export function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { median: at(0.5), p90: at(0.9), n: s.length };
}

/**
 * The CPU builds the benchmarks report for every package, present or not (absent ones are
 * reported as absent): today's `cpu` (simd128, 1 thread), relaxed-SIMD FMA, and both on wasm
 * threads. A package's other `cpu-…` builds are reported too.
 */
export const CPU_BUILDS = ['cpu', 'cpu-relaxed', 'cpu-threads', 'cpu-threads-relaxed'];

/** Threads a CPU build computes on: the page's 2 for a threaded build, else 1. */
export const buildThreads = (build) => (build.includes('threads') ? 2 : 1);

/** A row label for a CPU build. */
export function buildLabel(build) {
  const threads = buildThreads(build);
  return `brasa ${build} (${build.includes('relaxed') ? 'relaxed-SIMD FMA' : 'simd128'}, ${threads} thread${threads > 1 ? 's' : ''})`;
}

/** The `builds` of a model package's model.json (`.cache/packages/<name>`): build → files. */
export function packageBuilds(name) {
  return JSON.parse(readFileSync(join(CACHE, 'packages', name, 'model.json'), 'utf8')).builds;
}

/** The CPU builds to report for a package: `{ build, present }`, the known ones first. */
export function cpuBuilds(name) {
  const builds = Object.keys(packageBuilds(name));
  const extra = builds.filter((b) => b.startsWith('cpu') && !CPU_BUILDS.includes(b));
  return [...CPU_BUILDS, ...extra].map((build) => ({ build, present: builds.includes(build) }));
}

/** Remembers every URL a page (and its workers) requests, to tell which build a load fetched. */
export function watchRequests(page) {
  const urls = [];
  page.on('request', (r) => urls.push(r.url()));
  return { mark: () => urls.length, since: (mark) => urls.slice(mark) };
}

/**
 * Check that loading `build` of package `name` gave that build, on the threads it is meant
 * for: the loader picks a build from options (`threads`, `simd`), and a different pick must
 * not become a mislabelled row. `info` is what the model says (`model.build`: `build`,
 * `threads`); a model that says nothing must at least have fetched that build's wasm during
 * the load (`urls`: the requests made meanwhile). Returns the builds whose wasm was fetched.
 */
export function checkBuild(name, build, urls, info = {}) {
  const builds = packageBuilds(name);
  const fetched = Object.entries(builds)
    .filter(([, b]) => b.wasm && urls.some((u) => u.startsWith('http') && decodeURIComponent(new URL(u).pathname).endsWith(`/packages/${name}/${b.wasm}`)))
    .map(([b]) => b);
  if (typeof info.build === 'string') {
    if (info.build !== build) throw new Error(`asked for the ${build} build of ${name}, but the model runs ${info.build}${info.reason ? ` (${info.reason})` : ''}`);
    if (build !== 'webgpu' && typeof info.threads === 'number' && info.threads !== buildThreads(build)) {
      throw new Error(`asked for the ${build} build of ${name} on ${buildThreads(build)} threads, but it runs on ${info.threads}`);
    }
  } else if (!fetched.includes(build)) {
    throw new Error(`asked for the ${build} build of ${name}, but the load fetched ${fetched.length ? `the wasm of ${fetched.join(', ')}` : 'no build’s wasm (another build’s instance reused?)'}`);
  }
  return fetched;
}

/**
 * `page.evaluate`, failing after `timeoutMs` with the step named (and the requests still
 * waiting, from `pending`: a Map of request → time) instead of hanging a CI run.
 */
export async function evaluate(page, what, fn, arg, { timeoutMs, pending } = {}) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const waiting = [...(pending?.keys() ?? [])].map((r) => r.url());
      reject(new Error(`${what}: no answer from the page in ${timeoutMs / 1000} s${waiting.length ? `; requests without a response: ${waiting.join(', ')}` : ''}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([page.evaluate(fn, arg), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
