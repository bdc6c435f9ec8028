// The fleet: one WarmPool per app, the claimed sessions, the reaper and the traffic log.
// Implements PoolApi, the seam the proxy talks to. Knows nothing of HTTP.
//
//   const fleet = new Fleet({ config, runtimes: { process: new ProcessRuntime(...) }, clock });
//   await fleet.start();            // adopt what an earlier run left, warm the pools
//   const r = await fleet.claim('demo', { visitor });   // a session, or a ticket: wait(), then collect()
//   ...
//   await fleet.stop();             // removes every instance unless config.keepOnExit

import { LRUCache } from 'lru-cache';
import type {
  ClaimOptions,
  ClaimResult,
  CollectResult,
  EndReason,
  FindResult,
  PoolApi,
  PoolHealth,
  SessionTarget,
  SessionTraffic,
  WaitOptions,
  WaitOutcome,
} from './api.js';
import type { ClaimJournal, JournalClaim } from './claim-journal.js';
import type { AppConfig, RuntimeKind, WarmpoolConfig } from '../core/config.js';
import { systemClock, type Clock } from '../core/clock.js';
import { WarmpoolError, errorMessage, isWarmpoolError } from '../core/errors.js';
import { retry } from '../core/retry.js';
import { sessionId as newSessionId } from './ids.js';
import { Reaper, endDeadline, type DeadlineReason, type ReapableSession } from './reaper.js';
import { poolHealthState, sessionView, type SessionView } from './session-view.js';
import type { ClaimMark, InstanceRecord, Runtime } from './runtime.js';
import type { TrafficLogSink } from './traffic-log.js';
import type { ProxyEventType, TrafficLogEntry, TrafficSummary } from './traffic-log-schema.js';
import { WarmPool, type Member, type PoolStatus } from './warm-pool.js';
import type { Log } from '../core/log.js';

export interface FleetOptions {
  config: WarmpoolConfig;
  runtimes: Partial<Record<RuntimeKind, Runtime>>;
  clock?: Clock;
  log?: Log;
  trafficLog?: TrafficLogSink;
  /** After this long without user activity a session is noted "idle" in the traffic log, ms. */
  idleNoticeMs?: number;
  /** Create backoff, passed to each WarmPool. */
  backoffMs?: { first: number; max: number };
  /** Replaces the TCP check after a readiness log line (tests whose fake instances have no port). */
  portCheck?: (rec: InstanceRecord) => Promise<boolean>;
  /**
   * Claims are appended here before they are answered (runtimes without shared claims), and read at
   * start: an adopted instance it names, unclaimed on the engine, is restored as its session, never
   * handed to anyone else. Unset: a claim lives only in memory until the engine records it.
   */
  journal?: ClaimJournal;
}

export interface Session extends ReapableSession {
  id: string;
  app: AppConfig;
  member: Member;
  target: SessionTarget;
  firstRequestSeen?: boolean;
  /** The address that claimed it (a visitor's claim: queue limits and first-use grace apply). */
  visitor?: string;
  /** Sum of gaps between consecutive activities no longer than the idle-notice interval. */
  activeMs: number;
  /** Its claim was on the engine before its visitor was answered (shared claims, or the journal failed): never given back unused. */
  recordedAtClaim?: boolean;
}

export class Fleet implements PoolApi {
  readonly clock: Clock;
  private readonly pools = new Map<string, WarmPool>();
  private readonly sessions = new Map<string, Session>();
  private readonly ended = new LRUCache<string, { reason: EndReason; at: number }>({ max: 10_000 });
  private readonly reaper: Reaper<Session>;
  private readonly unwatch: (() => void)[] = [];
  private readonly changeListeners = new Set<() => void>();
  private readonly removedListeners = new Set<(host: string, port: number) => void>();
  private started = false;
  /** Claims being recorded on the engine after their visitor was answered (see claim()). */
  private readonly recording = new Set<Promise<void>>();
  /** Aborted by stop(): the recordings' backoff waits end, and each gets one last attempt at once. */
  private readonly stopped = new AbortController();

