// Members keeps counts and the free set as states change; the oracle here walks every member the way
// the pool did before (count by state, filter ready and unreserved), over random sequences of changes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Members, type Member, type MemberState } from '../pool/members.js';

const STATES: MemberState[] = ['starting', 'ready', 'claimed', 'removing'];

type Op =
  | { kind: 'add'; id: number; state: MemberState }
  | { kind: 'set'; id: number; state: MemberState }
  | { kind: 'reserve'; id: number; ticket: string | undefined }
  | { kind: 'remove'; id: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('add' as const), id: fc.nat(7), state: fc.constantFrom(...STATES) }),
  fc.record({ kind: fc.constant('set' as const), id: fc.nat(7), state: fc.constantFrom(...STATES) }),
  fc.record({ kind: fc.constant('reserve' as const), id: fc.nat(7), ticket: fc.option(fc.constantFrom('t1', 't2'), { nil: undefined }) }),
  fc.record({ kind: fc.constant('remove' as const), id: fc.nat(7) }),
);

function member(id: string, state: MemberState): Member {
  return { id, state, createdAt: 0, abort: new AbortController() };
}

test('counts, the free set and its order match a walk over all members after any sequence of changes', () => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const ms = new Members();
      // The oracle's own record of when each member last became free (ready and unreserved).
      const freeSince = new Map<string, number>();
      let tick = 0;
      const wasFree = (m: Member | undefined) => m !== undefined && m.state === 'ready' && m.reservedFor === undefined;
      for (const o of ops) {
        const id = `m${o.id}`;
        const before = ms.get(id);
        const free0 = wasFree(before);
        if (o.kind === 'add') ms.add(member(id, o.state));
        else if (o.kind === 'remove') ms.remove(id);
        else if (before && o.kind === 'set') ms.set(before, o.state);
        else if (before && o.kind === 'reserve' && before.state === 'ready') ms.reserve(before, o.ticket);
        const after = ms.get(id);
        if (after !== before || !free0) freeSince.delete(id);
        if (wasFree(after) && !freeSince.has(id)) freeSince.set(id, tick++);
        if (!wasFree(after)) freeSince.delete(id);

        const all = [...ms.values()];
        for (const s of STATES) assert.equal(ms.count(s), all.filter((m) => m.state === s).length, `count of ${s}`);
        const live = (s: MemberState) => all.filter((m) => m.state === s).length;
        assert.deepEqual(ms.counts(), { ready: live('ready'), starting: live('starting'), claimed: live('claimed') });
        const free = all.filter(wasFree);
        assert.equal(ms.freeCount, free.length);
        const expected = free.sort((a, b) => freeSince.get(a.id)! - freeSince.get(b.id)!).map((m) => m.id);
        assert.deepEqual(
          ms.freeList().map((m) => m.id),
          expected,
          'free members, the longest free first',
        );
        assert.equal(ms.firstFree()?.id, expected[0]);
      }
    }),
    { numRuns: 300 },
  );
});

test('leaving ready ends an offer; a member set after its removal changes no count', () => {
  const ms = new Members();
  const a = member('a', 'ready');
  ms.add(a);
  ms.reserve(a, 'ticket-1');
  assert.equal(ms.freeCount, 0);
  ms.set(a, 'claimed');
  assert.equal(a.reservedFor, undefined, 'a claimed instance is offered to nobody');
  ms.set(a, 'ready');
  assert.equal(ms.firstFree(), a);
  ms.remove('a');
  ms.set(a, 'ready');
  assert.equal(a.state, 'ready');
  assert.deepEqual([ms.count('ready'), ms.freeCount], [0, 0]);
});
