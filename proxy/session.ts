// The session pass: the app's cookie → verified payload → pool.find() → the live target, or the
// answer to give instead. A request that fails here is never routed anywhere.

import type { IncomingMessage } from 'node:http';
import type { PoolApi, SessionTarget } from '../pool/api.js';
import type { Answer } from './answers.js';
import { clearCookieHeader, cookieName, readCookie, type CookieCodec, type CookiePayload } from './cookie.js';

export type SessionLookup =
  | { ok: true; target: SessionTarget; cookie: CookiePayload }
  | { ok: false; answer: Answer; /** a cookie was sent (valid or not) */ present: boolean };

export function readSession(req: IncomingMessage, app: string, codec: CookieCodec, pool: PoolApi, secure: boolean): SessionLookup {
  const raw = readCookie(req.headers.cookie, cookieName(app));
  if (raw === undefined || raw === '') return { ok: false, present: false, answer: { kind: 'no-session', app, why: 'missing' } };
  // Built only for a refusal: the usual request has a live session and clears nothing.
  const clear = (): string[] => [clearCookieHeader(app, secure)];
  const v = codec.verify(raw, app);
  if (!v.ok) return { ok: false, present: true, answer: { kind: 'no-session', app, why: v.reason, setCookie: clear() } };
  const found = pool.find(v.payload.session, v.payload.instance);
  switch (found.kind) {
    case 'live':
      // Defence in depth: a target of another app or instance is never used, whatever the pool said.
      if (found.target.app !== app || found.target.instanceId !== v.payload.instance) {
        return { ok: false, present: true, answer: { kind: 'ended', app, reason: 'unknown', setCookie: clear() } };
      }
      return { ok: true, target: found.target, cookie: v.payload };
    case 'ended':
      return { ok: false, present: true, answer: { kind: 'ended', app, reason: found.reason, at: found.at, setCookie: clear() } };
    default:
      return { ok: false, present: true, answer: { kind: 'ended', app, reason: 'unknown', setCookie: clear() } };
  }
}
