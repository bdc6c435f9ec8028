// One app's warm pool: keeps `warm` ready instances, never more than `max` in all, refills after
// every claim with at most `parallel` instances starting at once. Every change ends in reconcile(),
// the one place that decides what to create next (tarn.js's _tryAcquireOrCreate, made eager) and
// which place in the waiting line gets which ready instance (dispatch).

import type { LineStatus, WaitOptions, WaitOutcome, WaitReason, WaiterKind } from './api.js';
import type { AppConfig, QueueConfig } from '../core/config.js';
import type { Clock, TimerHandle } from '../core/clock.js';
import { WarmpoolError, errorMessage, isWarmpoolError } from '../core/errors.js';
import { backoffDelay, retry } from '../core/retry.js';
import { instanceId as newInstanceId, secretToken } from './ids.js';
import { deepLinkRedirect } from './deep-link.js';
import { waitReady } from './readiness.js';
import { Members, type Member } from './members.js';
import type { ClaimMark, InstanceRecord, Runtime } from './runtime.js';
import { PlaceState, TokenBucket, WaitingLine, type Place } from './waiting-line.js';
import type { Log } from '../core/log.js';

export type { Member, MemberState } from './members.js';

export interface PoolStatus {
  app: string;
  ready: number;
  starting: number;
  claimed: number;
  /** Places in line (connected waiters). */
  queued: number;
  /** Rough wait of a visitor who arrives now and finds no ready instance, ms, when the pool can tell. */
  estimatedWaitMs?: number;
  warm: number;
  max: number;
  failures: number;
  lastError?: string;
  nextRetryAt?: number;
}

export type ClaimOutcome =
  | { kind: 'claimed'; member: Member }
  | { kind: 'queued'; ticket: string; line: LineStatus }
  | { kind: 'limited'; why: 'unused-claims' | 'waiting-places'; limit: number; retryAfterMs: number };

export interface WarmPoolOptions {
  app: AppConfig;
  runtime: Runtime;
  clock: Clock;
  log?: Log;
  /** Called when a claimed instance exits by itself (the fleet ends its session). */
  onClaimedExit?: (member: Member, detail: string) => void;
  /** Called whenever counts change (progress display). */
  onChange?: () => void;
  /** Called once an instance has been removed (the proxy drops its kept-alive connections). */
  onRemoved?: (rec: InstanceRecord) => void;
  /** Called once per failed create, with the error as status() reports it (the admin monitor counts them). */
  onCreateFailed?: (error: string) => void;
  /** The waiting line and fair sharing. */
  queue: QueueConfig;
  /** When each live session of this app ends if nothing changes (clock ms): for wait estimates. */
  sessionEnds?: () => number[];
  /** Replaces the TCP check that follows a readiness log line (tests without real ports). */
  portCheck?: (rec: InstanceRecord) => Promise<boolean>;
  /** Replaces the GET of the deep link when an instance becomes ready (tests without real ports). */
  deepLinkProbe?: (app: AppConfig, rec: InstanceRecord, secret: string | undefined) => Promise<string | undefined>;
  /** First and largest delay between failed creates, ms. */
  backoffMs?: { first: number; max: number };
}

/** What the line's estimates rest on, computed once per pass. */
interface Outlook {
  now: number;
  ready: number;
  starting: number;
  claimed: number;
  /** Expected readiness of the instances starting, soonest first (when a start-up time is known). */
  startingAt: number[];
  /** Session ends, soonest first. */
  ends: number[];
  startupMs?: number;
}

export class WarmPool {
  readonly app: AppConfig;
  private readonly members = new Members();
  private readonly line: WaitingLine;
  /** One timer for the line's deadlines (offers to collect, held requests, the claim rate). */
  private lineTimer?: TimerHandle;
  private lineTimerAt = Infinity;
  /** Recent start-up times of instances this run created (readyAt - createdAt), for wait estimates. */
  private startups: number[] = [];
  private failures = 0;
  private lastError?: string;
  /** The code of the last create failure, when it had one: ENGINE_UNREACHABLE is waited out only until the engine is back. */
  private lastErrorCode?: string;
  private nextCreateAt = 0;
  private retryTimer?: TimerHandle;
  /**
   * pool.refillPerSecond: creates are paced, one token each (burst 1), so a class claiming 60 at once
   * does not set 60 notebooks executing in the same second; `parallel` still caps those running.
   */
  private readonly refill?: TokenBucket;
  private paceTimer?: TimerHandle;
  private paceTimerAt = Infinity;
  /** Creates in flight: stop() waits for them, so a create that finishes after stop is removed before stop resolves. */
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;

