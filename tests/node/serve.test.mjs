// `brasa serve` over a registry made by `brasa registry publish`, checked with a real HTTP
// client: ETags and 304s, cache policy, Range requests, CORS, methods, path traversal, and
// idle keep-alive connections holding up no one.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CLI, publishArgs, serve, weightsPath } from '../support.mjs';

const dir = mkdtempSync(join(tmpdir(), 'brasa-serve-'));
let server, manifest, filePath;

before(async () => {
  execFileSync(CLI, ['registry', '--registry', dir, ...publishArgs('1.0.0', weightsPath(), { channel: 'stable' })], { stdio: 'pipe' });
  manifest = JSON.parse(readFileSync(join(dir, 'mnist/manifest.json'), 'utf8'));
  filePath = manifest.versions['1.0.0'].files[0].path;
  server = await serve(dir);
});
after(() => {
  server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const url = (p) => new URL(p, server.url);

test('manifests revalidate with a strong ETag and 304', async () => {
  const first = await fetch(url('mnist/manifest.json'));
  assert.equal(first.status, 200);
  assert.equal(first.headers.get('cache-control'), 'no-cache');
  assert.equal(first.headers.get('content-type'), 'application/json');
  assert.equal(first.headers.get('access-control-allow-origin'), '*');
  const etag = first.headers.get('etag');
  assert.match(etag, /^"sha256-[0-9a-f]{64}"$/);
  const body = Buffer.from(await first.arrayBuffer());
  assert.equal(etag, `"sha256-${createHash('sha256').update(body).digest('hex')}"`);
  const second = await fetch(url('mnist/manifest.json'), { headers: { 'If-None-Match': etag } });
  assert.equal(second.status, 304);
  assert.equal(second.headers.get('etag'), etag);
  // If-None-Match compares weakly (RFC 9110): a weak validator of the same tag matches.
  const weak = await fetch(url('mnist/manifest.json'), { headers: { 'If-None-Match': `"x", W/${etag}` } });
  assert.equal(weak.status, 304);
  const other = await fetch(url('mnist/manifest.json'), { headers: { 'If-None-Match': '"sha256-0"' } });
  assert.equal(other.status, 200);
  await other.arrayBuffer();
});

test('content-addressed files are immutable and match their names', async () => {
  const res = await fetch(url(`mnist/${filePath}`));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  const bytes = Buffer.from(await res.arrayBuffer());
  const hash = createHash('sha256').update(bytes).digest('hex');
  assert.equal(hash, manifest.versions['1.0.0'].files[0].sha256);
  assert.equal(res.headers.get('etag'), `"sha256-${hash}"`);
  assert.equal(res.headers.get('accept-ranges'), 'bytes');
});

test('Range requests return the right bytes', async () => {
  const whole = Buffer.from(await (await fetch(url(`mnist/${filePath}`))).arrayBuffer());
  const cases = [['bytes=0-99', 0, 100], ['bytes=1000-', 1000, whole.length], ['bytes=-10', whole.length - 10, whole.length]];
  for (const [range, start, end] of cases) {
    const res = await fetch(url(`mnist/${filePath}`), { headers: { Range: range } });
    assert.equal(res.status, 206, range);
    assert.equal(res.headers.get('content-range'), `bytes ${start}-${end - 1}/${whole.length}`);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), whole.subarray(start, end), range);
  }
  const bad = await fetch(url(`mnist/${filePath}`), { headers: { Range: `bytes=${whole.length}-` } });
  assert.equal(bad.status, 416);
  assert.equal(bad.headers.get('content-range'), `bytes */${whole.length}`);
  await bad.arrayBuffer();
});

