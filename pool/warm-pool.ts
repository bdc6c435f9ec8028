// One app's warm pool: keeps `warm` ready instances, never more than `max` in all, refills after
// every claim with at most `parallel` instances starting at once. Every change ends in reconcile(),
// the one place that decides what to create next (tarn.js's _tryAcquireOrCreate, made eager).

import type { AppConfig } from './config.js';
import type { Clock, TimerHandle } from './clock.js';
import { WarmpoolError, errorMessage, isWarmpoolError } from './errors.js';
import { instanceId as newInstanceId, secretToken } from './ids.js';
import { waitReady } from './readiness.js';
import type { ClaimMark, InstanceRecord, Runtime } from './runtime.js';

export type MemberState = 'starting' | 'ready' | 'claimed' | 'removing';

export interface Member {
  id: string;
  state: MemberState;
  rec?: InstanceRecord;
  secret?: string;
  createdAt: number;
  readyAt?: number;
  claim?: ClaimMark;
  /** A ready instance held for the visitor at the head of the queue. */
  reservedFor?: string;
  /** Found running by adopt() (an earlier run created it), not created by this run. */
  adopted?: boolean;
  abort: AbortController;
}

export interface PoolStatus {
  app: string;
  ready: number;
  starting: number;
  claimed: number;
  queued: number;
  warm: number;
  max: number;
  failures: number;
  lastError?: string;
  nextRetryAt?: number;
}

export type ClaimOutcome =
  | { kind: 'claimed'; member: Member }
  | { kind: 'queued'; ticket: string; position: number };

export interface WarmPoolOptions {
  app: AppConfig;
  runtime: Runtime;
  clock: Clock;
  log?: (msg: string) => void;
  /** Called when a claimed instance exits by itself (the fleet ends its session). */
  onClaimedExit?: (member: Member, detail: string) => void;
  /** Called whenever counts change (progress display). */
  onChange?: () => void;
  /** Called once an instance has been removed (the proxy drops its kept-alive connections). */
  onRemoved?: (rec: InstanceRecord) => void;
  /** A queued visitor who has not asked again within this long loses their place, ms. */
  ticketTtlMs?: number;
  /** Replaces the TCP check that follows a readiness log line (tests without real ports). */
  portCheck?: (rec: InstanceRecord) => Promise<boolean>;
  /** First and largest delay between failed creates, ms. */
  backoffMs?: { first: number; max: number };
}

interface Ticket { id: string; polledAt: number }

export class WarmPool {
  readonly app: AppConfig;
  private readonly members = new Map<string, Member>();
  private queue: Ticket[] = [];
  private failures = 0;
  private lastError?: string;
  private nextCreateAt = 0;
  private retryTimer?: TimerHandle;
  /** Creates in flight: stop() waits for them, so a create that finishes after stop is removed before stop resolves. */
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;
  private ticketSeq = 0;

  constructor(private readonly o: WarmPoolOptions) {
    this.app = o.app;
  }

  status(): PoolStatus {
    const c = { ready: 0, starting: 0, claimed: 0 };
    for (const m of this.members.values()) if (m.state !== 'removing') c[m.state]++;
    return {
      app: this.app.name, ...c, queued: this.queue.length, warm: this.app.pool.warm, max: this.app.pool.max,
      failures: this.failures, lastError: this.lastError,
      nextRetryAt: this.nextCreateAt > this.o.clock.now() ? this.nextCreateAt : undefined,
    };
  }

  member(id: string): Member | undefined { return this.members.get(id); }

  /**
   * Takes over instances an earlier run left. Claimed and running: kept as claimed (returned, so
   * the fleet restores their sessions). Unclaimed and running: adopted if a readiness check passes
   * at once. Anything else: removed.
   */
  async adopt(records: InstanceRecord[]): Promise<Member[]> {
    const claimed: Member[] = [];
    await Promise.all(records.map(async (rec) => {
      if (!rec.running) return this.removeQuietly(rec.instanceId, 'left stopped by an earlier run');
      const m: Member = { id: rec.instanceId, state: 'starting', rec, createdAt: rec.createdAt, abort: new AbortController(), claim: rec.claim, adopted: true };
      this.members.set(m.id, m);
      const quick: AppConfig = { ...this.app, readiness: { ...this.app.readiness, timeoutMs: Math.min(this.app.readiness.timeoutMs, 3000) } };
      try {
        const info = await waitReady(quick, rec, this.o.runtime, this.o.clock, m.abort.signal, this.o.portCheck);
        m.secret = info.secret;
      } catch (e) {
        if (!rec.claim) {
          this.members.delete(m.id);
          return this.removeQuietly(m.id, `not ready when adopted: ${errorMessage(e)}`);
        }
        m.secret = this.app.secret?.env ? rec.env[this.app.secret.env] : undefined;
      }
      if (m.state !== 'starting') return; // exited meanwhile
      m.readyAt = this.o.clock.now();
      if (rec.claim) { m.state = 'claimed'; claimed.push(m); } else m.state = 'ready';
    }));
    this.reconcile();
    return claimed;
  }

