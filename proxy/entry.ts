// The entry pass: `GET /<app>/` (no Upgrade) claims a warm instance, sets the app's cookie and
// redirects to the deep link; a visitor with a live cookie goes back to their own instance.
//
// Decisions:
// - Only GET claims. HEAD/POST/... to `/<app>/` with a live cookie are routed to the instance;
//   without one they get the no-session answer (a link prefetcher or monitor never takes an instance).
// - A live cookie + `?fresh=1` ends that session ('fresh-requested') and claims a new one; if the
//   navigation came from another site (Sec-Fetch-Site: cross-site) a confirmation page asks first,
//   so a link elsewhere cannot end a student's session.
// - A live cookie + an API-style request (Accept names application/json but not text/html) is routed
//   to the instance like any other request: the app's own fetch() of its root keeps working. Only a
//   browser navigation (Accept: text/html, or none of the two) is redirected to the deep link.
// - `?ticket=` (from the waiting page) keeps the visitor's place in line.

import type { IncomingMessage } from 'node:http';
import type { PoolApi, SessionTarget } from '../pool/api.js';
import type { AppConfig } from '../pool/config.js';
import { answerForError, type Answer } from './answers.js';
import { setCookieHeader, type CookieCodec } from './cookie.js';
import type { Visit } from './forwarded.js';
import { queryParam } from './router.js';
import { readSession } from './session.js';

/** `claimed`: the instance this answer just handed out (the relay may open a connection to it meanwhile). */
export type EntryOutcome = { kind: 'answer'; answer: Answer; claimed?: SessionTarget } | { kind: 'relay'; target: SessionTarget };

export interface EntryDeps {
  pool: PoolApi;
  codec: CookieCodec;
  log?: (msg: string) => void;
}

/** The public URL of an app's deep link, e.g. /demo/open?path=webapp.jl. */
export function deepLinkUrl(app: AppConfig): string {
  return `/${app.name}${app.deepLink}`;
}

function prefersJson(req: IncomingMessage): boolean {
  const a = req.headers.accept;
  return typeof a === 'string' && a.indexOf('application/json') >= 0 && a.indexOf('text/html') < 0;
}

export async function entry(req: IncomingMessage, app: AppConfig, visit: Visit, d: EntryDeps): Promise<EntryOutcome> {
  const url = req.url!;
  const fresh = queryParam(url, 'fresh');
  const wantsFresh = fresh !== undefined && fresh !== '0' && fresh !== 'false';
  const ticket = queryParam(url, 'ticket') || undefined;
  const secure = visit.proto === 'https';
  const current = readSession(req, app.name, d.codec, d.pool, secure);

  if (current.ok) {
    if (!wantsFresh) {
      if (prefersJson(req)) return { kind: 'relay', target: current.target };
      return { kind: 'answer', answer: { kind: 'redirect', status: 302, location: deepLinkUrl(app), detail: { session: 'existing' } } };
    }
    if (req.headers['sec-fetch-site'] === 'cross-site') return { kind: 'answer', answer: { kind: 'confirm-fresh', app: app.name } };
    try {
      await d.pool.end(current.target.session, 'fresh-requested');
    } catch (e) {
      d.log?.(`could not end session ${current.target.session} for a fresh one: ${(e as Error).message}`);
    }
  }

  let r;
  try {
    r = await d.pool.claim(app.name, { ticket: wantsFresh ? undefined : ticket, visitor: visit.forwardedFor.split(',')[0]!.trim() });
  } catch (e) {
    return { kind: 'answer', answer: answerForError(e, app.name, d.pool.apps().map((a) => a.name)) };
  }
  if (r.kind === 'queued') {
    return { kind: 'answer', answer: { kind: 'waiting', app: app.name, ticket: r.ticket, position: r.position, retryAfterMs: r.retryAfterMs } };
  }
  const value = d.codec.sign({ session: r.target.session, instance: r.target.instanceId, app: app.name });
  return {
    kind: 'answer',
    answer: {
      kind: 'redirect',
      status: 302,
      location: deepLinkUrl(app),
      setCookie: [setCookieHeader(app.name, value, { secure, maxAgeMs: d.codec.maxAgeMs })],
      detail: { session: 'new' },
    },
    claimed: r.target,
  };
}
