/**
 * Fuzzing the two doors a peer can knock on (issue 13): the coordinator's `/worker`
 * control channel, and a worker's ring endpoint handshake. Each target is a process of
 * its own (tests/fuzz-targets.ts), so a crash is an exit the test sees.
 *
 * The inputs are generated from the protocols: worker messages from libs/protocol's zod
 * schemas (tests/fuzz-schema.ts: valid-shaped messages with one field broken: a wrong
 * type, a number out of range, a huge string or array, a key added or removed, a wrong
 * `type`), handshake messages from the documented handshake (with a wrong or a right
 * HMAC over mutated fields), random msgpack values, random bytes and text frames.
 *
 * For each connection the test predicts the answer and checks it: without the token a
 * `/worker` upgrade gets HTTP 401; a message the protocol's decoder refuses closes its
 * connection with 1008 PROTOCOL_BAD_MESSAGE; a handshake message closes with the ring
 * code the documentation gives it (RING_BAD_FRAME 4005, RING_FRAME_TOO_LARGE 4006,
 * RING_AUTH_FAILED 4004 (checked before a hello may wait for its ring), RING_OP_MISMATCH
 * 4007, RING_STALE_GENERATION 4009, a signed hello for a generation no ring waits for
 * RING_TIMEOUT 4002); a valid hello gets the welcome with
 * the server's proof. Afterwards each target is alive and serving (a real worker
 * registers, a valid hello links), its log said a few lines rather than one per
 * refusal, and its memory is back to its base (below).
 *
 * Seeds are fixed (deterministic in CI) and printed; RINGTRAIN_FUZZ_SEED=<seed> replays.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Packr } from 'msgpackr';
import { WebSocket } from 'ws';
import { decodeCoordinatorMessage, decodeWorkerMessage, encodeMessage, PROTOCOL_VERSION, WorkerMessage } from '@ringtrain/protocol';
import { decodeHandshake } from '../libs/allreduce/src/handshake.js';
import { fuzzSeed, Random } from './fuzz-random.js';
import { messageTypes, mutate, sample, type Schema } from './fuzz-schema.js';
import { RING_HANDSHAKE_MS, RING_SEGMENT_BYTES, type TargetMessage } from './fuzz-target-protocol.js';
import { sendCase } from './hostile-http.js';

const TARGETS = fileURLToPath(new URL('./fuzz-targets.ts', import.meta.url));
const TOKEN = 'fuzz-test-token-0123456789abcdef';
const CONCURRENCY = 8;
/**
 * How much a target's heap may grow over the fuzzing, measured after full collections,
 * the first measure taken after a warm-up round (so that compiled code and caches are
 * in both). A leak of what one connection holds (its WebSocket, parser and buffers, a
 * few KiB at least) over the thousands of connections here would be several MiB; what
 * is left legitimately is bounded and small (the runtime's last 200 events, a generation
 * record per registration: 300 x ~150 bytes). Measured: 0.1-0.6 MiB (the coordinator),
 * under 0.1 MiB (the ring endpoint).
 */
const HEAP_SLACK = 2 * 1024 * 1024;
/** External memory (Buffers) may differ by this, e.g. a socket's read buffer alive when measured. */
const EXTERNAL_SLACK = 2 * 1024 * 1024;

const packr = new Packr({ useRecords: false, moreTypes: false });

// ---- targets -----------------------------------------------------------------------

interface Memory {
  heapUsed: number;
  external: number;
}

class Target {
  readonly stderr: string[] = [];
  private readonly inbox: TargetMessage[] = [];
  port = 0;

