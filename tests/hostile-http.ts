/**
 * Generated hostile HTTP traffic for a coordinator's port: odd request targets, methods
 * and versions; duplicated, oversized, malformed and conflicting headers; WebSocket
 * upgrades with bad or missing Sec-WebSocket-* headers (and good ones followed by
 * garbage); raw garbage (random bytes, a TLS ClientHello, the HTTP/2 preface); and
 * slowloris-style partial requests that the client closes or resets early.
 *
 * Never the job token on a control path (a test must not stop its own job), and never
 * a valid worker message (it would join the job): only garbage follows an accepted
 * upgrade. `hostileCases(random, n)` is deterministic in the seed.
 */
import { connect } from 'node:net';
import type { Random } from './fuzz-random.js';

export interface HostileCase {
  readonly name: string;
  /** Written in order; a pause of `gapMs` between pieces (a slow client). */
  readonly pieces: readonly Buffer[];
  readonly gapMs: number;
  /** 'read': read the answer; 'close' / 'reset': end the connection early, right after writing (FIN or RST). */
  readonly end: 'read' | 'close' | 'reset';
}

export interface HostileResult {
  readonly name: string;
  /** The status of the first response, null when none came (closed, reset, or no answer by the deadline). */
  readonly status: number | null;
}

const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const PATHS = ['/', '/healthz', '/readyz', '/api/status', '/api/metrics', '/metrics', '/api/stream', '/worker', '/api/pause', '/api/stop', '/api/model/model.json', '/assets/app.js', '/nothing'];
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'CONNECT', 'PRI', 'get', 'G\u00e9T', 'X'.repeat(40)];
const VERSIONS = ['HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/0.9', 'HTTP/1.1 extra', 'HTTX/1.1', ''];
const CONTROL = '\u0000\u0001\u0007\u0008\u000b\u000c\u001b\u007f';

function target(r: Random): string {
  const path = r.pick(PATHS);
  switch (r.int(16)) {
    case 0:
      return '//';
    case 1:
      return `/${'/'.repeat(r.int(5))}${path}`;
    case 2:
      return `http://${r.pick(['x', 'coordinator:7070', '', 'a@b', '[::1]'])}${r.chance(0.5) ? path : ''}`;
    case 3:
      return r.pick(['*', 'x:443', '127.0.0.1:7070', 'ftp://x/healthz', 'javascript://x/']);
    case 4:
      return `${path}/${r.pick(['%zz', '%', '%4', '%00', '%2e%2e', '%ff'])}`;
    case 5:
      return `/${r.string(r.pick([100, 4000, 9000, 17_000]), 'abcdefghij/')}`;
    case 6:
      return `${path}${r.string(1 + r.int(3), CONTROL)}`;
    case 7:
      return `${path}?${r.string(r.int(200), 'a=b&%?/#;:')}`;
    case 8:
      return `${path}#${r.string(5, 'frag')}`;
    case 9:
      return `${path}/../${r.pick(PATHS)}`;
    case 10:
      return `/\u00e9\u00ff${path}`;
    case 11:
      return '';
    default:
      return path;
  }
}

