/**
 * Is this a ring endpoint of our job? The coordinator asks when a worker reports that it
 * could not connect to a peer's advertised address: one reporter's word cannot tell
 * whose side is broken. A TCP connect is not enough (any listener answers one: another
 * service, the coordinator's own HTTP port), so the prober runs the client side of the
 * ring's handshake as a `probe` (handshake.ts): it answers the endpoint's challenge with
 * an HMAC of the token, and the endpoint must answer with its own; then both close. A
 * probe never joins a ring and carries no generation, so it cannot disturb one.
 *
 * Reachable means: it answered, and proved it holds the job's token. Otherwise `detail`
 * says what happened instead: the connect error's code (ECONNREFUSED, EHOSTUNREACH, ...),
 * no answer by the deadline, an HTTP answer from something that is not a ring endpoint,
 * the endpoint's refusal (RING_AUTH_FAILED: it holds another token), or a TLS failure.
 */
import WebSocket from 'ws';
import { isRingError } from './errors.js';
import { encodeHandshake, HANDSHAKE_VERSION, newNonce, probeFields, proof, proofMatches, type Token, tokenBytes } from './handshake.js';
import { nextHandshake } from './handshake-io.js';
import { closeWith } from './close.js';
import { dialOptions, type RingTls } from './tls.js';

export const PROBE_TIMEOUT_MS = 3000;

export interface ProbeOptions {
  readonly host: string;
  readonly port: number;
  readonly token: Token;
  /** The whole probe's deadline; default 3 s. */
  readonly timeoutMs?: number;
  /** The endpoints serve TLS: dial wss and verify as ring members do (RingTls's `ca` and `serverName`). */
  readonly tls?: Pick<RingTls, 'ca' | 'serverName'>;
}

export interface ProbeResult {
  readonly reachable: boolean;
  readonly detail: string;
}

/** Dials `host:port`, runs a probe handshake, closes. Never rejects. */
export async function probeEndpoint(o: ProbeOptions): Promise<ProbeResult> {
  const timeoutMs = o.timeoutMs ?? PROBE_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  let token: Buffer;
  let ws: WebSocket;
  try {
    token = tokenBytes(o.token);
    ws = new WebSocket(`${o.tls ? 'wss' : 'ws'}://${o.host}:${o.port}/`, {
      ...(o.tls ? dialOptions(o.tls, o.host) : {}),
      perMessageDeflate: false,
      maxPayload: 4096,
      handshakeTimeout: timeoutMs,
    });
  } catch (err) {
    // An empty token, or an address that makes no URL (a worker advertises what it likes).
    return { reachable: false, detail: isRingError(err) ? `${err.code}: ${err.message}` : `cannot dial ${o.host}:${o.port}: ${(err as Error).message}` };
  }
  let connectError: NodeJS.ErrnoException | undefined;
  let httpStatus: number | undefined;
  ws.on('error', (err: NodeJS.ErrnoException) => (connectError ??= err));
  ws.on('unexpected-response', (req, res) => {
    httpStatus = res.statusCode;
    req.destroy();
    ws.terminate();
  });
  try {
    const challenge = await nextHandshake(ws, deadline - Date.now(), -1);
    if (challenge.type !== 'challenge') return { reachable: false, detail: `not a ring endpoint (it sent ${challenge.type})` };
    const nonce = newNonce();
    const fields = probeFields(challenge.nonce, nonce);
    ws.send(encodeHandshake({ type: 'probe', v: HANDSHAKE_VERSION, nonce, mac: proof(token, 'probe', fields) }));
    const welcome = await nextHandshake(ws, deadline - Date.now(), -1);
    if (welcome.type !== 'welcome' || !proofMatches(proof(token, 'probe-welcome', fields), welcome.mac)) {
      return { reachable: false, detail: 'it could not prove it holds the job token' };
    }
    return { reachable: true, detail: 'answered the ring handshake' };
  } catch (err) {
    if (httpStatus !== undefined) return { reachable: false, detail: `not a ring endpoint (HTTP ${httpStatus})` };
    // Our deadline or ws's handshake timeout, whichever fired first: both are no answer in time.
    if ((isRingError(err) && err.code === 'RING_TIMEOUT') || Date.now() >= deadline) return { reachable: false, detail: `no answer within ${timeoutMs} ms` };
    if (connectError?.code && !connectError.code.startsWith('WS_ERR_')) return { reachable: false, detail: connectError.code };
    return { reachable: false, detail: isRingError(err) ? `${err.code}: ${err.message}` : String(err) };
  } finally {
    if (ws.readyState === WebSocket.OPEN) closeWith(ws);
    else ws.terminate();
  }
}