  constructor(private readonly o: WarmPoolOptions) {
    this.app = o.app;
    this.line = new WaitingLine(o.queue, o.clock.now());
    const rate = o.app.pool.refillPerSecond;
    if (rate !== undefined) this.refill = new TokenBucket(rate, 1, o.clock.now());
  }

  status(): PoolStatus {
    return {
      app: this.app.name,
      ...this.members.counts(),
      queued: this.line.size,
      warm: this.app.pool.warm,
      max: this.app.pool.max,
      failures: this.failures,
      lastError: this.lastError,
      nextRetryAt: this.nextCreateAt > this.o.clock.now() ? this.nextCreateAt : undefined,
    };
  }

  member(id: string): Member | undefined {
    return this.members.get(id);
  }

  /** status() with the wait a newcomer faces (estimates read the sessions: not on every change). */
  statusWithEstimate(): PoolStatus {
    const s = this.status();
    s.estimatedWaitMs = this.line.size === 0 && this.members.freeCount > 0 ? 0 : this.estimate(this.line.size + 1, this.outlook()).estimatedWaitMs;
    return s;
  }

  /**
   * Takes over instances an earlier run left. Claimed and running: kept as claimed (returned, so
   * the fleet restores their sessions). Unclaimed and running: adopted if a readiness check passes
   * at once. Anything else: removed.
   */
  async adopt(records: InstanceRecord[]): Promise<Member[]> {
    const claimed: Member[] = [];
    await Promise.all(
      records.map(async (rec) => {
        if (!rec.running) return this.removeQuietly(rec.instanceId, 'left stopped by an earlier run');
        const m: Member = {
          id: rec.instanceId,
          state: 'starting',
          rec,
          createdAt: rec.createdAt,
          abort: new AbortController(),
          claim: rec.claim,
          adopted: true,
        };
        this.members.add(m);
        const quick: AppConfig = { ...this.app, readiness: { ...this.app.readiness, timeoutMs: Math.min(this.app.readiness.timeoutMs, 3000) } };
        try {
          const info = await waitReady(quick, rec, this.o.runtime, this.o.clock, m.abort.signal, this.o.portCheck);
          m.secret = info.secret;
          if (!rec.claim) await this.resolveDeepLink(m);
        } catch (e) {
          if (!rec.claim) {
            this.members.remove(m.id);
            return this.removeQuietly(m.id, `not ready when adopted: ${errorMessage(e)}`);
          }
          m.secret = this.app.secret?.env ? rec.env[this.app.secret.env] : undefined;
        }
        if (m.state !== 'starting') return; // exited meanwhile
        m.readyAt = this.o.clock.now();
        if (rec.claim) {
          this.members.set(m, 'claimed');
          claimed.push(m);
        } else {
          this.members.set(m, 'ready');
          this.serving(m);
        }
      }),
    );
    this.reconcile();
    return claimed;
  }

  /**
   * Hands out a ready instance, or a ticket for a place in line. Synchronous on purpose: the member
   * is marked claimed before any await, so concurrent claims can never get the same instance. The
   * line is served first (reconcile), so a ready instance still free here is one no waiter may take.
   * A visitor's claim (with an address) is subject to the queue's limits; an in-process one is not.
   */
  claim(o: { visitor?: string; waiter?: WaiterKind } = {}): ClaimOutcome {
    if (this.stopped) throw new WarmpoolError('POOL_STOPPED', `the pool of app ${this.app.name} is shutting down`);
    this.reconcile();
    const now = this.o.clock.now();
    const q = this.o.queue;
    const v = o.visitor;
    if (v !== undefined && this.line.placesOf(v) >= q.waitingPerAddress) {
      return { kind: 'limited', why: 'waiting-places', limit: q.waitingPerAddress, retryAfterMs: q.holdMs };
    }
    const blocked = this.line.blocked(v);
    if (blocked && o.waiter === 'request') {
      return {
        kind: 'limited',
        why: 'unused-claims',
        limit: q.unusedClaimsPerAddress,
        retryAfterMs: Math.max(1000, (this.line.freesAt(v!) ?? now + q.firstUseMs) - now),
      };
    }
    const m = blocked ? undefined : this.members.firstFree();
    if (m && (v === undefined || this.line.takeToken(now))) {
      this.members.set(m, 'claimed');
      if (v !== undefined) this.line.claimed(m.id, v, now + q.firstUseMs);
      this.reconcile();
      return { kind: 'claimed', member: m };
    }
    const p = this.line.issue(v, now);
    return { kind: 'queued', ticket: p.ticket, line: this.lineStatus(p) };
  }

