// The warm pool's state machine and the fleet's sessions, against FakeRuntime and a ManualClock:
// warm-up, atomic claims, refill, crash replacement, backoff, queueing, adoption. No sleeps.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, settle } from '../core/clock.js';
import { parseConfig } from '../core/config.js';
import { WarmpoolError } from '../core/errors.js';
import { RECORD_MAX_DELAY_MS, RECORD_QUIET_MS } from '../pool/claim-recording.js';
import { Fleet } from '../pool/fleet.js';
import { MemoryTrafficLog } from '../pool/traffic-log.js';
import { FakeRuntime, fakePortCheck } from './helpers/fake-runtime.js';
import { collectOffer, hold, ticketOf } from './helpers/line.js';

function setup(pool: string, extra = '') {
  const config = parseConfig(`
deployment: t
apps:
  - name: demo
    command: [fake]
    readiness: { log: "^READY$", timeout: 30s }
    pool: ${pool}
    classifier: pluto
${extra}`);
  const clock = new ManualClock();
  const rt = new FakeRuntime();
  const log = new MemoryTrafficLog();
  // The deep link's GET when an instance becomes ready (classifier pluto resolves it): answered here, by instance.
  const deepLinks = new Map<string, string | undefined>();
  const deepLinkProbe = async (_app: unknown, rec: { instanceId: string }) => {
    deepLinks.set(rec.instanceId, `./edit?id=${rec.instanceId}`);
    return deepLinks.get(rec.instanceId);
  };
  const fleet = new Fleet({
    config,
    runtimes: { process: rt },
    clock,
    portCheck: fakePortCheck,
    deepLinkProbe,
    trafficLog: log,
    backoffMs: { first: 1000, max: 8000 },
  });
  return { config, clock, rt, fleet, log, deepLinks, deepLinkProbe };
}

const counts = (f: Fleet) => {
  const s = f.status()[0]!;
  return [s.ready, s.starting, s.claimed];
};

test('warms up to target with bounded parallel creates, never past max', async () => {
  const { rt, fleet } = setup('{ warm: 3, max: 4, parallel: 2 }');
  await fleet.start();
  await settle();
  assert.deepEqual(counts(fleet), [0, 2, 0], 'two creates in flight');
  rt.readyAll();
  await settle();
  assert.deepEqual(counts(fleet), [2, 1, 0], 'third starts once a slot frees');
  rt.readyAll();
  await settle();
  assert.deepEqual(counts(fleet), [3, 0, 0]);
  assert.equal(rt.created.length, 3);
  await fleet.stop();
  assert.equal(rt.live.length, 0, 'stop removes everything');
});

test('an instance is handed out only after its readiness check passed', async () => {
  const { rt, fleet } = setup('{ warm: 1, max: 1 }');
  await fleet.start();
  await settle();
  const first = await fleet.claim('demo');
  assert.equal(first.kind, 'queued', 'started but not ready: not handed out');
  const h = hold(fleet, 'demo', ticketOf(first));
  rt.print(rt.live[0]!, 'still executing cells...');
  await settle();
  assert.equal(h.settled(), undefined, 'still waiting');
  rt.print(rt.live[0]!, 'READY');
  await settle();
  const t = await collectOffer(fleet, 'demo', h);
  assert.equal(t.instanceId, rt.live[0]);
  await fleet.stop();
});

