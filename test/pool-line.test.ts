// The waiting line and fair sharing in the pool, on the manual clock with FakeRuntime: places held
// only by waiters, offers at the instant an instance is ready, tickets that cannot be taken over,
// held requests, first-use grace, per-address limits, the claim rate, and the estimates the waiting
// page shows. No sockets, no sleeps.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, settle } from '../core/clock.js';
import { parseConfig } from '../core/config.js';
import { Fleet } from '../pool/fleet.js';
import { MemoryTrafficLog } from '../pool/traffic-log.js';
import { FakeRuntime, fakePortCheck } from './helpers/fake-runtime.js';
import { collectOffer, hold, ticketOf } from './helpers/line.js';

function setup(pool: string, queue = '', app = '') {
  const config = parseConfig(`
deployment: t
${queue ? `queue: ${queue}` : ''}
apps:
  - name: demo
    command: [fake]
    readiness: { log: "^READY$", timeout: 30s }
    pool: ${pool}
    idleTimeout: 20m
    maxLifetime: 90m
    grace: 5m
${app}`);
  const clock = new ManualClock();
  const rt = new FakeRuntime();
  const log = new MemoryTrafficLog();
  const fleet = new Fleet({ config, runtimes: { process: rt }, clock, portCheck: fakePortCheck, trafficLog: log });
  return { config, clock, rt, fleet, log };
}

const A = '10.0.0.1';
const B = '10.0.0.2';

test('a claim no request uses within queue.firstUse goes back to the pool as ready, recorded in the traffic log; a used one stays and is recorded on the engine then', async () => {
  const { clock, rt, fleet, log } = setup('{ warm: 2, max: 2 }');
  rt.autoReady = true;
  await fleet.start();
  await settle();
  const unused = await fleet.claim('demo', { visitor: A });
  const used = await fleet.claim('demo', { visitor: A });
  if (unused.kind !== 'session' || used.kind !== 'session') return assert.fail('expected two sessions');
  await settle();
  assert.equal(rt.instances.get(unused.target.instanceId)!.claim, undefined, 'not on the engine before its first use');
  await clock.advance(3000);
  fleet.event(used.target.session, 'request');
  await fleet.claimsRecorded();
  assert.equal(rt.instances.get(used.target.instanceId)!.claim?.session, used.target.session, 'recorded at its first use');
  assert.equal(rt.instances.get(used.target.instanceId)!.claim?.at, used.target.claimedAt);
  await clock.advance(15_000 - 3000 - 1);
  assert.equal(fleet.find(unused.target.session, unused.target.instanceId).kind, 'live', '1 ms before the grace ends');
  await clock.advance(1);
  const found = fleet.find(unused.target.session, unused.target.instanceId);
  assert.deepEqual(found.kind === 'ended' && found.reason, 'unused');
  const st = fleet.status()[0]!;
  assert.deepEqual([st.ready, st.claimed, st.starting], [1, 1, 0], 'back as ready, nothing removed or created');
  assert.equal(rt.removed.length, 0);
  assert.equal(rt.created.length, 2);
  const why = log.entries.find((e) => e.type === 'returned-unused');
  assert.equal(why?.session, unused.target.session);
  assert.equal(why?.visitor, A);
  assert.match(String(why?.detail), /no request reached the instance within 15000 ms of the claim; it went back to the pool as ready/);
  assert.equal(log.entries.find((e) => e.type === 'ended' && e.session === unused.target.session)?.reason, 'unused');
  // The instance is handed out again, to someone else, and never to the old cookie.
  const next = await fleet.claim('demo', { visitor: B });
  assert.equal(next.kind === 'session' && next.target.instanceId, unused.target.instanceId);
  assert.equal(fleet.find(unused.target.session, unused.target.instanceId).kind, 'ended');
  assert.equal(fleet.find(used.target.session, used.target.instanceId).kind, 'live', 'the used one is untouched');
  await clock.advance(60_000);
  assert.equal(fleet.find(used.target.session, used.target.instanceId).kind, 'live');
  await fleet.stop();
});