  /**
   * Holds the place of an Issued ticket while o.signal is not aborted; resolves with an offer the
   * moment an instance is reserved for it (in reconcile), or with why nothing is held.
   */
  wait(ticket: string, o: WaitOptions): Promise<WaitOutcome> {
    if (this.stopped) return Promise.resolve({ kind: 'gone', why: 'stopped' });
    const now = this.o.clock.now();
    const p = this.line.issuedTicket(ticket, now);
    if (!p) return Promise.resolve({ kind: 'gone', why: this.line.isHeld(ticket) ? 'taken' : 'unknown' });
    if (o.signal.aborted) return Promise.resolve({ kind: 'gone', why: 'left' });
    const q = this.o.queue;
    if (p.visitor !== undefined && this.line.placesOf(p.visitor) >= q.waitingPerAddress) {
      return Promise.resolve({ kind: 'limited', why: 'waiting-places', limit: q.waitingPerAddress, retryAfterMs: q.holdMs });
    }
    return new Promise<WaitOutcome>((resolve) => {
      const leave = (): void => this.leave(p);
      o.signal.addEventListener('abort', leave, { once: true });
      this.line.hold(p, {
        kind: o.kind,
        resolve,
        onLine: o.onLine,
        holdUntil: o.kind === 'request' ? now + q.holdMs : o.kind === 'page' ? now + q.pageHoldMs : undefined,
        detach: () => o.signal.removeEventListener('abort', leave),
      });
      this.reconcile();
    });
  }

  /** A waiter went away: a waiting place is gone at once (an offered one lapses at its collect deadline). */
  private leave(p: Place): void {
    if (p.state !== PlaceState.Waiting || !this.line.isHeld(p.ticket)) return;
    const w = p.waiter!;
    this.line.drop(p);
    w.resolve({ kind: 'gone', why: 'left' });
    this.reconcile();
  }

  /** Turns an offer into a claim: the reserved instance, and the visitor it was offered to. */
  collect(token: string): { member: Member; visitor?: string } | undefined {
    if (this.stopped) return undefined;
    const now = this.o.clock.now();
    const p = this.line.offerOf(token);
    if (!p || now >= p.collectBy!) return undefined;
    this.line.drop(p);
    const m = this.members.get(p.memberId!);
    if (!m || m.state !== 'ready' || m.reservedFor !== p.ticket) {
      this.reconcile();
      return undefined;
    }
    this.members.set(m, 'claimed');
    if (p.visitor !== undefined) this.line.claimed(m.id, p.visitor, now + this.o.queue.firstUseMs);
    this.reconcile();
    return { member: m, visitor: p.visitor };
  }

  /** An offer that never reached its waiter: the instance goes to the next place at once. */
  decline(token: string): void {
    const p = this.line.offerOf(token);
    if (!p) return;
    const m = this.members.get(p.memberId!);
    if (m?.reservedFor === p.ticket) this.members.reserve(m, undefined);
    this.line.drop(p);
    this.reconcile();
  }

  /** A visitor's claim saw its first request: it no longer counts against its address. */
  used(id: string): void {
    this.line.forget(id);
    this.reconcile();
  }

  /**
   * A visitor's claim no request used (queue.firstUse): nothing reached the instance, so it is as
   * pristine as when it became ready. Back to ready, to the next in line.
   */
  returnUnused(id: string): boolean {
    const m = this.members.get(id);
    this.line.forget(id);
    if (!m || m.state !== 'claimed') return false;
    this.members.set(m, 'ready');
    m.claim = undefined;
    this.reconcile();
    return true;
  }

