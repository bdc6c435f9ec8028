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
  return new LiveSession(app, m, id, claimedAt, since, idleNoticeMs);
}

/**
 * A class rather than an object literal with a getter: one is made per claim and lives as long as
 * the session, and the literal (a closure for the getter, its fields added later one by one) was
 * 2 KB of a claim's garbage and a changing shape for every reader (bench/claims.ts heap profile).
 */
class LiveSession implements Session {
  readonly target: Session['target'];
  firstRequestSeen: boolean | undefined = undefined;
  visitor: string | undefined = undefined;
  recordedAtClaim: boolean | undefined = undefined;
  closedActiveMs = 0;
  stretchFrom: number;
  openConnections = 0;
  lastConnectionAt: number;
  readonly idleTimeoutMs: number;
  readonly maxLifetimeMs: number;
  readonly graceMs: number;
  idleNoticed: boolean | undefined = undefined;
  firstUseBy: number | undefined = undefined;

  constructor(
    readonly app: AppConfig,
    readonly member: Member,
    readonly id: string,
    readonly claimedAt: number,
    since: number,
    readonly idleNoticeMs: number,
  ) {
    const traffic = newTraffic() as StampedTraffic;
    traffic.lastActive = since;
    this.target = {
      session: id,
      app: app.name,
      instanceId: member.id,
      host: member.rec!.host,
      port: member.rec!.port,
      secret: member.secret,
      deepLinkRedirect: member.deepLinkRedirect,
      claimedAt,
      traffic,
    };
    this.stretchFrom = since;
    this.lastConnectionAt = since;
    this.idleTimeoutMs = app.idleTimeoutMs;
    this.maxLifetimeMs = app.maxLifetimeMs;
    this.graceMs = app.graceMs;
  }

  get lastActive(): number {
    return this.target.traffic.lastActive;
  }
}
