// One app's waiting line: tickets, places held only by connected waiters, offers collected with a
// one-time token, and the bookkeeping of fair sharing without logins (unused claims and places per
// visitor address, a claim rate as a token bucket on the clock). Bookkeeping only: WarmPool owns the
// instances and decides, in reconcile(), which place gets which instance.

import { randomToken } from '../core/random.js';
import type { WaiterKind, WaitOutcome, LineStatus } from './api.js';
import type { QueueConfig } from '../core/config.js';

export enum PlaceState {
  /** Handed out with a waiting page: not in line until a waiter holds it (within queue.attach). */
  Issued = 'issued',
  /** Held by a connected waiter: in line. */
  Waiting = 'waiting',
  /** An instance is reserved for it and its collect token is out, until collectBy. */
  Offered = 'offered',
}

export interface Waiter {
  kind: WaiterKind;
  resolve: (o: WaitOutcome) => void;
  onLine?: (s: LineStatus) => void;
  /** 'request' waiters are answered with a timeout at this clock time. */
  holdUntil?: number;
  /** What was last told through onLine (only changes are told). */
  told?: string;
  /** Stops listening to the waiter's signal. */
  detach(): void;
}

export interface Place {
  ticket: string;
  state: PlaceState;
  visitor?: string;
  /** Order in line; kept when a held request's place is handed back under a new ticket. */
  seq: number;
  /** Issued: lapses at this clock time unless a waiter holds it. */
  attachBy: number;
  waiter?: Waiter;
  collect?: string;
  collectBy?: number;
  memberId?: string;
}

/** Tickets and collect tokens: 128 random bits, url-safe; nothing about them can be guessed. */
export function lineToken(): string {
  return randomToken(16);
}

/** Issued tickets kept per app at most (a flood of page loads that never connect); the oldest lapse first. */
const MAX_ISSUED = 10_000;

/** A token bucket on the clock: `perSecond` tokens a second, at most `burst` saved up. */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.at = now;
  }

  private refill(now: number): void {
    if (now > this.at) this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.perSecond) / 1000);
    this.at = Math.max(this.at, now);
  }

  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** When the next token is there (now, if one is). */
  nextAt(now: number): number {
    this.refill(now);
    return this.tokens >= 1 ? now : now + Math.ceil(((1 - this.tokens) * 1000) / this.perSecond);
  }
}

export class WaitingLine {
  /** Issued tickets in the order they were issued (so their attach deadlines are in order too). */
  private readonly issued = new Map<string, Place>();
  /** Places in line (Waiting, Offered) by ticket. */
  private readonly held = new Map<string, Place>();
  /** The same places in seq order. */
  private order: Place[] = [];
  private readonly offers = new Map<string, Place>();
  private seq = 0;
  /** Per visitor: claims not yet used (member id → first-use deadline). */
  private readonly unused = new Map<string, Map<string, number>>();
  private readonly unusedOwner = new Map<string, string>();
  private readonly heldBy = new Map<string, number>();
  private readonly offeredTo = new Map<string, number>();
  private readonly bucket: TokenBucket;

  constructor(
    readonly q: QueueConfig,
    now: number,
  ) {
    this.bucket = new TokenBucket(q.claimRate.perSecond, q.claimRate.burst, now);
  }

  /** Places in line. */
  get size(): number {
    return this.order.length;
  }

  /** Places in line in order (a copy: callers change the line while walking it). */
  places(): Place[] {
    return [...this.order];
  }

  /** Gives out a ticket (no place yet). `seq` keeps an earlier place's order. */
  issue(visitor: string | undefined, now: number, seq = this.seq++): Place {
    const p: Place = { ticket: lineToken(), state: PlaceState.Issued, visitor, seq, attachBy: now + this.q.attachMs };
    this.issued.set(p.ticket, p);
    if (this.issued.size > MAX_ISSUED) this.issued.delete(this.issued.keys().next().value!);
    return p;
  }

  /** An Issued ticket still good at `now`, or undefined. Lapsed tickets are dropped here, oldest first. */
  issuedTicket(ticket: string, now: number): Place | undefined {
    for (const [t, p] of this.issued) {
      if (p.attachBy > now) break;
      this.issued.delete(t);
    }
    return this.issued.get(ticket);
  }

