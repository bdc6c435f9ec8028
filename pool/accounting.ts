// What each session did, for the traffic log and the admin surface: the log writer, active time,
// open connections, the proxy's events, and the summary written when a session ends or is kept.

import type { Clock } from '../core/clock.js';
import type { Session } from './session.js';
import type { TrafficLogSink } from './traffic-log.js';
import type { ProxyEventType, TrafficLogEntry, TrafficSummary } from './traffic-log-schema.js';

// Active time: a stretch of activity runs from its first activity to its last, and ends when the
// idle notice comes (no activity for idleNoticeMs). Every gap inside a stretch is shorter than that
// interval, so this is the sum of the gaps between activities no longer than it, counted from the
// one stamp (Session.lastActive), whether or not each activity was reported.

/** Active time so far, ms: the closed stretches, and the current one up to the last activity. */
export function activeMs(s: Session): number {
  return s.closedActiveMs + (s.idleNoticed ? 0 : s.lastActive - s.stretchFrom);
}

export class Accounting {
  constructor(
    private readonly clock: Clock,
    private readonly sink?: TrafficLogSink,
  ) {}

  /** One line of the traffic log, at the clock's now unless t says when. */
  write(entry: TrafficLogEntry, t = this.clock.now()): void {
    this.sink?.write({ t, ...entry });
  }

  /** The idle notice: the current stretch of activity ends at the last activity. */
  idle(s: Session): void {
    s.closedActiveMs = activeMs(s);
    s.stretchFrom = s.lastActive;
    s.idleNoticed = true;
    this.write({ type: 'idle', session: s.id, app: s.app.name, since: s.lastActive });
  }

  /** Activity after the idle notice: a new stretch begins (a gap of exactly the notice interval still counts). */
  activeAgain(s: Session): void {
    const gap = s.lastActive - s.stretchFrom;
    if (gap <= (s.idleNoticeMs ?? Infinity)) s.closedActiveMs += gap;
    s.stretchFrom = s.lastActive;
    s.idleNoticed = false;
    this.write({ type: 'active-again', session: s.id, app: s.app.name }, s.lastActive);
  }

  connectionOpened(s: Session): void {
    s.openConnections++;
    s.target.traffic.openConnections = s.openConnections;
  }

  /** true when it was the last one open: the grace period starts. */
  connectionClosed(s: Session): boolean {
    s.openConnections = Math.max(0, s.openConnections - 1);
    s.target.traffic.openConnections = s.openConnections;
    s.lastConnectionAt = this.clock.now();
    return s.openConnections === 0;
  }

  /** What the proxy reported (PoolApi.event), for the log. */
  event(s: Session, type: ProxyEventType, detail?: Record<string, unknown>): void {
    if (type === 'request') {
      // Requests with no socket open also hold the grace period open; only the first is logged.
      if (s.openConnections === 0) s.lastConnectionAt = this.clock.now();
      if (s.firstRequestSeen) return;
      s.firstRequestSeen = true;
      type = 'first-request';
    }
    this.write({ type, session: s.id, app: s.app.name, ...detail });
  }

  /** What a session did, for its 'ended' or 'suspended' line. */
  summary(s: Session, now: number): TrafficSummary {
    const t = s.target.traffic;
    return {
      claimedAt: s.claimedAt,
      durationMs: now - s.claimedAt,
      lastActive: s.lastActive,
      activeMs: activeMs(s),
      requests: t.requests,
      bytesIn: t.bytesIn,
      bytesOut: t.bytesOut,
      framesIn: t.framesIn,
      framesOut: t.framesOut,
      messagesIn: t.messagesIn,
      messagesOut: t.messagesOut,
    };
  }

  close(): Promise<void> {
    return this.sink?.close() ?? Promise.resolve();
  }
}
