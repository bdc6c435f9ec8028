// Ends claimed sessions at the earliest of their deadlines — idle timeout since the last user
// activity, maximum lifetime since the claim, grace after the last connection closed, first use of a
// visitor's claim (queue.firstUse: no request yet, so it goes back to the pool unused) — using one
// timer on the injected clock set for the earliest deadline of all sessions (no periodic sweep).

import type { Clock, TimerHandle } from '../core/clock.js';

export type DeadlineReason = 'idle' | 'lifetime' | 'grace' | 'idle-notice' | 'unused';

export interface ReapableSession {
  claimedAt: number;
  /** Last user activity (a Session reads it from its traffic record: see session.ts). */
  readonly lastActive: number;
  openConnections: number;
  /** Last time a connection closed or a request was seen while none was open. */
  lastConnectionAt: number;
  idleTimeoutMs: number;
  maxLifetimeMs: number;
  graceMs: number;
  /** When set, an "idle" notice is due this long after the last activity (for the traffic log). */
  idleNoticeMs?: number;
  idleNoticed?: boolean;
  /** Set while a visitor's claim has seen no request: by then it goes back to the pool, unused. */
  firstUseBy?: number;
}

/** The earliest deadline of one session (the idle notice among them unless notice is false). Pure: tested table-style. */
export function nextDeadline(s: ReapableSession, notice = true): { at: number; reason: DeadlineReason } {
  let best: { at: number; reason: DeadlineReason } = { at: s.lastActive + s.idleTimeoutMs, reason: 'idle' };
  const life = s.claimedAt + s.maxLifetimeMs;
  if (life < best.at) best = { at: life, reason: 'lifetime' };
  if (s.openConnections <= 0) {
    const grace = s.lastConnectionAt + s.graceMs;
    if (grace < best.at) best = { at: grace, reason: 'grace' };
  }
  if (s.firstUseBy !== undefined && s.firstUseBy < best.at) best = { at: s.firstUseBy, reason: 'unused' };
  if (notice && s.idleNoticeMs !== undefined && !s.idleNoticed) {
    const noticeAt = s.lastActive + s.idleNoticeMs;
    if (noticeAt < best.at) best = { at: noticeAt, reason: 'idle-notice' };
  }
  return best;
}

/** When a session ends if nothing changes (idle, lifetime, grace, first use; not the idle notice): for wait estimates. */
export function endDeadline(s: ReapableSession): number {
  return nextDeadline(s, false).at;
}

export class Reaper<S extends ReapableSession> {
  private timer?: TimerHandle;
  private timerAt = Infinity;

  constructor(
    private readonly clock: Clock,
    private readonly sessions: () => Iterable<[string, S]>,
    /** Called for each session whose deadline has come; returns true when it ended the session. */
    private readonly due: (id: string, s: S, reason: DeadlineReason, deadline: number) => boolean,
    /** Told when a session's deadline did not move after it was handled (a bug): that session is skipped, nothing throws. */
    private readonly stuck: (id: string, reason: DeadlineReason) => void = () => {},
  ) {}

  /**
   * Reconciles: handles every deadline that has passed, then sets the one timer for the next.
   * Call it whenever a deadline may have moved earlier (claim, connection closed); later moves
   * (activity) need no call: the timer fires, finds the deadline moved and re-arms.
   */
  schedule(): void {
    const now = this.clock.now();
    let next = Infinity;
    for (const [id, s] of [...this.sessions()]) {
      let d = nextDeadline(s);
      let settled = false; // ended, or stuck: either way no timer for it
      while (d.at <= now) {
        if ((settled = this.due(id, s, d.reason, d.at))) break;
        const moved = nextDeadline(s);
        if (moved.at === d.at && moved.reason === d.reason) {
          // This runs inside a timer callback: report and skip, never throw (nothing would catch it).
          this.stuck(id, d.reason);
          settled = true;
          break;
        }
        d = moved;
      }
      if (!settled) next = Math.min(next, d.at);
    }
    this.arm(now, next);
  }

  /**
   * One session's deadline may have moved earlier (it was claimed, its last connection closed):
   * arms the timer sooner if that deadline comes first. O(1), not a walk over every session: a
   * class's claims each call it, and the timer's schedule() still sees everyone when it fires.
   */
  moved(s: S): void {
    const now = this.clock.now();
    const at = nextDeadline(s).at;
    if (at <= now) this.schedule();
    else if (at < this.timerAt) this.arm(now, at);
  }

  private arm(now: number, next: number): void {
    if (next === this.timerAt) return;
    this.timer?.cancel();
    this.timer = undefined;
    this.timerAt = next;
    if (next === Infinity) return;
    this.timer = this.clock.setTimer(next - now, () => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.schedule();
    });
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.timerAt = Infinity;
  }
}
