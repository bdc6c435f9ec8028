// Time spent waiting in line, measured at the seam: the proxy's PoolApi is the fleet with claim(),
// wait() and collect() wrapped. A claim that gives a ticket starts the wait; a held request's place
// handed back under a new ticket keeps it going; the collect that turns the offer into a session
// ends it. Everything else is passed straight through.

import type { ClaimResult, PoolApi, WaitOutcome } from '../pool/api.js';
import type { Clock } from '../core/clock.js';

/** Waits remembered at most (a line abandoned by a whole class must not grow without bound). */
const MAX_WAITS = 10_000;

export function measureClaimWaits(pool: PoolApi, clock: Clock, waited: (app: string, ms: number) => void): PoolApi {
  /** Ticket or collect token → when its visitor began to wait. */
  const since = new Map<string, number>();
  const remember = (key: string, t0: number): void => {
    if (since.size >= MAX_WAITS) since.delete(since.keys().next().value!);
    since.set(key, t0);
  };
  const health = pool.health?.bind(pool);
  return {
    apps: () => pool.apps(),
    app: (name) => pool.app(name),
    async claim(app, opts): Promise<ClaimResult> {
      const r = await pool.claim(app, opts);
      if (r.kind === 'queued') remember(r.ticket, clock.now());
      return r;
    },
    async wait(app, ticket, o): Promise<WaitOutcome> {
      const w = await pool.wait(app, ticket, o);
      if (w.kind === 'gone' && w.why === 'taken') return w; // another waiter (its owner) holds it
      const t0 = since.get(ticket);
      since.delete(ticket);
      if (t0 !== undefined) {
        if (w.kind === 'offer') remember(w.collect, t0);
        else if (w.kind === 'timeout') remember(w.ticket, t0);
      }
      return w;
    },
    async collect(app, token) {
      const c = await pool.collect(app, token);
      const t0 = since.get(token);
      since.delete(token);
      if (c.kind === 'session' && t0 !== undefined) waited(app, clock.now() - t0);
      return c;
    },
    decline: (app, token) => {
      since.delete(token);
      pool.decline(app, token);
    },
    find: (session, instanceId) => pool.find(session, instanceId),
    end: (session, reason) => pool.end(session, reason),
    activity: (session, at) => pool.activity(session, at),
    connectionOpened: (session) => pool.connectionOpened(session),
    connectionClosed: (session) => pool.connectionClosed(session),
    event: (session, type, detail) => pool.event(session, type, detail),
    ...(health ? { health } : {}),
  };
}