  constructor(private readonly o: FleetOptions) {
    this.clock = o.clock ?? systemClock;
    for (const app of o.config.apps) {
      const runtime = o.runtimes[app.runtime];
      if (!runtime)
        throw new WarmpoolError('CONFIG_INVALID', `app ${app.name} uses runtime ${app.runtime}, which is not available`, {
          hint: 'start warmpool where that runtime can run, or change apps[].runtime',
        });
      this.pools.set(
        app.name,
        new WarmPool({
          app,
          runtime,
          clock: this.clock,
          log: o.log,
          backoffMs: o.backoffMs,
          portCheck: o.portCheck,
          queue: o.config.queue,
          sessionEnds: () => this.sessionEnds(app.name),
          onClaimedExit: (m, detail) => this.endByInstance(m.id, 'instance-exited', detail),
          onChange: () => this.changed(),
          onRemoved: (rec) => {
            this.o.journal?.settled(rec.instanceId);
            for (const fn of this.removedListeners) this.notify(() => fn(rec.host, rec.port));
          },
        }),
      );
    }
    this.reaper = new Reaper(
      this.clock,
      () => this.sessions.entries(),
      (id, s, reason, deadline) => this.deadline(id, s, reason, deadline),
      (id, reason) =>
        this.o.log?.(
          `reaper: the ${reason} deadline of session ${id} did not move after it was handled; skipping it (a bug: please report it)`,
          { session: id },
          'error',
        ),
    );
  }

  apps(): readonly AppConfig[] {
    return this.o.config.apps;
  }
  app(name: string): AppConfig | undefined {
    return this.pools.get(name)?.app;
  }
  status(): PoolStatus[] {
    return [...this.pools.values()].map((p) => p.statusWithEstimate());
  }
  liveSessions(): readonly Session[] {
    return [...this.sessions.values()];
  }
  onChange(fn: () => void): () => void {
    this.changeListeners.add(fn);
    return () => this.changeListeners.delete(fn);
  }
  /** Called with an instance's address once it has been removed. */
  onInstanceRemoved(fn: (host: string, port: number) => void): () => void {
    this.removedListeners.add(fn);
    return () => this.removedListeners.delete(fn);
  }

  /**
   * Finds what earlier runs left (by label), adopts it, and starts warming. Retries an
   * unreachable engine with backoff instead of failing (reported through log).
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const byKind = new Map<Runtime, AppConfig[]>();
    for (const app of this.o.config.apps) {
      const rt = this.o.runtimes[app.runtime]!;
      byKind.set(rt, [...(byKind.get(rt) ?? []), app]);
    }
    // Claims handed out by an earlier run whose engine record may not have landed (see open()).
    const journaled = this.o.journal?.earlier ?? new Map<string, JournalClaim>();
    const fromJournal = new Set<string>();
    await Promise.all(
      [...byKind.keys()].map(async (rt) => {
        this.unwatch.push(rt.watch((id, detail) => this.instanceExited(id, detail)));
        const records = (await this.listWithRetry(rt)).map((r) => {
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
            this.ended.set(r.claim.session, { reason: 'lost', at: this.clock.now() });
            this.trafficLog({
              type: 'ended',
              session: r.claim.session,
              app: r.app,
              instance: r.instanceId,
              reason: 'lost',
              detail: 'instance gone when warmpool restarted',
            });
          }
          if (this.pools.get(r.app)?.app.runtime === rt.kind) byApp.set(r.app, [...(byApp.get(r.app) ?? []), r]);
          else {
            this.o.log?.(`removing instance ${r.instanceId} of app ${r.app}, which is no longer configured`, { app: r.app, instance: r.instanceId });
            await rt
              .remove(r.instanceId)
              .catch((e) => this.o.log?.(`could not remove ${r.instanceId}: ${errorMessage(e)}`, { app: r.app, instance: r.instanceId }, 'warn'));
          }
        }
        await Promise.all(
          [...this.pools.values()]
            .filter((p) => p.app.runtime === rt.kind)
            .map(async (pool) => {
              const claimed = await pool.adopt(byApp.get(pool.app.name) ?? []);
              for (const m of claimed) this.restoreSession(pool, m, fromJournal.has(m.id));
            }),
        );
      }),
    );
    // The journal keeps only the claims of restored sessions whose engine record has not landed yet.
    this.o.journal?.compact((c) => fromJournal.has(c.instance) && this.sessions.get(c.session)?.member.id === c.instance);
    this.reaper.schedule();
  }

  /** Until the engine answers: 1 s after the first failure, doubling up to 30 s. */
  private listWithRetry(rt: Runtime): Promise<InstanceRecord[]> {
    return retry(() => rt.list(), {
      clock: this.clock,
      firstMs: 1000,
      maxMs: 30_000,
      onFailure: (f) =>
        this.o.log?.(
          `${rt.kind} runtime: cannot list instances (attempt ${f.attempt}, retrying in ${f.retryInMs} ms): ${errorMessage(f.error)}`,
          { runtime: rt.kind, attempt: f.attempt },
          'warn',
        ),
    });
  }

