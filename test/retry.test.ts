// core/retry.ts on a ManualClock: each attempt at its exact instant, the cap, jitter, attempt
// limits, retryIf, and an AbortSignal that ends the waits (or asks for one last try).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, settle } from '../core/clock.js';
import { Backoff, backoffDelay, retry, type RetryFailure } from '../core/retry.js';

test('backoffDelay: firstMs, doubled after each failure, capped at maxMs', () => {
  const p = { firstMs: 250, maxMs: 10_000 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(p, n)),
    [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000],
  );
  assert.deepEqual(
    [1, 2, 3].map((n) => backoffDelay({ firstMs: 100, maxMs: 1e6, factor: 3 }, n)),
    [100, 300, 900],
  );
  assert.equal(backoffDelay(p, 0), 250, 'no failure yet counts as the first');
  assert.equal(backoffDelay({ firstMs: 1000, maxMs: 60_000 }, 200), 60_000, 'a long run of failures stays at the cap');
});

test('backoffDelay: jitter draws from [wait × (1 − jitter), wait]', () => {
  const p = (r: number) => ({ firstMs: 1000, maxMs: 8000, jitter: 0.5, random: () => r });
  assert.equal(backoffDelay(p(0), 2), 2000, 'random 0: the full wait');
  assert.equal(backoffDelay(p(0.999999), 2), 1000, 'random near 1: half of it');
  assert.equal(backoffDelay(p(0.5), 10), 6000, 'jitter applies to the capped wait');
  for (let i = 0; i < 100; i++) {
    const d = backoffDelay({ firstMs: 1000, maxMs: 8000, jitter: 0.25 }, 3);
    assert.ok(d >= 3000 && d <= 4000, String(d));
  }
});

test('Backoff: next() counts a failure and gives its wait; reset() starts over', () => {
  const b = new Backoff({ firstMs: 250, maxMs: 1000 });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next()], [250, 500, 1000, 1000]);
  assert.equal(b.failures, 4);
  b.reset();
  assert.equal(b.failures, 0);
  assert.equal(b.next(), 250);
});

/** fn failing the first `fails` times, recording the clock time of each attempt. */
function flaky(clock: ManualClock, fails: number, what = 'down') {
  const at: number[] = [];
  const fn = async (attempt: number) => {
    at.push(clock.now() - start);
    if (at.length <= fails) throw new Error(`${what} ${attempt}`);
    return `ok after ${attempt}`;
  };
  const start = clock.now();
  return { at, fn };
}

test('retry: attempts at 0, firstMs, then doubling waits, and resolves with the value', async () => {
  const clock = new ManualClock();
  const { at, fn } = flaky(clock, 3);
  const seen: RetryFailure[] = [];
  const p = retry(fn, { clock, firstMs: 1000, maxMs: 30_000, onFailure: (f) => seen.push(f) });
  await clock.advance(999);
  assert.deepEqual(at, [0], 'no second attempt before firstMs');
  await clock.advance(1);
  assert.deepEqual(at, [0, 1000]);
  await clock.advance(10_000);
  assert.equal(await p, 'ok after 4');
  assert.deepEqual(at, [0, 1000, 3000, 7000]);
  assert.deepEqual(
    seen.map((f) => [f.attempt, f.retryInMs, (f.error as Error).message]),
    [
      [1, 1000, 'down 1'],
      [2, 2000, 'down 2'],
      [3, 4000, 'down 3'],
    ],
  );
  assert.equal(clock.timers, 0, 'no timer left behind');
});

test('retry: the waits stop growing at maxMs', async () => {
  const clock = new ManualClock();
  const { at, fn } = flaky(clock, 5);
  const p = retry(fn, { clock, firstMs: 500, maxMs: 1500 });
  await clock.advance(20_000);
  await p;
  assert.deepEqual(at, [0, 500, 1500, 3000, 4500, 6000]);
});

test('retry: attempts limits the tries; the last failure is thrown and reported with no wait', async () => {
  const clock = new ManualClock();
  const { at, fn } = flaky(clock, 99);
  const seen: (number | undefined)[] = [];
  const p = retry(fn, { clock, attempts: 5, firstMs: 2000, maxMs: 16_000, onFailure: (f) => seen.push(f.retryInMs) });
  const r = assert.rejects(p, /down 5/);
  await clock.advance(60_000);
  await r;
  assert.deepEqual(at, [0, 2000, 6000, 14_000, 30_000]);
  assert.deepEqual(seen, [2000, 4000, 8000, 16_000, undefined]);
});

