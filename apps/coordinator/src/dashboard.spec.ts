/**
 * The dashboard's static files and the model download (dashboard.ts) on a bare HTTP
 * server: the allowlist and nothing else, content types, ETag revalidation, and the
 * model's files 404 until the run has written them.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDashboard } from './dashboard.js';

let server: Server;
let base = '';
let dir = '';
let modelDir: string | null = null;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ringtrain-dashboard-'));
  const dashboard = loadDashboard(() => modelDir);
  server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (!dashboard.handle(req, res, path)) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"code":"NOT_FOUND"}');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

test('/ is the page, with the elements the browser test reads; its scripts and styles are served from here', async () => {
  const res = await fetch(`${base}/`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.equal(res.headers.get('cache-control'), 'no-cache');
  const html = await res.text();
  for (const id of ['state', 'step', 'loss-chart', 'workers', 'events', 'checkpoints', 'token', 'pause', 'resume', 'stop']) assert.match(html, new RegExp(`id="${id}"`));
  const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!).filter((r) => !r.startsWith('/api/') && !r.startsWith('data:'));
  assert.deepEqual(refs.sort(), ['/assets/app.js', '/assets/style.css', '/assets/uPlot.iife.min.js', '/assets/uPlot.min.css']);
  assert.ok(!/https?:\/\//.test(html), 'nothing from the internet');
  for (const ref of refs) {
    const r = await fetch(`${base}${ref}`);
    assert.equal(r.status, 200, ref);
    assert.match(r.headers.get('content-type')!, ref.endsWith('.js') ? /^text\/javascript/ : /^text\/css/, ref);
  }
  const uplot = await (await fetch(`${base}/assets/uPlot.iife.min.js`)).text();
  assert.match(uplot, /uPlot/);
  // The modules app.js imports are served too.
  const app = await (await fetch(`${base}/assets/app.js`)).text();
  for (const m of app.matchAll(/from '\.\/([a-z-]+\.js)'/g)) assert.equal((await fetch(`${base}/assets/${m[1]}`)).status, 200, m[1]);
});

test('an unchanged file is answered 304 to its ETag', async () => {
  const first = await fetch(`${base}/assets/style.css`);
  const etag = first.headers.get('etag');
  assert.ok(etag);
  const again = await fetch(`${base}/assets/style.css`, { headers: { 'if-none-match': etag } });
  assert.equal(again.status, 304);
  assert.equal(await again.text(), '');
});

test('only the listed files: traversal, other names and other methods are not served', async () => {
  const paths = ['/assets/../package.json', '/assets/..%2F..%2Fpackage.json', '/assets/%2e%2e/%2e%2e/package.json', '/assets/', '/assets/index.html', '/dashboard/app.js', '/src/server.ts', '/assets/uPlot.js', '/assets/APP.JS'];
  for (const p of paths) {
    const res = await fetch(`${base}${p}`);
    assert.equal(res.status, 404, p);
    assert.equal(((await res.json()) as { code: string }).code, 'NOT_FOUND', p);
  }
  assert.equal((await fetch(`${base}/`, { method: 'POST' })).status, 404);
});

test('the model files are 404 NOT_FOUND until the run writes them, then served as written', async () => {
  for (const name of ['model.json', 'weights.bin']) {
    const res = await fetch(`${base}/api/model/${name}`);
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { code: string }).code, 'NOT_FOUND');
  }
  modelDir = join(dir, 'model');
  await mkdir(modelDir);
  assert.equal((await fetch(`${base}/api/model/model.json`)).status, 404, 'a model directory without its files');
  await writeFile(join(modelDir, 'model.json'), '{"format":"layers-model"}');
  await writeFile(join(modelDir, 'weights.bin'), Buffer.from([1, 2, 3, 4]));
  const json = await fetch(`${base}/api/model/model.json`);
  assert.equal(json.status, 200);
  assert.equal(json.headers.get('content-type'), 'application/json; charset=utf-8');
  assert.deepEqual(await json.json(), { format: 'layers-model' });
  const bin = await fetch(`${base}/api/model/weights.bin`);
  assert.equal(bin.headers.get('content-type'), 'application/octet-stream');
  assert.deepEqual([...new Uint8Array(await bin.arrayBuffer())], [1, 2, 3, 4]);
  assert.equal((await fetch(`${base}/api/model/optimizer.bin`)).status, 404);
});