function header(r: Random): string {
  switch (r.int(20)) {
    case 0:
      return `X-Big: ${'b'.repeat(r.pick([1000, 9000, 20_000]))}`;
    case 1:
      return 'X-Repeated: value\r\n'.repeat(r.pick([10, 500, 3000])).slice(0, -2);
    case 2:
      return 'No-Colon-Here';
    case 3:
      return `X-Control: a${r.string(2, CONTROL)}b`;
    case 4:
      return ' folded: continuation';
    case 5:
      return `Content-Length: ${r.pick(['-1', 'abc', '99999999999999999999', '1, 2', '5'])}`;
    case 6:
      return 'Content-Length: 3\r\nContent-Length: 4';
    case 7:
      return 'Transfer-Encoding: chunked\r\nContent-Length: 10';
    case 8:
      return `Transfer-Encoding: ${r.pick(['gzip', 'chunked, identity', 'x'])}`;
    case 9:
      return 'Expect: 100-continue';
    case 10:
      return `Authorization: ${r.pick(['Bearer', 'Bearer ', 'Basic Zm9vOmJhcg==', `Bearer ${'t'.repeat(10_000)}`, 'Bearer wrong-token-0123456789'])}`;
    case 11:
      return 'Host: a\r\nHost: b';
    case 12:
      return `Connection: ${r.pick(['Upgrade', 'keep-alive, Upgrade', 'close, close', 'x'])}`;
    case 13:
      return `Upgrade: ${r.pick(['websocket', 'WebSocket', 'h2c', 'websocket, h2c', ''])}`;
    case 14:
      return `Sec-WebSocket-Key: ${r.pick([WS_KEY, 'short', '', '=====================a==', 'x'.repeat(300)])}`;
    case 15:
      return `Sec-WebSocket-Version: ${r.pick(['13', '8', '99', '-1', 'abc', '13, 8'])}`;
    case 16:
      return `Sec-WebSocket-Protocol: ${r.pick(['a,,b', 'a, a', ',', 'x'.repeat(2000)])}`;
    case 17:
      return `Sec-WebSocket-Extensions: ${r.pick(['permessage-deflate; client_max_window_bits=99', 'x;;;', 'permessage-deflate'])}`;
    case 18:
      return `\u00e9\u00ff: \u00ff`;
    default:
      return `X-${r.string(1 + r.int(20), 'abcXYZ-_')}: ${r.string(r.int(40), 'abc 123;=,')}`;
  }
}

const CRLF = '\r\n';
const latin1 = (s: string) => Buffer.from(s, 'latin1');

/** A WebSocket upgrade head to `path` with valid headers, and `token` if given. */
function upgradeHead(path: string, token: string | null, extra: readonly string[] = []): string {
  const lines = [`GET ${path} HTTP/1.1`, 'Host: x', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', `Sec-WebSocket-Key: ${WS_KEY}`, ...extra];
  if (token !== null) lines.push(`Authorization: Bearer ${token}`);
  return lines.join(CRLF) + CRLF + CRLF;
}

function oneCase(r: Random, i: number, token: string): HostileCase {
  const read = (name: string, ...pieces: (string | Buffer)[]): HostileCase => ({ name, pieces: pieces.map((p) => (typeof p === 'string' ? latin1(p) : p)), gapMs: 0, end: 'read' });
  const kind = r.int(100);
  if (kind < 30) {
    // An odd request line, with plausible headers.
    const line = `${r.pick(METHODS)} ${target(r)} ${r.pick(VERSIONS)}`.trimEnd();
    return read(`request line #${i}: ${line.slice(0, 60)}`, `${line}${CRLF}Host: x${CRLF}Connection: close${CRLF}${CRLF}`);
  }
  if (kind < 55) {
    // A plain request with one to four odd headers.
    const headers = Array.from({ length: 1 + r.int(4) }, () => header(r));
    const method = r.pick(['GET', 'GET', 'POST', 'HEAD']);
    const body = method === 'POST' && r.chance(0.5) ? `${r.string(r.int(30), '0123456789abcdef\r\n')}` : '';
    return read(`headers #${i}: ${method} ${headers.map((h) => h.slice(0, 30)).join(' | ')}`, `${method} ${r.pick(PATHS)} HTTP/1.1${CRLF}Host: x${CRLF}${headers.join(CRLF)}${CRLF}Connection: close${CRLF}${CRLF}${body}`);
  }
  if (kind < 75) {
    // An upgrade: bad headers, a bad or unknown target, no token, or a good one followed by garbage frames.
    const variant = r.int(5);
    if (variant === 0) return read(`upgrade #${i}: bad headers`, `GET ${r.pick(['/worker', '/api/stream'])} HTTP/1.1${CRLF}Host: x${CRLF}Connection: Upgrade${CRLF}${Array.from({ length: 1 + r.int(3), }, () => header(r)).join(CRLF)}${CRLF}${CRLF}`);
    if (variant === 1) return read(`upgrade #${i}: odd target`, upgradeHead(target(r), r.chance(0.5) ? token : null));
    if (variant === 2) return read(`upgrade #${i}: /worker without the token`, upgradeHead('/worker', r.pick([null, 'wrong-token-0123456789', ''])));
    // Accepted upgrades: the bytes after the head are garbage WebSocket frames (unmasked, reserved bits, huge lengths, random).
    const garbage = r.pick([r.bytes(1 + r.int(64)), Buffer.from([0x82, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), Buffer.from([0xf2, 0x80, 0, 0, 0, 0]), Buffer.from([0x81, 0x85, 0, 0, 0, 0, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1])]);
    const path = variant === 3 ? '/worker' : '/api/stream';
    return read(`upgrade #${i}: ${path} accepted, then ${garbage.length} garbage bytes`, Buffer.concat([latin1(upgradeHead(path, path === '/worker' ? token : null)), garbage]));
  }
  if (kind < 88) {
    // Garbage bytes.
    const variant = r.int(4);
    if (variant === 0) return read(`garbage #${i}: random bytes`, Buffer.concat([r.bytes(1 + r.int(2000)), latin1(`${CRLF}${CRLF}`)]));
    if (variant === 1) return read(`garbage #${i}: TLS ClientHello`, Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, ...r.bytes(64)]));
    if (variant === 2) return read(`garbage #${i}: HTTP/2 preface`, `PRI * HTTP/2.0${CRLF}${CRLF}SM${CRLF}${CRLF}`);
    return read(`garbage #${i}: a good request, then garbage on the same connection`, `GET /healthz HTTP/1.1${CRLF}Host: x${CRLF}${CRLF}`, r.bytes(1 + r.int(100)));
  }
  // Slowloris-style: part of a request, slowly, then the client goes away (FIN or RST) or stops reading.
  const full = latin1(`GET ${r.pick(PATHS)} HTTP/1.1${CRLF}Host: x${CRLF}X-Slow: ${'s'.repeat(r.int(200))}${CRLF}${CRLF}`);
  const cut = 1 + r.int(full.length - 1);
  const n = 1 + r.int(4);
  const pieces = Array.from({ length: n }, (_, k) => full.subarray(Math.floor((k * cut) / n), Math.floor(((k + 1) * cut) / n)));
  return { name: `partial #${i}: ${cut} of ${full.length} bytes`, pieces, gapMs: 20 + r.int(80), end: r.pick(['close', 'reset', 'read'] as const) };
}