test('a claim whose first request is still on its way at queue.firstUse (stamped, not yet answered) is used, not given back', async () => {
  const { clock, rt, fleet, log } = setup('{ warm: 1, max: 1 }');
  rt.autoReady = true;
  await fleet.start();
  await settle();
  const r = await fleet.claim('demo', { visitor: A });
  if (r.kind !== 'session') return assert.fail('expected a session');
  await clock.advance(14_000);
  r.target.traffic.firstSeen = clock.now(); // what the proxy stamps as the request sets off to a slow instance
  await clock.advance(1000);
  assert.equal(fleet.find(r.target.session, r.target.instanceId).kind, 'live');
  assert.equal(
    log.entries.some((e) => e.type === 'returned-unused'),
    false,
  );
  await fleet.claimsRecorded();
  assert.equal(rt.instances.get(r.target.instanceId)!.claim?.session, r.target.session, 'final: recorded on the engine');
  await fleet.stop();
});

test("a ticket is held by one waiter only; a guessed ticket, another's ticket or a ticket as a collect token gets nothing", async () => {
  const { rt, fleet } = setup('{ warm: 0, max: 1 }');
  await fleet.start();
  const q = await fleet.claim('demo', { visitor: A });
  const ticket = ticketOf(q);
  assert.match(ticket, /^[A-Za-z0-9_-]{22}$/, '128 random bits, base64url');
  assert.notEqual(ticketOf(await fleet.claim('demo', { visitor: A })).slice(0, 8), ticket.slice(0, 8), 'nothing shared between tickets');
  const owner = hold(fleet, 'demo', ticket);
  await settle();
  const never = new AbortController().signal;
  assert.deepEqual(await fleet.wait('demo', ticket, { kind: 'stream', signal: never }), { kind: 'gone', why: 'taken' }, 'a second stream with the same ticket');
  assert.deepEqual(await fleet.wait('demo', 'AAAAAAAAAAAAAAAAAAAAAA', { kind: 'stream', signal: never }), { kind: 'gone', why: 'unknown' });
  assert.deepEqual(
    await fleet.wait('demo', `demo.${Date.now().toString(36)}.0`, { kind: 'request', signal: never }),
    { kind: 'gone', why: 'unknown' },
    'the old guessable form',
  );
  assert.deepEqual(await fleet.collect('demo', ticket), { kind: 'gone' }, 'a ticket is not a collect token');
  rt.readyAll();
  await settle();
  const o = owner.settled();
  assert.equal(o?.kind, 'offer', 'the holder still gets in');
  if (o?.kind !== 'offer') return;
  assert.notEqual(o.collect, ticket);
  assert.deepEqual(await fleet.collect('demo', 'AAAAAAAAAAAAAAAAAAAAAA'), { kind: 'gone' });
  const c = await fleet.collect('demo', o.collect);
  assert.equal(c.kind, 'session');
  assert.deepEqual(await fleet.collect('demo', o.collect), { kind: 'gone' }, 'a collect token works once');
  await fleet.stop();
});

test('a waiter who leaves loses the place at once; an offer not collected in time goes to the next, at that instant', async () => {
  const { clock, rt, fleet } = setup('{ warm: 0, max: 1, parallel: 1 }');
  await fleet.start();
  const a = hold(fleet, 'demo', ticketOf(await fleet.claim('demo', { visitor: A })));
  const b = hold(fleet, 'demo', ticketOf(await fleet.claim('demo', { visitor: B })));
  const c = hold(fleet, 'demo', ticketOf(await fleet.claim('demo', { visitor: B })));
  await settle();
  assert.deepEqual(
    [a, b, c].map((h) => h.lines.at(-1)?.position),
    [1, 2, 3],
  );
  a.leave();
  await settle();
  assert.deepEqual(a.settled(), { kind: 'gone', why: 'left' });
  assert.deepEqual(
    [b, c].map((h) => h.lines.at(-1)?.position),
    [1, 2],
    'everyone behind moves up at once',
  );
  assert.equal(fleet.status()[0]!.queued, 2);
  rt.readyAll();
  await settle();
  const offer = b.settled();
  assert.equal(offer?.kind, 'offer');
  if (offer?.kind !== 'offer') return;
  assert.equal(offer.expiresAt, clock.now() + 10_000);
  b.leave(); // the page went to collect it (its stream closes) ... and never arrives
  await clock.advance(10_000 - 1);
  assert.equal(c.settled(), undefined, 'not before the collect deadline');
  await clock.advance(1);
  assert.equal(c.settled()?.kind, 'offer', 'at the collect deadline, to the next');
  assert.deepEqual(await fleet.collect('demo', offer.collect), { kind: 'gone' }, 'too late');
  await collectOffer(fleet, 'demo', c);
  await fleet.stop();
});