test('retry: a failure retryIf refuses is thrown at once, without onFailure', async () => {
  const clock = new ManualClock();
  let calls = 0;
  const seen: unknown[] = [];
  const p = retry(
    async () => {
      calls++;
      throw new Error(calls === 1 ? 'transient' : 'fatal');
    },
    {
      clock,
      firstMs: 100,
      maxMs: 100,
      retryIf: (e) => (e as Error).message === 'transient',
      onFailure: (f) => seen.push(f.error),
    },
  );
  const r = assert.rejects(p, /fatal/);
  await clock.advance(1000);
  await r;
  assert.equal(calls, 2);
  assert.equal(seen.length, 1);
});

test('retry: the signal ends a wait under way; no attempt follows; rejects with its reason', async () => {
  const clock = new ManualClock();
  const { at, fn } = flaky(clock, 99);
  const ac = new AbortController();
  const p = retry(fn, { clock, firstMs: 1000, maxMs: 1000, signal: ac.signal });
  const r = assert.rejects(p, (e: Error) => e.name === 'AbortError');
  await clock.advance(1500);
  ac.abort();
  await r;
  await clock.advance(10_000);
  assert.deepEqual(at, [0, 1000]);
  assert.equal(clock.timers, 0, "the wait's timer is cancelled");
});

test('retry: an aborted signal before the start: no attempt at all; with lastTryOnAbort, exactly one', async () => {
  const clock = new ManualClock();
  const ac = new AbortController();
  ac.abort(new Error('stopping'));
  let calls = 0;
  await assert.rejects(
    retry(
      async () => {
        calls++;
        throw new Error('down');
      },
      { clock, firstMs: 1, maxMs: 1, signal: ac.signal },
    ),
    /stopping/,
  );
  assert.equal(calls, 0);
  const seen: (number | undefined)[] = [];
  await assert.rejects(
    retry(
      async () => {
        calls++;
        throw new Error('down');
      },
      { clock, firstMs: 1, maxMs: 1, signal: ac.signal, lastTryOnAbort: true, onFailure: (f) => seen.push(f.retryInMs) },
    ),
    /down/,
  );
  assert.equal(calls, 1);
  assert.deepEqual(seen, [undefined], 'the one attempt is the last');
});

test('retry: lastTryOnAbort cuts the wait short for one last attempt, at once', async () => {
  const clock = new ManualClock();
  const { at, fn } = flaky(clock, 99);
  const ac = new AbortController();
  const seen: (number | undefined)[] = [];
  const p = retry(fn, { clock, firstMs: 30_000, maxMs: 30_000, signal: ac.signal, lastTryOnAbort: true, onFailure: (f) => seen.push(f.retryInMs) });
  const r = assert.rejects(p, /down 2/);
  await clock.advance(5000);
  ac.abort();
  await settle();
  await r;
  assert.deepEqual(at, [0, 5000], 'the last try when the signal aborted, not at 30 s');
  assert.deepEqual(seen, [30_000, undefined]);
  assert.equal(clock.timers, 0);
});

test('retry: lastTryOnAbort, signal aborted while an attempt was in flight: the next one is at once and the last', async () => {
  const clock = new ManualClock();
  const ac = new AbortController();
  const at: number[] = [];
  const start = clock.now();
  const seen: (number | undefined)[] = [];
  const p = retry(
    async (attempt) => {
      at.push(clock.now() - start);
      if (attempt === 1) ac.abort();
      throw new Error(`down ${attempt}`);
    },
    { clock, firstMs: 1000, maxMs: 1000, signal: ac.signal, lastTryOnAbort: true, onFailure: (f) => seen.push(f.retryInMs) },
  );
  await assert.rejects(p, /down 2/);
  assert.deepEqual(at, [0, 0]);
  assert.deepEqual(seen, [0, undefined]);
});

test('retry: a success on the last try resolves', async () => {
  const clock = new ManualClock();
  const { fn } = flaky(clock, 2);
  const p = retry(fn, { clock, attempts: 3, firstMs: 10, maxMs: 10 });
  await clock.advance(100);
  assert.equal(await p, 'ok after 3');
});