test('CORS preflight, HEAD, other methods and path traversal', async () => {
  const pre = await fetch(url('mnist/manifest.json'), { method: 'OPTIONS' });
  assert.equal(pre.status, 204);
  assert.match(pre.headers.get('access-control-allow-headers'), /Range/);
  const head = await fetch(url(`mnist/${filePath}`), { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(Number(head.headers.get('content-length')), manifest.versions['1.0.0'].files[0].size);
  const post = await fetch(url('mnist/manifest.json'), { method: 'POST', body: 'x' });
  assert.equal(post.status, 405);
  await post.arrayBuffer();
  // fetch normalises "..", so send the raw path.
  const status = await new Promise((resolve, reject) => {
    const req = request(url('/'), { path: '/../../etc/passwd' }, (res) => { res.resume(); resolve(res.statusCode); });
    req.on('error', reject);
    req.end();
  });
  assert.equal(status, 404);
});

test('symlinks that lead out of the served folder are not followed (404); ones inside it are', async () => {
  const outside = mkdtempSync(join(tmpdir(), 'brasa-serve-outside-'));
  try {
    writeFileSync(join(outside, 'secret.txt'), 'secret');
    mkdirSync(join(dir, 'links'));
    symlinkSync('/etc/passwd', join(dir, 'links/passwd'));
    symlinkSync(join(outside, 'secret.txt'), join(dir, 'links/secret.txt'));
    symlinkSync(outside, join(dir, 'links/outside'));
    symlinkSync(join(dir, 'mnist/manifest.json'), join(dir, 'links/manifest.json'));
    for (const path of ['links/passwd', 'links/secret.txt', 'links/outside/secret.txt', 'links/outside/']) {
      const res = await fetch(url(path));
      assert.equal(res.status, 404, path);
      assert.doesNotMatch(await res.text(), /secret|root:/, path);
    }
    const inside = await fetch(url('links/manifest.json'));
    assert.equal(inside.status, 200);
    assert.deepEqual(await inside.json(), manifest);
  } finally {
    rmSync(join(dir, 'links'), { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  }
});

/** One raw request on a fresh connection; resolves to the response's head (status line and headers) and body, as text. */
function rawRequest(method, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(server.url);
    const s = connect({ host: hostname, port: Number(port) }, () => {
      const lines = Object.entries({ Host: `${hostname}:${port}`, Connection: 'close', ...headers }).map(([k, v]) => `${k}: ${v}\r\n`);
      s.write(`${method} ${path} HTTP/1.1\r\n${lines.join('')}\r\n`);
    });
    let got = '';
    s.on('data', (chunk) => { got += chunk.toString('latin1'); });
    s.on('end', () => {
      const at = got.indexOf('\r\n\r\n');
      resolve({ head: got.slice(0, at), body: got.slice(at + 4) });
    });
    s.on('error', reject);
  });
}

// RFC 9110/9111 as CDNs, proxies and browsers apply them, and CORS for a registry on another origin.
test('304s carry the validator and cache policy, no body and no Content-Length; HEAD too', async () => {
  const etag = (await fetch(url('mnist/manifest.json'), { method: 'HEAD' })).headers.get('etag');
  for (const method of ['GET', 'HEAD']) {
    const { head, body } = await rawRequest(method, '/mnist/manifest.json', { 'If-None-Match': `W/${etag}` });
    assert.match(head, /^HTTP\/1\.1 304/, method);
    assert.equal(body, '', method);
    assert.doesNotMatch(head, /^content-length:/im, `${method}: ${head}`);
    assert.match(head, new RegExp(`^etag: ${etag.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'im'));
    assert.match(head, /^cache-control: no-cache$/im);
  }
});

test('If-Range: a stale validator gets the whole file, never a part of another version', async () => {
  const res = await fetch(url(`mnist/${filePath}`));
  const etag = res.headers.get('etag');
  const size = Number(res.headers.get('content-length'));
  await res.arrayBuffer();
  const current = await fetch(url(`mnist/${filePath}`), { headers: { Range: 'bytes=0-99', 'If-Range': etag } });
  assert.equal(current.status, 206);
  assert.equal((await current.arrayBuffer()).byteLength, 100);
  for (const validator of ['"sha256-0"', `W/${etag}`, 'Tue, 01 Dec 2026 00:00:00 GMT']) {
    const stale = await fetch(url(`mnist/${filePath}`), { headers: { Range: 'bytes=0-99', 'If-Range': validator } });
    assert.equal(stale.status, 200, validator);
    assert.equal((await stale.arrayBuffer()).byteLength, size, validator);
  }
});

test('a 416 is never cacheable: one Cache-Control, no-store', async () => {
  const { head } = await rawRequest('GET', `/mnist/${filePath}`, { Range: 'bytes=999999999-' });
  assert.match(head, /^HTTP\/1\.1 416/);
  assert.deepEqual(head.match(/^cache-control: .*$/gim), ['cache-control: no-store']);
});

test('CORS preflight allows what browsers ask for, and is cached; ETag is readable cross-origin', async () => {
  const pre = await fetch(url('mnist/manifest.json'), {
    method: 'OPTIONS',
    headers: { Origin: 'http://127.0.0.1:1', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'if-none-match,if-modified-since,cache-control' },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), '*');
  const allowed = pre.headers.get('access-control-allow-headers').toLowerCase().split(/\s*,\s*/);
  for (const name of ['if-none-match', 'if-modified-since', 'cache-control']) assert.ok(allowed.includes(name), `${name} not in ${allowed}`);
  assert.match(pre.headers.get('access-control-allow-methods'), /GET/);
  assert.ok(Number(pre.headers.get('access-control-max-age')) > 0);
  const get = await fetch(url('mnist/manifest.json'), { headers: { Origin: 'http://127.0.0.1:1' } });
  await get.arrayBuffer();
  const exposed = get.headers.get('access-control-expose-headers').toLowerCase().split(/\s*,\s*/);
  assert.ok(exposed.includes('etag'), exposed.join());
});

/** A raw TCP connection to the server, open. */
function socket() {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(server.url);
    const s = connect({ host: hostname, port: Number(port) }, () => resolve(s));
    s.on('error', reject);
  });
}

/** Send one complete keep-alive request on `s` and wait for the whole response. */
function requestOn(s, path) {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (chunk) => {
      got = Buffer.concat([got, chunk]);
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/content-length: *(\d+)/i.exec(got.subarray(0, end).toString())?.[1]);
      if (got.length >= end + 4 + length) {
        s.off('data', onData);
        resolve(got.subarray(0, end).toString());
      }
    };
    s.on('data', onData);
    s.once('error', reject);
    s.write(`GET ${path} HTTP/1.1\r\nHost: ${new URL(server.url).host}\r\nConnection: keep-alive\r\n\r\n`);
  });
}

/** One GET through `agent`; rejects if no whole answer comes within `ms`. */
function getWithin(agent, path, ms) {
  return new Promise((resolve, reject) => {
    const req = request(url(path), { agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => { clearTimeout(timer); resolve({ status: res.statusCode, body: Buffer.concat(chunks) }); });
      res.on('error', reject);
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer to ${path} within ${ms} ms`)), ms);
    req.on('error', (err) => { clearTimeout(timer); reject(err); });
    req.end();
  });
}

// tiny_http, which `brasa serve` used to run on, lost a wake-up in its connection thread pool:
// when connections arrived together while a worker thread was idle, all but one were queued
// for threads that never came, the others sitting blocked on idle keep-alive connections
// (about one benchmark run in seven hung on a page's first module imports).
test('idle keep-alive connections hold up no one', async () => {
  const held = [];
  // Agents that keep their connections open after each answer, as a browser does.
  const browsers = [];
  try {
    // Six keep-alive connections that made one request each and stay open, six that
    // connected and sent nothing, and one stuck halfway through its headers.
    for (let i = 0; i < 6; i++) {
      const s = await socket();
      held.push(s);
      assert.match(await requestOn(s, '/mnist/manifest.json'), /^HTTP\/1\.1 200/);
    }
    for (let i = 0; i < 6; i++) held.push(await socket());
    const partial = await socket();
    held.push(partial);
    partial.write(`GET /mnist/manifest.json HTTP/1.1\r\nHost: ${new URL(server.url).host}\r\n`);
    // Ten rounds of: a few one-off requests (a server with a thread pool has idle threads again),
    // then twenty new connections at once, kept open afterwards: every one answered promptly.
    for (let round = 0; round < 10; round++) {
      await Promise.all(Array.from({ length: 4 }, () => getWithin(false, 'mnist/manifest.json', 5000)));
      const browser = new Agent({ keepAlive: true, maxSockets: Infinity });
      browsers.push(browser);
      const started = Date.now();
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => getWithin(browser, i % 2 ? 'mnist/manifest.json' : `mnist/${filePath}`, 5000)),
      );
      for (const [i, { status, body }] of results.entries()) {
        assert.equal(status, 200);
        if (i % 2) assert.deepEqual(JSON.parse(body.toString()), manifest);
        else assert.equal(body.length, manifest.versions['1.0.0'].files[0].size);
      }
      assert.ok(Date.now() - started < 5000, `round ${round} took ${Date.now() - started} ms`);
    }
    // The held connections are still usable.
    assert.match(await requestOn(held[0], '/mnist/manifest.json'), /^HTTP\/1\.1 200/);
  } finally {
    for (const b of browsers) b.destroy();
    for (const s of held) s.destroy();
  }
});