  /**
   * Hands out one particular instance: an adopted, ready, unclaimed one that a returning visitor's
   * signed cookie names (its claim was not yet recorded when the earlier run stopped). Synchronous,
   * like claim(). Undefined when that instance is not available.
   */
  claimAdopted(id: string): Member | undefined {
    const m = this.members.get(id);
    if (this.stopped || !m || !m.adopted || m.state !== 'ready') return undefined;
    this.members.set(m, 'claimed');
    this.reconcile();
    return m;
  }

  /** Records a claim on the engine, so a restarted warmpool knows the instance is taken. The caller retries. */
  async persistClaim(m: Member, claim: ClaimMark): Promise<void> {
    m.claim = claim;
    await this.o.runtime.markClaimed(m.id, claim);
  }

  /** A claim the engine could not record (it did not answer): the instance is ready again. */
  unclaim(id: string): void {
    this.line.forget(id);
    const m = this.members.get(id);
    if (!m || m.state !== 'claimed') return;
    this.members.set(m, 'ready');
    m.claim = undefined;
    this.reconcile();
  }

  /** Removes an instance (a session ended, or it failed) and refills. */
  release(id: string, why: string): void {
    const m = this.members.get(id);
    if (!m || m.state === 'removing') return;
    this.members.set(m, 'removing');
    this.line.forget(id);
    m.abort.abort(new WarmpoolError('INSTANCE_GONE', `instance ${id} removed: ${why}`));
    this.changed();
    void this.removeQuietly(id, why).finally(() => {
      if (this.members.get(id) === m) this.members.remove(id);
      if (m.rec) this.o.onRemoved?.(m.rec);
      this.reconcile();
    });
  }

  /** The runtime saw an instance of this app exit. */
  instanceExited(id: string, detail: string): void {
    const m = this.members.get(id);
    if (!m || m.state === 'removing') return;
    if (m.state === 'starting' && !m.adopted) {
      // A create that dies before it is ready is a failed create: startOne() counts it and backs off
      // (released here, an app that crashes at start-up would be recreated at once, in a loop).
      m.abort.abort(new WarmpoolError('INSTANCE_EXITED', `instance ${id} exited while starting: ${detail}`, { hint: "check the app's output" }));
      return;
    }
    this.o.log?.(`${this.app.name}: instance ${id} exited while ${m.state}: ${detail}`, { app: this.app.name, instance: id }, 'warn');
    if (m.state === 'claimed') this.o.onClaimedExit?.(m, detail);
    this.release(id, `exited: ${detail}`);
  }

  /**
   * The runtime says its engine answers again (its watch reconnected after an engine restart). Creates
   * backing off because the engine was unreachable try at once, rather than wait out a backoff that grew
   * with the outage (up to backoffMs.max) while visitors wait in line. Other failures keep their backoff.
   */
  engineBack(): void {
    if (this.stopped || this.lastErrorCode !== 'ENGINE_UNREACHABLE' || this.nextCreateAt <= this.o.clock.now()) return;
    this.o.log?.(`${this.app.name}: the engine answers again; creating now instead of in ${this.nextCreateAt - this.o.clock.now()} ms`, { app: this.app.name });
    this.nextCreateAt = 0;
    this.retryTimer?.cancel();
    this.retryTimer = undefined;
    this.reconcile();
  }

  /** The one choke point: decides how many instances to start now. */
  reconcile(): void {
    if (this.stopped) return;
    const now = this.o.clock.now();
    const demand = this.dispatch(now);
    const s = this.members.counts();
    const wanted = this.app.pool.warm + demand - (s.ready + s.starting);
    const room = this.app.pool.max - (s.ready + s.starting + s.claimed);
    const slots = this.app.pool.parallel - s.starting;
    // After a failure, one trial create at a time until one succeeds: a broken image fails once per backoff, not in bursts.
    let n = Math.min(wanted, room, this.failures > 0 ? 1 - s.starting : slots);
    if (n > 0 && now < this.nextCreateAt) {
      this.retryTimer?.cancel();
      this.retryTimer = this.o.clock.setTimer(this.nextCreateAt - now, () => {
        this.retryTimer = undefined;
        this.reconcile();
      });
      n = 0;
    }
    if (n > 0 && this.refill) {
      let paced = 0;
      while (paced < n && this.refill.take(now)) paced++;
      if (paced < n) this.armPace(now, this.refill.nextAt(now));
      n = paced;
    }
    for (let i = 0; i < n; i++) {
      const p = this.startOne();
      this.inFlight.add(p);
      void p.finally(() => this.inFlight.delete(p));
    }
    this.tellLine();
    this.changed();
  }

