/** Closing a ring connection with a coded reason, and reading the code of a close seen from the other side. */
import type WebSocket from 'ws';
import { codeForClose, RingError } from './errors.js';
import { tlsFailure } from './tls.js';

/** How long to wait for the peer's close frame before killing the socket. */
const CLOSE_GRACE_MS = 1000;

/** A close frame's payload is at most 125 bytes, 2 of them the code: ws throws on a longer reason. */
export const MAX_CLOSE_REASON_BYTES = 123;

/**
 * `text` as a close reason: its first MAX_CLOSE_REASON_BYTES bytes of UTF-8, cut before
 * a character that would not fit whole (never through one). The one truncation of close
 * reasons: the ring's and the coordinator's connections both close with it.
 */
export function closeReason(text: string): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= MAX_CLOSE_REASON_BYTES) return text;
  // A continuation byte (10xxxxxx) at the cut means a character straddles it: cut before its first byte.
  let end = MAX_CLOSE_REASON_BYTES;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}

/** Closes `ws` with the error's close code (a normal 1000 without one), then kills it if the peer does not answer. */
export function closeWith(ws: WebSocket, err?: RingError): void {
  try {
    if (err) ws.close(err.closeCode, closeReason(`${err.code}: ${err.message}`));
    else ws.close(1000, 'RING_CLOSED');
  } catch {
    ws.terminate();
    return;
  }
  // The peer may be dead or stopped: do not wait on it.
  setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
}

/** The error that a close seen from the other side, or a ws error before it, stands for. */
export function errorForClose(closeCode: number, reason: string, peer: number, wsError?: Error): RingError {
  const wsCode = (wsError as { code?: unknown } | undefined)?.code;
  if (wsCode === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
    return new RingError('RING_FRAME_TOO_LARGE', `frame from rank ${peer} exceeds the maximum payload`, { peer });
  }
  const tls = tlsFailure(wsError);
  if (tls) {
    const what = tls.kind === 'untrusted' ? 'its certificate failed verification' : 'no TLS session could be set up';
    return new RingError('RING_TLS_FAILED', `TLS with rank ${peer}: ${what} (${tls.detail})`, { peer }, { cause: wsError });
  }
  if (typeof wsCode === 'string' && wsCode.startsWith('WS_ERR_')) {
    return new RingError('RING_BAD_FRAME', `WebSocket protocol error from rank ${peer}: ${wsError?.message ?? ''}`, { peer });
  }
  const code = codeForClose(closeCode, reason);
  if (code !== undefined) {
    return new RingError(code, `rank ${peer} closed the link: ${reason || closeCode}`, { peer, closeCode });
  }
  if (closeCode === 1002 || closeCode === 1003 || closeCode === 1007) {
    return new RingError('RING_BAD_FRAME', `rank ${peer} closed the link with protocol error ${closeCode}`, { peer, closeCode });
  }
  const why = wsError ? `: ${wsError.message}` : '';
  return new RingError('RING_PEER_LOST', `link to rank ${peer} closed (${closeCode})${why}`, { peer, closeCode }, { cause: wsError });
}