  /**
   * Hands out a ready instance. Synchronous on purpose: the member is marked claimed before any
   * await, so concurrent claims can never get the same instance. Visitors without a reserved
   * instance wait in line behind those with a ticket.
   */
  claim(ticket?: string): ClaimOutcome {
    if (this.stopped) throw new WarmpoolError('POOL_STOPPED', `the pool of app ${this.app.name} is shutting down`);
    const now = this.o.clock.now();
    this.expireTickets(now);
    let m: Member | undefined;
    if (ticket) m = [...this.members.values()].find((x) => x.state === 'ready' && x.reservedFor === ticket);
    if (!m && this.queue.length === 0) m = [...this.members.values()].find((x) => x.state === 'ready' && !x.reservedFor);
    if (m) {
      m.state = 'claimed';
      m.reservedFor = undefined;
      if (ticket) this.queue = this.queue.filter((t) => t.id !== ticket);
      this.reconcile();
      return { kind: 'claimed', member: m };
    }
    let t = ticket ? this.queue.find((q) => q.id === ticket) : undefined;
    if (!t) {
      t = { id: `${this.app.name}.${now.toString(36)}.${(this.ticketSeq++).toString(36)}`, polledAt: now };
      this.queue.push(t);
    }
    t.polledAt = now;
    this.reconcile();
    return { kind: 'queued', ticket: t.id, position: this.queue.indexOf(t) + 1 };
  }

  /**
   * Hands out one particular instance: an adopted, ready, unclaimed one that a returning visitor's
   * signed cookie names (its claim was not yet recorded when the earlier run stopped). Synchronous,
   * like claim(). Undefined when that instance is not available.
   */
  claimAdopted(id: string): Member | undefined {
    const m = this.members.get(id);
    if (this.stopped || !m || !m.adopted || m.state !== 'ready') return undefined;
    m.state = 'claimed';
    m.reservedFor = undefined;
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
    const m = this.members.get(id);
    if (!m || m.state !== 'claimed') return;
    m.state = 'ready';
    m.claim = undefined;
    this.reconcile();
  }

  /** Removes an instance (a session ended, or it failed) and refills. */
  release(id: string, why: string): void {
    const m = this.members.get(id);
    if (!m || m.state === 'removing') return;
    m.state = 'removing';
    m.abort.abort(new WarmpoolError('INSTANCE_GONE', `instance ${id} removed: ${why}`));
    this.changed();
    void this.removeQuietly(id, why).finally(() => {
      this.members.delete(id);
      if (m.rec) this.o.onRemoved?.(m.rec);
      this.reconcile();
    });
  }

  /** The runtime saw an instance of this app exit. */
  instanceExited(id: string, detail: string): void {
    const m = this.members.get(id);
    if (!m || m.state === 'removing') return;
    this.o.log?.(`${this.app.name}: instance ${id} exited while ${m.state}: ${detail}`);
    if (m.state === 'claimed') this.o.onClaimedExit?.(m, detail);
    this.release(id, `exited: ${detail}`);
  }

  /** The one choke point: decides how many instances to start now. */
  reconcile(): void {
    if (this.stopped) return;
    const now = this.o.clock.now();
    this.expireTickets(now);
    this.reserveForQueue();
    const s = this.status();
    const wanted = this.app.pool.warm + this.queue.length - (s.ready + s.starting);
    const room = this.app.pool.max - (s.ready + s.starting + s.claimed);
    const slots = this.app.pool.parallel - s.starting;
    // After a failure, one trial create at a time until one succeeds: a broken image fails once per backoff, not in bursts.
    let n = Math.min(wanted, room, this.failures > 0 ? 1 - s.starting : slots);
    if (n > 0 && now < this.nextCreateAt) {
      this.retryTimer?.cancel();
      this.retryTimer = this.o.clock.setTimer(this.nextCreateAt - now, () => { this.retryTimer = undefined; this.reconcile(); });
      n = 0;
    }
    for (let i = 0; i < n; i++) {
      const p = this.startOne();
      this.inFlight.add(p);
      void p.finally(() => this.inFlight.delete(p));
    }
    this.changed();
  }

