// The pool side of the admin surface, against FakeRuntime and a ManualClock: resize, drain and
// resume, refresh (only unclaimed instances replaced), the live sessions view with its deadlines,
// health (an unreachable engine, a failing pool), and the monitor's counts. No sleeps.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, settle } from '../core/clock.js';
import { parseConfig } from '../core/config.js';
import { WarmpoolError, isWarmpoolError } from '../core/errors.js';
import { Fleet } from '../pool/fleet.js';
import type { InstanceRecord } from '../pool/runtime.js';
import { MemoryTrafficLog } from '../pool/traffic-log.js';
import { FleetMonitor, teeLog } from '../admin/monitor.js';
import { ActivityHistory } from '../admin/history.js';
import { FakeRuntime, fakePortCheck } from './helpers/fake-runtime.js';

/** A runtime whose engine can be made unreachable: list() fails. */
class FlakyRuntime extends FakeRuntime {
  unreachable = false;
  override async list(): Promise<InstanceRecord[]> {
    if (this.unreachable) throw new WarmpoolError('ENGINE_UNREACHABLE', 'no answer from the engine socket');
    return super.list();
  }
}

function setup(pool: string) {
  const config = parseConfig(`
deployment: t
apps:
  - name: demo
    command: [fake]
    readiness: { log: "^READY$", timeout: 30s }
    pool: ${pool}
    idleTimeout: 20m
    maxLifetime: 90m
    grace: 5m
`);
  const clock = new ManualClock();
  const rt = new FlakyRuntime();
  rt.autoReady = true;
  const log = new MemoryTrafficLog();
  const monitor = new FleetMonitor(clock);
  const fleet = new Fleet({
    config,
    runtimes: { process: rt },
    clock,
    portCheck: fakePortCheck,
    trafficLog: teeLog(log, monitor),
    backoffMs: { first: 1000, max: 8000 },
  });
  monitor.watch(fleet);
  return { config, clock, rt, fleet, log, monitor };
}

const view = (f: Fleet) => f.poolsView()[0]!;
const counts = (f: Fleet) => {
  const s = view(f);
  return { ready: s.ready, starting: s.starting, claimed: s.claimed };
};
async function session(f: Fleet) {
  const r = await f.claim('demo');
  assert.equal(r.kind, 'session');
  return r.kind === 'session' ? r.target : undefined!;
}

test('resize: up creates at once, down removes surplus ready instances, claimed ones are never touched', async () => {
  const { rt, fleet } = setup('{ warm: 2, max: 4, parallel: 4 }');
  await fleet.start();
  await settle();
  const t = await session(fleet);
  await settle();
  assert.deepEqual(counts(fleet), { ready: 2, starting: 0, claimed: 1 });

  assert.deepEqual(fleet.resize('demo', { warm: 5, max: 8 }), { warm: 5, max: 8 });
  await settle();
  assert.deepEqual(counts(fleet), { ready: 5, starting: 0, claimed: 1 });
  assert.equal(view(fleet).warm, 5);

  fleet.resize('demo', { warm: 1, max: 1 });
  await settle();
  assert.deepEqual(counts(fleet), { ready: 0, starting: 0, claimed: 1 }, 'max 1 with one claimed: no ready instance left, the claimed one stays');
  assert.ok(!rt.removed.includes(t.instanceId));
  assert.equal(fleet.find(t.session, t.instanceId).kind, 'live');

  await fleet.end(t.session, 'admin');
  await settle();
  assert.deepEqual(counts(fleet), { ready: 1, starting: 0, claimed: 0 }, 'refilled to the new target once the session ended');
  await fleet.stop();
});

test('resize refuses what is not allowed, naming the field, the value and the range', async () => {
  const { fleet } = setup('{ warm: 2, max: 4 }');
  await fleet.start();
  const refused = (to: Record<string, unknown>, re: RegExp) =>
    assert.throws(
      () => fleet.resize('demo', to as { warm?: number; max?: number }),
      (e: unknown) => isWarmpoolError(e, 'BAD_REQUEST') && re.test((e as Error).message),
    );
  refused({ warm: -1 }, /warm is -1; expected an integer from 0 to 1000/);
  refused({ max: 0 }, /max is 0; expected an integer from 1 to 10000/);
  refused({ warm: 1.5 }, /warm is 1.5/);
  refused({ warm: '3' }, /warm is "3"/);
  refused({ max: 1 }, /warm 2 is above max 1/);
  assert.throws(
    () => fleet.resize('nope', { warm: 1 }),
    (e: unknown) => isWarmpoolError(e, 'APP_UNKNOWN'),
  );
  assert.deepEqual([view(fleet).warm, view(fleet).max], [2, 4], 'unchanged');
  await fleet.stop();
});