test('an offer its stream could not deliver is declined: the instance goes to the next at once', async () => {
  const { rt, fleet } = setup('{ warm: 0, max: 1, parallel: 1 }');
  await fleet.start();
  const a = hold(fleet, 'demo', ticketOf(await fleet.claim('demo', { visitor: A })));
  const b = hold(fleet, 'demo', ticketOf(await fleet.claim('demo', { visitor: B })));
  await settle();
  rt.readyAll();
  await settle();
  const o = a.settled();
  if (o?.kind !== 'offer') return assert.fail('expected an offer');
  fleet.decline('demo', o.collect);
  await settle();
  assert.equal(b.settled()?.kind, 'offer', 'no clock moved');
  assert.deepEqual(await fleet.collect('demo', o.collect), { kind: 'gone' });
  await collectOffer(fleet, 'demo', b);
  await fleet.stop();
});

test('a held request is answered at queue.hold; its place is kept under a new ticket, ahead of later arrivals', async () => {
  const { clock, rt, fleet } = setup('{ warm: 0, max: 1, parallel: 1 }', '{ hold: 20s }');
  await fleet.start();
  const api = hold(fleet, 'demo', ticketOf(await fleet.claim('demo', { visitor: A, waiter: 'request' })), 'request');
  await clock.advance(5000);
  const later = hold(fleet, 'demo', ticketOf(await fleet.claim('demo', { visitor: B })));
  await clock.advance(15_000 - 1);
  assert.equal(api.settled(), undefined);
  await clock.advance(1);
  const t = api.settled();
  assert.equal(t?.kind, 'timeout');
  if (t?.kind !== 'timeout') return;
  assert.equal(t.line.position, 1, 'still first');
  assert.equal(later.lines.at(-1)?.position, 1, 'meanwhile the later arrival is first of those connected');
  const again = hold(fleet, 'demo', t.ticket, 'request');
  await settle();
  assert.equal(later.lines.at(-1)?.position, 2, 'the returning request is ahead again');
  rt.readyAll();
  await settle();
  assert.equal(again.settled()?.kind, 'offer');
  assert.equal(later.settled(), undefined);
  await fleet.stop();
});

test('per address: unused claims are capped (held requests get 429 with when to retry; pages wait and get in once one is used); other addresses are not affected', async () => {
  const { clock, rt, fleet } = setup('{ warm: 4, max: 8, parallel: 8 }', '{ unusedClaimsPerAddress: 3 }');
  rt.autoReady = true;
  await fleet.start();
  await settle();
  const first = [];
  for (let i = 0; i < 3; i++) {
    const r = await fleet.claim('demo', { visitor: A, waiter: 'request' });
    assert.equal(r.kind, 'session');
    if (r.kind === 'session') first.push(r.target);
    await clock.advance(1000);
  }
  const refused = await fleet.claim('demo', { visitor: A, waiter: 'request' });
  assert.deepEqual(refused, { kind: 'limited', why: 'unused-claims', limit: 3, retryAfterMs: 15_000 - 3000 }, 'retry when the oldest unused claim goes back');
  const page = await fleet.claim('demo', { visitor: A });
  assert.equal(page.kind, 'queued', 'a page waits in line instead');
  if (page.kind !== 'queued') return;
  assert.equal(page.line.reason, 'unused-claims');
  assert.equal(page.line.estimatedWaitMs, 12_000);
  const waiting = hold(fleet, 'demo', page.ticket);
  await settle();
  assert.equal(waiting.settled(), undefined, 'ready instances exist, but not for this address');
  assert.equal((await fleet.claim('demo', { visitor: B, waiter: 'request' })).kind, 'session', 'another address gets one at once');
  // One of A's claims is used (its first request came through the proxy): A's page gets in at once.
  fleet.event(first[1]!.session, 'request');
  await settle();
  assert.equal(waiting.settled()?.kind, 'offer');
  await collectOffer(fleet, 'demo', waiting);
  assert.equal((await fleet.claim('demo', { visitor: A, waiter: 'request' })).kind, 'limited', 'three unused again');
  // Unused claims go back at their first-use deadline and free the address.
  await clock.advance(12_000);
  assert.equal(fleet.find(first[0]!.session, first[0]!.instanceId).kind, 'ended');
  assert.equal((await fleet.claim('demo', { visitor: A, waiter: 'request' })).kind, 'session');
  await fleet.stop();
});

