// What an earlier run left, taken back: at start, each runtime's instances found by label (and the
// claims the claim journal names) are adopted, claimed ones as their sessions; later, a verified
// cookie naming an adopted ready instance takes it back from the pool (reclaim).

import type { ClaimJournal, JournalClaim } from './claim-journal.js';
import type { Clock } from '../core/clock.js';
import { WarmpoolError, errorMessage } from '../core/errors.js';
import type { Log } from '../core/log.js';
import { retry } from '../core/retry.js';
import type { ClaimMark, InstanceRecord, Runtime } from './runtime.js';
import type { Session } from './session.js';
import type { TrafficLogEntry } from './traffic-log-schema.js';
import type { Member, WarmPool } from './warm-pool.js';

export interface RestoreOptions {
  clock: Clock;
  log?: Log;
  journal?: ClaimJournal;
  pools: ReadonlyMap<string, WarmPool>;
  trafficLog: (entry: TrafficLogEntry) => void;
  /** A session of an earlier run, new to this one: claimed at claimedAt; its activity unknown, so its idle and grace clocks start now. */
  addSession: (pool: WarmPool, m: Member, id: string, claimedAt: number) => Session;
  /** A session of an earlier run whose instance is gone: its cookie gets the ended page ('lost'). */
  lost: (session: string) => void;
  /** Records a claim on the engine in the background (ClaimRecorder.record). */
  record: (pool: WarmPool, s: Session, mark: ClaimMark) => void;
  /** The live session of that id, if any. */
  session: (id: string) => Session | undefined;
}

export class Restorer {
  constructor(private readonly o: RestoreOptions) {}

  /**
   * Lists each runtime's instances (retrying an unreachable engine with backoff), adopts those of
   * configured apps into their pools, restores claimed ones as their sessions, and removes the rest.
   */
  /** `signal`: stop waiting for an engine that does not answer (rejects with POOL_STOPPED; nothing adopted yet). */
  async adopt(runtimes: readonly Runtime[], signal?: AbortSignal): Promise<void> {
    // Claims handed out by an earlier run whose engine record may not have landed (see Fleet.open()).
    const journaled = this.o.journal?.earlier ?? new Map<string, JournalClaim>();
    const fromJournal = new Set<string>();
    await Promise.all(
      runtimes.map(async (rt) => {
        const records = (await this.listWithRetry(rt, signal)).map((r) => {
          const j = journaled.get(r.instanceId);
          // The engine's record wins; the journal speaks only for an instance the engine calls unclaimed.
          if (r.claim || rt.sharedClaims || !j || j.app !== r.app) return r;
          fromJournal.add(r.instanceId);
          return { ...r, claim: { session: j.session, at: j.at } };
        });
        if (records.length > 0) {
          const claimed = records.filter((r) => r.claim && r.running).length;
          const journal = records.filter((r) => fromJournal.has(r.instanceId)).length;
          this.o.log?.(
            `${rt.kind} runtime: found ${records.length} instance(s) of an earlier run (${claimed} claimed${journal ? `, ${journal} of them known from the claim journal only` : ''}); checking them before taking visitors`,
          );
        }
        const byApp = new Map<string, InstanceRecord[]>();
        for (const r of records) {
          if (r.claim && !r.running) {
            // Its student's session cannot continue: close it in the log rather than leave it "live".
            this.o.lost(r.claim.session);
            this.o.trafficLog({
              type: 'ended',
              session: r.claim.session,
              app: r.app,
              instance: r.instanceId,
              reason: 'lost',
              detail: 'instance gone when warmpool restarted',
            });
          }
          if (this.o.pools.get(r.app)?.app.runtime === rt.kind) byApp.set(r.app, [...(byApp.get(r.app) ?? []), r]);
          else {
            this.o.log?.(`removing instance ${r.instanceId} of app ${r.app}, which is no longer configured`, { app: r.app, instance: r.instanceId });
            await rt
              .remove(r.instanceId)
              .catch((e) => this.o.log?.(`could not remove ${r.instanceId}: ${errorMessage(e)}`, { app: r.app, instance: r.instanceId }, 'warn'));
          }
        }
        await Promise.all(
          [...this.o.pools.values()]
            .filter((p) => p.app.runtime === rt.kind)
            .map(async (pool) => {
              const claimed = await pool.adopt(byApp.get(pool.app.name) ?? []);
              for (const m of claimed) this.restoreSession(pool, m, fromJournal.has(m.id));
            }),
        );
      }),
    );
    // The journal keeps only the claims of restored sessions whose engine record has not landed yet.
    this.o.journal?.compact((c) => fromJournal.has(c.instance) && this.o.session(c.session)?.member.id === c.instance);
  }

  /**
   * A verified cookie names a session this run does not know, on an instance it adopted as ready:
   * the earlier run answered that visitor but stopped before recording the claim. Only warmpool
   * signs cookies, so the instance is theirs: give it back to them instead of to the next visitor.
   */
  reclaim(session: string, instanceId: string): Session | undefined {
    for (const pool of this.o.pools.values()) {
      const m = pool.claimAdopted(instanceId);
      if (!m) continue;
      const now = this.o.clock.now();
      this.o.journal?.claimed({ instance: m.id, session, app: pool.app.name, at: now });
      const s = this.o.addSession(pool, m, session, now);
      this.o.trafficLog({
        type: 'restored',
        session,
        app: pool.app.name,
        instance: m.id,
        claimedAt: now,
        detail: "claim not recorded before the restart; restored from the visitor's cookie",
      });
      this.o.record(pool, s, { session, at: now });
      return s;
    }
    return undefined;
  }

  /** Until the engine answers: 1 s after the first failure, doubling up to 30 s. */
  private listWithRetry(rt: Runtime, signal?: AbortSignal): Promise<InstanceRecord[]> {
    return retry(() => rt.list(), {
      clock: this.o.clock,
      signal,
      firstMs: 1000,
      maxMs: 30_000,
      onFailure: (f) =>
        this.o.log?.(
          `${rt.kind} runtime: cannot list instances (attempt ${f.attempt}, retrying in ${f.retryInMs} ms): ${errorMessage(f.error)}`,
          { runtime: rt.kind, attempt: f.attempt },
          'warn',
        ),
    }).catch((e: unknown) => {
      if (!signal?.aborted) throw e;
      throw new WarmpoolError('POOL_STOPPED', `stopped while waiting for the ${rt.kind} engine to answer: nothing was adopted or created`, { cause: e });
    });
  }

  /**
   * After a restart: a claimed instance found by label becomes its session again. One the claim journal
   * names (handed out, its engine record not landed) is restored the same way and recorded now: its
   * visitor may have used it, so it is theirs until its deadlines (grace: no connection since the
   * restart) end it and remove it, never handed to anyone else.
   */
  private restoreSession(pool: WarmPool, m: Member, fromJournal: boolean): void {
    if (!m.claim) return;
    // Activity from before the restart is unknown: the idle clock restarts now, the lifetime does not.
    const s = this.o.addSession(pool, m, m.claim.session, m.claim.at);
    this.o.trafficLog({
      type: 'restored',
      session: s.id,
      app: pool.app.name,
      instance: m.id,
      claimedAt: m.claim.at,
      ...(fromJournal ? { detail: 'claim not recorded on the engine before the restart; restored from the claim journal' } : {}),
    });
    if (fromJournal) this.o.record(pool, s, m.claim);
  }
}
