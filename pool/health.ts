// Health for /_warmpool/healthz and the admin surface: whether each engine answers (one list() call
// per runtime, at most once per maxAgeMs, shared by concurrent probes) and each pool's state.

import type { PoolHealth } from './api.js';
import type { Clock } from '../core/clock.js';
import { errorMessage } from '../core/errors.js';
import type { Runtime } from './runtime.js';
import { poolHealthState } from './session-view.js';
import type { WarmPool } from './warm-pool.js';

export class FleetHealth {
  /** Last engine check per runtime, and the one in flight: many health probes share one list() call. */
  private readonly engineChecks = new Map<Runtime, { reachable: boolean; error?: string; checkedAt: number }>();
  private engineCheck?: Promise<void>;

  constructor(
    private readonly clock: Clock,
    /** The runtimes the configured apps use. */
    private readonly runtimes: readonly Runtime[],
    private readonly pools: () => Iterable<WarmPool>,
  ) {}

  /**
   * Engine reachability (a list() call per runtime, at most once per maxAgeMs) and each pool's state.
   * Not ok when an engine is unreachable or a pool is failing.
   */
  async check(maxAgeMs: number): Promise<PoolHealth> {
    const now = this.clock.now();
    const stale = this.runtimes.some((rt) => (this.engineChecks.get(rt)?.checkedAt ?? -Infinity) + maxAgeMs <= now);
    if (stale) {
      this.engineCheck ??= Promise.all(
        this.runtimes.map(async (rt) => {
          try {
            await rt.list();
            this.engineChecks.set(rt, { reachable: true, checkedAt: this.clock.now() });
          } catch (e) {
            this.engineChecks.set(rt, { reachable: false, error: errorMessage(e), checkedAt: this.clock.now() });
          }
        }),
      ).then(() => {
        this.engineCheck = undefined;
      });
      await this.engineCheck;
    }
    const engines = this.runtimes.map((rt) => ({ runtime: rt.kind, ...this.engineChecks.get(rt)! }));
    const pools = [...this.pools()].map((p) => {
      const s = p.status();
      const state = poolHealthState(s, p.draining);
      return { app: s.app, state, canServe: state === 'ok' || state === 'warming', ready: s.ready, lastError: s.lastError };
    });
    return { ok: engines.every((e) => e.reachable) && pools.every((p) => p.state !== 'failing'), engines, pools };
  }
}