  /** Stops creating; removes every instance unless keep is set (they are adopted on the next start). */
  async stop(keep: boolean): Promise<void> {
    this.stopped = true;
    this.retryTimer?.cancel();
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

  private async startOne(): Promise<void> {
    const id = newInstanceId();
    const m: Member = { id, state: 'starting', createdAt: this.o.clock.now(), abort: new AbortController() };
    this.members.set(id, m);
    const env: Record<string, string> = {};
    if (this.app.secret?.env) env[this.app.secret.env] = secretToken();
    if (this.app.prefix.mode === 'base-url') env[this.app.prefix.env] = `/${this.app.name}/`;
    try {
      m.rec = await this.o.runtime.create(this.app, { app: this.app.name, instanceId: id, env });
      if (m.abort.signal.aborted) throw m.abort.signal.reason;
      const info = await waitReady(this.app, m.rec, this.o.runtime, this.o.clock, m.abort.signal, this.o.portCheck);
      if (m.state !== 'starting') return; // removed or stopped meanwhile
      m.secret = info.secret;
      m.state = 'ready';
      m.readyAt = this.o.clock.now();
      this.failures = 0;
      this.lastError = undefined;
      this.nextCreateAt = 0;
      this.reconcile();
    } catch (e) {
      if (this.stopped) { await this.removeQuietly(id, 'shutdown'); this.members.delete(id); return; }
      if (m.state === 'removing') return; // release() already handles it
      this.failures++;
      // The code first (IMAGE_NOT_FOUND, READINESS_TIMEOUT, ...): what status() and the progress line report.
      this.lastError = isWarmpoolError(e) ? `${e.code}: ${e.message}` : errorMessage(e);
      const b = this.o.backoffMs ?? { first: 1000, max: 60_000 };
      this.nextCreateAt = this.o.clock.now() + Math.min(b.max, b.first * 2 ** (this.failures - 1));
      this.o.log?.(`${this.app.name}: instance ${id} failed (${this.failures} in a row, next try in ${this.nextCreateAt - this.o.clock.now()} ms): ${this.lastError}`);
      this.release(id, 'failed to start');
    }
  }

  private reserveForQueue(): void {
    const waiting = this.queue.filter((t) => ![...this.members.values()].some((m) => m.reservedFor === t.id));
    for (const m of this.members.values()) {
      if (waiting.length === 0) break;
      if (m.state === 'ready' && !m.reservedFor) m.reservedFor = waiting.shift()!.id;
    }
  }

  private expireTickets(now: number): void {
    const ttl = this.o.ticketTtlMs ?? 20_000;
    const gone = this.queue.filter((t) => now - t.polledAt > ttl);
    if (gone.length === 0) return;
    this.queue = this.queue.filter((t) => now - t.polledAt <= ttl);
    for (const m of this.members.values()) if (m.reservedFor && gone.some((t) => t.id === m.reservedFor)) m.reservedFor = undefined;
  }

  private async removeQuietly(id: string, why: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.o.runtime.remove(id);
        return;
      } catch (e) {
        this.o.log?.(`${this.app.name}: removing instance ${id} (${why}) failed, attempt ${attempt}: ${errorMessage(e)}`);
        if (attempt >= 5) return;
        await this.o.clock.sleep(1000 * 2 ** attempt);
      }
    }
  }

  private changed(): void { this.o.onChange?.(); }

  // ---- Steering by an admin (admin/api.ts through the Fleet): resize, drain, refresh. ----
  // The targets live in this.app.pool, which reconcile() reads; a change lasts until warmpool restarts.

  /** While draining: the warm target to restore (this.app.pool.warm is 0 meanwhile). */
  private drainedWarm?: number;

  /** No new claims (the fleet refuses them), no ready instances kept; claimed ones go on until their sessions end. */
  get draining(): boolean { return this.drainedWarm !== undefined; }

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
      // Nobody waits for a draining app: the line is dropped (each visitor's next poll is refused).
      this.queue = [];
      for (const m of this.members.values()) m.reservedFor = undefined;
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
      m.reservedFor = undefined;
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
    const needStarting = Math.max(0, warm + this.queue.length - readyLeft);
    const startingGo = starting.slice(0, Math.min(starting.length, Math.max(0, starting.length - needStarting, total - max)));
    for (const m of [...readyGo, ...startingGo]) this.release(m.id, why);
  }
}