  /**
   * Claims a ready instance for a new session, or gives a ticket for a place in line (held with
   * wait(), turned into a session with collect()). The claim is decided in memory (WarmPool.claim is
   * synchronous, so no instance is handed out twice) and answered at once.
   *
   * A visitor's claim (opts.visitor) is provisional until its first use: it counts against its
   * address's unused claims, goes back to the pool as ready if no request uses it within
   * queue.firstUse, and is recorded on the engine (a container rename) at that first use, so an unused
   * claim costs no engine write and leaves nothing to undo. Until then the claim journal (one line
   * appended before the answer) is what says it is taken: a restart restores the instance as that
   * session, never as ready. Without a journal, a restart adopts it as ready and only the visitor's
   * signed cookie, if it comes first, takes it back (see find()). A claim without a visitor
   * (in-process callers) is final and recorded at once.
   *
   * On a runtime whose instances other processes may claim too (sharedClaims: swarm), every claim is
   * recorded by compare-and-swap before it is answered; an unused one is then removed and replaced at
   * queue.firstUse instead of reused (the engine still names it claimed).
   */
  async claim(appName: string, opts: ClaimOptions = {}): Promise<ClaimResult> {
    const pool = this.poolOf(appName);
    if (pool.draining) throw new WarmpoolError('POOL_STOPPED', `app ${appName} is draining: it takes no new visitors`, { hint: 'an admin can resume it' });
    for (;;) {
      const out = pool.claim(opts);
      if (out.kind !== 'claimed') return out;
      const s = await this.open(pool, out.member, opts.visitor, false);
      if (s) return { kind: 'session', target: s.target };
      // Another process got that instance first (swarm): try the next ready one.
    }
  }

  async wait(appName: string, ticket: string, o: WaitOptions): Promise<WaitOutcome> {
    const pool = this.poolOf(appName);
    if (pool.draining) return { kind: 'gone', why: 'stopped' };
    return pool.wait(ticket, o);
  }

  async collect(appName: string, token: string): Promise<CollectResult> {
    const pool = this.poolOf(appName);
    const got = pool.collect(token);
    if (!got) return { kind: 'gone' };
    const s = await this.open(pool, got.member, got.visitor, true);
    // Lost to another process (swarm) between the offer and its collection: the visitor joins the line again.
    return s ? { kind: 'session', target: s.target } : { kind: 'gone' };
  }

  decline(appName: string, token: string): void {
    this.pools.get(appName)?.decline(token);
  }

  private sharedClaims(pool: WarmPool): boolean {
    return this.o.runtimes[pool.app.runtime]?.sharedClaims === true;
  }