test('per address: places in line are capped; over it, 429 with when to retry', async () => {
  const { fleet } = setup('{ warm: 0, max: 1 }', '{ waitingPerAddress: 2, hold: 25s }');
  await fleet.start();
  const held = [
    hold(fleet, 'demo', ticketOf(await fleet.claim('demo', { visitor: A }))),
    hold(fleet, 'demo', ticketOf(await fleet.claim('demo', { visitor: A }))),
  ];
  await settle();
  assert.deepEqual(await fleet.claim('demo', { visitor: A }), { kind: 'limited', why: 'waiting-places', limit: 2, retryAfterMs: 25_000 });
  assert.equal((await fleet.claim('demo', { visitor: B })).kind, 'queued', 'another address still gets a place');
  held[0]!.leave();
  await settle();
  assert.equal((await fleet.claim('demo', { visitor: A })).kind, 'queued', 'a place freed');
  await fleet.stop();
});

test('the claim rate: a burst, then one claim per token, each waiter offered at the instant its token is there', async () => {
  const { clock, rt, fleet } = setup('{ warm: 6, max: 6, parallel: 6 }', '{ claimRate: { perSecond: 2, burst: 3 } }');
  rt.autoReady = true;
  await fleet.start();
  await settle();
  const got = [];
  for (let i = 0; i < 3; i++) got.push(await fleet.claim('demo', { visitor: `10.1.0.${i}` }));
  assert.deepEqual(
    got.map((r) => r.kind),
    ['session', 'session', 'session'],
    'the burst',
  );
  const q = await fleet.claim('demo', { visitor: '10.1.0.9' });
  assert.equal(q.kind, 'queued');
  if (q.kind !== 'queued') return;
  assert.equal(q.line.reason, 'throttled');
  assert.equal(q.line.estimatedWaitMs, 500);
  const h = hold(fleet, 'demo', q.ticket);
  await clock.advance(499);
  assert.equal(h.settled(), undefined);
  await clock.advance(1);
  assert.equal(h.settled()?.kind, 'offer', 'at 500 ms, the next token');
  assert.equal((await fleet.claim('demo')).kind, 'session', 'in-process claims (no visitor) are not rate-limited');
  await fleet.stop();
});

