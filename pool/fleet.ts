// The fleet: one WarmPool per app, the claimed sessions and the reaper that ends them. Implements
// PoolApi, the seam the proxy talks to, and the admin surface's views; knows nothing of HTTP. Its
// parts: claim-recording.ts, restore.ts, accounting.ts (the traffic log), health.ts, session.ts.
//
//   const fleet = new Fleet({ config, runtimes: { process: new ProcessRuntime(...) }, clock });
//   await fleet.start();            // adopt what an earlier run left, warm the pools
//   const r = await fleet.claim('demo', { visitor });   // a session, or a ticket: wait(), then collect()
//   ...
//   await fleet.stop();             // removes every instance unless config.keepOnExit

import { LRUCache } from 'lru-cache';
import { Accounting } from './accounting.js';
import type { ClaimOptions, ClaimResult, CollectResult, EndReason, FindResult, PoolApi, PoolHealth, WaitOptions, WaitOutcome } from './api.js';
import type { ClaimJournal } from './claim-journal.js';
import { ClaimRecorder } from './claim-recording.js';
import type { AppConfig, RuntimeKind, WarmpoolConfig } from '../core/config.js';
import { systemClock, type Clock } from '../core/clock.js';
import { WarmpoolError, errorMessage } from '../core/errors.js';
import { FleetHealth } from './health.js';
import { sessionId as newSessionId } from './ids.js';
import type { Log } from '../core/log.js';
import { Reaper, endDeadline, type DeadlineReason } from './reaper.js';
import { Restorer } from './restore.js';
import type { InstanceRecord, Runtime } from './runtime.js';
import { newSession, type Session } from './session.js';
import { sessionView, type SessionView } from './session-view.js';
import type { TrafficLogSink } from './traffic-log.js';
import type { ProxyEventType, TrafficLogEntry } from './traffic-log-schema.js';
import { WarmPool, type Member, type PoolStatus, type WarmPoolOptions } from './warm-pool.js';

export type { Session } from './session.js';

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
  /** Replaces the GET of an app's deep link when an instance becomes ready (tests whose fake instances have no port). */
  deepLinkProbe?: WarmPoolOptions['deepLinkProbe'];
  /**
   * Claims are appended here before they are answered (runtimes without shared claims), and read at
   * start: an adopted instance it names, unclaimed on the engine, is restored as its session, never
   * handed to anyone else. Unset: a claim lives only in memory until the engine records it.
   */
  journal?: ClaimJournal;
}

export class Fleet implements PoolApi {
  readonly clock: Clock;
  private readonly pools = new Map<string, WarmPool>();
  private readonly sessions = new Map<string, Session>();
  /** Live sessions per app, counted as they start and end: listeners of every change read it, never the sessions. */
  private readonly liveByApp = new Map<string, number>();
  private readonly ended = new LRUCache<string, { reason: EndReason; at: number }>({ max: 10_000 });
  private readonly reaper: Reaper<Session>;
  private readonly unwatch: (() => void)[] = [];
  private readonly changeListeners = new Set<() => void>();
  private readonly removedListeners = new Set<(host: string, port: number) => void>();
  private readonly createFailedListeners = new Set<(app: string, error: string) => void>();
  private started = false;
  private readonly accounting: Accounting;
  private readonly claims: ClaimRecorder;
  private readonly restorer: Restorer;
  private readonly fleetHealth: FleetHealth;