test('50 concurrent claims get 50 distinct instances or a queue ticket, never one instance twice', async () => {
  const { rt, fleet } = setup('{ warm: 30, max: 40, parallel: 40 }');
  rt.autoReady = true;
  await fleet.start();
  await settle();
  assert.equal(fleet.status()[0]!.ready, 30);
  const results = await Promise.all(Array.from({ length: 50 }, () => fleet.claim('demo')));
  const sessions = results.filter((r) => r.kind === 'session');
  const instances = new Set(sessions.map((r) => (r.kind === 'session' ? r.target.instanceId : '')));
  assert.equal(sessions.length, 30);
  assert.equal(instances.size, 30, 'no instance handed out twice');
  const queued = results.filter((r) => r.kind === 'queued');
  assert.equal(queued.length, 20);
  // Each ticket's place is held by a waiter, in this order.
  const held = queued.map((q) => hold(fleet, 'demo', ticketOf(q)));
  await settle();
  // Created on demand up to max: 10 more exist now, offered to the first 10 in line.
  const st = fleet.status()[0]!;
  assert.equal(st.ready + st.starting + st.claimed, 40);
  assert.deepEqual(
    held.map((h) => h.settled()?.kind),
    [...Array(10).fill('offer'), ...Array(10).fill(undefined)],
  );
  const late = await Promise.all(held.slice(0, 10).map((h) => collectOffer(fleet, 'demo', h)));
  assert.equal(new Set([...instances, ...late.map((t) => t.instanceId)]).size, 40, 'forty sessions, forty instances');
  await settle();
  assert.deepEqual(
    held.slice(10).map((h) => h.lines.at(-1)?.position),
    Array.from({ length: 10 }, (_, i) => i + 1),
    'the other ten are told their places',
  );
  assert.deepEqual(
    held.slice(10).map((h) => h.lines.at(-1)?.reason),
    Array(10).fill('full'),
    'max reached: the class is full',
  );
  await fleet.stop();
  assert.deepEqual(
    held.slice(10).map((h) => h.settled()),
    Array(10).fill({ kind: 'gone', why: 'stopped' }),
  );
});

test('refills after every claim and a claimed instance never returns to the pool', async () => {
  const { clock, rt, fleet } = setup('{ warm: 2, max: 10 }');
  rt.autoReady = true;
  await fleet.start();
  await settle();
  const r = await fleet.claim('demo');
  assert.equal(r.kind, 'session');
  await settle();
  assert.deepEqual(counts(fleet), [2, 0, 1]);
  const id = r.kind === 'session' ? r.target.instanceId : '';
  await clock.advance(RECORD_QUIET_MS); // recorded once no other claim came for a while
  assert.equal(rt.instances.get(id)!.claim?.session, r.kind === 'session' ? r.target.session : '', 'claim persisted on the engine');
  await fleet.end(r.kind === 'session' ? r.target.session : '', 'admin');
  await settle();
  assert.ok(rt.removed.includes(id), 'ended session removes its instance, not back to the pool');
  assert.deepEqual(counts(fleet), [2, 0, 0]);
  await fleet.stop();
});

test('pool.refillPerSecond paces creates on the clock, one at a time; parallel still caps those starting; a class claiming at once refills at that pace', async () => {
  const { clock, rt, fleet } = setup('{ warm: 3, max: 10, parallel: 2, refillPerSecond: 2 }');
  const t0 = clock.now();
  const at: number[] = [];
  const create = rt.create.bind(rt);
  rt.create = (app, spec) => {
    at.push(clock.now() - t0);
    return create(app, spec);
  };
  await fleet.start();
  await settle();
  assert.deepEqual(at, [0], 'the first at once');
  await clock.advance(499);
  assert.deepEqual(at, [0], 'no second before its token');
  await clock.advance(1);
  assert.deepEqual(at, [0, 500]);
  await clock.advance(1500);
  assert.deepEqual(at, [0, 500], 'two starting: parallel holds the third back, whatever the tokens');
  rt.readyAll();
  await settle();
  assert.deepEqual(at, [0, 500, 2000], 'a slot frees: the saved token (one at most) starts the third at once');
  rt.readyAll();
  await settle();
  assert.deepEqual(counts(fleet), [3, 0, 0]);
  // Three visitors at once: three refills wanted, started 500 ms apart.
  for (let i = 0; i < 3; i++) assert.equal((await fleet.claim('demo')).kind, 'session');
  await settle();
  assert.deepEqual(at.slice(3), [], 'the token went to the third warm-up create');
  await clock.advance(500);
  assert.deepEqual(at.slice(3), [2500]);
  await clock.advance(500);
  assert.deepEqual(at.slice(3), [2500, 3000]);
  await clock.advance(500);
  assert.deepEqual(at.slice(3), [2500, 3000], 'parallel again');
  rt.readyAll();
  await settle();
  assert.deepEqual(at.slice(3), [2500, 3000, 3500]);
  await fleet.stop();
});