test('estimates: starting instances by the start-up times seen; a full class by the earliest session ends', async () => {
  const { clock, rt, fleet } = setup('{ warm: 0, max: 2, parallel: 2 }');
  await fleet.start();
  const a = hold(fleet, 'demo', ticketOf(await fleet.claim('demo', { visitor: A })));
  await settle();
  assert.deepEqual([a.lines.at(-1)?.reason, a.lines.at(-1)?.estimatedWaitMs], ['starting', undefined], 'no start-up seen yet: no number');
  await clock.advance(20_000);
  rt.readyAll();
  await settle();
  const sa = await collectOffer(fleet, 'demo', a);
  fleet.event(sa.session, 'request');
  fleet.connectionOpened(sa.session); // its tab's WebSocket: no grace deadline while open
  const aEnds = sa.claimedAt + 20 * 60_000; // idle, 20 min after its last activity (the claim)
  // The next visitor: a new instance starts (room for one more), expected 20 s after its create.
  const b = hold(fleet, 'demo', ticketOf(await fleet.claim('demo', { visitor: B })));
  await settle();
  assert.deepEqual([b.lines.at(-1)?.reason, b.lines.at(-1)?.estimatedWaitMs], ['starting', 20_000]);
  assert.equal(fleet.status()[0]!.estimatedWaitMs, aEnds - clock.now() + 20_000, 'a newcomer now: max reached, after the first session end');
  await clock.advance(10_000);
  assert.equal(b.lines.at(-1)?.estimatedWaitMs, 20_000, 'told on changes, not on every tick');
  rt.readyAll();
  await settle();
  const sb = await collectOffer(fleet, 'demo', b);
  fleet.event(sb.session, 'request');
  fleet.connectionOpened(sb.session);
  // Full: max 2, both claimed. Session a ends first, then a new instance takes ~20 s to start.
  const c = await fleet.claim('demo', { visitor: '10.0.0.3' });
  if (c.kind !== 'queued') return assert.fail('expected a place in line');
  assert.equal(c.line.reason, 'full');
  assert.equal(c.line.estimatedWaitMs, aEnds - clock.now() + 20_000);
  const hc = hold(fleet, 'demo', c.ticket);
  const d = hold(fleet, 'demo', ticketOf(await fleet.claim('demo', { visitor: '10.0.0.4' })));
  await settle();
  assert.equal(d.lines.at(-1)?.position, 2);
  assert.equal(d.lines.at(-1)?.estimatedWaitMs, sb.claimedAt + 20 * 60_000 - clock.now() + 20_000, 'the second place: the second session end');
  assert.equal(fleet.status()[0]!.estimatedWaitMs, undefined, 'a third newcomer: no third session to wait for');
  hc.leave();
  await fleet.stop();
});

test('a client acting as 30 tabs that collect and never use, ahead of 20 students at its address: it never holds more than the limit, and the students get in', async () => {
  const { clock, rt, fleet } = setup('{ warm: 10, max: 60, parallel: 60 }');
  rt.autoReady = true;
  await fleet.start();
  await settle();
  const t0 = clock.now();
  // Every tab collects its offer at once and never makes a request.
  const tabs = Promise.all(
    Array.from({ length: 30 }, async () => {
      const r = await fleet.claim('demo', { visitor: A });
      if (r.kind === 'session') return;
      const h = hold(fleet, 'demo', ticketOf(r));
      const o = await h.outcome;
      if (o.kind === 'offer') await fleet.collect('demo', o.collect);
    }),
  );
  await clock.advance(1000);
  const admitted: number[] = [];
  const students = Array.from({ length: 20 }, async () => {
    const r = await fleet.claim('demo', { visitor: A });
    const target = r.kind === 'session' ? r.target : await collectOffer(fleet, 'demo', hold(fleet, 'demo', ticketOf(r)), 600_000);
    fleet.event(target.session, 'request'); // the student's browser follows the redirect
    admitted.push(clock.now() - t0);
  });
  let maxUnused = 0;
  for (let t = 0; t < 120 && admitted.length < 20; t++) {
    await clock.advance(1000);
    maxUnused = Math.max(maxUnused, fleet.liveSessions().filter((s) => s.firstUseBy !== undefined).length);
  }
  await Promise.all(students);
  await clock.advance(60_000);
  await tabs;
  console.log(
    `# 30 unused tabs ahead of 20 students at one address: students admitted by ${Math.max(...admitted)} ms of clock; unused claims held at most ${maxUnused}`,
  );
  assert.equal(admitted.length, 20);
  assert.ok(maxUnused <= 10, `never more than unusedClaimsPerAddress unused (${maxUnused})`);
  assert.ok(Math.max(...admitted) <= 3 * 15_000 + 2000, 'within three first-use rounds (30 tabs / 10 a round)');
  await fleet.stop();
});
