// Time spent waiting in line, measured at the seam: the proxy's PoolApi is the fleet with claim()
// wrapped. A visitor's first claim that is queued returns a ticket; the claim with that ticket that
// returns a session ends the wait. Everything else is passed straight through.

import type { ClaimResult, PoolApi } from '../pool/api.js';
import type { Clock } from '../pool/clock.js';

/** Tickets remembered at most (a line abandoned by a whole class must not grow without bound). */
const MAX_TICKETS = 10_000;

export function measureClaimWaits(pool: PoolApi, clock: Clock, waited: (app: string, ms: number) => void): PoolApi {
  const since = new Map<string, number>();
  const health = pool.health?.bind(pool);
  return {
    apps: () => pool.apps(),
    app: (name) => pool.app(name),
    async claim(app, opts): Promise<ClaimResult> {
      const r = await pool.claim(app, opts);
      const ticket = opts?.ticket;
      if (r.kind === 'queued') {
        if (!since.has(r.ticket)) {
          if (since.size >= MAX_TICKETS) since.delete(since.keys().next().value!);
          since.set(r.ticket, clock.now());
        }
      } else if (ticket !== undefined) {
        const t0 = since.get(ticket);
        since.delete(ticket);
        if (t0 !== undefined) waited(app, clock.now() - t0);
      }
      return r;
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
