// The engine events stream a runtime's watch() keeps open (pool/runtimes/event-stream.ts), against a
// scripted engine and the ManualClock: reconnects with backoff, announces each (re)connection, resets
// its backoff after a healthy stretch, and stops for good. The real engine: docker-engine-restart.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, settle } from '../core/clock.js';
import { EVENTS_BACKOFF, followEvents } from '../pool/runtimes/event-stream.js';
import type { Engine, EngineEvent } from '../pool/runtimes/engine.js';

/** An engine whose events() calls the test answers: open (a stream it can end or break) or refuse. */
class ScriptedEngine {
  readonly calls: { since?: number; signal?: AbortSignal }[] = [];
  refuse = false;
  private streams: { end: () => void; fail: (e: Error) => void; emit: (ev: EngineEvent) => void }[] = [];
  async events(q: { since?: number; signal?: AbortSignal }, onEvent: (ev: EngineEvent) => void): Promise<{ done: Promise<void> }> {
    this.calls.push({ since: q.since, signal: q.signal });
    if (this.refuse) throw new Error('connect ENOENT /var/run/docker.sock');
    let end!: () => void;
    let fail!: (e: Error) => void;
    const done = new Promise<void>((res, rej) => {
      end = res;
      fail = rej;
    });
    this.streams.push({ end, fail, emit: onEvent });
    return { done };
  }
  get current() {
    return this.streams[this.streams.length - 1]!;
  }
}

function follow(engine: ScriptedEngine, clock: ManualClock) {
  const connected: boolean[] = [];
  const events: string[] = [];
  const warnings: string[] = [];
  let closed = false;
  const stop = followEvents({
    engine: engine as unknown as Engine,
    clock,
    query: (reconnect) => ({ filters: { type: ['container'] }, since: reconnect ? 42 : undefined }),
    onEvent: (ev) => events.push(String(ev.Action)),
    onConnected: (reconnect) => connected.push(reconnect),
    warn: (m) => warnings.push(m),
    connectError: (e) => new Error(`ENGINE_UNREACHABLE: ${(e as Error).message}`),
    closed: () => closed,
  });
  return { connected, events, warnings, stop, close: () => (closed = true) };
}

test('a broken stream is opened again after the backoff, asking to replay from where it was; each connection is announced', async () => {
  const clock = new ManualClock();
  const engine = new ScriptedEngine();
  const f = follow(engine, clock);
  await settle();
  assert.deepEqual(f.connected, [false], 'the first connection');
  assert.equal(engine.calls[0]!.since, undefined);
  engine.current.emit({ Action: 'die' } as EngineEvent);
  assert.deepEqual(f.events, ['die']);

  engine.current.fail(new Error('socket hang up'));
  await settle();
  assert.match(f.warnings.at(-1)!, /docker events stream failed: socket hang up; reconnecting in 250 ms/);
  await clock.advance(249);
  assert.equal(engine.calls.length, 1, 'not before the backoff');
  await clock.advance(1);
  assert.equal(engine.calls.length, 2);
  assert.equal(engine.calls[1]!.since, 42, 'a reconnect replays');
  assert.deepEqual(f.connected, [false, true], 'announced as a reconnect');
  f.stop();
  assert.equal(engine.calls[1]!.signal!.aborted, true, 'stop aborts the open stream');
});

test('an engine that does not answer: tries again 250 ms, 500 ms, 1 s … apart up to 10 s; a stream healthy for 10 s starts the count again', async () => {
  const clock = new ManualClock();
  const engine = new ScriptedEngine();
  engine.refuse = true;
  const f = follow(engine, clock);
  await settle();
  assert.match(f.warnings[0]!, /failed: ENGINE_UNREACHABLE: connect ENOENT .*; reconnecting in 250 ms/);
  const gaps: number[] = [];
  let last = clock.now();
  for (let i = 0; i < 7; i++) {
    const before = engine.calls.length;
    while (engine.calls.length === before) await clock.advance(50);
    gaps.push(clock.now() - last);
    last = clock.now();
  }
  assert.deepEqual(gaps, [250, 500, 1000, 2000, 4000, 8000, 10_000]);
  assert.deepEqual(f.connected, [], 'never connected');

  engine.refuse = false;
  await clock.advance(10_000);
  assert.deepEqual(f.connected, [true], 'the engine is back: announced as a reconnect');
  await clock.advance(EVENTS_BACKOFF.healthyMs);
  engine.current.end();
  await settle();
  assert.match(f.warnings.at(-1)!, /stream ended; reconnecting in 250 ms/, 'healthy for 10 s: the backoff starts again');
  f.stop();
});

test('stopped (or the runtime closed) while waiting to reconnect: no further connection', async () => {
  const clock = new ManualClock();
  const engine = new ScriptedEngine();
  const f = follow(engine, clock);
  await settle();
  engine.current.fail(new Error('EOF'));
  await settle();
  f.stop();
  await clock.advance(60_000);
  assert.equal(engine.calls.length, 1);

  const g = follow(engine, clock);
  await settle();
  g.close();
  engine.current.end();
  await clock.advance(60_000);
  assert.equal(engine.calls.length, 2, 'a closed runtime does not reconnect');
  g.stop();
});
