/**
 * The dashboard's files and the trained model, served by the coordinator:
 *   GET /                         the page (apps/coordinator/dashboard/index.html)
 *   GET /assets/NAME              its script and style, and uPlot from node_modules
 *   GET /api/model/model.json     the trained model (LayersModel), once written;
 *   GET /api/model/weights.bin    404 NOT_FOUND before
 * Only the names in `ASSETS` are served, read into memory at start (nothing is fetched
 * from the internet, and no request path ever reaches the file system), with an ETag:
 * `cache-control: no-cache` lets a browser keep them and revalidate with a 304.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Asset {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
}

/** The dashboard's own files: its page, modules and style (report.html inlines some of them too). */
export const DASHBOARD_DIR = fileURLToPath(new URL('../dashboard/', import.meta.url));
const require = createRequire(import.meta.url);
/** uPlot's script (it defines the global `uPlot`) and style, from node_modules. */
export const UPLOT_FILES = { js: require.resolve('uplot/dist/uPlot.iife.min.js'), css: require.resolve('uplot/dist/uPlot.min.css') } as const;

const JS = 'text/javascript; charset=utf-8';
const CSS = 'text/css; charset=utf-8';

/** URL path -> file. The whole of what the dashboard serves. */
function assetFiles(): ReadonlyMap<string, [file: string, type: string]> {
  return new Map([
    ['/', [join(DASHBOARD_DIR, 'index.html'), 'text/html; charset=utf-8']],
    ['/assets/app.js', [join(DASHBOARD_DIR, 'app.js'), JS]],
    ['/assets/charts.js', [join(DASHBOARD_DIR, 'charts.js'), JS]],
    ['/assets/view.js', [join(DASHBOARD_DIR, 'view.js'), JS]],
    ['/assets/style.css', [join(DASHBOARD_DIR, 'style.css'), CSS]],
    ['/assets/uPlot.iife.min.js', [UPLOT_FILES.js, JS]],
    ['/assets/uPlot.min.css', [UPLOT_FILES.css, CSS]],
  ]);
}

/** The model files a run writes (libs/model's LayersModel), by the name they are served under. */
const MODEL_FILES: ReadonlyMap<string, string> = new Map([
  ['/api/model/model.json', 'application/json; charset=utf-8'],
  ['/api/model/weights.bin', 'application/octet-stream'],
]);

export interface Dashboard {
  /** Answers `req` if its path is the dashboard's or the model's; false otherwise. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean;
}

/** Reads the dashboard's files (throws if one is missing: a broken install should not start). */
export function loadDashboard(modelDir: () => string | null): Dashboard {
  const assets = new Map<string, Asset>();
  for (const [path, [file, type]] of assetFiles()) {
    const body = readFileSync(file);
    assets.set(path, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` });
  }
  return {
    handle(req, res, path) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return false;
      const asset = assets.get(path === '/index.html' ? '/' : path);
      if (asset) {
        serveAsset(req, res, asset);
        return true;
      }
      const type = MODEL_FILES.get(path);
      if (type === undefined) return false;
      // Asynchronous, so outside server.ts's try/catch: a failure ends this response, never the process.
      serveModelFile(req, res, modelDir(), path.slice('/api/model/'.length), type).catch(() => res.destroy());
      return true;
    },
  };
}

function serveAsset(req: IncomingMessage, res: ServerResponse, a: Asset): void {
  const headers = { 'content-type': a.type, etag: a.etag, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' };
  if (req.headers['if-none-match'] === a.etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, { ...headers, 'content-length': a.body.length });
  res.end(req.method === 'HEAD' ? undefined : a.body);
}

async function serveModelFile(req: IncomingMessage, res: ServerResponse, dir: string | null, name: string, type: string): Promise<void> {
  const file = dir === null ? null : join(dir, name);
  const size = file === null ? null : await stat(file).then((s) => (s.isFile() ? s.size : null), () => null);
  if (file === null || size === null) {
    const body = JSON.stringify({ code: 'NOT_FOUND', message: dir === null ? 'no model yet: it is written when training completes' : `no ${name} in ${dir}` });
    res.writeHead(404, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
    res.end(body);
    return;
  }
  res.writeHead(200, { 'content-type': type, 'content-length': size, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
  if (req.method === 'HEAD') return void res.end();
  createReadStream(file)
    .on('error', () => res.destroy())
    .pipe(res);
}
