// What goes up and what comes down: the request target and headers sent to an instance, and the
// response headers sent back to the visitor. Hop-by-hop headers are handled as RFC 9110 §7.6.1 says.

import type { AppConfig } from '../core/config.js';
import type { SessionTarget } from '../pool/api.js';
import { forwardableCookies, setsWarmpoolCookie } from './cookie.js';
import type { Visit } from './forwarded.js';
import { leaksSecret, secretHeaderValue, withSecretQuery, withoutQueryParam } from './secret.js';

/**
 * Connection-specific headers never forwarded (RFC 9110 §7.6.1, plus the legacy Proxy-Connection,
 * HTTP/2's HTTP2-Settings, and Expect, which Node's server has already answered).
 * The headers named in Connection are dropped as well.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'upgrade',
  'trailer',
  'proxy-authenticate',
  'proxy-authorization',
  'http2-settings',
  'expect',
]);

/** Headers the proxy sets itself: the visitor's copies are dropped, not trusted. */
const PROXY_SET = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded']);

/** Lower-case tokens listed in Connection header values. */
function connectionTokens(values: string[] | undefined): Set<string> | undefined {
  if (!values || values.length === 0) return undefined;
  // The common values name no other header (keep-alive is hop-by-hop anyway): no Set per message.
  if (values.length === 1 && isPlainConnection(values[0]!)) return undefined;
  const out = new Set<string>();
  for (const v of values)
    for (const t of v.split(',')) {
      const tok = t.trim().toLowerCase();
      if (tok) out.add(tok);
    }
  return out;
}

function isPlainConnection(v: string): boolean {
  if (v.length !== 10 && v.length !== 5) return false;
  const l = v.toLowerCase();
  return l === 'keep-alive' || l === 'close';
}

/** Headers a visitor may not ask the proxy to drop through `Connection`: they frame or route the request. */
const NOT_DROPPABLE = new Set(['content-length', 'transfer-encoding', 'host']);

/**
 * Why a visitor's request cannot be relayed faithfully, or undefined when it can. Framing is
 * warmpool's: a visitor who lists Content-Length or Transfer-Encoding in Connection would have the
 * relay drop the header but still send the body, which the instance would read as a second request;
 * two Host headers leave it to the instance to pick one. Both are refused (400) before anything is sent.
 */
export function requestProblem(raw: readonly string[]): string | undefined {
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') {
      if (++hosts > 1) return 'the request carries more than one Host header';
    } else if (name.length === 10 && name.toLowerCase() === 'connection') {
      const v = raw[i + 1]!;
      if (isPlainConnection(v)) continue;
      for (const t of v.split(',')) {
        const tok = t.trim().toLowerCase();
        if (NOT_DROPPABLE.has(tok)) return `the Connection header names ${tok}, which frames the request and cannot be dropped`;
      }
    }
  }
  return undefined;
}

/** The request target sent upstream: prefix stripped or kept, secret added as a query parameter if configured. */
export function upstreamPath(app: AppConfig, rest: string, url: string, target: SessionTarget): string {
  const path = app.prefix.mode === 'strip' ? rest : url;
  const q = app.secret?.inject.query;
  return q && target.secret ? withSecretQuery(path, q, target.secret) : path;
}

export interface UpstreamHeaderOptions {
  app: AppConfig;
  target: SessionTarget;
  visit: Visit;
  /** For a WebSocket handshake: the Upgrade value to keep, with `Connection: Upgrade`. */
  upgrade?: string;
}

/**
 * Upstream request headers as a flat [name, value, ...] list (the upstream client writes them in order),
 * built from req.rawHeaders: hop-by-hop dropped, Host kept as the visitor sent it (Jupyter checks
 * Origin against Host), warmpool's cookies removed, the secret injected, X-Forwarded-* set.
 */
