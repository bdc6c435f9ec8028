// What the admin surface and health checks see of the fleet: live sessions as plain data (traffic,
// last user activity, the deadline that will end each), and each pool's health state. Pure.

import type { PoolHealthState } from './api.js';
import { nextDeadline } from './reaper.js';
import { activeMs } from './accounting.js';
import type { Session } from './session.js';
import type { PoolStatus } from './warm-pool.js';

export interface SessionView {
  id: string;
  app: string;
  instance: string;
  claimedAt: number;
  /** Last user activity (the proxy's exact stamp), ms. */
  lastActive: number;
  /** When the idle timeout ends it, if nothing else comes first. */
  idleDeadline: number;
  lifetimeDeadline: number;
  /** Only while no connection is open. */
  graceDeadline?: number;
  /** The deadline that ends it first, and which one. */
  endsAt: number;
  /** unused: a visitor's claim no request has used yet, given back at queue.firstUse. */
  endsBy: 'idle' | 'lifetime' | 'grace' | 'unused';
  /** Noted idle in the traffic log (no user activity for the idle-notice interval). */
  idle: boolean;
  activeMs: number;
  openConnections: number;
  bytesIn: number;
  bytesOut: number;
  requests: number;
  messagesIn: number;
  messagesOut: number;
  messagesInByType: Record<string, number>;
}

export function sessionView(s: Session, now: number): SessionView {
  const t = s.target.traffic;
  const lastActive = s.lastActive;
  const d = nextDeadline(s, false);
  let requests = 0;
  for (const n of Object.values(t.requests)) requests += n;
  let messagesIn = 0;
  for (const n of Object.values(t.messagesIn)) messagesIn += n;
  return {
    id: s.id,
    app: s.app.name,
    instance: s.member.id,
    claimedAt: s.claimedAt,
    lastActive,
    idleDeadline: lastActive + s.idleTimeoutMs,
    lifetimeDeadline: s.claimedAt + s.maxLifetimeMs,
    graceDeadline: s.openConnections <= 0 ? s.lastConnectionAt + s.graceMs : undefined,
    endsAt: d.at,
    endsBy: d.reason === 'idle-notice' ? 'idle' : d.reason,
    idle: s.idleNoticed === true || now - lastActive >= (s.idleNoticeMs ?? 60_000),
    activeMs: activeMs(s),
    openConnections: s.openConnections,
    bytesIn: t.bytesIn,
    bytesOut: t.bytesOut,
    requests,
    messagesIn,
    messagesOut: t.messagesOut,
    messagesInByType: { ...t.messagesIn },
  };
}

/** A pool's health from its counts (see PoolHealthState). */
export function poolHealthState(s: PoolStatus, draining: boolean): PoolHealthState {
  if (draining) return 'draining';
  if (s.ready > 0) return 'ok';
  if (s.failures > 0) return 'failing';
  if (s.ready + s.starting + s.claimed >= s.max && s.starting === 0) return 'full';
  return 'warming';
}
