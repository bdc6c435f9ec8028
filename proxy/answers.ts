// The one place that turns a case (or a WarmpoolError code) into an HTTP answer: status, headers,
// an HTML page for browsers (Accept: text/html) or JSON for API clients. Also for refused upgrades.

import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';
import type { EndReason, LineStatus } from '../pool/api.js';
import { isWarmpoolError, type ErrorCode } from '../core/errors.js';
import * as pages from './pages.js';

export type NoSessionWhy = 'missing' | 'malformed' | 'bad-signature' | 'expired' | 'wrong-app' | 'ambiguous';

export type Answer =
  | { kind: 'landing'; apps: readonly string[] }
  | { kind: 'redirect'; status: 301 | 302 | 303 | 307 | 308; location: string; setCookie?: string[]; detail?: Record<string, unknown> }
  /** No instance yet: the waiting page (its stream holds the place), or for an API client whose hold ran out, a 503 naming the URL that keeps the place. */
  | { kind: 'waiting'; app: string; ticket: string; line: LineStatus }
  /** Over a per-address limit of the waiting line (config queue:): nothing held, try again later. */
  | { kind: 'line-limited'; app: string; why: 'unused-claims' | 'waiting-places'; limit: number; retryAfterS: number }
  /** A ticket or collect URL that holds nothing (lapsed, held by another waiter, guessed): browsers start again at /<app>/. */
  | { kind: 'place-lapsed'; app: string }
  | { kind: 'unknown-app'; name: string; apps: readonly string[] }
  | { kind: 'no-session'; app: string; why: NoSessionWhy; setCookie?: string[] }
  | { kind: 'ended'; app: string; reason: EndReason | 'unknown'; at?: number; setCookie?: string[] }
  | { kind: 'confirm-fresh'; app: string }
  | { kind: 'upstream-down'; app: string; timeout: boolean }
  /** The proxy itself ran out of a resource (file descriptors): nothing is wrong with the instance. */
  | { kind: 'at-capacity' }
  | { kind: 'pool-stopped'; app: string }
  | { kind: 'not-found'; path: string }
  | { kind: 'bad-request'; message: string }
  /** A limit of the shared proxy was reached (connections per address, WebSockets per session). */
  | { kind: 'too-many'; message: string; retryAfterS: number }
  | { kind: 'not-websocket' }
  | { kind: 'internal-error'; message: string };

export interface Rendered {
  status: number;
  headers: Record<string, string | string[]>;
  body: string;
}

/** The "session ended" page's sentence for each reason (core/end-reasons.ts lists them; the type makes each one need a text). */
const ENDED_WHY: Record<EndReason | 'unknown', string> = {
  idle: 'It was idle for too long, so its instance was given back.',
  lifetime: 'It reached the maximum time an instance is kept.',
  grace: 'Its browser tab was closed, so its instance was given back.',
  'instance-exited': 'Its instance stopped unexpectedly.',
  admin: 'An administrator ended it.',
  shutdown: 'The server was restarted or shut down.',
  'fresh-requested': 'A fresh instance was started in its place.',
  lost: 'Its instance was gone when the server restarted.',
  unused: 'It was never used, so its instance was given to the next visitor.',
  unknown: 'This server no longer knows it (it may have been restarted).',
};

const NO_SESSION_WHY: Record<NoSessionWhy, { status: number; code: ErrorCode; message: string }> = {
  missing: { status: 400, code: 'SESSION_UNKNOWN', message: 'This page belongs to a session, but your browser sent no session cookie for it.' },
  malformed: { status: 403, code: 'SESSION_UNKNOWN', message: 'Your session cookie is not valid.' },
  'bad-signature': { status: 403, code: 'SESSION_UNKNOWN', message: 'Your session cookie is not valid.' },
  'wrong-app': { status: 403, code: 'SESSION_UNKNOWN', message: 'Your session cookie belongs to another app.' },
  expired: { status: 403, code: 'SESSION_EXPIRED', message: 'Your session cookie has expired.' },
  ambiguous: { status: 403, code: 'SESSION_UNKNOWN', message: 'Your browser sent two session cookies for this app that cannot be told apart.' },
};

/** Browsers navigating ask for text/html; fetch(), curl and API clients get JSON. */
export function wantsHtml(req: IncomingMessage): boolean {
  const a = req.headers.accept;
  return typeof a === 'string' && a.indexOf('text/html') >= 0;
}

/** The URL that holds a place in line: the waiting page's stream (text/event-stream), else a held request. */
export function waitUrl(app: string, ticket: string): string {
  return `/${app}/?wait=${encodeURIComponent(ticket)}`;
}

/** The page's CSP: nothing but inline styles; the waiting page adds its one script (by nonce) and its stream. */
const CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";
const waitingCsp = (nonce: string): string =>
  `default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-${nonce}'; connect-src 'self'; frame-ancestors 'none'`;