  private constructor(readonly child: ChildProcess) {
    child.on('message', (m: TargetMessage) => this.inbox.push(m));
    let partial = '';
    child.stderr!.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop()!;
      this.stderr.push(...lines);
    });
  }

  static async start(args: readonly string[]): Promise<Target> {
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', TARGETS, ...args], { stdio: ['ignore', 'inherit', 'pipe', 'ipc'] });
    const t = new Target(child);
    t.port = (await t.next('ready', 60_000)).port;
    return t;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async next<T extends TargetMessage['type']>(type: T, timeoutMs = 10_000): Promise<Extract<TargetMessage, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex((m) => m.type === type);
      if (i >= 0) return this.inbox.splice(i, 1)[0] as Extract<TargetMessage, { type: T }>;
      if (!this.alive) throw new Error(`the fuzz target exited (${this.child.exitCode ?? this.child.signalCode}):\n${this.stderr.slice(-30).join('\n')}`);
      if (Date.now() > deadline) throw new Error(`no ${type} from the fuzz target within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Heap and external memory after full collections, once the connections still closing are gone. */
  async memory(settleMs: number): Promise<Memory> {
    await new Promise((r) => setTimeout(r, settleMs));
    this.child.send({ type: 'memory' });
    const m = await this.next('memory');
    return { heapUsed: m.heapUsed, external: m.external };
  }

  /** Lines its logger wrote for refusals, or any line at warn and above that names this component. */
  linesOf(component: string): string[] {
    return this.stderr.filter((l) => l.includes(`"component":"${component}"`));
  }

  stop(): void {
    if (this.alive) this.child.kill('SIGKILL');
  }
}

function assertMemoryBack(base: Memory, now: Memory, what: string): void {
  const mib = (n: number) => `${(n / 1048576).toFixed(2)} MiB`;
  const heap = now.heapUsed - base.heapUsed;
  const external = now.external - base.external;
  assert.ok(heap < HEAP_SLACK, `${what}: heap grew by ${mib(heap)} (from ${mib(base.heapUsed)} to ${mib(now.heapUsed)}), more than ${mib(HEAP_SLACK)}`);
  assert.ok(external < EXTERNAL_SLACK, `${what}: external memory grew by ${mib(external)}`);
}

/** Runs `run` over `n` cases with at most CONCURRENCY at once. */
async function pool<T>(n: number, run: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await run(i);
      }
    }),
  );
  return out;
}

function tally(values: readonly unknown[]): string {
  const m = new Map<string, number>();
  for (const v of values) m.set(String(v), (m.get(String(v)) ?? 0) + 1);
  return [...m].map(([k, n]) => `${k}: ${n}`).join(', ');
}

// ---- a WebSocket client that reports how its connection ended -------------------------

interface Ended {
  /** HTTP status of a refused upgrade. */
  status?: number;
  /** Close code and reason; code 0 when the connection was still open at the deadline. */
  code?: number;
  reason?: string;
  /** Binary messages received before the close. */
  received: Buffer[];
}

/**
 * Opens a WebSocket to `url`, then for each step either sends a frame or waits for a
 * message (`await`: the next message, whose bytes `step` may use), and resolves with how
 * the connection ended (by `deadlineMs`).
 */
function converse(url: string, headers: Record<string, string>, script: (ws: WebSocket, nextMessage: () => Promise<Buffer>) => Promise<void>, deadlineMs = 5000, maxPayload?: number): Promise<Ended> {
  return new Promise((resolve) => {
    const received: Buffer[] = [];
    const waiters: ((b: Buffer) => void)[] = [];
    const ws = new WebSocket(url, { headers, ...(maxPayload ? { maxPayload } : {}) });
    let done = false;
    const end = (e: Omit<Ended, 'received'>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      ws.terminate();
      resolve({ ...e, received });
    };
    const timer = setTimeout(() => end({ code: 0, reason: 'still open at the deadline' }), deadlineMs);
    ws.on('unexpected-response', (_req, res) => end({ status: res.statusCode ?? 0 }));
    ws.on('error', () => {});
    ws.on('message', (data: Buffer) => {
      received.push(data);
      waiters.shift()?.(data);
    });
    ws.on('close', (code: number, reason: Buffer) => end({ code, reason: reason.toString() }));
    ws.on('open', () => {
      let seen = 0;
      const nextMessage = () => (seen < received.length ? Promise.resolve(received[seen++]!) : new Promise<Buffer>((r) => waiters.push((b) => (seen++, r(b)))));
      script(ws, nextMessage).catch(() => {});
    });
  });
}

const sendSafely = (ws: WebSocket, data: Buffer | string) => {
  if (ws.readyState === ws.OPEN) ws.send(data);
};

// ---- /worker --------------------------------------------------------------------------------

/** A random msgpack value: what an attacker might send that is msgpack but no message. */
function randomValue(r: Random, depth = 0): unknown {
  switch (r.int(depth > 2 ? 5 : 8)) {
    case 0:
      return r.int(2 ** 31) - 2 ** 30;
    case 1:
      return r.next() * 1e12;
    case 2:
      return r.string(r.int(20), 'abcXYZ\u00e9\u0000');
    case 3:
      return r.pick([null, true, false, Number.NaN]);
    case 4:
      return Uint8Array.from(r.bytes(r.int(16)));
    case 5:
      return Array.from({ length: r.int(4) }, () => randomValue(r, depth + 1));
    default:
      return Object.fromEntries(Array.from({ length: r.int(4) }, () => [r.pick(['type', 'id', 'generation', 'x', '__proto__', 'constructor']), randomValue(r, depth + 1)]));
  }
}

interface WorkerCase {
  readonly what: string;
  /** The frame: bytes, or text. */
  readonly frame: Buffer | string;
  /** What libs/protocol's decoder says of it: refused (`CODE: reason`, the close reason expected) or accepted. */
  readonly refused: string | null;
}

const WORKER_TYPES = messageTypes(WorkerMessage as unknown as Schema);

/**
 * A case; with `generation`, a sampled message carries it (before its mutation), so that
 * it reaches the handlers that check the sender's role in that generation, and with
 * `pristine` that share of the sampled messages is sent unmutated.
 */
function workerCase(r: Random, i: number, generation?: number, pristine = 0): WorkerCase {
  const judge = (what: string, frame: Buffer): WorkerCase => {
    try {
      decodeWorkerMessage(frame);
      return { what, frame, refused: null };
    } catch (err) {
      return { what, frame, refused: `${(err as { code: string }).code}: ${(err as Error).message}` };
    }
  };
  const kind = r.int(20);
  if (kind === 0) return { what: `#${i} text frame`, frame: r.string(1 + r.int(50), 'abc{}":'), refused: 'PROTOCOL_BAD_MESSAGE: text frame' };
  if (kind === 1) return judge(`#${i} random bytes`, r.bytes(1 + r.int(300)));
  if (kind <= 3) return judge(`#${i} random msgpack`, packr.pack(randomValue(r)));
  const message = sample(WorkerMessage as unknown as Schema, r) as Record<string, unknown>;
  if (generation !== undefined && 'generation' in message) message.generation = generation;
  // This version's register, so that mutations reach its other fields (a mutated `protocol` is refused first).
  if (message.type === 'register') message.protocol = PROTOCOL_VERSION;
  const { value, what } = r.chance(pristine) ? { value: message, what: 'as sampled' } : mutate(message, r, WORKER_TYPES);
  let frame: Buffer;
  try {
    frame = packr.pack(value);
  } catch {
    frame = Buffer.from(encodeMessage(message as never));
  }
  return judge(`#${i} ${String(message.type)}: ${what}`, frame);
}

/**
 * How a message the decoder accepts may end its connection: it stays open until our text
 * frame (1008 PROTOCOL_BAD_MESSAGE), or the coordinator refuses it for what it asks
 * (1008 PROTOCOL_BAD_MESSAGE, a bound of the job; PROTOCOL_ROLE, not the sender's to
 * send), replaces or drops the connection (1000, 4000). Never 1011: that is our bug.
 */
const VALID_ENDINGS = new Set([1000, 1008, 4000]);

function checkWorkerCase(c: WorkerCase, got: Ended, problems: string[]): void {
  if (c.refused !== null) {
    // The reason whole, or cut to a close frame's 123 bytes.
    const expected = c.refused;
    const reason = got.reason ?? '';
    const whole = reason === expected || (Buffer.byteLength(reason) > 119 && expected.startsWith(reason));
    if (got.code !== 1008 || !whole) problems.push(`${c.what}: closed ${got.code} "${reason}", expected 1008 "${expected}"`);
  } else if (!VALID_ENDINGS.has(got.code ?? -1) || (got.code === 1008 && !/^PROTOCOL_(BAD_MESSAGE|ROLE): /.test(got.reason ?? ''))) {
    problems.push(`${c.what} (valid for the decoder): closed ${got.code} "${got.reason}"`);
  }
}

describe("fuzz: the coordinator's /worker channel", () => {
  let target: Target;
  let out = '';
  let base: Memory;
  let url = '';
  const seed = fuzzSeed(0x0013_f022);
  const r = new Random(seed);
  let registrations = 0;

  /** One connection with the token: `before` (if any) registers first; then the case's frame, then (for a message the decoder accepts) a text frame, which must close it. */
  const attack = async (c: WorkerCase, register: boolean): Promise<Ended> =>
    converse(url, { authorization: `Bearer ${TOKEN}` }, async (ws, nextMessage) => {
      if (register) {
        ws.send(encodeMessage({ type: 'register', protocol: PROTOCOL_VERSION, id: `fuzz-${registrations++}`, address: { host: '127.0.0.1', port: 1 }, backend: 'cpu', held: null, generation: -1 }));
        await nextMessage(); // the job: registered
      }
      ws.send(c.frame);
      if (c.refused === null) setTimeout(() => sendSafely(ws, 'and now a text frame'), 20);
    });

  before(async () => {
    out = await mkdtemp(join(tmpdir(), 'ringtrain-fuzz-'));
    target = await Target.start(['coordinator', out, TOKEN]);
    url = `ws://127.0.0.1:${target.port}/worker`;
    // Warm-up: code compiled and caches filled before the base is measured.
    await pool(150, async (i) => attack(workerCase(new Random(i), i), i % 3 === 0));
    base = await target.memory(2500);
  });
  after(async () => {
    target?.stop();
    if (out) await rm(out, { recursive: true, force: true });
  });

  test('without the token: every upgrade is refused with 401, whatever follows it', async (t) => {
    t.diagnostic(`seed ${seed} (replay with RINGTRAIN_FUZZ_SEED=${seed})`);
    const tokens = ['', 'Bearer', 'Bearer ', `Bearer ${TOKEN.slice(0, -1)}`, `Bearer ${TOKEN}x`, TOKEN, `Basic ${TOKEN}`, `Bearer ${'t'.repeat(8000)}`, `bearer ${TOKEN}`];
    const results = await pool(300, async (i) => {
      const auth = r.pick(tokens);
      // A WebSocket frame (masked binary, then garbage) right behind the upgrade: it must never be read.
      const frame = Buffer.concat([Buffer.from([0x82, 0x85, 1, 2, 3, 4]), r.bytes(5 + r.int(200))]);
      const head = `GET /worker HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${auth ? `Authorization: ${auth}\r\n` : ''}\r\n`;
      return (await sendCase(target.port, { name: `#${i}`, pieces: [Buffer.concat([Buffer.from(head, 'latin1'), frame])], gapMs: 0, end: 'read' })).status;
    });
    t.diagnostic(`answers: ${tally(results)}`);
    assert.deepEqual(new Set(results), new Set([401]));
    assert.ok(target.alive);
  });

  for (const [n, register] of [
    [1200, false],
    [300, true],
  ] as const) {
    test(`with the token, ${register ? 'after a valid register' : 'as the first message'}: each message the decoder refuses closes with 1008 PROTOCOL_BAD_MESSAGE and its reason`, async (t) => {
      const cases = Array.from({ length: n }, (_, i) => workerCase(r, i));
      const results = await pool(cases.length, (i) => attack(cases[i]!, register));
      const problems: string[] = [];
      cases.forEach((c, i) => checkWorkerCase(c, results[i]!, problems));
      t.diagnostic(`${cases.filter((c) => c.refused !== null).length} of ${n} refused by the decoder; closes: ${tally(results.map((x) => x.code))}`);
      assert.deepEqual(problems.slice(0, 10), [], `${problems.length} unexpected endings`);
      assert.ok(target.alive);
    });
  }

  test('as rank 0 of a generation formed for it alone, messages of that generation: each the decoder refuses closes with 1008 and its reason', async (t) => {
    // One at a time: each fuzzing worker is the only member, so the coordinator forms a ring of one with it and
    // its `done`, `checkpoint`, `stopped` and heartbeats reach the handlers that act on rank 0's messages.
    const problems: string[] = [];
    const ends: unknown[] = [];
    let formed = 0;
    for (let i = 0; i < 150; i++) {
      let c: WorkerCase | undefined;
      const ended = await converse(url, { authorization: `Bearer ${TOKEN}` }, async (ws, nextMessage) => {
        ws.send(encodeMessage({ type: 'register', protocol: PROTOCOL_VERSION, id: `rank0-${i}`, address: { host: '127.0.0.1', port: 1 }, backend: 'cpu', held: null, generation: -1 }));
        let generation: number | undefined;
        for (let k = 0; k < 2 && generation === undefined; k++) {
          const m = decodeCoordinatorMessage(await nextMessage());
          if (m.type === 'generation') generation = m.generation;
        }
        if (generation !== undefined) formed++;
        c = workerCase(r, i, generation, 0.5);
        ws.send(c.frame);
        if (c.refused === null) setTimeout(() => sendSafely(ws, 'and now a text frame'), 20);
      });
      if (c) checkWorkerCase(c, ended, problems);
      else problems.push(`#${i}: no generation formed (${ended.code} ${ended.reason})`);
      ends.push(`${ended.code} ${(ended.reason ?? '').split(':').slice(0, 2).join(':')}`);
    }
    t.diagnostic(`${formed} generations formed; closes: ${tally(ends)}`);
    assert.ok(formed > 140, 'a generation formed for (nearly) every fuzzing worker');
    assert.deepEqual(problems.slice(0, 10), [], `${problems.length} unexpected endings`);
    assert.ok(target.alive);
  });

  test('a message over the 64 MiB limit closes with 1009', async () => {
    const ended = await converse(url, { authorization: `Bearer ${TOKEN}` }, async (ws) => ws.send(Buffer.alloc(64 * 1024 * 1024 + 1)), 20_000);
    assert.equal(ended.code, 1009);
  });

  test('afterwards: alive and serving, a real worker registers, the log stayed quiet, and memory is back to its base', async (t) => {
    assert.ok(target.alive);
    assert.equal((await fetch(`http://127.0.0.1:${target.port}/healthz`)).status, 200);
    const registered = await converse(url, { authorization: `Bearer ${TOKEN}` }, async (ws, nextMessage) => {
      ws.send(encodeMessage({ type: 'register', protocol: PROTOCOL_VERSION, id: 'a-real-worker', address: { host: '127.0.0.1', port: 1 }, backend: 'cpu', held: null, generation: -1 }));
      await nextMessage();
      ws.close(1000);
    });
    assert.equal(registered.code, 1000);
    assert.ok(registered.received.length >= 1, 'the job message');
    const metrics = await (await fetch(`http://127.0.0.1:${target.port}/metrics`)).text();
    assert.match(metrics, /ringtrain_rejected_total\{[^}]*reason="bad_message"\} [1-9]\d{2,}/);
    assert.match(metrics, /ringtrain_rejected_total\{[^}]*reason="unauthorized"\} [1-9]\d{2,}/);
    assert.match(metrics, /ringtrain_rejected_total\{[^}]*reason="internal_error"\} 0\n/);
    // Thousands of refusals from one address: a line when each 10 s interval began, and its summary.
    const lines = target.linesOf('rejections');
    assert.ok(lines.length <= 12, `${lines.length} refusal lines:\n${lines.slice(0, 12).join('\n')}`);
    const now = await target.memory(2500);
    t.diagnostic(`heap ${(base.heapUsed / 1048576).toFixed(2)} -> ${(now.heapUsed / 1048576).toFixed(2)} MiB, external ${(base.external / 1048576).toFixed(2)} -> ${(now.external / 1048576).toFixed(2)} MiB`);
    assertMemoryBack(base, now, 'the coordinator');
  });
});