  /** One timer for the next paced create: reconcile runs again when a token is there. */
  private armPace(now: number, at: number): void {
    if (this.paceTimer && this.paceTimerAt <= at) return;
    this.paceTimer?.cancel();
    this.paceTimerAt = at;
    this.paceTimer = this.o.clock.setTimer(at - now, () => {
      this.paceTimer = undefined;
      this.paceTimerAt = Infinity;
      this.reconcile();
    });
  }

  /** Stops creating; removes every instance unless keep is set (they are adopted on the next start). */
  async stop(keep: boolean): Promise<void> {
    this.stopped = true;
    this.retryTimer?.cancel();
    this.paceTimer?.cancel();
    this.lineTimer?.cancel();
    this.line.clear('stopped');
    const all = [...this.members.values()];
    for (const m of all) m.abort.abort(new WarmpoolError('POOL_STOPPED', 'warmpool is shutting down'));
    if (!keep) {
      await Promise.all(all.map((m) => this.removeQuietly(m.id, 'shutdown')));
      this.members.clear();
    }
    // An aborted create removes its instance itself (startOne's catch); wait for that, or an
    // instance whose create was still in flight outlives stop() (and warmpool's exit).
    await Promise.all([...this.inFlight]);
  }

  /** Reads where the deep link leads on this instance, when the app wants that (pool/deep-link.ts); no answer leaves the deep link as it is. */
  private async resolveDeepLink(m: Member): Promise<void> {
    if (!this.app.resolveDeepLink || !m.rec) return;
    m.deepLinkRedirect = await (this.o.deepLinkProbe ?? deepLinkRedirect)(this.app, m.rec, m.secret);
  }

  private async startOne(): Promise<void> {
    const id = newInstanceId();
    const m: Member = { id, state: 'starting', createdAt: this.o.clock.now(), abort: new AbortController() };
    this.members.add(m);
    const env: Record<string, string> = {};
    if (this.app.secret?.env) env[this.app.secret.env] = secretToken();
    if (this.app.prefix.mode === 'base-url') env[this.app.prefix.env] = `/${this.app.name}/`;
    try {
      m.rec = await this.o.runtime.create(this.app, { app: this.app.name, instanceId: id, env });
      if (m.abort.signal.aborted) throw m.abort.signal.reason;
      const info = await waitReady(this.app, m.rec, this.o.runtime, this.o.clock, m.abort.signal, this.o.portCheck);
      if (m.state !== 'starting') return; // removed or stopped meanwhile
      m.secret = info.secret;
      await this.resolveDeepLink(m);
      if (m.abort.signal.aborted) throw m.abort.signal.reason;
      if (m.state !== 'starting') return;
      this.members.set(m, 'ready');
      this.serving(m);
      m.readyAt = this.o.clock.now();
      this.startups = [...this.startups.slice(-19), m.readyAt - m.createdAt];
      this.failures = 0;
      this.lastError = undefined;
      this.lastErrorCode = undefined;
      this.nextCreateAt = 0;
      this.reconcile();
    } catch (e) {
      if (this.stopped) {
        await this.removeQuietly(id, 'shutdown');
        this.members.remove(id);
        return;
      }
      if (m.state === 'removing') return; // release() already handles it
      this.failures++;
      // The code first (IMAGE_NOT_FOUND, READINESS_TIMEOUT, ...): what status() and the progress line report.
      this.lastError = isWarmpoolError(e) ? `${e.code}: ${e.message}` : errorMessage(e);
      this.lastErrorCode = isWarmpoolError(e) ? e.code : undefined;
      const b = this.o.backoffMs ?? { first: 1000, max: 60_000 };
      this.nextCreateAt = this.o.clock.now() + backoffDelay({ firstMs: b.first, maxMs: b.max }, this.failures);
      this.o.log?.(
        `${this.app.name}: instance ${id} failed (${this.failures} in a row, next try in ${this.nextCreateAt - this.o.clock.now()} ms): ${this.lastError}`,
        { app: this.app.name, instance: id, failures: this.failures },
        'error',
      );
      this.o.onCreateFailed?.(this.lastError);
      this.release(id, 'failed to start');
    }
  }