export function hostileCases(r: Random, n: number, token: string): HostileCase[] {
  return Array.from({ length: n }, (_, i) => oneCase(r, i, token));
}

/** Sends one case to 127.0.0.1:port; resolves (never rejects) with the first response's status, if any came within `deadlineMs`. */
export function sendCase(port: number, c: HostileCase, deadlineMs = 1000): Promise<HostileResult> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(got);
      socket.destroy();
      resolve({ name: c.name, status: m ? Number(m[1]) : null });
    };
    const timer = setTimeout(finish, deadlineMs);
    socket.on('error', () => {});
    socket.on('close', finish);
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      // A whole response head is all we need (an accepted upgrade, or a keep-alive answer, stays open).
      if (got.includes('\r\n\r\n')) finish();
    });
    socket.once('connect', async () => {
      for (const [k, piece] of c.pieces.entries()) {
        if (k > 0 && c.gapMs > 0) await new Promise((r) => setTimeout(r, c.gapMs));
        if (settled) return;
        socket.write(piece);
      }
      if (c.end === 'close') {
        socket.end();
        finish();
      } else if (c.end === 'reset') {
        socket.resetAndDestroy();
        finish();
      }
    });
  });
}

/** Runs `cases` with at most `concurrency` connections at once; results in case order. */
export async function sendAll(port: number, cases: readonly HostileCase[], concurrency: number, onResult?: (r: HostileResult) => void): Promise<HostileResult[]> {
  const results: HostileResult[] = new Array(cases.length);
  let next = 0;
  const lane = async () => {
    while (next < cases.length) {
      const i = next++;
      results[i] = await sendCase(port, cases[i]!);
      onResult?.(results[i]!);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return results;
}