function json(status: number, code: ErrorCode | null, message: string, extra: Record<string, unknown> = {}): Rendered {
  const body = code === null ? { ...extra } : { error: { code, message }, ...extra };
  return { status, headers: { 'content-type': 'application/json; charset=utf-8' }, body: JSON.stringify(body) + '\n' };
}

function html(status: number, body: string): Rendered {
  return { status, headers: { 'content-type': 'text/html; charset=utf-8' }, body };
}

/** Redirect pages by location: every claim's is its app's deep link. Bounded: a location may carry a visitor's query. */
const REDIRECT_PAGES = new Map<string, string>();
const REDIRECT_PAGES_MAX = 256;

function redirectPage(location: string): string {
  let p = REDIRECT_PAGES.get(location);
  if (p === undefined) {
    p = pages.page({ title: 'Redirecting', body: `<p><a href="${pages.esc(location)}">Continue</a></p>` });
    if (REDIRECT_PAGES.size >= REDIRECT_PAGES_MAX) REDIRECT_PAGES.clear();
    REDIRECT_PAGES.set(location, p);
  }
  return p;
}

/** Renders an answer for a browser (html) or an API client. */
export function render(a: Answer, asHtml: boolean): Rendered {
  let r: Rendered;
  let nonce: string | undefined;
  switch (a.kind) {
    case 'landing': {
      const apps = a.apps.map((name) => ({ name, href: `/${name}/` }));
      r = asHtml ? html(200, pages.landingPage(apps)) : json(200, null, '', { apps });
      break;
    }
    case 'redirect':
      r = asHtml ? html(a.status, redirectPage(a.location)) : json(a.status, null, '', { location: a.location, ...a.detail });
      r.headers.location = a.location;
      break;
    case 'waiting': {
      const url = waitUrl(a.app, a.ticket);
      if (asHtml) {
        nonce = randomBytes(16).toString('base64');
        r = html(503, pages.waitingPage({ app: a.app, line: a.line, waitUrl: url, rootUrl: `/${a.app}/`, nonce }));
      } else {
        const t = pages.waitingText(a.app, a.line);
        r = json(503, 'POOL_EXHAUSTED', `${t.headline} ${t.detail}`, {
          wait: url,
          position: a.line.position,
          reason: a.line.reason,
          estimatedWaitMs: a.line.estimatedWaitMs ?? null,
          hint: `request ${url} within a few seconds to keep this place; it is answered the moment an instance is ready`,
        });
        // The place is kept only briefly: come back at once.
        r.headers['retry-after'] = '1';
      }
      break;
    }
    case 'line-limited': {
      const title = a.why === 'unused-claims' ? 'Too many unused instances from your network' : 'Too many waiting from your network';
      const message =
        a.why === 'unused-claims'
          ? `${a.limit} instances of ${a.app} opened from your network address have not been used yet. Try again in ${a.retryAfterS} seconds, when they have been used or given back.`
          : `${a.limit} visitors from your network address are already waiting for ${a.app}. Try again in ${a.retryAfterS} seconds.`;
      r = asHtml
        ? html(429, pages.limitedPage({ title, message, retrySeconds: a.retryAfterS, retryUrl: `/${a.app}/` }))
        : json(429, 'TOO_MANY', message, { why: a.why, limit: a.limit });
      r.headers['retry-after'] = String(a.retryAfterS);
      break;
    }
    case 'place-lapsed': {
      const message = `That place in line for ${a.app} is not held (it lapsed, or another page holds it).`;
      if (asHtml) {
        r = html(
          302,
          pages.page({ title: 'Joining the line again', body: `<p>${pages.esc(message)}</p>\n<p><a href="${pages.esc(`/${a.app}/`)}">Continue</a></p>` }),
        );
        r.headers.location = `/${a.app}/`;
      } else r = json(410, 'PLACE_LAPSED', message, { retry: `/${a.app}/` });
      break;
    }
    case 'unknown-app':
      r = asHtml
        ? html(404, pages.unknownAppPage({ name: a.name, apps: a.apps }))
        : json(404, 'APP_UNKNOWN', `there is no app called ${a.name}`, { apps: a.apps.map((n) => ({ name: n, href: `/${n}/` })) });
      break;
    case 'no-session': {
      const w = NO_SESSION_WHY[a.why];
      r = asHtml ? html(w.status, pages.noSessionPage({ app: a.app, message: w.message })) : json(w.status, w.code, w.message, { fresh: `/${a.app}/?fresh=1` });
      break;
    }
    case 'ended': {
      const message = `Your session of ${a.app} has ended. ${ENDED_WHY[a.reason]}`;
      r = asHtml ? html(410, pages.endedPage({ app: a.app, message })) : json(410, 'INSTANCE_GONE', message, { reason: a.reason, fresh: `/${a.app}/?fresh=1` });
      break;
    }
    case 'confirm-fresh':
      r = asHtml
        ? html(200, pages.confirmFreshPage(a.app))
        : json(409, null, '', { confirm: `/${a.app}/?fresh=1`, message: 'open this URL from the same site to end the current session and start a fresh one' });
      break;
    case 'at-capacity': {
      const message = 'warmpool is at capacity right now (too many connections open at once); try again in a few seconds.';
      r = asHtml ? html(503, pages.messagePage('At capacity', message)) : json(503, 'AT_CAPACITY', message);
      r.headers['retry-after'] = '5';
      break;
    }
    case 'upstream-down': {
      const message = a.timeout ? `Your instance of ${a.app} did not answer in time.` : `Your instance of ${a.app} is not answering.`;
      r = asHtml
        ? html(a.timeout ? 504 : 502, pages.upstreamDownPage({ app: a.app, message }))
        : json(a.timeout ? 504 : 502, 'INSTANCE_NOT_READY', message, { fresh: `/${a.app}/?fresh=1` });
      break;
    }
    case 'pool-stopped':
      r = asHtml
        ? html(503, pages.messagePage('Shutting down', `${a.app} is not taking new visitors right now.`))
        : json(503, 'POOL_STOPPED', `${a.app} is not taking new visitors right now`);
      r.headers['retry-after'] = '30';
      break;
    case 'not-found':
      r = asHtml
        ? html(404, pages.messagePage('Not found', 'Nothing is here.'))
        : json(404, null, '', { error: { code: 'NOT_FOUND', message: 'nothing is here' } });
      break;
    case 'bad-request':
      r = asHtml ? html(400, pages.messagePage('Bad request', a.message)) : json(400, 'BAD_REQUEST', a.message);
      break;
    case 'too-many':
      r = asHtml ? html(429, pages.messagePage('Too many connections', a.message)) : json(429, 'TOO_MANY', a.message);
      r.headers['retry-after'] = String(a.retryAfterS);
      break;
    case 'not-websocket':
      r = json(400, null, '', { error: { code: 'BAD_REQUEST', message: 'only WebSocket upgrades are relayed' } });
      break;
    case 'internal-error':
      r = asHtml ? html(500, pages.messagePage('Something went wrong', a.message)) : json(500, null, '', { error: { code: 'INTERNAL', message: a.message } });
      break;
  }
  if ('setCookie' in a && a.setCookie && a.setCookie.length) r.headers['set-cookie'] = a.setCookie;
  r.headers['cache-control'] = 'no-store';
  r.headers['x-content-type-options'] = 'nosniff';
  if (asHtml) r.headers['content-security-policy'] = nonce === undefined ? CSP : waitingCsp(nonce);
  return r;
}

