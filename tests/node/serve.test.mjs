// `brasa serve` over a registry made by `brasa registry publish`, checked with a real HTTP
// client: ETags and 304s, cache policy, Range requests, CORS, methods, path traversal.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
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
