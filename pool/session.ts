// A claimed session as the pool keeps it, and its active time. Its last user activity has one home:
// the traffic record's lastActive, which the proxy stamps exactly; the reaper, the views and the
// summary read it through Session.lastActive, and pool.activity() only re-arms the deadlines it moved.

import type { AppConfig } from '../core/config.js';
import type { SessionTarget, SessionTraffic } from './api.js';
import type { ReapableSession } from './reaper.js';
import type { Member } from './warm-pool.js';

/** The traffic record as the pool creates it: lastActive is set from the start, and the proxy only moves it forward. */
export type StampedTraffic = SessionTraffic & { lastActive: number };

export interface Session extends ReapableSession {
  id: string;
  app: AppConfig;
  member: Member;
  target: SessionTarget & { traffic: StampedTraffic };
  /** Last user activity: target.traffic.lastActive, read through (never a copy). */
  readonly lastActive: number;
  firstRequestSeen?: boolean;
  /** The address that claimed it (a visitor's claim: queue limits and first-use grace apply). */
  visitor?: string;
  /** Its claim was on the engine before its visitor was answered (shared claims, or the journal failed): never given back unused. */
  recordedAtClaim?: boolean;
  /** Active time of the stretches of activity an idle notice closed, ms (see activeMs()). */
  closedActiveMs: number;
  /** Where the current stretch of activity began, or (while noted idle) where the last one ended. */
  stretchFrom: number;
}

/**
 * A new session on a claimed instance: claimed at claimedAt, its idle and grace clocks running from
 * since (the claim, or now for a session of an earlier run whose activity is unknown).
 */
export function newSession(app: AppConfig, m: Member, id: string, claimedAt: number, since: number, idleNoticeMs: number): Session {
  const traffic: StampedTraffic = {
    requests: {},
    bytesIn: 0,
    bytesOut: 0,
    framesIn: { control: 0, data: 0 },
    framesOut: { control: 0, data: 0 },
    messagesIn: {},
    messagesOut: 0,
    lastActive: since,
    openConnections: 0,
  };
  const target = { session: id, app: app.name, instanceId: m.id, host: m.rec!.host, port: m.rec!.port, secret: m.secret, claimedAt, traffic };
  return {
    id,
    app,
    member: m,
    target,
    claimedAt,
    get lastActive() {
      return traffic.lastActive;
    },
    openConnections: 0,
    lastConnectionAt: since,
    closedActiveMs: 0,
    stretchFrom: since,
    idleTimeoutMs: app.idleTimeoutMs,
    maxLifetimeMs: app.maxLifetimeMs,
    graceMs: app.graceMs,
    idleNoticeMs,
  };
}

// Active time: a stretch of activity runs from its first activity to its last, and ends when the
// idle notice comes (no activity for idleNoticeMs). Every gap inside a stretch is shorter than that
// interval, so this is the sum of the gaps between activities no longer than it, counted from the
// one stamp, whether or not each activity was reported.

/** Active time so far, ms: the closed stretches, and the current one up to the last activity. */
export function activeMs(s: Session): number {
  return s.closedActiveMs + (s.idleNoticed ? 0 : s.lastActive - s.stretchFrom);
}

/** The idle notice: the current stretch ends at the last activity. */
export function noteIdle(s: Session): void {
  s.closedActiveMs = activeMs(s);
  s.stretchFrom = s.lastActive;
  s.idleNoticed = true;
}

/** Activity after the idle notice: a new stretch begins (a gap of exactly the notice interval still counts). */
export function noteActiveAgain(s: Session): void {
  const gap = s.lastActive - s.stretchFrom;
  if (gap <= (s.idleNoticeMs ?? Infinity)) s.closedActiveMs += gap;
  s.stretchFrom = s.lastActive;
  s.idleNoticed = false;
}