/** Maps a thrown error (claim, end) to an answer. */
export function answerForError(e: unknown, app: string, apps: readonly string[]): Answer {
  if (isWarmpoolError(e, 'APP_UNKNOWN')) return { kind: 'unknown-app', name: app, apps };
  if (isWarmpoolError(e, 'POOL_STOPPED')) return { kind: 'pool-stopped', app };
  return { kind: 'internal-error', message: 'warmpool could not handle this request; try again in a moment.' };
}

/** Sends an answer on a normal response (HEAD gets headers only). */
export function sendAnswer(req: IncomingMessage, res: ServerResponse, a: Answer): void {
  const r = render(a, wantsHtml(req));
  if (res.headersSent) {
    res.destroy();
    return;
  }
  r.headers['content-length'] = String(Buffer.byteLength(r.body, 'utf8'));
  // The reason phrase is always ours: a refused writeHead may have left an instance's on res.
  res.writeHead(r.status, STATUS_CODES[r.status] ?? '', r.headers);
  // A string, not a Buffer: Node sends it with the head in one write (a Buffer is a second piece, and a copy).
  res.end(req.method === 'HEAD' ? undefined : r.body, 'utf8');
}

/**
 * Refuses an upgrade with a real HTTP answer (status line, Connection: close, a short body), then
 * destroys the socket once written, as ws's abortHandshake does.
 */
export function refuseUpgrade(req: IncomingMessage, socket: Duplex, a: Answer): void {
  const r = render(a, false);
  writeRawAnswer(socket, r);
}

export function writeRawAnswer(socket: Duplex, r: Rendered): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const body = Buffer.from(r.body, 'utf8');
  let head = `HTTP/1.1 ${r.status} ${STATUS_CODES[r.status] ?? ''}\r\nConnection: close\r\nContent-Length: ${body.length}\r\n`;
  for (const [k, v] of Object.entries(r.headers)) {
    for (const one of Array.isArray(v) ? v : [v]) head += `${k}: ${one}\r\n`;
  }
  socket.once('finish', () => socket.destroy());
  socket.end(Buffer.concat([Buffer.from(head + '\r\n', 'latin1'), body]));
}
