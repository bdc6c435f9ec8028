// Reaping deadlines on a manual clock: idle timeout since the last user activity, maximum lifetime
// since the claim, grace after the last connection closed — each hit at its exact instant.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, settle } from '../core/clock.js';
import { parseConfig } from '../core/config.js';
import { Fleet } from '../pool/fleet.js';
import { nextDeadline, type ReapableSession } from '../pool/reaper.js';
import { MemoryTrafficLog } from '../pool/traffic-log.js';
import { ActivityReporter } from '../proxy/activity.js';
import { FakeRuntime, fakePortCheck } from './helpers/fake-runtime.js';

const MIN = 60_000;

async function claimed(opts = 'idleTimeout: 10m\n    maxLifetime: 75m\n    grace: 2m') {
  const config = parseConfig(`
apps:
  - name: demo
    command: [fake]
    readiness: { log: READY }
    pool: { warm: 1, max: 3 }
    ${opts}
`);
  const clock = new ManualClock();
  const rt = new FakeRuntime();
  rt.autoReady = true;
  const log = new MemoryTrafficLog();
  const fleet = new Fleet({ config, runtimes: { process: rt }, clock, portCheck: fakePortCheck, trafficLog: log, idleNoticeMs: MIN });
  await fleet.start();
  await settle();
  const r = await fleet.claim('demo');
  assert.equal(r.kind, 'session');
  const t = r.kind === 'session' ? r.target : undefined!;
  // User activity as the proxy reports it: stamped exactly on the traffic record, told to the pool at most once a second.
  const reporter = new ActivityReporter(fleet, clock);
  const active = () => reporter.active(t, clock.now());
  return { clock, rt, log, fleet, t, active, ended: () => log.entries.find((e) => e.type === 'ended' && e.session === t.session) };
}

test('nextDeadline picks the earliest of idle, lifetime and grace', () => {
  const base = { claimedAt: 0, lastActive: 0, openConnections: 1, lastConnectionAt: 0, idleTimeoutMs: 600, maxLifetimeMs: 4500, graceMs: 120 };
  const rows: [Partial<typeof base>, number, string][] = [
    [{}, 600, 'idle'],
    [{ lastActive: 4000 }, 4500, 'lifetime'],
    [{ openConnections: 0 }, 120, 'grace'],
    [{ openConnections: 0, lastConnectionAt: 550 }, 600, 'idle'],
    [{ openConnections: 0, lastConnectionAt: 500, lastActive: 1000 }, 620, 'grace'],
  ];
  for (const [patch, at, reason] of rows) assert.deepEqual(nextDeadline({ ...base, ...patch }), { at, reason }, JSON.stringify(patch));
});

test('an idle tab is reaped exactly at its idle deadline, and keepalives do not move it', async () => {
  const { clock, fleet, t, ended, rt, active } = await claimed();
  fleet.connectionOpened(t.session);
  const start = clock.now();
  await clock.advance(3 * MIN);
  active(); // a slider move
  const deadline = clock.now() + 10 * MIN;
  await clock.advance(10 * MIN - 1);
  assert.equal(ended(), undefined, 'alive 1 ms before the deadline');
  await clock.advance(1);
  const e = ended();
  assert.equal(e?.reason, 'idle');
  assert.equal(e?.t, deadline);
  assert.equal(e?.late, 0);
  assert.equal(clock.now() - start, 13 * MIN);
  await settle();
  assert.ok(rt.removed.includes(t.instanceId));
  assert.deepEqual(fleet.find(t.session, t.instanceId), { kind: 'ended', reason: 'idle', at: deadline });
  await fleet.stop();
});

test('an active tab lives until its maximum lifetime', async () => {
  const { clock, fleet, t, ended, active } = await claimed();
  fleet.connectionOpened(t.session);
  for (let m = 0; m < 74; m++) {
    await clock.advance(MIN);
    active();
  }
  assert.equal(ended(), undefined);
  await clock.advance(MIN);
  assert.equal(ended()?.reason, 'lifetime');
  assert.equal(ended()?.t, t.claimedAt + 75 * MIN);
  await fleet.stop();
});

test('a session with no connection left is reaped after the grace period', async () => {
  const { clock, fleet, t, ended, active } = await claimed();
  fleet.connectionOpened(t.session);
  fleet.connectionOpened(t.session);
  await clock.advance(MIN);
  fleet.connectionClosed(t.session);
  await clock.advance(5 * MIN);
  assert.equal(ended(), undefined, 'one connection still open');
  active();
  fleet.connectionClosed(t.session);
  const closedAt = clock.now();
  await clock.advance(2 * MIN);
  assert.equal(ended()?.reason, 'grace');
  assert.equal(ended()?.t, closedAt + 2 * MIN);
  await fleet.stop();
});

test('a visitor who never connects is reaped after the grace period from the claim', async () => {
  const { clock, fleet, t, ended } = await claimed();
  await clock.advance(2 * MIN);
  assert.equal(ended()?.reason, 'grace');
  assert.equal(ended()?.t, t.claimedAt + 2 * MIN);
  await fleet.stop();
});

test('idle and active-again are noted in the traffic log', async () => {
  const { clock, fleet, t, log, active } = await claimed();
  fleet.connectionOpened(t.session);
  await clock.advance(MIN);
  assert.deepEqual(
    log.entries.filter((e) => e.type === 'idle').map((e) => e.t),
    [t.claimedAt + MIN],
  );
  await clock.advance(30_000);
  active();
  assert.equal(log.entries.at(-1)?.type, 'active-again');
  await clock.advance(MIN);
  assert.equal(log.entries.filter((e) => e.type === 'idle').length, 2);
  await fleet.stop();
});