  /** A claimed instance becomes a session; undefined when another process claimed it first (shared claims). */
  private async open(pool: WarmPool, m: Member, visitor: string | undefined, fromLine: boolean): Promise<Session | undefined> {
    const now = this.clock.now();
    const id = newSessionId();
    // Another warmpool process may hold the same instance (swarm): the engine's compare-and-swap
    // decides before the visitor is answered; a lost one is dropped. Otherwise the claim goes to the
    // journal before the answer (a synchronous append), so a restart before the engine records it
    // still knows the instance is taken; if the journal cannot be written, the engine records it first.
    const early =
      this.sharedClaims(pool) || (this.o.journal !== undefined && !this.o.journal.claimed({ instance: m.id, session: id, app: pool.app.name, at: now }));
    if (early && !(await this.recordBeforeAnswer(pool, m, { session: id, at: now }))) return undefined;
    const s = this.addSession(pool.app, m, id, now);
    if (early) s.recordedAtClaim = true;
    this.trafficLog({ type: 'claimed', session: id, app: pool.app.name, instance: m.id, visitor, waitedInLine: fromLine });
    if (visitor !== undefined) {
      s.visitor = visitor;
      s.firstUseBy = now + this.o.config.queue.firstUseMs;
      this.reaper.moved(s);
    } else if (!early) this.record(pool, s, { session: id, at: now });
    return s;
  }

  /** The first request (or WebSocket) of a visitor's claim: it is used, so it is final and recorded. */
  private firstUse(s: Session): void {
    s.firstUseBy = undefined;
    const pool = this.pools.get(s.app.name)!;
    pool.used(s.member.id);
    if (!s.recordedAtClaim) this.record(pool, s, { session: s.id, at: s.claimedAt });
  }

  /** When each live session of an app ends if nothing changes, for the waiting line's estimates. */
  private sessionEnds(app: string): number[] {
    const out: number[] = [];
    for (const s of this.sessions.values()) if (s.app.name === app) out.push(endDeadline(s));
    return out;
  }

  /**
   * Records a claim before its visitor is answered: on a runtime whose instances other processes may
   * claim too, or when the journal cannot be written. true: recorded, the instance is this visitor's.
   * false: another process got it first, or it is gone (dropped from this pool; the runtime leaves
   * another process's instance alone). Throws, the instance ready again, when the engine cannot say.
   */
  private async recordBeforeAnswer(pool: WarmPool, m: Member, mark: ClaimMark): Promise<boolean> {
    try {
      await pool.persistClaim(m, mark);
    } catch (e) {
      if (isWarmpoolError(e, 'CLAIM_CONFLICT') || isWarmpoolError(e, 'INSTANCE_GONE')) {
        this.o.log?.(`${pool.app.name}: ${errorMessage(e)}; trying another instance`, { app: pool.app.name }, 'warn');
        pool.release(m.id, errorMessage(e));
        return false;
      }
      pool.unclaim(m.id);
      throw e;
    }
    return m.state === 'claimed'; // else it exited while its claim was being recorded
  }

  find(session: string, instanceId: string): FindResult {
    const s = this.sessions.get(session);
    if (s && s.member.id === instanceId) return { kind: 'live', target: s.target };
    const e = this.ended.get(session);
    if (e) return { kind: 'ended', reason: e.reason, at: e.at };
    if (!s) {
      const back = this.reclaim(session, instanceId);
      if (back) return { kind: 'live', target: back.target };
    }
    return { kind: 'unknown' };
  }

  /**
   * A verified cookie names a session this run does not know, on an instance it adopted as ready:
   * the earlier run answered that visitor but stopped before recording the claim. Only warmpool
   * signs cookies, so the instance is theirs: give it back to them instead of to the next visitor.
   */
  private reclaim(session: string, instanceId: string): Session | undefined {
    for (const pool of this.pools.values()) {
      const m = pool.claimAdopted(instanceId);
      if (!m) continue;
      const now = this.clock.now();
      this.o.journal?.claimed({ instance: m.id, session, app: pool.app.name, at: now });
      const s = this.addSession(pool.app, m, session, now);
      this.trafficLog({
        type: 'restored',
        session,
        app: pool.app.name,
        instance: m.id,
        claimedAt: now,
        detail: "claim not recorded before the restart; restored from the visitor's cookie",
      });
      this.record(pool, s, { session, at: now });
      return s;
    }
    return undefined;
  }

