import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_TARGET_LENGTH, parseTarget } from './request-target.js';

const ok = (raw: string) => {
  const t = parseTarget(raw);
  assert.ok(t.ok, `${JSON.stringify(raw)}: ${t.ok ? '' : t.reason}`);
  return [t.path, t.query];
};
const refused = (raw: string | undefined, reason: RegExp) => {
  const t = parseTarget(raw);
  assert.ok(!t.ok, `${JSON.stringify(raw)} was accepted`);
  assert.match(t.reason, reason, JSON.stringify(raw));
};

test('origin-form: the path as sent, the query split off, nothing decoded or normalized', () => {
  assert.deepEqual(ok('/'), ['/', '']);
  assert.deepEqual(ok('/healthz'), ['/healthz', '']);
  assert.deepEqual(ok('/api/status?x=1&y'), ['/api/status', 'x=1&y']);
  assert.deepEqual(ok('/?'), ['/', '']);
  // `new URL('//', base)` throws ERR_INVALID_URL: this target used to end the process.
  assert.deepEqual(ok('//'), ['//', '']);
  assert.deepEqual(ok('//x/healthz'), ['//x/healthz', '']);
  assert.deepEqual(ok('/a/../healthz'), ['/a/../healthz', '']);
  assert.deepEqual(ok('/api/%73tatus'), ['/api/%73tatus', '']);
  assert.deepEqual(ok('/a?b?c'), ['/a', 'b?c']);
});

test('absolute-form (http and https, any case): its path, or / when it has none', () => {
  assert.deepEqual(ok('http://x/healthz'), ['/healthz', '']);
  assert.deepEqual(ok('HTTPS://coordinator:7070/api/status?s=1'), ['/api/status', 's=1']);
  assert.deepEqual(ok('http://x'), ['/', '']);
  assert.deepEqual(ok('http://x?q'), ['/', 'q']);
  assert.deepEqual(ok('http:///metrics'), ['/metrics', '']);
  assert.deepEqual(ok('http://user@host:1/worker'), ['/worker', '']);
});

test('everything else is refused with the reason', () => {
  refused(undefined, /empty/);
  refused('', /empty/);
  refused('*', /asterisk-form/);
  refused('example.com:443', /neither a path nor an absolute http URL/);
  refused('healthz', /neither/);
  refused('ftp://x/healthz', /scheme ftp/);
  refused('javascript://x/', /scheme javascript/);
  refused('/%zz', /% not followed by two hex digits/);
  refused('/%', /%/);
  refused('/a%2', /%/);
  refused('/a b', /space/);
  refused('/a\tb', /control/);
  refused('/a\u0000', /control/);
  refused('/a\u007f', /control/);
  refused('/\u00e9', /non-ASCII/);
  refused('/a#b', /fragment/);
  refused(`/${'a'.repeat(MAX_TARGET_LENGTH)}`, /characters; at most 8192/);
  assert.ok(parseTarget(`/${'a'.repeat(MAX_TARGET_LENGTH - 1)}`).ok, 'the longest target allowed');
});

test('any string at all: never a throw, and a path that starts with /', () => {
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 16;
  const alphabet = '/?#%:@*.-_~AZaz09 \t\u0000\u00ff\u2028hHtTpPsS';
  for (let i = 0; i < 20_000; i++) {
    let s = i % 3 === 0 ? 'http://' : i % 3 === 1 ? '/' : '';
    const n = next() % 24;
    for (let j = 0; j < n; j++) s += alphabet[next() % alphabet.length];
    const t = parseTarget(s);
    if (t.ok) assert.ok(t.path.startsWith('/') && !t.path.includes('?'), JSON.stringify(s));
  }
});