export function upstreamHeaders(raw: readonly string[], o: UpstreamHeaderOptions): string[] {
  let conn: string[] | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 10 && raw[i]!.toLowerCase() === 'connection') (conn ??= []).push(raw[i + 1]!);
  }
  const listed = connectionTokens(conn);
  const inject = o.target.secret ? o.app.secret?.inject : undefined;
  const secretHeader = inject?.header?.toLowerCase();
  const secretCookie = inject?.cookie;

  const out: string[] = [];
  let cookies: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || PROXY_SET.has(lower) || lower === secretHeader) continue;
    if (listed && listed.has(lower)) continue;
    if (lower === 'cookie') {
      cookies = cookies === undefined ? raw[i + 1]! : `${cookies}; ${raw[i + 1]!}`;
      continue;
    }
    out.push(name, raw[i + 1]!);
  }
  let cookie = forwardableCookies(cookies, secretCookie);
  if (secretCookie && o.target.secret) {
    const pair = `${secretCookie}=${o.target.secret}`;
    cookie = cookie ? `${cookie}; ${pair}` : pair;
  }
  if (cookie) out.push('Cookie', cookie);
  if (secretHeader && inject) out.push(inject.header!, secretHeaderValue(inject, o.target.secret!));
  if (o.upgrade !== undefined) out.push('Connection', 'Upgrade', 'Upgrade', o.upgrade);
  out.push('X-Forwarded-For', o.visit.forwardedFor, 'X-Forwarded-Proto', o.visit.proto);
  if (o.visit.forwardedHost) out.push('X-Forwarded-Host', o.visit.forwardedHost);
  return out;
}

export interface DownstreamOptions {
  app: AppConfig;
  target: SessionTarget;
}

/**
 * Response headers for the visitor, as a flat list for res.writeHead: hop-by-hop dropped (Node
 * frames the body itself), Location mapped back under /<app>/, and nothing that carries the secret.
 */
export function downstreamHeaders(headers: Record<string, string | string[] | undefined>, o: DownstreamOptions): string[] {
  const c = headers['connection'];
  const listed = connectionTokens(c === undefined ? undefined : Array.isArray(c) ? c : [c]);
  const out: string[] = [];
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || (listed && listed.has(name))) continue;
    const v = headers[name];
    if (v === undefined) continue;
    if (Array.isArray(v)) {
      for (const one of v) pushDownstream(out, name, one, o);
      continue;
    }
    pushDownstream(out, name, v, o);
  }
  return out;
}

/** One response field for the visitor: dropped if it leaks the secret or touches warmpool's cookies; Location mapped. */
function pushDownstream(out: string[], name: string, v: string, o: DownstreamOptions): void {
  if (name === 'location') {
    out.push(name, publicLocation(v, o));
    return;
  }
  if (name === 'set-cookie' && setsWarmpoolCookie(v)) return; // an instance never sets, shadows or deletes ours
  const secret = o.target.secret;
  if (secret && leaksSecret(v, secret)) return; // e.g. Pluto's Set-Cookie: secret=...
  out.push(name, v);
}

/**
 * Maps an instance's Location back to the public URL space: in strip mode an absolute path `/x`
 * becomes `/<app>/x` (as nginx's `proxy_redirect default` does); a URL naming the instance's own
 * origin loses the origin; a secret the instance echoed in the query is removed. Relative
 * locations (all of Pluto's) pass unchanged.
 */
export function publicLocation(loc: string, o: DownstreamOptions): string {
  let out = loc;
  const origin = `http://${o.target.host}:${o.target.port}`;
  if (out.startsWith(origin) && (out.length === origin.length || '/?#'.includes(out[origin.length]!))) {
    out = out.slice(origin.length) || '/';
  }
  if (o.app.prefix.mode === 'strip' && out.startsWith('/') && !out.startsWith('//')) out = `/${o.app.name}${out}`;
  const secret = o.target.secret;
  if (secret && leaksSecret(out, secret)) {
    const q = o.app.secret?.inject.query;
    if (q) out = withoutQueryParam(out, q);
    if (leaksSecret(out, secret)) out = out.split(secret).join('');
  }
  return out;
}