test('a crashed ready instance is removed and replaced; a crashed claimed one ends its session', async () => {
  const { rt, fleet, log } = setup('{ warm: 2, max: 5 }');
  rt.autoReady = true;
  await fleet.start();
  await settle();
  const victim = rt.live[0]!;
  rt.kill(victim);
  await settle();
  assert.ok(rt.removed.includes(victim));
  assert.deepEqual(counts(fleet), [2, 0, 0]);
  const r = await fleet.claim('demo');
  assert.equal(r.kind, 'session');
  const t = r.kind === 'session' ? r.target : undefined!;
  rt.kill(t.instanceId);
  await settle();
  assert.deepEqual(fleet.find(t.session, t.instanceId).kind, 'ended');
  const ended = log.entries.find((e) => e.type === 'ended');
  assert.equal(ended?.reason, 'instance-exited');
  await fleet.stop();
});

test('repeated create failures back off exponentially on the clock and are reported', async () => {
  const { clock, rt, fleet } = setup('{ warm: 1, max: 1 }');
  rt.failWith = new Error('image broken');
  await fleet.start();
  await settle();
  assert.equal(rt.created.length, 0);
  let st = fleet.status()[0]!;
  assert.equal(st.failures, 1);
  assert.match(st.lastError!, /image broken/);
  assert.equal(st.nextRetryAt, clock.now() + 1000);
  await clock.advance(999);
  assert.equal(fleet.status()[0]!.failures, 1, 'no retry before the backoff');
  await clock.advance(1);
  assert.equal(fleet.status()[0]!.failures, 2);
  assert.equal(fleet.status()[0]!.nextRetryAt, clock.now() + 2000);
  await clock.advance(2000);
  assert.equal(fleet.status()[0]!.failures, 3);
  rt.failWith = undefined;
  rt.autoReady = true;
  await clock.advance(4000);
  st = fleet.status()[0]!;
  assert.deepEqual([st.ready, st.failures, st.lastError], [1, 0, undefined], 'recovered and reset');
  await fleet.stop();
});

test('creates backing off from an unreachable engine try at once when the engine is back; other failures keep their backoff', async () => {
  const { clock, rt, fleet } = setup('{ warm: 1, max: 1 }');
  rt.failWith = new WarmpoolError('ENGINE_UNREACHABLE', 'fake engine down');
  await fleet.start();
  await settle();
  await clock.advance(1000);
  await clock.advance(2000);
  assert.equal(fleet.status()[0]!.failures, 3);
  assert.equal(fleet.status()[0]!.nextRetryAt, clock.now() + 4000, 'backing off');
  rt.failWith = undefined;
  rt.autoReady = true;
  rt.engineBack();
  await settle();
  const st = fleet.status()[0]!;
  assert.deepEqual([st.ready, st.failures, st.nextRetryAt], [1, 0, undefined], 'created at the instant the engine came back');

  const { clock: clock2, rt: rt2, fleet: fleet2 } = setup('{ warm: 1, max: 1 }');
  rt2.failWith = new WarmpoolError('IMAGE_NOT_FOUND', 'no such image');
  await fleet2.start();
  await settle();
  await clock2.advance(1000);
  const before = fleet2.status()[0]!;
  rt2.engineBack();
  await settle();
  assert.deepEqual(fleet2.status()[0], before, 'a broken image is not retried sooner');
  await fleet.stop();
  await fleet2.stop();
});

test('an instance that never becomes ready is replaced after the readiness timeout', async () => {
  const { clock, rt, fleet } = setup('{ warm: 1, max: 1 }');
  await fleet.start();
  await settle();
  const stuck = rt.live[0]!;
  await clock.advance(29_999);
  assert.ok(!rt.removed.includes(stuck));
  await clock.advance(1);
  assert.ok(rt.removed.includes(stuck), 'removed at the timeout');
  assert.match(fleet.status()[0]!.lastError!, /not ready after 30000 ms/);
  await clock.advance(1000);
  assert.equal(rt.created.length, 2, 'replaced after backoff');
  await fleet.stop();
});

