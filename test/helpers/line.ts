// In-process waiters for pool tests: what a waiting page's stream does (hold a place with a ticket,
// hear its position, collect the offer), without HTTP.

import assert from 'node:assert/strict';
import type { ClaimResult, LineStatus, PoolApi, SessionTarget, WaitOutcome, WaiterKind } from '../../pool/api.js';

export interface Held {
  /** Resolves with the offer (or why nothing is held). */
  outcome: Promise<WaitOutcome>;
  /** Every line status told, in order. */
  lines: LineStatus[];
  /** Settled yet? (checked after settle()). */
  settled(): WaitOutcome | undefined;
  /** The page is closed. */
  leave(): void;
}

export function hold(pool: PoolApi, app: string, ticket: string, kind: WaiterKind = 'stream'): Held {
  const ac = new AbortController();
  const lines: LineStatus[] = [];
  let done: WaitOutcome | undefined;
  const outcome = pool.wait(app, ticket, { kind, signal: ac.signal, onLine: (l) => lines.push(l) });
  void outcome.then((o) => {
    done = o;
  });
  return { outcome, lines, settled: () => done, leave: () => ac.abort() };
}

export function ticketOf(r: ClaimResult): string {
  assert.equal(r.kind, 'queued', `expected a ticket, got ${r.kind}`);
  return r.kind === 'queued' ? r.ticket : '';
}

/** Waits for the offer (at most limitMs of real time, which also keeps the event loop alive meanwhile) and collects it. */
export async function collectOffer(pool: PoolApi, app: string, h: Held, limitMs = 60_000): Promise<SessionTarget> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no offer within ${limitMs} ms`)), limitMs);
  });
  const o = await Promise.race([h.outcome, limit]).finally(() => clearTimeout(timer));
  assert.equal(o.kind, 'offer', `expected an offer, got ${JSON.stringify(o)}`);
  if (o.kind !== 'offer') throw new Error('no offer');
  const c = await pool.collect(app, o.collect);
  assert.equal(c.kind, 'session');
  if (c.kind !== 'session') throw new Error('not collected');
  return c.target;
}
