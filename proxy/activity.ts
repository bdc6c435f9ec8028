// Reports what the proxy observed to the pool: counters bumped in place on SessionTraffic, and user
// activity (already classified) passed to pool.activity() at most once per interval per session.

import type { PoolApi, SessionTarget, SessionTraffic } from '../pool/api.js';
import type { Clock } from '../core/clock.js';

const STATUS_CLASS = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx'];
/** "GET 2xx"-style keys, built once per method (a string built per request showed in the profile). */
const REQUEST_KEYS = new Map<string, string[]>();

function requestKey(method: string, status: number): string {
  let keys = REQUEST_KEYS.get(method);
  if (keys === undefined) {
    keys = STATUS_CLASS.map((c) => `${method} ${c}`);
    // Methods are whatever visitors send: cache the usual ones only, so the map stays small.
    if (REQUEST_KEYS.size < 32) REQUEST_KEYS.set(method, keys);
  }
  return keys[Math.floor(status / 100)] ?? `${method} xxx`;
}

export class ActivityReporter {
  /** Last time pool.activity() was called, per session's traffic record (dies with the record). */
  private readonly reported = new WeakMap<SessionTraffic, number>();

  constructor(
    private readonly pool: PoolApi,
    private readonly clock: Clock,
    readonly coalesceMs = 1000,
  ) {}

  now(): number {
    return this.clock.now();
  }

  /** Any traffic at all: first/last seen. */
  seen(t: SessionTraffic, at: number): void {
    if (t.firstSeen === undefined) t.firstSeen = at;
    t.lastSeen = at;
  }

  /**
   * User activity at `at`. traffic.lastActive is set exactly; the pool hears of it at most once per
   * coalesceMs (its deadlines tolerate that), so a burst of keystrokes is one call, not hundreds.
   */
  active(target: SessionTarget, at: number): void {
    const t = target.traffic;
    if (t.lastActive === undefined || at > t.lastActive) t.lastActive = at;
    const last = this.reported.get(t);
    if (last !== undefined && at - last < this.coalesceMs) return;
    this.reported.set(t, at);
    this.pool.activity(target.session, at);
  }

  /** One HTTP request answered: "GET 2xx" += 1. */
  request(t: SessionTraffic, method: string, status: number): void {
    const key = requestKey(method, status);
    t.requests[key] = (t.requests[key] ?? 0) + 1;
  }

  messageIn(t: SessionTraffic, type: string): void {
    t.messagesIn[type] = (t.messagesIn[type] ?? 0) + 1;
  }
}