test('an instance that exits while starting counts as a failure: the next create waits for the backoff (no crash loop)', async () => {
  const { clock, rt, fleet } = setup('{ warm: 1, max: 1 }');
  await fleet.start();
  await settle();
  rt.kill(rt.live[0]!);
  await settle();
  const st = fleet.status()[0]!;
  assert.equal(st.failures, 1);
  assert.match(st.lastError!, /exited while starting: killed by test/);
  assert.equal(rt.created.length, 1, 'not replaced at once');
  await clock.advance(999);
  assert.equal(rt.created.length, 1, 'not before the backoff');
  await clock.advance(1);
  assert.equal(rt.created.length, 2, 'one trial create after the backoff');
  rt.kill(rt.live[0]!);
  await settle();
  assert.equal(fleet.status()[0]!.failures, 2);
  await clock.advance(1999);
  assert.equal(rt.created.length, 2, 'the backoff doubled');
  await clock.advance(1);
  assert.equal(rt.created.length, 3);
  await fleet.stop();
});

test('places in line are served in order; a ticket no waiter holds lapses and holds nothing meanwhile', async () => {
  const { clock, rt, fleet } = setup('{ warm: 0, max: 2, parallel: 2 }');
  await fleet.start();
  const a = hold(fleet, 'demo', ticketOf(await fleet.claim('demo')));
  const b = hold(fleet, 'demo', ticketOf(await fleet.claim('demo')));
  const unheld = ticketOf(await fleet.claim('demo')); // a page whose stream never connects
  await settle();
  assert.deepEqual([a.lines.at(-1)?.position, b.lines.at(-1)?.position], [1, 2]);
  assert.equal(fleet.status()[0]!.queued, 2, 'only held places are in line');
  assert.equal(fleet.status()[0]!.starting, 2, 'created on demand, for the held places only');
  rt.print(rt.live[1]!, 'READY');
  await settle();
  assert.equal(a.settled()?.kind, 'offer', 'the head of the line gets the first ready instance');
  assert.equal(b.settled(), undefined);
  const c = await fleet.claim('demo');
  assert.equal(c.kind, 'queued', 'a newcomer does not jump the line');
  await collectOffer(fleet, 'demo', a);
  // The unheld ticket lapses after queue.attach; nobody ever waited on it.
  await clock.advance(10_001);
  assert.deepEqual(await fleet.wait('demo', unheld, { kind: 'stream', signal: new AbortController().signal }), { kind: 'gone', why: 'unknown' });
  rt.print(rt.live[0]!, 'READY');
  await settle();
  assert.equal(b.settled()?.kind, 'offer');
  await fleet.stop();
});

test('on start, instances of an earlier run are adopted by label: ready ones kept, claimed ones restored, stopped ones removed', async () => {
  const first = setup('{ warm: 2, max: 5 }');
  first.rt.autoReady = true;
  await first.fleet.start();
  await settle();
  const r = await first.fleet.claim('demo');
  assert.equal(r.kind, 'session');
  if (r.kind !== 'session') return;
  await first.clock.advance(RECORD_QUIET_MS);
  await settle();
  // The proxy is killed: nothing is removed. A new fleet starts on the same engine.
  const rt = first.rt;
  const dead = rt.live.find((id) => id !== r.target.instanceId)!;
  rt.instances.get(dead)!.running = false;
  const clock = new ManualClock();
  first.deepLinks.clear();
  const fleet = new Fleet({
    config: first.config,
    runtimes: { process: rt },
    clock,
    portCheck: fakePortCheck,
    deepLinkProbe: first.deepLinkProbe,
    trafficLog: new MemoryTrafficLog(),
  });
  await fleet.start();
  await settle();
  assert.ok(rt.removed.includes(dead), 'stopped instance removed');
  assert.ok(!first.deepLinks.has(r.target.instanceId), 'a claimed instance is not asked again (its visitor is in it)');
  const adopted = rt.live.filter((id) => id !== r.target.instanceId && first.rt.created.slice(0, 3).includes(id));
  assert.ok(adopted.length > 0 && adopted.every((id) => first.deepLinks.has(id)), 'an adopted ready instance is asked where its deep link leads');
  const found = fleet.find(r.target.session, r.target.instanceId);
  assert.equal(found.kind, 'live', 'the visitor keeps their instance across the restart');
  const st = fleet.status()[0]!;
  assert.equal(st.claimed, 1);
  assert.equal(st.ready, 2);
  assert.equal(fleet.liveCount('demo'), 1, 'a restored session is counted live');
  assert.equal(rt.created.length, 4, 'one replacement created for the stopped one');
  await fleet.stop();
});

