// A fault-injecting HTTP proxy on 127.0.0.1 in front of the real `brasa serve`, for the
// registry fetcher's tests in Chromium, Node and Deno.
//
// Public port:  /registry/*  → `brasa serve --dir <registry>` (real ETags, 304s, headers),
//                              with the faults set for matching paths applied on the way;
//               /brasa/*     → the npm package (dist), /packages/<name>/* → the model
//                              packages `brasa build` wrote (.cache/packages), / → a blank
//                              test page that sets `window.brasa` (the npm package) and
//                              `window.mnist` (the MNIST model package),
//               /tests/registry/scenarios.js → the scenarios, for the page.
// Control port: POST /fault {path, ...}, POST /reset, GET /log, POST /stop, POST /start,
//               POST /registry {args} (runs `brasa registry --registry <dir> ...args`).
// Faults (for paths matching `path`, a regex; `times` limits how many requests they hit):
//   status, drop, delayMs, stallAfter, truncate, tamper, transform (a manifest rewrite below;
//   `with-golden` takes the fault's `golden`, `file-size` its `size`), compress (what a
//   compressing proxy does: gzip bodies, weak ETags), noPreflight (a static host without CORS
//   preflight support: OPTIONS answered 405 without CORS headers, only
//   `Access-Control-Allow-Origin` on other answers).
// Everything the scenarios need is reachable over HTTP, so the same scenario module runs
// inside a page, in Node and in Deno.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { extname, join, normalize } from 'node:path';
import { after, before } from 'node:test';

import { CLI, ROOT, makeRegistry, packageDir, serve } from './support.mjs';

const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.html': 'text/html', '.map': 'application/json', '.ts': 'text/plain' };

const PAGE = `<!doctype html><meta charset="utf-8"><title>brasa registry tests</title>
<script type="importmap">{"imports":{"brasa":"/brasa/dist/index.js","@huggingface/tokenizers":"/vendor/@huggingface/tokenizers/tokenizers.min.mjs"}}</script>
<script type="module">window.brasa = await import('brasa'); window.mnist = (await import('/packages/mnist/index.js')).default; document.body.dataset.ready = '1';</script>
<body></body>`;

/** Manifest rewrites a fault can apply (the registry as a broken publisher or CDN would serve it). */
const TRANSFORMS = {
  malformed: (text) => text.slice(0, Math.floor(text.length / 2)),
  'future-schema': (text) => JSON.stringify({ ...JSON.parse(text), schema: 99 }),
  'missing-version': (text) => {
    const m = JSON.parse(text);
    m.channels.stable.version = '9.9.9';
    return JSON.stringify(m);
  },
  // A version whose golden output disagrees with its weights (a bad publish): 1.0.1 reuses
  // stable's file, with one expected value of its first golden output moved well past the
  // tolerance.
  'bad-golden': (text) => {
    const m = JSON.parse(text);
    const base = m.versions[m.channels.stable.version];
    const outputs = base.golden.outputs.map((t, k) => (k === 0 ? { ...t, data: t.data.map((v, i) => (i === 0 ? v + 0.5 : v)) } : t));
    const golden = { ...base.golden, outputs };
    m.versions['1.0.1'] = { ...base, golden, notes: 'bad golden (test)' };
    m.channels.stable = { version: '1.0.1' };
    return JSON.stringify(m);
  },
  // 1.0.1: stable's file with another golden check (`fault.golden`: inputs, outputs,
  // tolerance, from the independent reference), e.g. one tighter than a backend meets.
  'with-golden': (text, fault) => {
    const m = JSON.parse(text);
    const base = m.versions[m.channels.stable.version];
    m.versions['1.0.1'] = { ...base, golden: fault.golden, notes: 'another golden check (test)' };
    m.channels.stable = { version: '1.0.1' };
    return JSON.stringify(m);
  },
  // The stable version's file listed with another size (`fault.size`): larger than the body
  // the registry sends, or absurd (1e12).
  'file-size': (text, fault) => {
    const m = JSON.parse(text);
    m.versions[m.channels.stable.version].files[0].size = fault.size;
    return JSON.stringify(m);
  },
};