test('the reaper keeps one timer, however many sessions', async () => {
  const { clock, fleet } = await claimed('idleTimeout: 10m');
  for (let i = 0; i < 2; i++) {
    await settle();
    assert.equal((await fleet.claim('demo')).kind, 'session');
  }
  await clock.advance(1000); // the claims' engine records start (pool/claim-recording.ts)
  assert.equal(fleet.liveSessions().length, 3);
  assert.equal(clock.timers, 1);
  await fleet.stop();
});

test('activity the proxy stamped but had not yet reported (coalesced) still moves the idle deadline', async () => {
  const { clock, fleet, t, ended, active } = await claimed();
  fleet.connectionOpened(t.session);
  await clock.advance(5 * MIN);
  active();
  await clock.advance(500);
  active(); // a second keystroke inside the proxy's 1 s coalescing window: stamped, not reported
  const exact = clock.now();
  await clock.advance(10 * MIN - 500);
  assert.equal(ended(), undefined, 'not reaped at the deadline of the reported activity');
  await clock.advance(500);
  assert.equal(ended()?.reason, 'idle');
  assert.equal(ended()?.t, exact + 10 * MIN);
  await fleet.stop();
});

test('the admin view and the summary at the end name the last activity the proxy stamped, reported or not', async () => {
  const { clock, fleet, t, ended, active } = await claimed();
  fleet.connectionOpened(t.session);
  await clock.advance(30_000);
  active();
  await clock.advance(500);
  active(); // inside the coalescing window: stamped on the traffic record, not reported
  const exact = clock.now();
  await clock.advance(9500);
  const v = fleet.sessionsView()[0]!;
  assert.deepEqual([v.lastActive, v.idleDeadline, v.activeMs], [exact, exact + 10 * MIN, 30_500]);
  await fleet.end(t.session, 'admin');
  const summary = ended()?.summary as { lastActive: number; activeMs: number };
  assert.deepEqual([summary.lastActive, summary.activeMs], [exact, 30_500], 'not the last reported activity (30 s)');
  await fleet.stop();
});

test('a deadline that does not move after it was handled is reported and skipped, never thrown from the timer', async () => {
  const { Reaper } = await import('../pool/reaper.js');
  const clock = new ManualClock();
  const t0 = clock.now();
  const s = { claimedAt: t0, lastActive: t0, openConnections: 1, lastConnectionAt: t0, idleTimeoutMs: 600, maxLifetimeMs: 4500, graceMs: 120 };
  const stuck: string[] = [];
  let handled = 0;
  // A buggy `due` that neither ends the session nor moves its deadline.
  const r = new Reaper(
    clock,
    () => [['s1', s] as [string, typeof s]],
    () => {
      handled++;
      return false;
    },
    (id, reason) => stuck.push(`${id} ${reason}`),
  );
  r.schedule();
  assert.equal(handled, 0);
  await clock.advance(600); // the timer fires inside the clock: a throw here would escape the callback
  assert.deepEqual(stuck, ['s1 idle']);
  assert.equal(handled, 1);
  r.stop();
});

test("a session's own deadline moving earlier re-arms the one timer without walking every session; each is still reaped at its instant", async () => {
  const { Reaper } = await import('../pool/reaper.js');
  const clock = new ManualClock();
  const t0 = clock.now();
  type S = ReapableSession;
  const session = (idleMs: number): S => ({
    claimedAt: clock.now(),
    lastActive: clock.now(),
    openConnections: 1,
    lastConnectionAt: clock.now(),
    idleTimeoutMs: idleMs,
    maxLifetimeMs: 10 * MIN,
    graceMs: MIN,
  });
  const sessions = new Map<string, S>();
  let walks = 0;
  const reaped: string[] = [];
  const r = new Reaper<S>(
    clock,
    () => {
      walks++;
      return sessions.entries();
    },
    (id, _s, reason, deadline) => {
      reaped.push(`${id} ${reason} +${deadline - t0}`);
      sessions.delete(id);
      return true;
    },
  );
  sessions.set('a', session(1000));
  r.schedule();
  assert.equal(walks, 1);
  // A thousand claims, each told to the reaper: later deadlines leave the timer as it is, none walks the sessions.
  for (let i = 0; i < 1000; i++) {
    const id = `late${i}`;
    sessions.set(id, session(5000 + i));
    r.moved(sessions.get(id)!);
  }
  const early = session(400);
  sessions.set('early', early);
  r.moved(early);
  assert.equal(walks, 1, 'no walk over every session per claim');
  assert.equal(clock.timers, 1);
  await clock.advance(400);
  assert.deepEqual(reaped, ['early idle +400'], 'the earlier deadline re-armed the timer');
  await clock.advance(600);
  assert.deepEqual(reaped, ['early idle +400', 'a idle +1000']);
  // A connection closed long ago: its grace deadline has passed, so it is handled at once.
  const gone = session(10 * MIN);
  gone.openConnections = 0;
  gone.lastConnectionAt = clock.now() - MIN;
  sessions.set('gone', gone);
  r.moved(gone);
  assert.equal(reaped.at(-1), `gone grace +${clock.now() - t0}`);
  await clock.advance(5000);
  assert.equal(reaped.length, 3 + 1000, 'every later session reaped by the timer');
  assert.equal(reaped.at(-1), 'late999 idle +5999');
  r.stop();
});
