/**
 * The request target of an HTTP request (RFC 9112, section 3.2), read without trusting
 * it. `new URL(req.url, base)` throws on targets any client can send (`//`, `http://`),
 * and a throw in a request handler used to end the process; routing reads this instead.
 *
 *   origin-form     /path?query            the path as sent: no percent-decoding, no
 *                                          dot-segment removal (routes match exactly)
 *   absolute-form   http://host/path?query a server must accept it (proxies send it);
 *                                          its path is used, the authority ignored
 *   asterisk-form   *                      OPTIONS only, which this server does not serve: refused
 *   authority-form  host:port              CONNECT only, never reaches a handler (Node
 *                                          closes CONNECT without a 'connect' listener)
 *
 * Anything else, and any target with a byte outside visible ASCII, a fragment, or a
 * `%` not followed by two hex digits, is refused (400 BAD_REQUEST) with the reason.
 * Node's own limit on the request head (16 KiB) bounds the target before it gets here;
 * MAX_TARGET_LENGTH bounds it again.
 */

export const MAX_TARGET_LENGTH = 8192;

export type Target = { readonly ok: true; readonly path: string; readonly query: string } | { readonly ok: false; readonly reason: string };

const ABSOLUTE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/s;
/** Visible ASCII (0x21-0x7e) only; `#` never belongs in a request target. */
const VISIBLE = /^[\x21-\x22\x24-\x7e]*$/;
const BAD_PERCENT = /%(?![0-9A-Fa-f]{2})/;

function bad(reason: string): Target {
  return { ok: false, reason };
}

export function parseTarget(raw: string | undefined): Target {
  if (raw === undefined || raw === '') return bad('empty request target');
  if (raw.length > MAX_TARGET_LENGTH) return bad(`request target of ${raw.length} characters; at most ${MAX_TARGET_LENGTH}`);
  if (!VISIBLE.test(raw)) return bad('request target with a space, a control character, a non-ASCII byte or a fragment');
  if (BAD_PERCENT.test(raw)) return bad('request target with a % not followed by two hex digits');
  let rest = raw;
  if (!raw.startsWith('/')) {
    const m = ABSOLUTE.exec(raw);
    if (m === null) return bad(raw === '*' ? 'asterisk-form request target (OPTIONS *) is not served' : 'request target is neither a path nor an absolute http URL');
    const scheme = m[1]!.toLowerCase();
    if (scheme !== 'http' && scheme !== 'https') return bad(`request target with scheme ${scheme}:`);
    rest = m[3]!;
    if (rest === '' || rest.startsWith('?')) rest = `/${rest}`;
  }
  const q = rest.indexOf('?');
  return q < 0 ? { ok: true, path: rest, query: '' } : { ok: true, path: rest.slice(0, q), query: rest.slice(q + 1) };
}
