// One pool's instances by state, kept as the states change: counts and the ready instances nobody
// holds are read in O(1) on every claim (a pool of a thousand was walked whole several times per
// claim: ~13 % of a claim's proxy CPU in bench/claims.ts). A member's state and reservation change
// here only, so the counts cannot drift from the members.

import type { ClaimMark, InstanceRecord } from './runtime.js';

export type MemberState = 'starting' | 'ready' | 'claimed' | 'removing';

export interface Member {
  readonly id: string;
  /** Changed through Members.set() only. */
  readonly state: MemberState;
  rec?: InstanceRecord;
  secret?: string;
  /** Where the deep link redirected when the instance became ready (app.resolveDeepLink), as the instance sent it. */
  deepLinkRedirect?: string;
  createdAt: number;
  readyAt?: number;
  claim?: ClaimMark;
  /** A ready instance offered to this place in line (its ticket), until collected or lapsed. Changed through Members.reserve() only. */
  readonly reservedFor?: string;
  /** Found running by adopt() (an earlier run created it), not created by this run. */
  adopted?: boolean;
  abort: AbortController;
}

type Mutable = { -readonly [K in keyof Member]: Member[K] };

export class Members {
  private readonly all = new Map<string, Member>();
  private readonly byState: Record<MemberState, Set<Member>> = {
    starting: new Set(),
    ready: new Set(),
    claimed: new Set(),
    removing: new Set(),
  };
  /** Ready and not offered to anyone, in the order they became so (the longest free first). */
  private readonly free = new Set<Member>();

  get(id: string): Member | undefined {
    return this.all.get(id);
  }

  values(): IterableIterator<Member> {
    return this.all.values();
  }

  /** Members in one state, in the order they entered it. */
  inState(s: MemberState): ReadonlySet<Member> {
    return this.byState[s];
  }

  count(s: MemberState): number {
    return this.byState[s].size;
  }

  /** How many are live in each state (those being removed left out): what status and reconcile read. */
  counts(): { ready: number; starting: number; claimed: number } {
    const b = this.byState;
    return { ready: b.ready.size, starting: b.starting.size, claimed: b.claimed.size };
  }

  /** Ready instances not offered to anyone. */
  get freeCount(): number {
    return this.free.size;
  }

  /** The ready instance that has been free longest, not offered to anyone. */
  firstFree(): Member | undefined {
    for (const m of this.free) return m;
    return undefined;
  }

  /** Ready instances not offered to anyone, longest free first (a copy: safe to change states while walking it). */
  freeList(): Member[] {
    return [...this.free];
  }

  add(m: Member): void {
    const had = this.all.get(m.id);
    if (had) this.remove(had.id);
    this.all.set(m.id, m);
    this.byState[m.state].add(m);
    this.index(m);
  }

  remove(id: string): void {
    const m = this.all.get(id);
    if (!m) return;
    this.all.delete(id);
    this.byState[m.state].delete(m);
    this.free.delete(m);
  }

  clear(): void {
    this.all.clear();
    for (const s of Object.values(this.byState)) s.clear();
    this.free.clear();
  }

  /** Moves a member to a state. Leaving `ready` also ends any offer of it. */
  set(m: Member, s: MemberState): void {
    if (this.all.get(m.id) !== m) {
      (m as Mutable).state = s;
      if (s !== 'ready') (m as Mutable).reservedFor = undefined;
      return;
    }
    if (m.state !== s) {
      this.byState[m.state].delete(m);
      (m as Mutable).state = s;
      this.byState[s].add(m);
    }
    if (s !== 'ready') (m as Mutable).reservedFor = undefined;
    this.index(m);
  }

  /** Offers a ready member to a place in line (its ticket), or takes the offer back (undefined). */
  reserve(m: Member, ticket: string | undefined): void {
    (m as Mutable).reservedFor = ticket;
    if (this.all.get(m.id) === m) this.index(m);
  }

  private index(m: Member): void {
    if (m.state === 'ready' && m.reservedFor === undefined) this.free.add(m);
    else this.free.delete(m);
  }
}