/** Headers a static host without CORS preflight support sends: no `Access-Control-*` but the origin. */
function withoutCorsExtras(headers) {
  for (const name of Object.keys(headers)) {
    if (name.startsWith('access-control-') && name !== 'access-control-allow-origin') delete headers[name];
  }
  return headers;
}

export async function startFaultProxy(registryDir) {
  const upstream = await serve(registryDir);
  const upstreamUrl = new URL(upstream.url);
  let faults = [];
  let log = [];

  const faultFor = (path) => {
    const index = faults.findIndex((f) => new RegExp(f.path).test(path));
    if (index < 0) return null;
    const fault = faults[index];
    if (fault.times !== undefined && --fault.times <= 0) faults.splice(index, 1);
    return fault;
  };

  async function staticFile(res, file) {
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'content-length': body.length, 'cache-control': 'no-cache' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  }

  function forward(req, res, path, fault) {
    const headers = { ...req.headers, host: upstreamUrl.host };
    // A rewritten body has its own ETag: revalidate against that, not upstream's.
    if (fault?.transform) delete headers['if-none-match'];
    const entry = {
      method: req.method,
      path,
      ifNoneMatch: req.headers['if-none-match'] ?? null,
      cacheControl: req.headers['cache-control'] ?? null,
      origin: req.headers.origin ?? null,
      status: 0,
      bytes: 0,
      fault: fault ? Object.keys(fault).filter((k) => k !== 'path').join(',') : null,
    };
    log.push(entry);
    const upstreamReq = http.request({ host: upstreamUrl.hostname, port: upstreamUrl.port, path: path.slice('/registry'.length) || '/', method: req.method, headers }, async (up) => {
      const outHeaders = { ...up.headers };
      if (fault?.noPreflight) withoutCorsExtras(outHeaders);
      // A compressing proxy weakens every ETag it passes (its bytes are not the origin's).
      if (fault?.compress && outHeaders.etag && !outHeaders.etag.startsWith('W/')) outHeaders.etag = `W/${outHeaders.etag}`;
      if (!fault || (!fault.truncate && !fault.tamper && !fault.transform && !fault.compress && fault.stallAfter === undefined) || up.statusCode === 304) {
        entry.status = up.statusCode;
        res.writeHead(up.statusCode, outHeaders);
        up.on('data', (c) => { entry.bytes += c.length; });
        up.pipe(res);
        return;
      }
      const chunks = [];
      for await (const c of up) chunks.push(c);
      let body = Buffer.concat(chunks);
      if (fault.transform && up.statusCode === 200) {
        body = Buffer.from(TRANSFORMS[fault.transform](body.toString('utf8'), fault));
        const etag = `"fault-${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`;
        outHeaders.etag = etag;
        if (req.headers['if-none-match'] === etag) {
          entry.status = 304;
          delete outHeaders['content-length'];
          res.writeHead(304, outHeaders).end();
          return;
        }
      }
      if (fault.tamper && body.length > 0) {
        body = Buffer.from(body);
        body[body.length >> 1] ^= 0x55;
      }
      if (fault.truncate !== undefined) body = body.subarray(0, fault.truncate);
      if (fault.compress && up.statusCode === 200 && /\bgzip\b/.test(req.headers['accept-encoding'] ?? '')) {
        body = gzipSync(body);
        outHeaders['content-encoding'] = 'gzip';
        outHeaders.vary = 'Accept-Encoding';
        delete outHeaders['accept-ranges'];
      }
      entry.status = up.statusCode;
      if (fault.stallAfter !== undefined) {
        // Headers and the first bytes, then nothing: a stalled connection.
        res.writeHead(up.statusCode, outHeaders);
        res.write(body.subarray(0, fault.stallAfter));
        entry.bytes = Math.min(body.length, fault.stallAfter);
        return;
      }
      // Truncation keeps the response well-formed (no Content-Length): only the hash can tell.
      if (fault.truncate !== undefined) delete outHeaders['content-length'];
      else outHeaders['content-length'] = body.length;
      res.writeHead(up.statusCode, outHeaders);
      entry.bytes = body.length;
      res.end(body);
    });
    upstreamReq.on('error', () => res.destroy());
    req.pipe(upstreamReq);
  }

  const publicServer = http.createServer(async (req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/' || path === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
      return;
    }
    if (path.startsWith('/brasa/')) {
      const rel = normalize(path.slice('/brasa/'.length));
      if (rel.startsWith('..') || !/^dist\//.test(rel)) return res.writeHead(404).end();
      return staticFile(res, join(ROOT, 'npm', rel));
    }
    if (path.startsWith('/packages/')) {
      const rel = normalize(path.slice('/packages/'.length));
      if (rel.startsWith('..') || !/^[a-z0-9-]+\//.test(rel)) return res.writeHead(404).end();
      return staticFile(res, join(packageDir(rel.split('/')[0]), rel.slice(rel.indexOf('/') + 1)));
    }
    if (path === '/tests/registry/scenarios.js') return staticFile(res, join(ROOT, path));
    if (!path.startsWith('/registry/')) return res.writeHead(404).end();
    if (req.method === 'OPTIONS' && faults.some((f) => f.noPreflight && new RegExp(f.path).test(path))) {
      // A static host that knows GET and HEAD only: the preflight fails.
      log.push({ method: req.method, path, status: 405, bytes: 0, fault: 'noPreflight', ifNoneMatch: null, origin: req.headers.origin ?? null });
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed');
      return;
    }
    const fault = req.method === 'OPTIONS' ? null : faultFor(path);
    if (fault?.drop) {
      log.push({ method: req.method, path, status: 0, bytes: 0, fault: 'drop', ifNoneMatch: null });
      req.socket.destroy();
      return;
    }
    if (fault?.status) {
      log.push({ method: req.method, path, status: fault.status, bytes: 0, fault: 'status', ifNoneMatch: null });
      res.writeHead(fault.status, { 'access-control-allow-origin': '*', 'content-type': 'text/plain' }).end(`injected ${fault.status}`);
      return;
    }
    if (fault?.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
    forward(req, res, path, fault);
  });
  const sockets = new Set();
  publicServer.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });

  const listen = (server, port = 0) => new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server.address().port)));
  const port = await listen(publicServer);
  let running = true;

  const control = http.createServer(async (req, res) => {
    const cors = { 'access-control-allow-origin': '*', 'access-control-allow-headers': 'content-type', 'access-control-allow-methods': 'GET, POST' };
    if (req.method === 'OPTIONS') return res.writeHead(204, cors).end();
    let body = '';
    for await (const c of req) body += c;
    const args = body ? JSON.parse(body) : {};
    const reply = (value) => res.writeHead(200, { ...cors, 'content-type': 'application/json' }).end(JSON.stringify(value ?? null));
    switch (new URL(req.url, 'http://x').pathname) {
      case '/fault': faults.push(args); return reply({ faults: faults.length });
      case '/reset': faults = []; log = []; return reply();
      case '/log': return reply(log);
      case '/stop':
        if (running) {
          running = false;
          await new Promise((r) => { publicServer.close(r); for (const s of sockets) s.destroy(); });
        }
        return reply();
      case '/start':
        if (!running) { await listen(publicServer, port); running = true; }
        return reply();
      case '/registry':
        execFile(CLI, ['registry', '--registry', registryDir, ...args.args], (err, stdout, stderr) =>
          reply({ code: err ? err.code ?? 1 : 0, stdout, stderr }));
        return;
      default: return res.writeHead(404, cors).end();
    }
  });
  const controlPort = await listen(control);

  return {
    url: `http://127.0.0.1:${port}/`,
    registry: `http://127.0.0.1:${port}/registry/`,
    control: `http://127.0.0.1:${controlPort}/`,
    async stop() {
      for (const s of sockets) s.destroy();
      await Promise.all([new Promise((r) => publicServer.close(r)), new Promise((r) => control.close(r))]);
      upstream.stop();
    },
  };
}

/**
 * For a `node:test` file: a fresh registry (support's `makeRegistry`) behind a fault proxy,
 * started before the tests and removed after. The returned object's `registry` and `proxy`
 * are set once `before` has run.
 */
export function useFaultProxy() {
  const state = { registry: null, proxy: null };
  before(async () => {
    // 1.0.0 ships its code: the scenarios load it with and without a bundled package.
    state.registry = makeRegistry(undefined, { code: true });
    state.proxy = await startFaultProxy(state.registry.dir);
  });
  after(async () => {
    await state.proxy?.stop();
    state.registry?.remove();
  });
  return state;
}