test('drain: no new claims, ready instances removed, sessions go on; resume warms back up', async () => {
  const { rt, fleet } = setup('{ warm: 2, max: 4 }');
  await fleet.start();
  await settle();
  const t = await session(fleet);
  await settle();
  fleet.drain('demo', true);
  await settle();
  assert.deepEqual(counts(fleet), { ready: 0, starting: 0, claimed: 1 });
  assert.equal(view(fleet).draining, true);
  assert.equal(view(fleet).warm, 2, 'the target to restore is still shown');
  await assert.rejects(fleet.claim('demo'), (e: unknown) => isWarmpoolError(e, 'POOL_STOPPED') && /draining/.test((e as Error).message));
  assert.equal(fleet.find(t.session, t.instanceId).kind, 'live', 'the session goes on');
  assert.ok(!rt.removed.includes(t.instanceId));

  fleet.resize('demo', { warm: 3 });
  await settle();
  assert.deepEqual(counts(fleet), { ready: 0, starting: 0, claimed: 1 }, 'a resize while draining sets the target for resume');
  fleet.drain('demo', false);
  await settle();
  assert.deepEqual(counts(fleet), { ready: 3, starting: 0, claimed: 1 });
  assert.equal((await fleet.claim('demo')).kind, 'session');
  await fleet.stop();
});

test('refresh replaces ready and starting instances, never a claimed one', async () => {
  const { rt, fleet } = setup('{ warm: 3, max: 6, parallel: 6 }');
  await fleet.start();
  await settle();
  const a = await session(fleet);
  const b = await session(fleet);
  await settle();
  rt.autoReady = false;
  // One more instance still starting: (3 ready + 2 claimed) then a claim makes a sixth start.
  const c = await session(fleet);
  await settle();
  const before = counts(fleet);
  assert.deepEqual(before, { ready: 2, starting: 1, claimed: 3 });
  const unclaimed = [...rt.live].filter((id) => ![a, b, c].some((t) => t.instanceId === id));
  assert.equal(unclaimed.length, 3);

  rt.autoReady = true;
  const replaced = fleet.refresh('demo');
  assert.deepEqual(new Set(replaced), new Set(unclaimed));
  await settle();
  for (const id of unclaimed) assert.ok(rt.removed.includes(id), `old instance ${id} removed`);
  for (const t of [a, b, c]) {
    assert.ok(!rt.removed.includes(t.instanceId), 'claimed instance untouched');
    assert.equal(fleet.find(t.session, t.instanceId).kind, 'live');
  }
  assert.deepEqual(counts(fleet), { ready: 3, starting: 0, claimed: 3 }, 'refilled with new instances');
  const fresh = (await session(fleet)).instanceId;
  assert.ok(!unclaimed.includes(fresh), 'the next visitor gets a new instance');
  await fleet.stop();
});

test('sessionsView: traffic, last activity and the deadline that ends each session', async () => {
  const { clock, fleet } = setup('{ warm: 1, max: 2 }');
  await fleet.start();
  await settle();
  const t = await session(fleet);
  const t0 = clock.now();
  let v = fleet.sessionsView()[0]!;
  assert.equal(v.id, t.session);
  assert.equal(v.endsBy, 'grace', 'no connection yet: the grace period ends it first');
  assert.equal(v.endsAt, t0 + 5 * 60_000);
  fleet.connectionOpened(t.session);
  t.traffic.bytesIn = 300;
  t.traffic.bytesOut = 7000;
  t.traffic.messagesIn = { update_notebook: 2, ping: 5 };
  t.traffic.requests = { 'GET 2xx': 3 };
  await clock.advance(60_000);
  t.traffic.lastActive = clock.now(); // the proxy's exact stamp, before the coalesced report
  v = fleet.sessionsView()[0]!;
  assert.deepEqual(
    [v.lastActive, v.idleDeadline, v.endsBy, v.endsAt, v.graceDeadline, v.openConnections, v.bytesIn, v.bytesOut, v.messagesIn, v.requests],
    [t0 + 60_000, t0 + 21 * 60_000, 'idle', t0 + 21 * 60_000, undefined, 1, 300, 7000, 7, 3],
  );
  assert.deepEqual(v.messagesInByType, { update_notebook: 2, ping: 5 });
  assert.equal(fleet.isLive(t.session), true);
  await fleet.stop();
});

