// followOutput (pool/runtimes/follow-output.ts) against scripted log streams and a ManualClock: a
// stream the engine broke is opened again after a backoff and its replay delivers each line once;
// an engine that does not answer is retried, a gone instance or a refusal is final; stop ends it all.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, settle } from '../core/clock.js';
import { WarmpoolError } from '../core/errors.js';
import { followOutput } from '../pool/runtimes/follow-output.js';
import type { EngineStream } from '../pool/runtimes/engine.js';

/** One scripted answer to open(): what the engine sends, then how the stream settles. */
type Script = { fail: Error } | { send: Array<[1 | 2, string]>; ending: 'end' | 'break' | 'hang' };

function harness(scripts: Script[], locate: () => Promise<string | undefined> = async () => 'c1') {
  const clock = new ManualClock();
  const lines: string[] = [];
  const failures: Array<[string, boolean]> = [];
  const stoppers = new Set<() => void>();
  let opens = 0;
  const stop = followOutput({
    instanceId: 'i1',
    stoppers,
    kind: 'container',
    clock,
    locate,
    open: async (_id, signal, onData) => {
      const s = scripts[opens++];
      if (!s) throw new Error('opened more often than scripted');
      if ('fail' in s) throw s.fail;
      for (const [fd, text] of s.send) onData(fd, Buffer.from(text));
      const done: Promise<void> =
        s.ending === 'end'
          ? Promise.resolve()
          : s.ending === 'break'
            ? Promise.reject(new WarmpoolError('ENGINE_UNREACHABLE', 'connection reset'))
            : new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      done.catch(() => undefined);
      return { done } satisfies EngineStream;
    },
    onLine: (l) => lines.push(l),
    failed: (e, opening) => failures.push([(e as Error).message, opening]),
  });
  return { clock, lines, failures, stoppers, stop, opens: () => opens };
}

const unreachable = () => new WarmpoolError('ENGINE_UNREACHABLE', 'no socket there');

test('a stream the engine broke is opened again after 250 ms; the replay delivers each line once, the cut line whole', async () => {
  const h = harness([
    {
      send: [
        [1, 'executing\nce'],
        [2, 'warn 1\n'],
      ],
      ending: 'break',
    },
    {
      send: [
        [1, 'executing\ncells done\nREADY\n'],
        [2, 'warn 1\nwarn 2\n'],
      ],
      ending: 'hang',
    },
  ]);
  await settle();
  assert.deepEqual(h.lines, ['executing', 'warn 1']);
  assert.equal(h.failures.length, 1, 'the break is told once');
  assert.equal(h.failures[0]![1], false, 'while following, not opening');
  await h.clock.advance(249);
  assert.equal(h.opens(), 1, 'not before the backoff');
  await h.clock.advance(1);
  assert.equal(h.opens(), 2);
  assert.deepEqual(h.lines, ['executing', 'warn 1', 'cells done', 'READY', 'warn 2']);
  h.stop();
  assert.equal(h.stoppers.size, 0);
});

test('an engine that does not answer is retried with backoff and told once; then the stream is followed', async () => {
  const h = harness([{ fail: unreachable() }, { fail: unreachable() }, { send: [[1, 'READY\n']], ending: 'hang' }]);
  await settle();
  assert.equal(h.opens(), 1);
  await h.clock.advance(250);
  assert.equal(h.opens(), 2);
  await h.clock.advance(499);
  assert.equal(h.opens(), 2, 'the second wait is 500 ms');
  await h.clock.advance(1);
  assert.deepEqual(h.lines, ['READY']);
  assert.deepEqual(h.failures, [['no socket there', true]], 'one warning for the outage');
  h.stop();
});

test('an instance gone, or a refusal other than an unreachable engine, is final', async () => {
  const gone = harness([], async () => undefined);
  await settle();
  assert.match(gone.failures[0]![0], /no container for instance i1/);
  assert.equal(gone.stoppers.size, 0, 'stopped by itself');

  const refused = harness([{ fail: new WarmpoolError('ENGINE_ERROR', 'HTTP 500') }]);
  await settle();
  await refused.clock.advance(60_000);
  assert.equal(refused.opens(), 1, 'not retried');
  assert.deepEqual(refused.failures, [['HTTP 500', true]]);
});

test('a stream the engine ends (the container stopped) gives its last partial line, and is not opened again', async () => {
  const h = harness([{ send: [[1, 'a\nlast words']], ending: 'end' }]);
  await settle();
  await h.clock.advance(60_000);
  assert.deepEqual(h.lines, ['a', 'last words']);
  assert.equal(h.opens(), 1);
  assert.equal(h.stoppers.size, 0);
});

test('stop during a backoff: no further attempt, no line', async () => {
  const h = harness([{ fail: unreachable() }, { send: [[1, 'READY\n']], ending: 'hang' }]);
  await settle();
  h.stop();
  await h.clock.advance(60_000);
  assert.equal(h.opens(), 1);
  assert.deepEqual(h.lines, []);
});