  /**
   * A ready instance idles until claimed: the runtime may lift its warming CPU weight now, off any
   * visitor's path (raised at the claim, a student's first requests ran at the warming weight until the
   * engine call landed, competing with refills that burn CPU at the same weight). markClaimed retries it.
   */
  private serving(m: Member): void {
    this.o.runtime.serving?.(m.id).catch((e: unknown) => {
      if (m.state === 'removing' || this.stopped) return;
      this.o.log?.(
        `${this.app.name}: instance ${m.id}: could not lift its warming CPU weight (its claim will): ${errorMessage(e)}`,
        { app: this.app.name, instance: m.id },
        'warn',
      );
    });
  }

  /**
   * The line's part of reconcile: offers not collected in time go back, held requests at their hold
   * time are answered, then each ready instance is offered to the first place in line that may take
   * one. Returns how many instances the line still wants (places that may take one, and offers).
   */
  private dispatch(now: number): number {
    const q = this.o.queue;
    for (const p of this.line.places()) {
      if (p.state === PlaceState.Offered && now >= p.collectBy!) {
        const m = this.members.get(p.memberId!);
        if (m?.reservedFor === p.ticket) this.members.reserve(m, undefined);
        this.line.drop(p);
        this.o.log?.(`${this.app.name}: an instance offered to a place in line was not collected within ${q.collectMs} ms; it goes to the next`, {
          app: this.app.name,
        });
      } else if (p.state === PlaceState.Waiting && p.waiter!.holdUntil !== undefined && now >= p.waiter!.holdUntil) {
        // A held request is answered; its place is kept under a new ticket for the visitor's next request.
        const w = p.waiter!;
        this.line.drop(p);
        const next = this.line.issue(p.visitor, now, p.seq);
        w.resolve({ kind: 'timeout', ticket: next.ticket, line: this.lineStatus(next) });
      }
    }
    let throttled = false;
    for (const p of this.line.places()) {
      if (this.members.freeCount === 0) break;
      if (p.state !== PlaceState.Waiting || this.line.blocked(p.visitor)) continue;
      if (p.visitor !== undefined && !this.line.takeToken(now)) {
        throttled = true;
        break;
      }
      const m = this.members.firstFree()!;
      this.members.reserve(m, p.ticket);
      const expiresAt = now + q.collectMs;
      const token = this.line.offer(p, m.id, expiresAt);
      p.waiter!.detach(); // from now on only the collect deadline ends this place
      p.waiter!.resolve({ kind: 'offer', collect: token, expiresAt });
    }
    let demand = 0;
    let next = Infinity;
    for (const p of this.line.places()) {
      if (p.state === PlaceState.Offered) {
        demand++;
        next = Math.min(next, p.collectBy!);
        continue;
      }
      if (!this.line.blocked(p.visitor)) demand++;
      if (p.waiter!.holdUntil !== undefined) next = Math.min(next, p.waiter!.holdUntil);
    }
    if (throttled) next = Math.min(next, this.line.nextTokenAt(now));
    this.armLineTimer(now, next);
    return demand;
  }

  private armLineTimer(now: number, at: number): void {
    if (at === this.lineTimerAt) return;
    this.lineTimer?.cancel();
    this.lineTimer = undefined;
    this.lineTimerAt = at;
    if (at === Infinity) return;
    this.lineTimer = this.o.clock.setTimer(at - now, () => {
      this.lineTimer = undefined;
      this.lineTimerAt = Infinity;
      this.reconcile();
    });
  }

