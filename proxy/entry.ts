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
// - A new session goes straight where the deep link led when its instance became ready (Pluto's
//   /edit?id=, proxy/deep-link.ts); a returning visitor goes through the deep link itself, which
//   reopens a notebook the student closed.
// - No ready instance: the request is held open and answered the moment an instance is ready (302 +
//   cookie). A browser's for queue.pageHold, then the waiting page, whose live stream
//   (proxy/waiting.ts) keeps the same place; an API client's for queue.hold, then a 503 naming the URL
//   that keeps the place.
// - `?wait=<ticket>` without an event stream: that held request (also what browsers without
//   JavaScript reach through the waiting page's <noscript> refresh).
// - `?collect=<token>`: the one-time URL a waiting page's stream sends when an instance is reserved
//   for it; only the stream knows it. Whatever holds nothing sends the visitor back to /<app>/.

import type { IncomingMessage } from 'node:http';
import type { PoolApi, SessionTarget } from '../pool/api.js';
import type { AppConfig } from '../core/config.js';
import { answerForError, wantsHtml, type Answer } from './answers.js';
import { setCookieHeader, type CookieCodec } from './cookie.js';
import { deepLinkUrl, firstLocation } from './deep-link.js';
import type { Visit } from './forwarded.js';
import type { Leaving } from './leaving.js';
import { queryParam } from './router.js';
import { readSession } from './session.js';
import type { Log } from '../core/log.js';

/** `claimed`: the instance this answer just handed out (the relay may open a connection to it meanwhile). */
export type EntryOutcome = { kind: 'answer'; answer: Answer; claimed?: SessionTarget } | { kind: 'relay'; target: SessionTarget };

export interface EntryDeps {
  pool: PoolApi;
  codec: CookieCodec;
  log?: Log;
  /** Its signal aborts when the visitor's request closes: a held request gives up its place at once. */
  leaving?: Leaving;
}

function prefersJson(req: IncomingMessage): boolean {
  const a = req.headers.accept;
  return typeof a === 'string' && a.indexOf('application/json') >= 0 && a.indexOf('text/html') < 0;
}

const NEVER = new AbortController().signal;

export async function entry(req: IncomingMessage, app: AppConfig, visit: Visit, d: EntryDeps): Promise<EntryOutcome> {
  const url = req.url!;
  const fresh = queryParam(url, 'fresh');
  const wantsFresh = fresh !== undefined && fresh !== '0' && fresh !== 'false';
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
      d.log?.(
        `could not end session ${current.target.session} for a fresh one: ${(e as Error).message}`,
        { app: app.name, session: current.target.session },
        'warn',
      );
    }
  }

  const collect = wantsFresh ? undefined : queryParam(url, 'collect');
  const ticket = wantsFresh ? undefined : queryParam(url, 'wait');
  try {
    if (collect) return await collected(app, collect, secure, d);
    if (ticket) return await held(app, ticket, secure, d);
    const r = await d.pool.claim(app.name, { visitor: visit.visitor, waiter: wantsHtml(req) ? 'stream' : 'request' });
    switch (r.kind) {
      case 'session':
        return admitted(app, r.target, secure, d);
      case 'limited':
        return {
          kind: 'answer',
          answer: { kind: 'line-limited', app: app.name, why: r.why, limit: r.limit, retryAfterS: Math.max(1, Math.ceil(r.retryAfterMs / 1000)) },
        };
      case 'queued':
        // A browser's request too is held (briefly: queue.pageHold), so a class arriving at once mostly goes
        // straight in as instances free up; the waiting page, which keeps the same place, only after that.
        return await held(app, r.ticket, secure, d, wantsHtml(req) ? 'page' : 'request');
    }
  } catch (e) {
    return {
      kind: 'answer',
      answer: answerForError(
        e,
        app.name,
        d.pool.apps().map((a) => a.name),
      ),
    };
  }
}

/** A request held in line: answered the moment an instance is reserved for it, or when queue.hold runs out. */
async function held(app: AppConfig, ticket: string, secure: boolean, d: EntryDeps, kind: 'request' | 'page' = 'request'): Promise<EntryOutcome> {
  const w = await d.pool.wait(app.name, ticket, { kind, signal: d.leaving?.signal ?? NEVER });
  switch (w.kind) {
    case 'offer':
      return collected(app, w.collect, secure, d);
    case 'timeout':
      return { kind: 'answer', answer: { kind: 'waiting', app: app.name, ticket: w.ticket, line: w.line } };
    case 'limited':
      return {
        kind: 'answer',
        answer: { kind: 'line-limited', app: app.name, why: w.why, limit: w.limit, retryAfterS: Math.max(1, Math.ceil(w.retryAfterMs / 1000)) },
      };
    case 'gone':
      return { kind: 'answer', answer: { kind: 'place-lapsed', app: app.name } };
  }
}

async function collected(app: AppConfig, token: string, secure: boolean, d: EntryDeps): Promise<EntryOutcome> {
  const c = await d.pool.collect(app.name, token);
  if (c.kind === 'gone') return { kind: 'answer', answer: { kind: 'place-lapsed', app: app.name } };
  return admitted(app, c.target, secure, d);
}

/** A new session: its signed cookie, and the deep link (or straight where it leads: proxy/deep-link.ts). */
function admitted(app: AppConfig, target: SessionTarget, secure: boolean, d: EntryDeps): EntryOutcome {
  const value = d.codec.sign({ session: target.session, instance: target.instanceId, app: app.name });
  return {
    kind: 'answer',
    answer: {
      kind: 'redirect',
      status: 302,
      location: firstLocation(app, target),
      setCookie: [setCookieHeader(app.name, value, { secure, maxAgeMs: d.codec.maxAgeMs })],
      detail: { session: 'new' },
    },
    claimed: target,
  };
}