  /** Resolves once every claim handed out so far is recorded on the engine (or its session ended). */
  async claimsRecorded(): Promise<void> {
    while (this.recording.size > 0) await Promise.all([...this.recording]);
  }

  private record(pool: WarmPool, s: Session, mark: ClaimMark): void {
    const p = this.recordClaim(pool, s, mark);
    this.recording.add(p);
    void p.finally(() => this.recording.delete(p));
  }

  /**
   * Records a claim on the engine, retrying with backoff (500 ms, doubling up to 30 s) for as long as
   * the session lives. stop() asks for one last attempt at once (not after a backoff).
   */
  private async recordClaim(pool: WarmPool, s: Session, mark: ClaimMark): Promise<void> {
    const live = () => this.sessions.get(s.id) === s; // ended meanwhile: its instance is being removed
    const ids = { app: s.app.name, instance: s.member.id, session: s.id };
    try {
      await retry(
        async (attempt) => {
          if (!live()) return;
          await pool.persistClaim(s.member, mark);
          this.o.journal?.settled(s.member.id);
          if (attempt > 1) this.trafficLog({ type: 'claim-recorded', session: s.id, app: s.app.name, instance: s.member.id, attempts: attempt });
        },
        {
          clock: this.clock,
          firstMs: 500,
          maxMs: 30_000,
          signal: this.stopped.signal,
          lastTryOnAbort: true,
          retryIf: (e) => live() && !isWarmpoolError(e, 'INSTANCE_GONE'),
          onFailure: (f) => {
            if (f.retryInMs === undefined) {
              this.o.log?.(
                `${s.app.name}: the claim of instance ${s.member.id} by session ${s.id} is not recorded on the engine (${errorMessage(f.error)}); a restarted warmpool gives it back only to that session's cookie`,
                ids,
                'error',
              );
            } else if (f.retryInMs > 0) {
              this.o.log?.(
                `${s.app.name}: could not record the claim of instance ${s.member.id} by session ${s.id} (attempt ${f.attempt}, retrying in ${f.retryInMs} ms): ${errorMessage(f.error)}`,
                { ...ids, attempt: f.attempt },
                'warn',
              );
            } // 0: stop() came while this attempt was in flight; its last try is now
          },
        },
      );
    } catch (e) {
      if (live() && isWarmpoolError(e, 'INSTANCE_GONE')) {
        this.o.journal?.settled(s.member.id);
        this.endByInstance(s.member.id, 'instance-exited', `its claim could not be recorded: ${errorMessage(e)}`);
        pool.release(s.member.id, 'gone before its claim was recorded');
      }
      // Otherwise the session ended meanwhile, or the last try at stop() failed (logged above).
    }
  }

  async end(session: string, reason: EndReason): Promise<void> {
    const s = this.sessions.get(session);
    if (s) this.finish(s, reason);
  }

  activity(session: string, at: number): void {
    const s = this.sessions.get(session);
    // Back from idle: the next idle notice is due earlier than the reaper's timer.
    if (s && this.touch(s, at)) this.reaper.moved(s);
  }

  /** Records user activity at `at`; true when the session was noted idle before. */
  private touch(s: Session, at: number): boolean {
    if (at <= s.lastActive) return false;
    // Active time: gaps between activities up to the idle-notice interval count as active.
    const gap = at - s.lastActive;
    if (gap <= (s.idleNoticeMs ?? 60_000)) s.activeMs += gap;
    s.lastActive = at;
    if (s.target.traffic.lastActive === undefined || s.target.traffic.lastActive < at) s.target.traffic.lastActive = at;
    if (!s.idleNoticed) return false;
    s.idleNoticed = false;
    this.o.trafficLog?.write({ t: at, type: 'active-again', session: s.id, app: s.app.name });
    return true;
  }

  connectionOpened(session: string): void {
    const s = this.sessions.get(session);
    if (!s) return;
    s.openConnections++;
    s.target.traffic.openConnections = s.openConnections;
  }