test('a claim is answered before it is recorded on the engine, and recorded right after', async () => {
  const { rt, fleet } = setup('{ warm: 2, max: 2 }');
  rt.autoReady = true;
  await fleet.start();
  await settle();
  // The engine takes its time: the visitor must not wait for the rename.
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const mark = rt.markClaimed.bind(rt);
  rt.markClaimed = async (id, claim) => {
    await gate;
    return mark(id, claim);
  };
  const r = await fleet.claim('demo');
  assert.equal(r.kind, 'session');
  if (r.kind !== 'session') return;
  assert.equal(rt.instances.get(r.target.instanceId)!.claim, undefined, 'answered while the engine still records');
  assert.equal(fleet.find(r.target.session, r.target.instanceId).kind, 'live');
  release();
  await fleet.claimsRecorded();
  assert.equal(rt.instances.get(r.target.instanceId)!.claim?.session, r.target.session, 'recorded afterwards');
  await fleet.stop();
});

test('a claim the engine cannot record is retried with backoff while the session goes on', async () => {
  const { config, clock, rt } = setup('{ warm: 1, max: 1 }');
  const logged: string[] = [];
  const traffic = new MemoryTrafficLog();
  const fleet = new Fleet({ config, runtimes: { process: rt }, clock, portCheck: fakePortCheck, trafficLog: traffic, log: (m) => logged.push(m) });
  rt.autoReady = true;
  await fleet.start();
  await settle();
  rt.markFails = true;
  const r = await fleet.claim('demo');
  assert.equal(r.kind, 'session', 'an engine hiccup does not cost the visitor their instance');
  if (r.kind !== 'session') return;
  await clock.advance(RECORD_QUIET_MS);
  assert.match(logged.at(-1)!, /could not record the claim of instance \S+ by session \S+ \(attempt 1, retrying in 500 ms\): fake engine down/);
  await clock.advance(500);
  assert.match(logged.at(-1)!, /attempt 2, retrying in 1000 ms/);
  rt.markFails = false;
  await clock.advance(999);
  assert.equal(rt.instances.get(r.target.instanceId)!.claim, undefined, 'not before the backoff ends');
  await clock.advance(1);
  assert.equal(rt.instances.get(r.target.instanceId)!.claim?.session, r.target.session);
  assert.equal(fleet.find(r.target.session, r.target.instanceId).kind, 'live');
  assert.deepEqual(
    traffic.entries.filter((e) => e.type === 'claim-recorded').map((e) => e.attempts),
    [3],
  );
  assert.equal(rt.removed.length, 0, 'nothing removed');
  await fleet.stop();
});

test('an instance found gone while its claim is recorded ends that session', async () => {
  const { clock, rt, fleet } = setup('{ warm: 1, max: 1 }');
  rt.autoReady = true;
  await fleet.start();
  await settle();
  const id = rt.live[0]!;
  const mark = rt.markClaimed.bind(rt);
  rt.markClaimed = async (i, c) => {
    rt.instances.delete(i);
    return mark(i, c);
  };
  const r = await fleet.claim('demo');
  assert.equal(r.kind, 'session');
  if (r.kind !== 'session') return;
  await clock.advance(RECORD_QUIET_MS);
  const found = fleet.find(r.target.session, id);
  assert.deepEqual(found.kind === 'ended' ? found.reason : found.kind, 'instance-exited');
  await settle();
  assert.equal(fleet.status()[0]!.ready + fleet.status()[0]!.starting, 1, 'replaced');
  await fleet.stop();
});