  constructor(private readonly o: FleetOptions) {
    this.clock = o.clock ?? systemClock;
    this.accounting = new Accounting(this.clock, o.trafficLog);
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
          deepLinkProbe: o.deepLinkProbe,
          queue: o.config.queue,
          sessionEnds: () => this.sessionEnds(app.name),
          onClaimedExit: (m, detail) => this.endByInstance(m.id, 'instance-exited', detail),
          onChange: () => this.changed(),
          onRemoved: (rec) => {
            this.o.journal?.settled(rec.instanceId);
            for (const fn of this.removedListeners) this.notify(() => fn(rec.host, rec.port));
          },
          onCreateFailed: (error) => {
            for (const fn of this.createFailedListeners) this.notify(() => fn(app.name, error));
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
    const trafficLog = (entry: TrafficLogEntry) => this.accounting.write(entry);
    this.claims = new ClaimRecorder({
      clock: this.clock,
      log: o.log,
      journal: o.journal,
      trafficLog,
      isLive: (s) => this.sessions.get(s.id) === s,
      instanceGone: (s, detail) => this.endByInstance(s.member.id, 'instance-exited', detail),
    });
    this.restorer = new Restorer({
      clock: this.clock,
      log: o.log,
      journal: o.journal,
      pools: this.pools,
      trafficLog,
      addSession: (pool, m, id, claimedAt) => this.addSession(pool.app, m, id, claimedAt, this.clock.now()),
      lost: (session) => this.ended.set(session, { reason: 'lost', at: this.clock.now() }),
      record: (pool, s, mark) => this.claims.record(pool, s, mark),
      session: (id) => this.sessions.get(id),
    });
    this.fleetHealth = new FleetHealth(this.clock, this.runtimesInUse(), () => this.pools.values());
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
  /** Live sessions of one app, without walking them. */
  liveCount(app: string): number {
    return this.liveByApp.get(app) ?? 0;
  }
  onChange(fn: () => void): () => void {
    this.changeListeners.add(fn);
    return () => this.changeListeners.delete(fn);
  }
  /** Called once per failed instance create, with its app and error. */
  onCreateFailed(fn: (app: string, error: string) => void): () => void {
    this.createFailedListeners.add(fn);
    return () => this.createFailedListeners.delete(fn);
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
  async start(signal?: AbortSignal): Promise<void> {
    if (this.started) return;
    this.started = true;
    const runtimes = this.runtimesInUse();
    for (const rt of runtimes) {
      this.unwatch.push(
        rt.watch(
          (id, detail) => this.instanceExited(id, detail),
          () => {
            for (const pool of this.pools.values()) if (this.o.runtimes[pool.app.runtime] === rt) pool.engineBack();
          },
        ),
      );
    }
    await this.restorer.adopt(runtimes, signal);
    this.reaper.schedule();
  }

  /** The runtimes the configured apps use, each once. */
  private runtimesInUse(): Runtime[] {
    return [...new Set(this.o.config.apps.map((a) => this.o.runtimes[a.runtime]!))];
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
    if (early && !(await this.claims.beforeAnswer(pool, m, { session: id, at: now }))) return undefined;
    const s = this.addSession(pool.app, m, id, now);
    if (early) s.recordedAtClaim = true;
    this.accounting.write({ type: 'claimed', session: id, app: pool.app.name, instance: m.id, visitor, waitedInLine: fromLine });
    if (visitor !== undefined) {
      s.visitor = visitor;
      s.firstUseBy = now + this.o.config.queue.firstUseMs;
      this.reaper.moved(s);
    } else if (!early) this.claims.record(pool, s, { session: id, at: now });
    return s;
  }

  /** The first request (or WebSocket) of a visitor's claim: it is used, so it is final and recorded. */
  private firstUse(s: Session): void {
    s.firstUseBy = undefined;
    const pool = this.pools.get(s.app.name)!;
    pool.used(s.member.id);
    if (!s.recordedAtClaim) this.claims.record(pool, s, { session: s.id, at: s.claimedAt });
  }

  /** When each live session of an app ends if nothing changes, for the waiting line's estimates. */
  private sessionEnds(app: string): number[] {
    const out: number[] = [];
    for (const s of this.sessions.values()) if (s.app.name === app) out.push(endDeadline(s));
    return out;
  }

  find(session: string, instanceId: string): FindResult {
    const s = this.sessions.get(session);
    if (s && s.member.id === instanceId) return { kind: 'live', target: s.target };
    const e = this.ended.get(session);
    if (e) return { kind: 'ended', reason: e.reason, at: e.at };
    if (!s) {
      const back = this.restorer.reclaim(session, instanceId);
      if (back) return { kind: 'live', target: back.target };
    }
    return { kind: 'unknown' };
  }

  /** Resolves once every claim handed out so far is recorded on the engine (or its session ended). */
  claimsRecorded(): Promise<void> {
    return this.claims.recorded();
  }

  async end(session: string, reason: EndReason): Promise<void> {
    const s = this.sessions.get(session);
    if (s) this.finish(s, reason);
  }

  /**
   * The proxy has stamped user activity on the session's traffic record, which the deadlines read
   * (Session.lastActive), so a later deadline needs nothing here: the reaper's timer fires, finds it
   * moved and re-arms. Only a session noted idle is re-armed now: its next idle notice is due earlier.
   */
  activity(session: string, _at: number): void {
    const s = this.sessions.get(session);
    if (!s?.idleNoticed || s.lastActive <= s.stretchFrom) return;
    this.accounting.activeAgain(s);
    this.reaper.moved(s);
  }

  connectionOpened(session: string): void {
    const s = this.sessions.get(session);
    if (s) this.accounting.connectionOpened(s);
  }

  connectionClosed(session: string): void {
    const s = this.sessions.get(session);
    // The last one closed: the grace deadline may now be earlier than the reaper's timer.
    if (s && this.accounting.connectionClosed(s)) this.reaper.moved(s);
  }

  event(session: string, type: ProxyEventType, detail?: Record<string, unknown>): void {
    const s = this.sessions.get(session);
    if (!s) return;
    if (s.firstUseBy !== undefined && (type === 'request' || type === 'ws-open')) this.firstUse(s);
    this.accounting.event(s, type, detail);
  }

  /** Stops the reaper and every pool; removes all instances unless keep (default: config.keepOnExit). */
  async stop(keep = this.o.config.keepOnExit): Promise<void> {
    this.reaper.stop();
    // Claims still being recorded get one last attempt now (instances kept for the next run need them).
    await this.claims.stop();
    for (const u of this.unwatch) u();
    if (!keep) for (const s of [...this.sessions.values()]) this.finish(s, 'shutdown', false);
    else
      for (const s of this.sessions.values())
        this.accounting.write({ type: 'suspended', session: s.id, app: s.app.name, summary: this.accounting.summary(s, this.clock.now()) });
    await Promise.all([...this.pools.values()].map((p) => p.stop(keep)));
    // Kept instances keep their journaled claims for the next start; removed ones need none.
    this.o.journal?.compact(() => keep);
    this.o.journal?.close();
    await Promise.all([...new Set(Object.values(this.o.runtimes))].map((rt) => rt?.close()));
    await this.accounting.close();
  }

  /** A session on a claimed instance, its idle and grace clocks running from since (default: the claim). */
  private addSession(app: AppConfig, m: Member, id: string, claimedAt: number, since = claimedAt): Session {
    const s = newSession(app, m, id, claimedAt, since, this.o.idleNoticeMs ?? 60_000);
    const replaced = this.sessions.get(id);
    if (replaced) this.countLive(replaced.app.name, -1);
    this.sessions.set(id, s);
    this.countLive(app.name, 1);
    this.reaper.moved(s);
    this.changed();
    return s;
  }

  private deadline(id: string, s: Session, reason: DeadlineReason, at: number): boolean {
    if (reason === 'idle-notice') {
      this.accounting.idle(s);
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
      this.accounting.write({
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

  private countLive(app: string, by: number): void {
    this.liveByApp.set(app, (this.liveByApp.get(app) ?? 0) + by);
  }

  private finish(s: Session, reason: EndReason, release = true, deadline?: number): void {
    if (!this.sessions.delete(s.id)) return;
    this.countLive(s.app.name, -1);
    const now = this.clock.now();
    this.ended.set(s.id, { reason, at: now });
    this.accounting.write({
      type: 'ended',
      session: s.id,
      app: s.app.name,
      instance: s.member.id,
      reason,
      ...(deadline !== undefined ? { deadline, late: now - deadline } : {}),
      summary: this.accounting.summary(s, now),
    });
    if (release) this.pools.get(s.app.name)?.release(s.member.id, `session ended: ${reason}`);
    this.changed();
  }

  private endByInstance(instanceId: string, reason: EndReason, detail: string): void {
    for (const s of this.sessions.values()) {
      if (s.member.id === instanceId) {
        this.accounting.write({ type: 'instance-exited', session: s.id, app: s.app.name, detail });
        this.finish(s, reason, false);
      }
    }
  }

  private instanceExited(instanceId: string, detail: string): void {
    for (const p of this.pools.values()) if (p.member(instanceId)) p.instanceExited(instanceId, detail);
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

  /**
   * Engine reachability (a list() call per runtime, at most once per maxAgeMs) and each pool's state.
   * Not ok when an engine is unreachable or a pool is failing.
   */
  health(maxAgeMs = 5000): Promise<PoolHealth> {
    return this.fleetHealth.check(maxAgeMs);
  }
}