// ---- the ring handshake -------------------------------------------------------------------------

const HANDSHAKE_TYPES = ['challenge', 'hello', 'welcome', 'probe'];

/** The handshake's HMAC as docs/allreduce.md describes it, written here independently of the library. */
function mac(token: string, role: string, serverNonce: Uint8Array, clientNonce: Uint8Array, ints: readonly number[]): Buffer {
  const tail = Buffer.alloc(20);
  ints.forEach((v, k) => tail.writeUInt32LE(v >>> 0, 4 * k));
  return createHmac('sha256', token).update(`ringtrain/1/${role}`).update(serverNonce).update(clientNonce).update(tail).digest();
}

interface Hello {
  generation: number;
  from: number;
  to: number;
  world: number;
  segmentBytes: number;
}

/** A handshake answer to `challenge`, as a case builds it: a message (bytes or text) and the close code the endpoint must answer it with. */
type Reply = { readonly frame: Buffer | string; readonly expect: number | 'welcome'; readonly what: string };

function ringReply(r: Random, i: number, challenge: Uint8Array, newest: number): Reply {
  const nonce = randomBytes(32);
  const right: Hello = { generation: newest, from: 0, to: 1, world: 2, segmentBytes: RING_SEGMENT_BYTES };
  const kind = r.int(12);
  if (kind === 0) return { what: `#${i} text`, frame: 'hello', expect: 4005 };
  if (kind === 1) return { what: `#${i} random bytes`, frame: r.bytes(1 + r.int(600)), expect: 0 };
  if (kind === 2) return { what: `#${i} random msgpack`, frame: packr.pack(randomValue(r)), expect: 0 };
  if (kind === 3) {
    // A probe, its HMAC right or wrong.
    const good = r.chance(0.5);
    const m = { type: 'probe', v: 1, nonce, mac: good ? mac(TOKEN, 'probe', challenge, nonce, [0, 0, 0, 0, 0]) : randomBytes(32) };
    return { what: `#${i} probe, ${good ? 'right' : 'wrong'} HMAC`, frame: packr.pack(m), expect: good ? 'welcome' : 4004 };
  }
  // A hello: its fields mutated, signed with the right token (or not), or broken by the generic mutator.
  const h: Hello = { ...right };
  const field = r.pick(['generation', 'from', 'to', 'world', 'segmentBytes'] as const);
  h[field] = r.pick([0, 1, 2, 3, newest - 1, newest + 1, newest + 1000, RING_SEGMENT_BYTES / 2, 2 ** 32 - 1]);
  const signed = r.chance(0.7);
  const hmac = signed ? mac(TOKEN, 'hello', challenge, nonce, [h.generation, h.from, h.to, h.world, h.segmentBytes]) : mac('not-the-token-000000', 'hello', challenge, nonce, [h.generation, h.from, h.to, h.world, h.segmentBytes]);
  const message: Record<string, unknown> = { type: 'hello', v: 1, ...h, nonce, mac: hmac };
  if (kind >= 9) {
    const { value, what } = mutate(message, r, HANDSHAKE_TYPES);
    let frame: Buffer;
    try {
      frame = packr.pack(value);
    } catch {
      frame = packr.pack(message);
    }
    return { what: `#${i} hello: ${what}`, frame, expect: 0 };
  }
  const valid = h.world >= 2 && h.from < h.world && h.to < h.world;
  let expect: number;
  if (!valid) expect = 4005;
  else if (h.generation < newest) expect = 4009;
  else if (!signed) expect = 4004; // checked before it may wait: the endpoint holds the token
  else if (h.generation !== newest) expect = 4002; // parked until the handshake deadline: no ring of that generation here
  else if (h.from !== 0 || h.to !== 1 || h.world !== 2) expect = 4004;
  else if (h.segmentBytes !== RING_SEGMENT_BYTES) expect = 4007;
  else return { what: `#${i} hello for a generation no ring waits for`, frame: packr.pack({ ...message, generation: newest + 7, mac: mac(TOKEN, 'hello', challenge, nonce, [newest + 7, 0, 1, 2, RING_SEGMENT_BYTES]) }), expect: 4002 };
  return { what: `#${i} hello, ${field} = ${h[field]}, ${signed ? 'signed' : 'wrong HMAC'}`, frame: packr.pack(message), expect };
}

