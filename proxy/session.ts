// The session pass: the app's cookie → verified payload → pool.find() → the live target, or the
// answer to give instead. A request that fails here is never routed anywhere.

import type { IncomingMessage } from 'node:http';
import type { PoolApi, SessionTarget } from '../pool/api.js';
import type { Answer } from './answers.js';
import { clearCookieHeader, cookieName, readCookies, type CookieCodec, type CookiePayload, type VerifyResult } from './cookie.js';

export type SessionLookup =
  | { ok: true; target: SessionTarget; cookie: CookiePayload }
  | { ok: false; answer: Answer /** a cookie was sent (valid or not) */; present: boolean };

export function readSession(req: IncomingMessage, app: string, codec: CookieCodec, pool: PoolApi, secure: boolean): SessionLookup {
  const raw = readCookies(req.headers.cookie, cookieName(app));
  if (raw === undefined || raw === '') return { ok: false, present: false, answer: { kind: 'no-session', app, why: 'missing' } };
  // Built only for a refusal: the usual request has a live session and clears nothing.
  const clear = (): string[] => [clearCookieHeader(app, secure)];
  const v = typeof raw === 'string' ? codec.verify(raw, app) : newestValid(raw, app, codec);
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

/**
 * Several cookies of one name (one planted at a longer path, say): the newest valid one warmpool
 * issued wins, whatever order the browser sent them in. Two valid ones issued at the same instant
 * for different sessions cannot be told apart: routed nowhere.
 */
function newestValid(values: readonly string[], app: string, codec: CookieCodec): VerifyResult {
  let best: VerifyResult | undefined;
  let ambiguous = false;
  for (const value of values) {
    const v = codec.verify(value, app);
    if (!v.ok) {
      best ??= v;
      continue;
    }
    if (best === undefined || !best.ok || v.payload.issued > best.payload.issued) {
      best = v;
      ambiguous = false;
    } else if (v.payload.issued === best.payload.issued && v.payload.session !== best.payload.session) ambiguous = true;
  }
  if (ambiguous) return { ok: false, reason: 'ambiguous' };
  return best ?? { ok: false, reason: 'malformed' };
}