test('stopping with keep gives claims still being recorded one last try', async () => {
  const { rt, fleet } = setup('{ warm: 1, max: 1 }');
  rt.autoReady = true;
  await fleet.start();
  await settle();
  rt.markFails = true;
  const r = await fleet.claim('demo');
  if (r.kind !== 'session') return assert.fail('expected a session');
  await settle();
  rt.markFails = false;
  await fleet.stop(true);
  assert.equal(rt.instances.get(r.target.instanceId)!.claim?.session, r.target.session, 'recorded before stop resolved');
  assert.equal(rt.removed.length, 0, 'kept');
});

test('stop during a failing attempt to record a claim does not wait out a backoff', async () => {
  const { rt, fleet } = setup('{ warm: 1, max: 1 }');
  rt.autoReady = true;
  await fleet.start();
  await settle();
  let fail!: () => void;
  const attempts: number[] = [];
  const mark = rt.markClaimed.bind(rt);
  rt.markClaimed = async (id, c) => {
    attempts.push(attempts.length + 1);
    if (attempts.length === 1) {
      await new Promise<void>((r) => {
        fail = r;
      });
      throw new Error('engine hiccup');
    }
    return mark(id, c);
  };
  const r = await fleet.claim('demo');
  if (r.kind !== 'session') return assert.fail('expected a session');
  await settle();
  let stopped = false;
  const stopping = fleet.stop(true).then(() => {
    stopped = true;
  });
  await settle();
  fail(); // the attempt in flight when stop() began fails now
  await settle();
  assert.equal(stopped, true, 'stop resolved without the manual clock moving');
  await stopping;
  assert.deepEqual(attempts, [1, 2], 'one last try, right away');
  assert.equal(rt.instances.get(r.target.instanceId)!.claim?.session, r.target.session);
});