/** What the endpoint must answer `frame` with when the case left it to the decoder (expect 0). */
function decoderVerdict(frame: Buffer | string, challenge: Uint8Array, newest: number): number | 'welcome' {
  if (typeof frame === 'string') return 4005;
  let m: ReturnType<typeof decodeHandshake>;
  try {
    m = decodeHandshake(frame);
  } catch (err) {
    return (err as { code?: string }).code === 'RING_FRAME_TOO_LARGE' ? 4006 : 4005;
  }
  if (m.type === 'probe') return Buffer.from(m.mac).equals(mac(TOKEN, 'probe', challenge, m.nonce, [0, 0, 0, 0, 0])) ? 'welcome' : 4004;
  if (m.type !== 'hello') return 4005;
  if (m.generation < newest) return 4009;
  if (!Buffer.from(m.mac).equals(mac(TOKEN, 'hello', challenge, m.nonce, [m.generation, m.from, m.to, m.world, m.segmentBytes]))) return 4004;
  if (m.generation !== newest) return 4002;
  if (m.from !== 0 || m.to !== 1 || m.world !== 2) return 4004;
  if (m.segmentBytes !== RING_SEGMENT_BYTES) return 4007;
  return 'welcome';
}

describe("fuzz: a worker's ring endpoint handshake", () => {
  let target: Target;
  let base: Memory;
  let url = '';
  let newest = 1;
  const seed = fuzzSeed(0x0013_7a11);
  const r = new Random(seed);

  /** One connection: read the challenge, answer with the case's reply, and see how it ends. */
  const knock = (build: (challenge: Uint8Array) => Reply): Promise<{ reply: Reply; expect: number | 'welcome'; ended: Ended; challenge: Uint8Array }> => {
    let reply: Reply | undefined;
    let challenge: Uint8Array = new Uint8Array(0);
    return converse(url, {}, async (ws, nextMessage) => {
      const c = packr.unpack(await nextMessage()) as { type: string; nonce: Uint8Array };
      assert.equal(c.type, 'challenge');
      challenge = c.nonce;
      reply = build(challenge);
      ws.send(reply.frame);
      if (reply.what === 'valid') {
        // A dialer says ready once welcomed: the ring takes the link then.
        await nextMessage();
        ws.send(packr.pack({ type: 'ready', v: 1 }));
      }
    }, RING_HANDSHAKE_MS + 3000).then((ended) => {
      const rep = reply ?? { what: 'no challenge', frame: '', expect: -1 };
      return { reply: rep, expect: rep.expect === 0 ? decoderVerdict(rep.frame, challenge, newest) : rep.expect, ended, challenge };
    });
  };

  const welcomed = (ended: Ended, challenge: Uint8Array, role: 'probe-welcome' | 'welcome', nonce: Uint8Array, ints: readonly number[]): boolean => {
    const w = ended.received.length === 2 ? (packr.unpack(ended.received[1]!) as { type: string; mac: Uint8Array }) : null;
    return w?.type === 'welcome' && Buffer.from(w.mac).equals(mac(TOKEN, role, challenge, nonce, ints));
  };

  before(async () => {
    target = await Target.start(['ring', TOKEN]);
    url = `ws://127.0.0.1:${target.port}/`;
    await pool(100, (i) => knock((c) => ringReply(new Random(i), i, c, newest)));
    base = await target.memory(RING_HANDSHAKE_MS + 1500);
  });
  after(() => target?.stop());

  test('handshake messages, right and wrong HMACs over mutated fields, random msgpack and bytes: each closes with its documented code', async (t) => {
    t.diagnostic(`seed ${seed} (replay with RINGTRAIN_FUZZ_SEED=${seed})`);
    // A valid hello for the generation that waits would link (and move the newest generation on): the cases never build one.
    const results = await pool(1000, (i) => knock((c) => ringReply(r, i, c, newest)));
    const problems: string[] = [];
    for (const { reply, expect, ended, challenge } of results) {
      if (expect === 'welcome') {
        const m = packr.unpack(reply.frame as Buffer) as { nonce: Uint8Array; type: string };
        if (m.type !== 'probe' || !welcomed(ended, challenge, 'probe-welcome', m.nonce, [0, 0, 0, 0, 0]) || ended.code !== 1000) problems.push(`${reply.what}: expected a welcome with the endpoint's proof and 1000, got ${ended.code} "${ended.reason}"`);
      } else if (ended.code !== expect) {
        problems.push(`${reply.what}: closed ${ended.code} "${ended.reason}", expected ${expect}`);
      }
    }
    t.diagnostic(`closes: ${tally(results.map((x) => x.ended.code))}`);
    assert.deepEqual(problems.slice(0, 10), [], `${problems.length} unexpected endings`);
    assert.ok(target.alive);
  });

  test('a handshake message over the maximum payload closes with 1009', async () => {
    const { ended } = await knock(() => ({ what: 'huge', frame: Buffer.alloc(4 * 1024 * 1024 + 41), expect: 1009 }));
    assert.equal(ended.code, 1009);
  });

  test('afterwards: valid hellos still link, generation after generation; older generations are stale; memory is back to its base', async (t) => {
    for (let k = 0; k < 3; k++) {
      const nonce = randomBytes(32);
      const ints = [newest, 0, 1, 2, RING_SEGMENT_BYTES];
      const { ended, challenge } = await knock((c) => ({ what: 'valid', frame: packr.pack({ type: 'hello', v: 1, generation: newest, from: 0, to: 1, world: 2, segmentBytes: RING_SEGMENT_BYTES, nonce, mac: mac(TOKEN, 'hello', c, nonce, ints) }), expect: 'welcome' }));
      assert.ok(welcomed(ended, challenge, 'welcome', nonce, ints), `generation ${newest}: no welcome with the endpoint's proof (${ended.code} ${ended.reason})`);
      assert.equal((await target.next('linked')).generation, newest);
      newest++;
    }
    const stale = await knock((c) => {
      const nonce = randomBytes(32);
      return { what: 'stale', frame: packr.pack({ type: 'hello', v: 1, generation: 1, from: 0, to: 1, world: 2, segmentBytes: RING_SEGMENT_BYTES, nonce, mac: mac(TOKEN, 'hello', c, nonce, [1, 0, 1, 2, RING_SEGMENT_BYTES]) }), expect: 4009 };
    });
    assert.equal(stale.ended.code, 4009);
    const lines = target.stderr.filter((l) => l.includes('"level":40') || l.includes('"level":50'));
    t.diagnostic(`${lines.length} warning lines in the endpoint's log`);
    const now = await target.memory(RING_HANDSHAKE_MS + 1500);
    t.diagnostic(`heap ${(base.heapUsed / 1048576).toFixed(2)} -> ${(now.heapUsed / 1048576).toFixed(2)} MiB, external ${(base.external / 1048576).toFixed(2)} -> ${(now.external / 1048576).toFixed(2)} MiB`);
    assertMemoryBack(base, now, 'the ring endpoint');
  });
});
