// What happened in the fleet, for the admin surface: counted from the traffic log's entries (the
// monitor is a TrafficLogSink the fleet's log is teed into) and from the fleet's change events.
// Totals for /metrics, recent ends and failures for the dashboard, the last hour for sparklines.
// Nothing here runs per relayed byte: the log gets a few entries per session, changes a few more.

import type { Clock } from '../core/clock.js';
import type { Fleet } from '../pool/fleet.js';
import type { TrafficLogSink } from '../pool/traffic-log.js';
import { normalizeSummary } from '../pool/traffic-log-reader.js';
import { ActivityHistory } from './history.js';

type Entry = Record<string, unknown> & { t: number };

export interface RecentEnd {
  session: string;
  app: string;
  instance?: string;
  reason: string;
  at: number;
  claimedAt?: number;
  durationMs?: number;
  /** How long after its deadline it was reaped, ms (deadline reasons). */
  lateMs?: number;
  bytesIn: number;
  bytesOut: number;
  messagesIn: number;
}

export interface RecentFailure {
  app: string;
  at: number;
  error: string;
}

/** Relayed traffic of ended sessions, per app (live sessions are added at read time from the fleet). */
export interface EndedTraffic {
  bytesIn: number;
  bytesOut: number;
  messagesIn: Record<string, number>;
  messagesOut: number;
  requests: number;
}

/** Sends every entry to both sinks (the log file and the monitor). */
export function teeLog(a: TrafficLogSink, b: TrafficLogSink): TrafficLogSink {
  return {
    write(e) {
      a.write(e);
      b.write(e);
    },
    async close() {
      await Promise.all([a.close(), b.close()]);
    },
  };
}

export class FleetMonitor implements TrafficLogSink {
  readonly history: ActivityHistory;
  /** `${app}\0${waited}` -> claims. */
  readonly claims = new Map<string, number>();
  /** `${app}\0${reason}` -> sessions ended. */
  readonly ends = new Map<string, number>();
  /** `${app}\0${type}` -> traffic log entries. */
  readonly events = new Map<string, number>();
  readonly createFailures = new Map<string, number>();
  readonly endedTraffic = new Map<string, EndedTraffic>();
  private readonly recentEnds: RecentEnd[] = [];
  private readonly recentFailures: RecentFailure[] = [];
  private readonly waitListeners = new Set<(app: string, ms: number) => void>();
  private readonly engineListeners = new Set<(route: string, ms: number, ok: boolean) => void>();

  constructor(
    private readonly clock: Clock,
    private readonly keep = 200,
  ) {
    this.history = new ActivityHistory(clock);
  }

  write(e: Entry): void {
    const app = typeof e.app === 'string' ? e.app : '';
    const type = typeof e.type === 'string' ? e.type : '';
    if (!app || !type) return;
    bump(this.events, `${app}\0${type}`);
    if (type === 'claimed') {
      bump(this.claims, `${app}\0${e.waitedInLine === true}`);
      this.history.claim(app);
    } else if (type === 'ended') this.ended(app, e);
  }

  async close(): Promise<void> {}

  /**
   * Follows the fleet: each failed create (an event per failure, so none is lost between two changes) and
   * live sessions per minute. The change listener runs on every change (a class's claims make several
   * each): O(apps), never a walk over the sessions or a pool's status.
   */
  watch(fleet: Fleet): () => void {
    const apps = fleet.apps().map((a) => a.name);
    const seen = () => {
      for (const app of apps) this.history.active(app, fleet.liveCount(app));
    };
    seen();
    const offChange = fleet.onChange(seen);
    const offFailed = fleet.onCreateFailed((app, error) => {
      this.createFailures.set(app, (this.createFailures.get(app) ?? 0) + 1);
      this.push(this.recentFailures, { app, at: this.clock.now(), error });
    });
    return () => {
      offChange();
      offFailed();
    };
  }

  /** A visitor got an instance after waiting in line this long (admin/claim-waits.ts). */
  waited(app: string, ms: number): void {
    for (const fn of this.waitListeners) fn(app, ms);
  }

  /** A Docker Engine call completed (pool/runtimes/engine.ts onCall). */
  engineCall(route: string, ms: number, ok: boolean): void {
    for (const fn of this.engineListeners) fn(route, ms, ok);
  }

  onEngineCall(fn: (route: string, ms: number, ok: boolean) => void): () => void {
    this.engineListeners.add(fn);
    return () => this.engineListeners.delete(fn);
  }

  onWait(fn: (app: string, ms: number) => void): () => void {
    this.waitListeners.add(fn);
    return () => this.waitListeners.delete(fn);
  }

  /** Newest first. */
  recent(): { ends: RecentEnd[]; failures: RecentFailure[] } {
    return { ends: [...this.recentEnds].reverse(), failures: [...this.recentFailures].reverse() };
  }

  private ended(app: string, e: Entry): void {
    const s = normalizeSummary(e.summary);
    const hasSummary = e.summary !== undefined;
    let messagesIn = 0;
    for (const n of Object.values(s.messagesIn)) messagesIn += n;
    bump(this.ends, `${app}\0${typeof e.reason === 'string' ? e.reason : 'unknown'}`);
    if (hasSummary) {
      const t = this.endedTraffic.get(app) ?? { bytesIn: 0, bytesOut: 0, messagesIn: {}, messagesOut: 0, requests: 0 };
      t.bytesIn += s.bytesIn;
      t.bytesOut += s.bytesOut;
      t.messagesOut += s.messagesOut;
      for (const [k, n] of Object.entries(s.messagesIn)) t.messagesIn[k] = (t.messagesIn[k] ?? 0) + n;
      for (const n of Object.values(s.requests)) t.requests += n;
      this.endedTraffic.set(app, t);
    }
    this.push(this.recentEnds, {
      session: String(e.session),
      app,
      instance: typeof e.instance === 'string' ? e.instance : undefined,
      reason: typeof e.reason === 'string' ? e.reason : 'unknown',
      at: e.t,
      claimedAt: s.claimedAt,
      durationMs: s.durationMs,
      lateMs: typeof e.late === 'number' ? e.late : undefined,
      bytesIn: s.bytesIn,
      bytesOut: s.bytesOut,
      messagesIn,
    });
  }

  private push<T>(ring: T[], x: T): void {
    ring.push(x);
    if (ring.length > this.keep) ring.splice(0, ring.length - this.keep);
  }
}

function bump(m: Map<string, number>, key: string): void {
  m.set(key, (m.get(key) ?? 0) + 1);
}
