// A claimed session as the pool keeps it. Its last user activity has one home: the traffic record's
// lastActive, which the proxy stamps exactly; the reaper, the views and the summary read it through
// Session.lastActive, and pool.activity() only re-arms the deadlines it moved.

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
  /** Active time of the stretches of activity an idle notice closed, ms (see accounting.ts). */
  closedActiveMs: number;
  /** Where the current stretch of activity began, or (while noted idle) where the last one ended. */
  stretchFrom: number;
}

/** A session's traffic record with nothing counted yet. */
export function newTraffic(): SessionTraffic {
  return {
    requests: {},
    bytesIn: 0,
    bytesOut: 0,
    framesIn: { control: 0, data: 0 },
    framesOut: { control: 0, data: 0 },
    messagesIn: {},
    messagesOut: 0,
    openConnections: 0,
  };
}

/**
 * A new session on a claimed instance: claimed at claimedAt, its idle and grace clocks running from
 * since (the claim, or now for a session of an earlier run whose activity is unknown).
 */
export function newSession(app: AppConfig, m: Member, id: string, claimedAt: number, since: number, idleNoticeMs: number): Session {
  const traffic: StampedTraffic = { ...newTraffic(), lastActive: since };
  const target = {
    session: id,
    app: app.name,
    instanceId: m.id,
    host: m.rec!.host,
    port: m.rec!.port,
    secret: m.secret,
    deepLinkRedirect: m.deepLinkRedirect,
    claimedAt,
    traffic,
  };
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