test("after a restart inside the recording window, the visitor's cookie gets their instance back", async () => {
  const first = setup('{ warm: 2, max: 2 }');
  first.rt.autoReady = true;
  await first.fleet.start();
  await settle();
  first.rt.markClaimed = () => new Promise<void>(() => {}); // the proxy dies before the rename lands
  const r = await first.fleet.claim('demo');
  if (r.kind !== 'session') return assert.fail('expected a session');
  const rt = first.rt;
  assert.equal(rt.instances.get(r.target.instanceId)!.claim, undefined);
  // A new fleet on the same engine: the instance looks unclaimed and is adopted as ready.
  rt.markClaimed = FakeRuntime.prototype.markClaimed.bind(rt);
  const traffic = new MemoryTrafficLog();
  const clock = new ManualClock();
  const fleet = new Fleet({ config: first.config, runtimes: { process: rt }, clock, portCheck: fakePortCheck, trafficLog: traffic });
  await fleet.start();
  await settle();
  assert.equal(fleet.status()[0]!.ready, 2);
  const back = fleet.find(r.target.session, r.target.instanceId);
  assert.equal(back.kind, 'live');
  if (back.kind !== 'live') return;
  assert.equal(back.target.instanceId, r.target.instanceId);
  assert.equal(fleet.find(r.target.session, r.target.instanceId).kind, 'live', 'stays theirs');
  assert.equal(fleet.liveCount('demo'), 1, 'a session restored from its cookie is counted live, once');
  await clock.advance(RECORD_QUIET_MS);
  assert.equal(rt.instances.get(r.target.instanceId)!.claim?.session, r.target.session, 'and now recorded');
  assert.ok(
    traffic.entries.some((e) => e.type === 'restored' && e.session === r.target.session && /restored from the visitor's cookie/.test(String(e.detail))),
  );
  assert.equal(fleet.find('s-other', r.target.instanceId).kind, 'unknown', 'a claimed instance is never handed to another cookie');
  await fleet.stop();
});

test('unknown app is a clear error', async () => {
  const { fleet } = setup('{ warm: 0, max: 1 }');
  await assert.rejects(fleet.claim('nope'), (e: Error & { code?: string }) => e.code === 'APP_UNKNOWN' && /known apps: demo/.test(e.message));
});

test('an unreachable engine at start is reported and retried with backoff, never a crash', async () => {
  const { config } = setup('{ warm: 1, max: 1 }');
  const clock = new ManualClock();
  const rt = new FakeRuntime();
  rt.autoReady = true;
  let failures = 2;
  const list = rt.list.bind(rt);
  rt.list = async () => {
    if (failures-- > 0) throw new Error('connect ENOENT /var/run/docker.sock');
    return list();
  };
  const logged: string[] = [];
  const fleet = new Fleet({ config, runtimes: { process: rt }, clock, portCheck: fakePortCheck, log: (m) => logged.push(m) });
  let started = false;
  const starting = fleet.start().then(() => {
    started = true;
  });
  await settle();
  assert.equal(started, false);
  assert.match(logged[0]!, /cannot list instances \(attempt 1, retrying in 1000 ms\): connect ENOENT/);
  await clock.advance(1000);
  assert.match(logged[1]!, /attempt 2, retrying in 2000 ms/);
  await clock.advance(2000);
  await starting;
  await settle();
  assert.equal(fleet.status()[0]!.ready, 1, 'warms up once the engine answers');
  await fleet.stop();
});

test("the deep link's redirect, read once as an instance becomes ready, goes with its claim; an app that does not resolve is never asked", async () => {
  const { rt, fleet, deepLinks } = setup('{ warm: 1, max: 1 }');
  await fleet.start();
  await settle();
  assert.equal(deepLinks.size, 0, 'not while the instance starts');
  rt.readyAll();
  await settle();
  assert.deepEqual([...deepLinks.keys()], rt.live, 'asked once it was ready');
  const r = await fleet.claim('demo');
  assert.equal(r.kind, 'session');
  if (r.kind !== 'session') return;
  assert.equal(r.target.deepLinkRedirect, `./edit?id=${r.target.instanceId}`);
  await fleet.stop();

  const off = setup('{ warm: 1, max: 1 }', '    resolveDeepLink: false');
  await off.fleet.start();
  await settle();
  off.rt.readyAll();
  await settle();
  const r2 = await off.fleet.claim('demo');
  assert.equal(r2.kind, 'session');
  if (r2.kind !== 'session') return;
  assert.equal(r2.target.deepLinkRedirect, undefined);
  assert.equal(off.deepLinks.size, 0, 'never asked');
  await off.fleet.stop();
});

test('claims recorded after their answer wait for the claims around them: quiet for RECORD_QUIET_MS, at most RECORD_MAX_DELAY_MS after the first', async () => {
  const { clock, rt, fleet } = setup('{ warm: 30, max: 30 }');
  rt.autoReady = true;
  await fleet.start();
  await settle();
  const recorded = () => rt.live.filter((id) => rt.instances.get(id)!.claim).length;
  // A class arriving one every half quiet time: nothing goes to the engine while they come.
  const step = RECORD_QUIET_MS / 2;
  for (let i = 0; i < 4; i++) {
    assert.equal((await fleet.claim('demo')).kind, 'session');
    await clock.advance(step);
  }
  assert.equal(recorded(), 0, 'not while claims keep coming');
  await clock.advance(RECORD_QUIET_MS - step);
  assert.equal(recorded(), 4, 'all four once no claim came for the quiet time');
  // A steady stream that never goes quiet is still recorded, RECORD_MAX_DELAY_MS after its first claim.
  const t0 = clock.now();
  let stream = 0;
  while (clock.now() - t0 < RECORD_MAX_DELAY_MS - step) {
    assert.equal((await fleet.claim('demo')).kind, 'session');
    stream++;
    await clock.advance(step);
  }
  assert.equal(recorded(), 4, 'the stream not yet');
  await clock.advance(step);
  assert.equal(recorded(), 4 + stream, 'the stream at its longest delay');
  await fleet.stop(true);
});