  connectionClosed(session: string): void {
    const s = this.sessions.get(session);
    if (!s) return;
    s.openConnections = Math.max(0, s.openConnections - 1);
    s.target.traffic.openConnections = s.openConnections;
    s.lastConnectionAt = this.clock.now();
    if (s.openConnections === 0) this.reaper.moved(s);
  }

  event(session: string, type: ProxyEventType, detail?: Record<string, unknown>): void {
    const s = this.sessions.get(session);
    if (!s) return;
    if (s.firstUseBy !== undefined && (type === 'request' || type === 'ws-open')) this.firstUse(s);
    if (type === 'request') {
      // Requests with no socket open also hold the grace period open; only the first is logged.
      if (s.openConnections === 0) s.lastConnectionAt = this.clock.now();
      if (s.firstRequestSeen) return;
      s.firstRequestSeen = true;
      type = 'first-request';
    }
    this.trafficLog({ type, session, app: s.app.name, ...detail });
  }

  /** Stops the reaper and every pool; removes all instances unless keep (default: config.keepOnExit). */
  async stop(keep = this.o.config.keepOnExit): Promise<void> {
    this.reaper.stop();
    // Claims still being recorded get one last attempt now (instances kept for the next run need them).
    this.stopped.abort();
    await Promise.all([...this.recording]);
    for (const u of this.unwatch) u();
    if (!keep) for (const s of [...this.sessions.values()]) this.finish(s, 'shutdown', false);
    else
      for (const s of this.sessions.values())
        this.trafficLog({ type: 'suspended', session: s.id, app: s.app.name, summary: this.summary(s, this.clock.now()) });
    await Promise.all([...this.pools.values()].map((p) => p.stop(keep)));
    // Kept instances keep their journaled claims for the next start; removed ones need none.
    this.o.journal?.compact(() => keep);
    this.o.journal?.close();
    await Promise.all([...new Set(Object.values(this.o.runtimes))].map((rt) => rt?.close()));
    await this.o.trafficLog?.close();
  }

  private addSession(app: AppConfig, m: Member, id: string, claimedAt: number): Session {
    const traffic: SessionTraffic = {
      requests: {},
      bytesIn: 0,
      bytesOut: 0,
      framesIn: { control: 0, data: 0 },
      framesOut: { control: 0, data: 0 },
      messagesIn: {},
      messagesOut: 0,
      lastActive: claimedAt,
      openConnections: 0,
    };
    const target: SessionTarget = { session: id, app: app.name, instanceId: m.id, host: m.rec!.host, port: m.rec!.port, secret: m.secret, claimedAt, traffic };
    const s: Session = {
      id,
      app,
      member: m,
      target,
      claimedAt,
      lastActive: claimedAt,
      openConnections: 0,
      lastConnectionAt: claimedAt,
      activeMs: 0,
      idleTimeoutMs: app.idleTimeoutMs,
      maxLifetimeMs: app.maxLifetimeMs,
      graceMs: app.graceMs,
      idleNoticeMs: this.o.idleNoticeMs ?? 60_000,
    };
    this.sessions.set(id, s);
    this.reaper.moved(s);
    this.changed();
    return s;
  }

  /**
   * After a restart: a claimed instance found by label becomes its session again. One the claim journal
   * names (handed out, its engine record not landed) is restored the same way and recorded now: its
   * visitor may have used it, so it is theirs until its deadlines (grace: no connection since the
   * restart) end it and remove it, never handed to anyone else.
   */
  private restoreSession(pool: WarmPool, m: Member, fromJournal: boolean): void {
    if (!m.claim) return;
    const app = pool.app;
    const now = this.clock.now();
    // Activity from before the restart is unknown: the idle clock restarts now, the lifetime does not.
    const s = this.addSession(app, m, m.claim.session, m.claim.at);
    s.lastActive = now;
    s.lastConnectionAt = now;
    s.target.traffic.lastActive = now;
    this.trafficLog({
      type: 'restored',
      session: s.id,
      app: app.name,
      instance: m.id,
      claimedAt: m.claim.at,
      ...(fromJournal ? { detail: 'claim not recorded on the engine before the restart; restored from the claim journal' } : {}),
    });
    if (fromJournal) this.record(pool, s, m.claim);
  }

