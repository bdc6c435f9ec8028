// The last hour of each app, per minute: claims, and active sessions (the most live at once in
// that minute). For the dashboard's sparklines; kept in memory, on the injected Clock.

import type { Clock } from '../core/clock.js';

const MINUTE = 60_000;

interface Bucket {
  claims: number;
  active: number;
  last: number;
}

export interface Series {
  /** Start of the first minute, ms; one value per minute up to the current one. */
  start: number;
  claims: number[];
  active: number[];
}

export class ActivityHistory {
  private readonly apps = new Map<string, Map<number, Bucket>>();
  private readonly lastActive = new Map<string, number>();

  constructor(
    private readonly clock: Clock,
    private readonly minutes = 60,
  ) {}

  claim(app: string): void {
    this.bucket(app).claims++;
  }

  /** The number of live sessions of app now. */
  active(app: string, n: number): void {
    const b = this.bucket(app);
    b.active = Math.max(b.active, n);
    b.last = n;
    this.lastActive.set(app, n);
  }

  series(app: string): Series {
    const now = Math.floor(this.clock.now() / MINUTE) * MINUTE;
    const start = now - (this.minutes - 1) * MINUTE;
    const buckets = this.apps.get(app);
    const claims: number[] = [];
    const active: number[] = [];
    // Minutes without a change carry the count the previous minute ended with.
    let carry = 0;
    for (const [m, b] of buckets ?? []) if (m < start) carry = b.last;
    for (let m = start; m <= now; m += MINUTE) {
      const b = buckets?.get(m);
      claims.push(b?.claims ?? 0);
      active.push(b ? b.active : carry);
      if (b) carry = b.last;
    }
    return { start, claims, active };
  }

  private bucket(app: string): Bucket {
    const m = Math.floor(this.clock.now() / MINUTE) * MINUTE;
    let buckets = this.apps.get(app);
    if (!buckets) this.apps.set(app, (buckets = new Map()));
    let b = buckets.get(m);
    if (!b) {
      const last = this.lastActive.get(app) ?? 0;
      b = { claims: 0, active: last, last };
      buckets.set(m, b);
      // Keep one minute before the window: it carries the count into the first minute shown.
      const keepFrom = m - this.minutes * MINUTE;
      for (const k of buckets.keys()) if (k < keepFrom) buckets.delete(k);
    }
    return b;
  }
}