  /** Tells each waiter whose position or outlook changed. */
  private tellLine(): void {
    let outlook: Outlook | undefined;
    let position = 0;
    for (const p of this.line.places()) {
      position++;
      const w = p.waiter;
      if (p.state !== PlaceState.Waiting || !w?.onLine) continue;
      outlook ??= this.outlook();
      const st = this.statusAt(p, position, outlook);
      // Told when what the page shows changes: the place, the reason, the wait (in 5 s steps).
      const key = `${st.position}/${st.reason}/${st.estimatedWaitMs === undefined ? '-' : Math.round(st.estimatedWaitMs / 5000)}`;
      if (key === w.told) continue;
      w.told = key;
      try {
        w.onLine(st);
      } catch (e) {
        this.o.log?.(`${this.app.name}: telling a waiter its place failed: ${errorMessage(e)}`, { app: this.app.name }, 'warn');
      }
    }
  }

  /** Where a place stands: its position (an Issued ticket: where it would join), why it waits, how long. */
  lineStatus(p: Place): LineStatus {
    const ahead = this.line.places().filter((x) => x !== p && x.seq < p.seq).length;
    return this.statusAt(p, ahead + 1, this.outlook());
  }

  private outlook(): Outlook {
    const now = this.o.clock.now();
    const ms = this.members;
    const c = ms.counts();
    const sorted = [...this.startups].sort((a, b) => a - b);
    const startupMs = sorted.length ? sorted[Math.floor(sorted.length / 2)] : undefined;
    const startingAt = startupMs === undefined ? [] : [...ms.inState('starting')].map((m) => Math.max(now, m.createdAt + startupMs)).sort((a, b) => a - b);
    const ends = (this.o.sessionEnds?.() ?? []).slice().sort((a, b) => a - b);
    return { now, ...c, startingAt, ends, startupMs };
  }

  private statusAt(p: Place, position: number, o: Outlook): LineStatus {
    const base = { position, waiting: this.line.size, ready: o.ready, starting: o.starting, claimed: o.claimed, max: this.app.pool.max };
    if (p.visitor !== undefined && this.line.blocked(p.visitor)) {
      const at = this.line.freesAt(p.visitor);
      return { ...base, reason: 'unused-claims', estimatedWaitMs: at === undefined ? undefined : Math.max(0, at - o.now) };
    }
    const free = this.members.freeCount;
    if (free > 0 && p.visitor !== undefined) {
      return { ...base, reason: 'throttled', estimatedWaitMs: Math.max(0, this.line.nextTokenAt(o.now) - o.now) };
    }
    return { ...base, ...this.estimate(position, o) };
  }

  /**
   * Why the position-th place in line waits and roughly how long: the instances starting come first,
   * then those there is still room (max) to create, then, when the class is full, the sessions that
   * end soonest (each then needs a new instance started).
   */
  private estimate(position: number, o: Outlook): { reason: WaitReason; estimatedWaitMs?: number } {
    const room = Math.max(0, this.app.pool.max - (o.ready + o.starting + o.claimed));
    const wait = (at: number | undefined): number | undefined => (at === undefined ? undefined : Math.max(0, Math.round(at - o.now)));
    if (position <= o.starting + room) {
      if (this.failures > 0 && o.starting === 0) {
        return { reason: 'failing', estimatedWaitMs: wait(o.startupMs === undefined ? undefined : Math.max(o.now, this.nextCreateAt) + o.startupMs) };
      }
      if (position <= o.startingAt.length) return { reason: 'starting', estimatedWaitMs: wait(o.startingAt[position - 1]) };
      return { reason: 'starting', estimatedWaitMs: wait(o.startupMs === undefined ? undefined : o.now + o.startupMs) };
    }
    const k = position - o.starting - room;
    const end = o.ends[k - 1];
    return { reason: 'full', estimatedWaitMs: wait(end === undefined ? undefined : end + (o.startupMs ?? 0)) };
  }

  /** Five attempts, 2, 4, 8 and 16 s apart; each failure logged, the last one given up on. */
  private async removeQuietly(id: string, why: string): Promise<void> {
    await retry(() => this.o.runtime.remove(id), {
      clock: this.o.clock,
      attempts: 5,
      firstMs: 2000,
      maxMs: 16_000,
      onFailure: (f) =>
        this.o.log?.(
          `${this.app.name}: removing instance ${id} (${why}) failed, attempt ${f.attempt}: ${errorMessage(f.error)}`,
          { app: this.app.name, instance: id, attempt: f.attempt },
          'warn',
        ),
    }).catch(() => {});
  }

  private changed(): void {
    this.o.onChange?.();
  }