  private deadline(id: string, s: Session, reason: DeadlineReason, at: number): boolean {
    // The proxy reports activity coalesced (at most once a second) but stamps traffic.lastActive
    // exactly: catch up before judging idleness, so a session is never reaped early.
    const exact = s.target.traffic.lastActive;
    if ((reason === 'idle' || reason === 'idle-notice') && exact !== undefined && exact > s.lastActive) {
      this.touch(s, exact);
      return false;
    }
    if (reason === 'idle-notice') {
      s.idleNoticed = true;
      this.trafficLog({ type: 'idle', session: id, app: s.app.name, since: s.lastActive });
      return false;
    }
    if (reason === 'unused') {
      // The proxy stamps traffic.firstSeen when a request or WebSocket sets off for the instance, but
      // reports the use (event 'request') only once the response head is back: catch up first, so a
      // slow first answer is not taken for no use.
      if (s.target.traffic.firstSeen !== undefined || s.openConnections > 0) {
        this.firstUse(s);
        return false;
      }
      // Nothing reached the instance: it is as pristine as when it became ready, so it goes back to
      // the line instead of being replaced.
      this.trafficLog({
        type: 'returned-unused',
        session: id,
        app: s.app.name,
        instance: s.member.id,
        visitor: s.visitor,
        detail: `no request reached the instance within ${this.o.config.queue.firstUseMs} ms of the claim; it went back to the pool as ready`,
      });
      this.finish(s, 'unused', false, at);
      const pool = this.pools.get(s.app.name)!;
      // Recorded on the engine already (a shared engine, or the journal failed): replaced rather than handed out again.
      if (s.recordedAtClaim) pool.release(s.member.id, 'an unused claim, recorded on the engine');
      else if (pool.returnUnused(s.member.id)) this.o.journal?.returned(s.member.id, at);
      else pool.release(s.member.id, 'an unused claim whose instance was no longer claimed');
      return true;
    }
    this.finish(s, reason, true, at);
    return true;
  }

  private finish(s: Session, reason: EndReason, release = true, deadline?: number): void {
    if (!this.sessions.delete(s.id)) return;
    const now = this.clock.now();
    this.ended.set(s.id, { reason, at: now });
    this.trafficLog({
      type: 'ended',
      session: s.id,
      app: s.app.name,
      instance: s.member.id,
      reason,
      ...(deadline !== undefined ? { deadline, late: now - deadline } : {}),
      summary: this.summary(s, now),
    });
    if (release) this.pools.get(s.app.name)?.release(s.member.id, `session ended: ${reason}`);
    this.changed();
  }

  private summary(s: Session, now: number): TrafficSummary {
    const t = s.target.traffic;
    return {
      claimedAt: s.claimedAt,
      durationMs: now - s.claimedAt,
      lastActive: s.lastActive,
      activeMs: s.activeMs,
      requests: t.requests,
      bytesIn: t.bytesIn,
      bytesOut: t.bytesOut,
      framesIn: t.framesIn,
      framesOut: t.framesOut,
      messagesIn: t.messagesIn,
      messagesOut: t.messagesOut,
    };
  }

  private endByInstance(instanceId: string, reason: EndReason, detail: string): void {
    for (const s of this.sessions.values()) {
      if (s.member.id === instanceId) {
        this.trafficLog({ type: 'instance-exited', session: s.id, app: s.app.name, detail });
        this.finish(s, reason, false);
      }
    }
  }

  private instanceExited(instanceId: string, detail: string): void {
    for (const p of this.pools.values()) if (p.member(instanceId)) p.instanceExited(instanceId, detail);
  }

  private trafficLog(entry: TrafficLogEntry): void {
    this.o.trafficLog?.write({ t: this.clock.now(), ...entry });
  }

