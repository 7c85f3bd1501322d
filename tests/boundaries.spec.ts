/**
 * The dependency rules of docs/ARCHITECTURE.md, checked on the sources: apps depend on
 * libs and never the reverse; libs/allreduce knows nothing of models or data, and
 * libs/model and libs/data nothing of sockets; every cross-package import goes through
 * the package name (so through its src/index.ts), never into another package's files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** What each package may import, among ours and among the network libraries. */
const ALLOWED: Record<string, readonly string[]> = {
  'libs/data': [],
  'libs/model': ['@ringtrain/data'],
  'libs/train': ['@ringtrain/data', '@ringtrain/model'],
  'libs/allreduce': ['ws', 'msgpackr', 'bufferutil', 'node:net', 'node:http', 'node:https', 'node:tls'],
  'libs/protocol': ['msgpackr'],
  // The coordinator probes a worker's ring endpoint with the ring's own handshake (probeEndpoint); it never joins a ring.
  'apps/coordinator': ['@ringtrain/data', '@ringtrain/model', '@ringtrain/train', '@ringtrain/protocol', '@ringtrain/allreduce'],
  'apps/worker': ['@ringtrain/data', '@ringtrain/model', '@ringtrain/train', '@ringtrain/allreduce', '@ringtrain/protocol'],
  // protocol: the exit statuses the coordinator and worker commands end with (EXIT).
  'apps/cli': ['@ringtrain/data', '@ringtrain/model', '@ringtrain/train', '@ringtrain/allreduce', '@ringtrain/protocol', '@ringtrain/worker', '@ringtrain/coordinator'],
};
const OURS = /^@ringtrain\//;
const NETWORK = new Set(['ws', 'msgpackr', 'bufferutil', 'node:net', 'node:http', 'node:https', 'node:tls', 'net', 'http']);
/** TensorFlow.js belongs to libs/model (and the apps and libs above it), not to data or the ring. */
const NO_TFJS = new Set(['libs/data', 'libs/allreduce', 'libs/protocol']);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'node_modules' || name === 'dist' ? [] : sources(path);
    return path.endsWith('.ts') && !path.endsWith('.spec.ts') ? [path] : [];
  });
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const re = /(?:^|\n)\s*(?:import|export)\b[^'";]*?from\s*['"]([^'"]+)['"]|(?:^|\n)\s*import\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
  return [...text.matchAll(re)].map((m) => (m[1] ?? m[2] ?? m[3])!);
}

for (const [pkg, allowed] of Object.entries(ALLOWED)) {
  test(`${pkg} imports only what the architecture allows`, () => {
    const problems: string[] = [];
    let seen = 0;
    for (const file of sources(join(ROOT, pkg, 'src'))) {
      for (const spec of imports(file)) {
        seen += 1;
        const where = relative(ROOT, file);
        if (OURS.test(spec) && !allowed.includes(spec)) problems.push(`${where} imports ${spec}`);
        if (NETWORK.has(spec) && !allowed.includes(spec) && !pkg.startsWith('apps/')) problems.push(`${where} imports ${spec}`);
        if (NO_TFJS.has(pkg) && spec.startsWith('@tensorflow/')) problems.push(`${where} imports ${spec}`);
        if (spec.startsWith('.')) {
          const target = relative(join(ROOT, pkg), resolve(dirname(file), spec));
          if (target.startsWith('..')) problems.push(`${where} reaches outside its package: ${spec}`);
        }
      }
    }
    assert.ok(seen > 0, 'the import scanner found no imports at all');
    assert.deepEqual(problems, []);
  });
}

test('the import scanner sees every form of import', () => {
  const dir = join(ROOT, 'tests');
  const self = imports(join(dir, 'boundaries.spec.ts'));
  assert.ok(self.includes('node:test') && self.includes('node:fs'));
  // Side-effect and dynamic imports, from a real file that has both.
  const backend = imports(join(ROOT, 'libs/model/src/backend.ts'));
  assert.ok(backend.includes('@tensorflow/tfjs-backend-wasm'), backend.join(', '));
  const main = imports(join(ROOT, 'apps/cli/src/main.ts'));
  assert.ok(main.includes('./commands/train.js'), main.join(', '));
});