test('health: an unreachable engine and a failing pool are not ok; a full pool is', async () => {
  const { clock, rt, fleet } = setup('{ warm: 1, max: 1 }');
  await fleet.start();
  await settle();
  let h = await fleet.health();
  assert.equal(h.ok, true);
  assert.deepEqual(
    h.engines.map((e) => [e.runtime, e.reachable]),
    [['process', true]],
  );
  assert.deepEqual(
    h.pools.map((p) => [p.app, p.state, p.canServe]),
    [['demo', 'ok', true]],
  );

  await session(fleet);
  await settle();
  h = await fleet.health();
  assert.deepEqual(
    h.pools.map((p) => [p.state, p.canServe]),
    [['full', false]],
  );
  assert.equal(h.ok, true, 'a class at capacity is not an outage');

  rt.unreachable = true;
  h = await fleet.health();
  assert.equal(h.engines[0]!.reachable, true, 'checked at most every 5 s');
  await clock.advance(5000);
  h = await fleet.health();
  assert.equal(h.ok, false);
  assert.equal(h.engines[0]!.reachable, false);
  assert.match(h.engines[0]!.error!, /no answer/);
  rt.unreachable = false;
  await clock.advance(5000);
  assert.equal((await fleet.health()).ok, true);
  await fleet.stop();
});

test('health: a pool with nothing ready whose creates fail is failing', async () => {
  const { rt, fleet } = setup('{ warm: 1, max: 2 }');
  rt.failWith = new Error('image broken');
  await fleet.start();
  await settle();
  const h = await fleet.health();
  assert.equal(h.ok, false);
  assert.deepEqual(
    h.pools.map((p) => [p.state, p.canServe]),
    [['failing', false]],
  );
  assert.match(h.pools[0]!.lastError!, /image broken/);
  await fleet.stop();
});

test('the monitor counts claims, ends by reason, create failures and ended traffic from the log and the fleet', async () => {
  const { clock, rt, fleet, monitor } = setup('{ warm: 1, max: 3 }');
  await fleet.start();
  await settle();
  const t = await session(fleet);
  t.traffic.bytesIn = 10;
  t.traffic.bytesOut = 20;
  t.traffic.messagesIn = { update_notebook: 1 };
  t.traffic.messagesOut = 4;
  await fleet.end(t.session, 'admin');
  await settle();
  assert.equal(monitor.claims.get('demo\0false'), 1);
  assert.equal(monitor.ends.get('demo\0admin'), 1);
  assert.deepEqual(monitor.endedTraffic.get('demo'), { bytesIn: 10, bytesOut: 20, messagesIn: { update_notebook: 1 }, messagesOut: 4, requests: 0 });
  const r = monitor.recent();
  assert.deepEqual(
    r.ends.map((e) => [e.session, e.reason, e.bytesOut]),
    [[t.session, 'admin', 20]],
  );

  rt.failWith = new Error('disk full');
  fleet.refresh('demo');
  await settle();
  await clock.advance(1000);
  assert.equal(monitor.createFailures.get('demo'), 2, 'each failed create counted once');
  assert.deepEqual(
    monitor.recent().failures.map((f) => f.error),
    ['disk full', 'disk full'],
  );
  assert.equal(monitor.history.series('demo').claims.at(-1), 1);
  await fleet.stop();
});

test("the monitor's live sessions per minute follow claims and ends, from the fleet's counts (no walk over sessions)", async () => {
  const { clock, fleet, monitor } = setup('{ warm: 3, max: 3 }');
  await fleet.start();
  await settle();
  const live = () => ({ count: fleet.liveCount('demo'), sessions: fleet.liveSessions().length, peak: monitor.history.series('demo').active.at(-1) });
  const a = await session(fleet);
  const b = await session(fleet);
  assert.deepEqual(live(), { count: 2, sessions: 2, peak: 2 });
  await fleet.end(a.session, 'admin');
  await fleet.end(a.session, 'admin'); // ended twice: counted once
  await settle();
  assert.deepEqual(live(), { count: 1, sessions: 1, peak: 2 }, "the minute's peak stays");
  await clock.advance(60_000);
  await settle();
  await session(fleet);
  assert.deepEqual(live(), { count: 2, sessions: 2, peak: 2 });
  await fleet.end(b.session, 'admin');
  await clock.advance(60_000);
  await settle();
  assert.equal(fleet.liveCount('demo'), 1);
  assert.equal(fleet.liveCount('nobody'), 0);
  await fleet.stop();
});

test('history: claims and the most live sessions per minute over the last hour, carried across quiet minutes', async () => {
  const clock = new ManualClock(Date.UTC(2025, 0, 6, 9, 0, 0));
  const h = new ActivityHistory(clock, 5);
  h.claim('a');
  h.active('a', 1);
  h.claim('a');
  h.active('a', 2);
  await clock.advance(60_000);
  h.active('a', 1); // one ended: the minute's peak is still the 2 it began with
  await clock.advance(120_000);
  const s = h.series('a');
  assert.equal(s.start, Date.UTC(2025, 0, 6, 8, 59, 0));
  assert.deepEqual(s.claims, [0, 2, 0, 0, 0]);
  assert.deepEqual(s.active, [0, 2, 2, 1, 1]);
  assert.deepEqual(h.series('nobody').claims, [0, 0, 0, 0, 0]);
});