  private changed(): void {
    for (const fn of this.changeListeners) this.notify(fn);
  }

  /**
   * Runs a listener (the progress display, the proxy's connection cleanup). It runs inside pool
   * decisions, some on timers: a listener that throws (a progress line to a closed stdout) must not
   * cut a reconcile short or escape a timer callback.
   */
  private notify(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      try {
        this.o.log?.(`a fleet listener failed: ${errorMessage(e)}`, undefined, 'error');
      } catch {
        /* the log is what failed */
      }
    }
  }

  // ---- What the admin surface (admin/) reads and does, and health for /_warmpool/healthz. ----

  /** Live sessions as plain data: traffic counters, last user activity and the deadlines that will end them. */
  sessionsView(): SessionView[] {
    const now = this.clock.now();
    return [...this.sessions.values()].map((s) => sessionView(s, now));
  }

  /** Each pool's counts with the operator's targets (warm is the target to restore while draining). */
  poolsView(): (PoolStatus & { draining: boolean })[] {
    return [...this.pools.values()].map((p) => ({ ...p.status(), ...p.targets() }));
  }

  isLive(session: string): boolean {
    return this.sessions.has(session);
  }

  /** Sets an app's warm target and/or max until restart. Throws APP_UNKNOWN, BAD_REQUEST. */
  resize(app: string, to: { warm?: number; max?: number }): { warm: number; max: number } {
    const r = this.poolOf(app).resize(to);
    this.o.log?.(`${app}: resized by an admin to warm ${r.warm}, max ${r.max}`, { app });
    return r;
  }

  /** Stops (on) or resumes (off) new claims of an app; its sessions go on. Throws APP_UNKNOWN. */
  drain(app: string, on: boolean): void {
    const p = this.poolOf(app);
    if (p.draining === on) return;
    p.drain(on);
    this.o.log?.(`${app}: ${on ? "draining (no new visitors) on an admin's word" : "taking visitors again on an admin's word"}`, { app });
  }

  /** Replaces an app's unclaimed instances; claimed ones are not touched. Returns the ids replaced. Throws APP_UNKNOWN. */
  refresh(app: string): string[] {
    const ids = this.poolOf(app).refresh();
    this.o.log?.(`${app}: refreshed by an admin: replacing ${ids.length} unclaimed instance(s)`, { app });
    return ids;
  }

  private poolOf(app: string): WarmPool {
    const p = this.pools.get(app);
    if (!p) throw new WarmpoolError('APP_UNKNOWN', `no app named ${app}`, { hint: `known apps: ${[...this.pools.keys()].join(', ')}` });
    return p;
  }

  /** Last engine check per runtime, and the one in flight: many health probes share one list() call. */
  private readonly engineChecks = new Map<Runtime, { reachable: boolean; error?: string; checkedAt: number }>();
  private engineCheck?: Promise<void>;

  /**
   * Engine reachability (a list() call per runtime, at most once per maxAgeMs) and each pool's state.
   * Not ok when an engine is unreachable or a pool is failing.
   */
  async health(maxAgeMs = 5000): Promise<PoolHealth> {
    const now = this.clock.now();
    const runtimes = [...new Set(this.o.config.apps.map((a) => this.o.runtimes[a.runtime]!))];
    const stale = runtimes.some((rt) => (this.engineChecks.get(rt)?.checkedAt ?? -Infinity) + maxAgeMs <= now);
    if (stale) {
      this.engineCheck ??= Promise.all(
        runtimes.map(async (rt) => {
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
    const engines = runtimes.map((rt) => ({ runtime: rt.kind, ...this.engineChecks.get(rt)! }));
    const pools = [...this.pools.values()].map((p) => {
      const s = p.status();
      const state = poolHealthState(s, p.draining);
      return { app: s.app, state, canServe: state === 'ok' || state === 'warming', ready: s.ready, lastError: s.lastError };
    });
    return { ok: engines.every((e) => e.reachable) && pools.every((p) => p.state !== 'failing'), engines, pools };
  }
}