  // ---- Steering by an admin (admin/api.ts through the Fleet): resize, drain, refresh. ----
  // The targets live in this.app.pool, which reconcile() reads; a change lasts until warmpool restarts.

  /** While draining: the warm target to restore (this.app.pool.warm is 0 meanwhile). */
  private drainedWarm?: number;

  /** No new claims (the fleet refuses them), no ready instances kept; claimed ones go on until their sessions end. */
  get draining(): boolean {
    return this.drainedWarm !== undefined;
  }

  /** The operator's targets: while draining, the warm target that resume restores. */
  targets(): { warm: number; max: number; draining: boolean } {
    return { warm: this.drainedWarm ?? this.app.pool.warm, max: this.app.pool.max, draining: this.draining };
  }

  /**
   * Sets the warm target and/or max. Lowering them removes ready (then starting) instances beyond the
   * new targets at once; claimed instances are never touched, so `max` below the claimed count only
   * stops new creates until sessions end. Throws BAD_REQUEST naming the field, the value and what is allowed.
   */
  resize(to: { warm?: number; max?: number }): { warm: number; max: number } {
    const cur = this.targets();
    const check = (field: string, v: unknown, min: number, max: number): number => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
        throw new WarmpoolError('BAD_REQUEST', `${this.app.name}: ${field} is ${JSON.stringify(v)}; expected an integer from ${min} to ${max}`);
      }
      return v;
    };
    const max = to.max === undefined ? cur.max : check('max', to.max, 1, 10_000);
    const warm = to.warm === undefined ? cur.warm : check('warm', to.warm, 0, 1000);
    if (warm > max) throw new WarmpoolError('BAD_REQUEST', `${this.app.name}: warm ${warm} is above max ${max}; expected warm at most max (set both)`);
    if (this.draining) this.drainedWarm = warm;
    this.app.pool = { ...this.app.pool, warm: this.draining ? 0 : warm, max };
    this.trim(`resized to warm ${warm}, max ${max}`);
    this.reconcile();
    return { warm, max };
  }

  /** drain(true): stop taking visitors; drain(false): take them again and warm back up. */
  drain(on: boolean): void {
    if (on === this.draining || this.stopped) return;
    if (on) {
      this.drainedWarm = this.app.pool.warm;
      this.app.pool = { ...this.app.pool, warm: 0 };
      // Nobody waits for a draining app: the line is dropped (each waiter is told at once; its page
      // then meets the refusal).
      this.line.clear('stopped');
      for (const m of this.members.values()) this.members.reserve(m, undefined);
      this.trim('the app is draining');
    } else {
      this.app.pool = { ...this.app.pool, warm: this.drainedWarm! };
      this.drainedWarm = undefined;
    }
    this.reconcile();
  }

  /**
   * Replaces every unclaimed instance (ready, or still starting from the old image or notebook) with a
   * new one; claimed instances are not touched. Removed synchronously from the claimable set, so no
   * visitor is handed an old one afterwards. Returns the ids replaced.
   */
  refresh(): string[] {
    if (this.stopped) return [];
    const old = [...this.members.values()].filter((m) => m.state === 'ready' || m.state === 'starting');
    for (const m of old) {
      this.members.reserve(m, undefined);
      this.release(m.id, 'replaced by an admin refresh');
    }
    this.reconcile();
    return old.map((m) => m.id);
  }

  /** Removes unclaimed instances beyond the current targets: surplus ready ones first, then starting ones. */
  private trim(why: string): void {
    const live = [...this.members.values()].filter((m) => m.state !== 'removing');
    const free = live.filter((m) => m.state === 'ready' && !m.reservedFor);
    const starting = live.filter((m) => m.state === 'starting');
    let total = live.length;
    const { warm, max } = this.app.pool;
    const readyGo = free.slice(0, Math.min(free.length, Math.max(0, free.length - warm, total - max)));
    total -= readyGo.length;
    const readyLeft = live.filter((m) => m.state === 'ready').length - readyGo.length;
    const needStarting = Math.max(0, warm + this.line.size - readyLeft);
    const startingGo = starting.slice(0, Math.min(starting.length, Math.max(0, starting.length - needStarting, total - max)));
    for (const m of [...readyGo, ...startingGo]) this.release(m.id, why);
  }
}