  isHeld(ticket: string): boolean {
    return this.held.has(ticket);
  }

  /** A waiter holds an Issued place: it joins the line at its seq. */
  hold(p: Place, w: Waiter): void {
    this.issued.delete(p.ticket);
    p.state = PlaceState.Waiting;
    p.waiter = w;
    this.held.set(p.ticket, p);
    let i = this.order.length;
    while (i > 0 && this.order[i - 1]!.seq > p.seq) i--;
    this.order.splice(i, 0, p);
    if (p.visitor !== undefined) this.heldBy.set(p.visitor, (this.heldBy.get(p.visitor) ?? 0) + 1);
  }

  /** Removes a place from the line (left, collected, lapsed). */
  drop(p: Place): void {
    if (!this.held.delete(p.ticket)) return;
    this.order = this.order.filter((x) => x !== p);
    p.waiter?.detach();
    if (p.visitor !== undefined) dec(this.heldBy, p.visitor);
    if (p.state === PlaceState.Offered) {
      this.offers.delete(p.collect!);
      if (p.visitor !== undefined) dec(this.offeredTo, p.visitor);
    }
  }

  /** Reserves an instance for a waiting place; returns the collect token. */
  offer(p: Place, memberId: string, collectBy: number): string {
    p.state = PlaceState.Offered;
    p.memberId = memberId;
    p.collect = lineToken();
    p.collectBy = collectBy;
    this.offers.set(p.collect, p);
    if (p.visitor !== undefined) this.offeredTo.set(p.visitor, (this.offeredTo.get(p.visitor) ?? 0) + 1);
    return p.collect;
  }

  offerOf(token: string): Place | undefined {
    return this.offers.get(token);
  }

  /** Places in line held by this visitor's waiters. */
  placesOf(visitor: string | undefined): number {
    return visitor === undefined ? 0 : (this.heldBy.get(visitor) ?? 0);
  }

  /** A visitor's claim, not yet used, that returns to the pool at firstUseBy if it stays so. */
  claimed(memberId: string, visitor: string, firstUseBy: number): void {
    let m = this.unused.get(visitor);
    if (!m) this.unused.set(visitor, (m = new Map()));
    m.set(memberId, firstUseBy);
    this.unusedOwner.set(memberId, visitor);
  }

  /** The claim on this instance was used, returned or ended: it no longer counts as unused. */
  forget(memberId: string): void {
    const v = this.unusedOwner.get(memberId);
    if (v === undefined) return;
    this.unusedOwner.delete(memberId);
    const m = this.unused.get(v)!;
    m.delete(memberId);
    if (m.size === 0) this.unused.delete(v);
  }

  /** Claims not yet used plus offers not yet collected, of this visitor. */
  pendingOf(visitor: string | undefined): number {
    if (visitor === undefined) return 0;
    return (this.unused.get(visitor)?.size ?? 0) + (this.offeredTo.get(visitor) ?? 0);
  }

  /** This visitor may not be given another instance until one of its pending claims is used or returned. */
  blocked(visitor: string | undefined): boolean {
    return visitor !== undefined && this.pendingOf(visitor) >= this.q.unusedClaimsPerAddress;
  }

  /** When the earliest of this visitor's pending claims and offers is returned if nobody uses it. */
  freesAt(visitor: string): number | undefined {
    let at = Infinity;
    for (const d of this.unused.get(visitor)?.values() ?? []) at = Math.min(at, d);
    if ((this.offeredTo.get(visitor) ?? 0) > 0) for (const p of this.offers.values()) if (p.visitor === visitor) at = Math.min(at, p.collectBy!);
    return at === Infinity ? undefined : at;
  }

  takeToken(now: number): boolean {
    return this.bucket.take(now);
  }
  nextTokenAt(now: number): number {
    return this.bucket.nextAt(now);
  }

  /** Every waiter, told the place is gone (the pool stops). */
  clear(why: 'stopped'): void {
    for (const p of this.places()) {
      const w = p.waiter;
      this.drop(p);
      if (p.state === PlaceState.Waiting) w?.resolve({ kind: 'gone', why });
    }
    this.issued.clear();
  }
}

function dec(m: Map<string, number>, k: string): void {
  const n = (m.get(k) ?? 1) - 1;
  if (n > 0) m.set(k, n);
  else m.delete(k);
}
