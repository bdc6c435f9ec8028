// core/coalesce.ts on a ManualClock: the first change after a quiet gap runs at once, a flurry runs
// once more at the gap's end with the state as it is then, and stop() drops a pending run.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../core/clock.js';
import { Coalesced } from '../core/coalesce.js';

function watched(gapMs: number) {
  const clock = new ManualClock(0);
  let state = 0;
  const seen: { at: number; state: number }[] = [];
  const c = new Coalesced(clock, gapMs, () => seen.push({ at: clock.now(), state }));
  const change = (to: number) => {
    state = to;
    c.changed();
  };
  return { clock, c, seen, change };
}

test('Coalesced: a change after a quiet gap runs at once', async () => {
  const w = watched(100);
  w.change(1);
  assert.deepEqual(w.seen, [{ at: 0, state: 1 }], 'the first change is not delayed');
  await w.clock.advance(250);
  w.change(2);
  assert.deepEqual(w.seen.at(-1), { at: 250, state: 2 }, 'a change a whole gap later runs at once too');
  assert.equal(w.clock.timers, 0, 'nothing pending');
});

test('Coalesced: a flurry within the gap runs once at its end, with the last state', async () => {
  const w = watched(100);
  w.change(1);
  for (let i = 2; i <= 60; i++) {
    await w.clock.advance(1);
    w.change(i);
  }
  assert.equal(w.seen.length, 1, 'the 59 changes inside the gap wait');
  await w.clock.advance(100);
  assert.deepEqual(w.seen, [
    { at: 0, state: 1 },
    { at: 100, state: 60 },
  ]);
  await w.clock.advance(1000);
  assert.equal(w.seen.length, 2, 'no run without a change');
});

test('Coalesced: a steady stream of changes runs once per gap and ends on the last state', async () => {
  const w = watched(100);
  for (let t = 0; t < 1000; t += 10) {
    w.change(t);
    await w.clock.advance(10);
  }
  await w.clock.advance(100);
  assert.deepEqual(
    w.seen.map((s) => s.at),
    [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000],
  );
  assert.equal(w.seen.at(-1)?.state, 990, 'the last change is shown');
});

test('Coalesced: stop() drops the pending run', async () => {
  const w = watched(100);
  w.change(1);
  w.change(2);
  w.c.stop();
  await w.clock.advance(500);
  assert.deepEqual(w.seen, [{ at: 0, state: 1 }]);
  assert.equal(w.clock.timers, 0);
});

test('Coalesced: what fn throws goes to onError, never out of the timer, and later changes still run', async () => {
  const clock = new ManualClock(0);
  const errors: string[] = [];
  let runs = 0;
  let fail = true;
  const c = new Coalesced(
    clock,
    100,
    () => {
      runs++;
      if (fail) throw new Error(`run ${runs} failed`);
    },
    (e) => errors.push((e as Error).message),
  );
  c.changed(); // at once, inside changed(): must not throw to the caller either
  c.changed();
  await clock.advance(100); // the trailing run, on the timer
  assert.deepEqual(errors, ['run 1 failed', 'run 2 failed']);
  fail = false;
  await clock.advance(100);
  c.changed();
  assert.equal(runs, 3, 'the next change runs again');
  const quiet = new Coalesced(clock, 100, () => {
    throw new Error('no reporter');
  });
  assert.doesNotThrow(() => quiet.changed(), 'without onError the error is dropped');
});
