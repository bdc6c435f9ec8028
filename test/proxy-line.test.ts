// The waiting line through the proxy, on real sockets (port 0) with the real Fleet, FakeRuntime
// instances reached at one echo backend, and the manual clock for every deadline: cookieless
// polling, abandoned pages, guessed tickets, a class arriving at an empty pool, a drain from the
// address a class shares, what the page says when the class is full, and a browser's entry held
// briefly (queue.pageHold) before the waiting page.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { ManualClock, settle } from '../core/clock.js';
import { parseConfig } from '../core/config.js';
import { Fleet } from '../pool/fleet.js';
import { endDeadline } from '../pool/reaper.js';
import { MemoryTrafficLog } from '../pool/traffic-log.js';
import { roughDuration } from '../proxy/pages.js';
import { openWebSocketSockets } from '../proxy/index.js';
import { startProxyServer, type ProxyServer } from './helpers/fake-pool.js';
import { FakeRuntime, fakePortCheck } from './helpers/fake-runtime.js';
import { CookieJar, closeServer, follow, listen, request, type Reply } from './helpers/http.js';
import { openEventStream, type EventStream } from './helpers/sse.js';
import { until } from './helpers/wait.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
  assert.equal(openWebSocketSockets(), 0);
});

interface Room {
  clock: ManualClock;
  rt: FakeRuntime;
  fleet: Fleet;
  p: ProxyServer;
  log: MemoryTrafficLog;
  backendHits: () => number;
}

/** The real fleet behind the proxy; every instance answers at one echo backend (200 to anything). */
async function room(pool: string, o: { queue?: string; autoReady?: boolean } = {}): Promise<Room> {
  let hits = 0;
  const backend = createServer((req, res) => {
    hits++;
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`app ${req.url}`);
  });
  const backendPort = await listen(backend);
  const config = parseConfig(`
deployment: t
${o.queue ? `queue: ${o.queue}` : ''}
apps:
  - name: demo
    command: [fake]
    deepLink: /open?path=webapp.jl
    readiness: { log: "^READY$", timeout: 10m }
    pool: ${pool}
    idleTimeout: 20m
    maxLifetime: 90m
    grace: 5m
`);
  const clock = new ManualClock();
  const rt = new FakeRuntime();
  rt.backendPort = backendPort;
  rt.autoReady = o.autoReady ?? false;
  const log = new MemoryTrafficLog();
  const fleet = new Fleet({ config, runtimes: { process: rt }, clock, portCheck: fakePortCheck, trafficLog: log });
  const p = await startProxyServer({ config, pool: fleet, clock });
  cleanups.push(async () => {
    await p.close();
    assert.equal(p.proxy.openSockets(), 0, 'proxy holds no socket after close (streams, held requests)');
    await fleet.stop();
    await closeServer(backend);
  });
  await fleet.start();
  await settle();
  return { clock, rt, fleet, p, log, backendHits: () => hits };
}

const html = { accept: 'text/html' };
/** The waiting page at once (no queue.pageHold), for the tests of the page and its stream. */
const PAGE_AT_ONCE = { queue: '{ pageHold: 0 }' };
const waitUrlOf = (page: Reply): string => /data-wait="([^"]+)"/.exec(page.text)![1]!.replace(/&amp;/g, '&');

/** A browser opening /demo/ with no instance free: the waiting page, then its stream (what the page's script does). */
async function waitingPage(r: Room, jar = new CookieJar()): Promise<{ jar: CookieJar; page: Reply; stream: EventStream }> {
  const page = await request(`${r.p.url}/demo/`, { jar, headers: html });
  assert.equal(page.status, 503, `expected the waiting page, got ${page.status} ${page.text.slice(0, 200)}`);
  const stream = await openEventStream(`${r.p.url}${waitUrlOf(page)}`, { jar });
  cleanups.push(() => stream.close());
  await stream.next('line');
  return { jar, page, stream };
}

/** What the page does on `ready`: go to the collect URL, follow to the app. */
async function enter(r: Room, jar: CookieJar, url: string): Promise<Reply> {
  const f = await follow(`${r.p.url}${url}`, { jar, headers: html });
  assert.equal(f.hops[0]!.reply.status, 302, 'collect: cookie and redirect');
  assert.equal(f.final.status, 200);
  assert.equal(f.url, `${r.p.url}/demo/open?path=webapp.jl`);
  return f.final;
}

const sessionOf = (r: Room, jar: CookieJar): string | undefined => {
  const v = jar.get('warmpool_demo');
  const p = v === undefined ? undefined : r.p.proxy.codec.verify(v, 'demo');
  return p?.ok ? p.payload.session : undefined;
};

test('cookieless polling every second does not block anyone: ready instances go to connected waiters, in order', async () => {
  const r = await room('{ warm: 0, max: 3, parallel: 3 }', PAGE_AT_ONCE);
  const polls: Reply[] = [];
  const poll = async () => {
    polls.push(await request(`${r.p.url}/demo/`, { headers: html }));
  };
  await poll();
  await r.clock.advance(500);
  const s1 = await waitingPage(r);
  const s2 = await waitingPage(r);
  assert.equal(s2.stream.events.at(-1)!.data.position, 2);
  for (let i = 0; i < 5; i++) {
    await r.clock.advance(1000);
    await poll();
  }
  let st = r.fleet.status()[0]!;
  assert.deepEqual([st.queued, st.starting], [2, 2], 'six polls took no place in line and started nothing');
  r.rt.print(r.rt.live[0]!, 'READY');
  const ready1 = await s1.stream.next('ready');
  await poll();
  await enter(r, s1.jar, ready1.data.url);
  assert.equal(s2.stream.events.at(-1)!.data.position, 1, 'the second page moves up, live');
  r.rt.print(r.rt.live[1]!, 'READY');
  const ready2 = await s2.stream.next('ready');
  await enter(r, s2.jar, ready2.data.url);
  assert.ok(
    polls.every((x) => x.status === 503),
    'the poller got waiting pages while others waited',
  );
  st = r.fleet.status()[0]!;
  assert.deepEqual([st.claimed, st.queued], [2, 0]);
  assert.ok(
    r.fleet.liveSessions().every((s) => s.firstRequestSeen),
    'both students are in their app',
  );
  // The stream of a page still waiting gets a heartbeat every 15 s on the clock.
  const s3 = await waitingPage(r);
  await r.clock.advance(15_000);
  await until('a heartbeat', () => (s3.stream.comments >= 1 ? true : undefined));
});

test('an abandoned page frees its place at once; an instance offered to a page that never collects goes to the next at the collect deadline', async () => {
  const r = await room('{ warm: 0, max: 1, parallel: 1 }', PAGE_AT_ONCE);
  const a = await waitingPage(r);
  const b = await waitingPage(r);
  const c = await waitingPage(r);
  assert.deepEqual(
    [a, b, c].map((x) => x.stream.events.at(-1)!.data.position),
    [1, 2, 3],
  );
  a.stream.close(); // the tab is closed
  const at = r.clock.now();
  await until('b and c to move up', () => (b.stream.events.at(-1)?.data.position === 1 && c.stream.events.at(-1)?.data.position === 2 ? true : undefined));
  assert.equal(r.clock.now(), at, 'at once, no clock moved');
  assert.equal(r.fleet.status()[0]!.queued, 2);
  r.rt.print(r.rt.live[0]!, 'READY');
  const offered = await b.stream.next('ready');
  const offeredAt = r.clock.now();
  await b.stream.ended;
  // b's page never comes to collect (closed right after the event).
  await r.clock.advance(10_000 - 1);
  assert.equal(
    c.stream.events.some((e) => e.event === 'ready'),
    false,
  );
  await r.clock.advance(1);
  const cReady = await c.stream.next('ready');
  assert.equal(r.clock.now(), offeredAt + 10_000, 'offered to the next at the collect deadline');
  const late = await request(`${r.p.url}${offered.data.url}`, { jar: b.jar, headers: html });
  assert.deepEqual([late.status, late.headers.location], [302, '/demo/'], 'too late: back to the line');
  await enter(r, c.jar, cReady.data.url);
  assert.equal(sessionOf(r, b.jar), undefined);
});

test("guessed tickets: a random one, another's, or a ticket used as a collect token gets nothing and takes no place", async () => {
  const r = await room('{ warm: 0, max: 1 }', PAGE_AT_ONCE);
  const alice = await waitingPage(r);
  const ticket = decodeURIComponent(/wait=([^&"]+)/.exec(waitUrlOf(alice.page))![1]!);
  assert.match(ticket, /^[A-Za-z0-9_-]{22}$/, '128 random bits');
  const mallory = new CookieJar();
  const tries = [
    'AAAAAAAAAAAAAAAAAAAAAA',
    ticket.slice(0, -1) + (ticket.endsWith('A') ? 'B' : 'A'),
    `demo.${r.clock.now().toString(36)}.0`, // the old guessable form
    ticket, // Alice's own, while her page holds it
  ];
  for (const t of tries) {
    const s = await openEventStream(`${r.p.url}/demo/?wait=${encodeURIComponent(t)}`, { jar: mallory });
    const gone = await s.next('gone');
    assert.equal(gone.data.url, '/demo/', t);
    await s.ended;
    const held = await request(`${r.p.url}/demo/?wait=${encodeURIComponent(t)}`, { jar: mallory, headers: { accept: 'application/json' } });
    assert.equal(held.status, 410, `a held request with ${t}`);
    assert.equal(JSON.parse(held.text).error.code, 'PLACE_LAPSED');
    assert.equal((await request(`${r.p.url}/demo/?collect=${encodeURIComponent(t)}`, { jar: mallory, headers: html })).headers.location, '/demo/');
  }
  assert.equal(r.fleet.status()[0]!.queued, 1, 'only Alice is in line');
  r.rt.print(r.rt.live[0]!, 'READY');
  const ready = await alice.stream.next('ready');
  const hijack = await request(`${r.p.url}/demo/?collect=${encodeURIComponent(ticket)}`, { jar: mallory, headers: html });
  assert.equal(hijack.headers.location, '/demo/', 'the ticket does not collect');
  await enter(r, alice.jar, ready.data.url);
  assert.equal(sessionOf(r, mallory), undefined, 'Mallory got nothing');
  assert.ok(sessionOf(r, alice.jar));
});

test('a class arriving at an empty pool: each student gets in at the clock instant their instance is ready, not after a retry period', async () => {
  const N = 12;
  const r = await room(`{ warm: 0, max: ${N}, parallel: ${N} }`, PAGE_AT_ONCE);
  const students: Awaited<ReturnType<typeof waitingPage>>[] = [];
  for (let i = 0; i < N; i++) students.push(await waitingPage(r));
  assert.equal(r.fleet.status()[0]!.starting, N, 'an instance started for each page');
  const instances = [...r.rt.live];
  for (let i = 0; i < N; i++) {
    await r.clock.advance(i === 0 ? 8000 : 700 + (i % 3) * 300); // instances become ready at uneven times
    r.rt.print(instances[i]!, 'READY');
    const at = r.clock.now();
    const ready = await students[i]!.stream.next('ready');
    await enter(r, students[i]!.jar, ready.data.url);
    const s = r.fleet.liveSessions().find((x) => x.id === sessionOf(r, students[i]!.jar))!;
    assert.equal(s.member.readyAt, at);
    assert.equal(s.claimedAt, at, `student ${i}: collected at the instant of readiness`);
    assert.equal(s.member.id, instances[i], 'in order of arrival');
  }
  assert.equal(r.log.entries.filter((e) => e.type === 'claimed' && e.waitedInLine).length, N);
});

test('the page tells the truth when the class is full: no "being started", the place in line, a rough wait from the earliest session deadline', async () => {
  const r = await room('{ warm: 0, max: 2, parallel: 2 }', PAGE_AT_ONCE);
  const a = await waitingPage(r);
  const b = await waitingPage(r);
  await r.clock.advance(30_000);
  r.rt.readyAll(); // start-up seen: 30 s
  await enter(r, a.jar, (await a.stream.next('ready')).data.url);
  await r.clock.advance(60_000);
  await enter(r, b.jar, (await b.stream.next('ready')).data.url);
  await r.clock.advance(60_000);
  const page = await request(`${r.p.url}/demo/`, { headers: html });
  assert.equal(page.status, 503);
  // The earliest end: a's grace, 5 min after its last request (no WebSocket open), then ~30 s to start a new instance.
  const soonest = Math.min(...r.fleet.liveSessions().map(endDeadline));
  const expected = soonest - r.clock.now() + 30_000;
  assert.equal(expected, 5 * 60_000 - 2 * 60_000 + 30_000);
  assert.match(page.text, /The class is full: all 2 instances of demo are in use\./);
  assert.match(page.text, /You are next in line\./);
  assert.ok(page.text.includes(`A place should free up in ${roughDuration(expected)}, when the earliest session ends.`), page.text);
  assert.doesNotMatch(page.text, /being (started|prepared)/);
  const c = await openEventStream(`${r.p.url}${waitUrlOf(page)}`);
  cleanups.push(() => c.close());
  const line = await c.next('line');
  assert.deepEqual([line.data.reason, line.data.position, line.data.estimatedWaitMs], ['full', 1, expected]);
  const d = await waitingPage(r);
  assert.equal(d.stream.events.at(-1)!.data.place, 'You are number 2 in line.');
  assert.match(d.stream.events.at(-1)!.data.detail, /when the earliest session ends/);
  assert.equal(r.fleet.status()[0]!.estimatedWaitMs, undefined, 'a third: no third session to wait for');
  // An API client is held, then told the same in JSON, with the URL that keeps its place.
  const api = request(`${r.p.url}/demo/`, { headers: { accept: 'application/json' } });
  await until('the API client to hold a place', () => (r.fleet.status()[0]!.queued === 3 ? true : undefined));
  await r.clock.advance(25_000);
  const held = await api;
  assert.equal(held.status, 503);
  assert.equal(held.headers['retry-after'], '1');
  const body = JSON.parse(held.text);
  assert.deepEqual([body.error.code, body.reason, body.position], ['POOL_EXHAUSTED', 'full', 3]);
  assert.match(body.wait, /^\/demo\/\?wait=[A-Za-z0-9_-]{22}$/);
});

test("a drain of 1,000 claims from one address while 60 students behind that same address arrive: all 60 get in; the drainer's claims go back", async () => {
  const POOL = 80;
  const r = await room(`{ warm: 10, max: ${POOL}, parallel: ${POOL} }`, { autoReady: true });
  assert.equal(r.fleet.status()[0]!.ready, 10);
  const t0 = r.clock.now();
  const studentJars: CookieJar[] = [];
  const admittedAt: number[] = [];
  const drain = { fired: 0, claimed: 0, refused: 0, held: 0, other: 0 };
  const drainerHeld = (): number => {
    const students = new Set(studentJars.map((j) => sessionOf(r, j)));
    return r.fleet.liveSessions().filter((s) => !students.has(s.id)).length;
  };
  let maxDrainerHeld = 0;
  const inflight: Promise<unknown>[] = [];

  // The drainer: 1,000 plain GET /demo/ (curl-like, never following), 100 per clock second.
  const drainer = (async () => {
    for (let k = 0; k < 1000; k++) {
      const due = t0 + k * 10;
      if (r.clock.now() < due) await r.clock.sleep(due - r.clock.now());
      drain.fired++;
      inflight.push(
        request(`${r.p.url}/demo/`, { headers: { accept: '*/*' } }).then((x) => {
          if (x.status === 302) drain.claimed++;
          else if (x.status === 429) drain.refused++;
          else if (x.status === 503) drain.held++;
          else drain.other++;
        }),
      );
    }
  })();

  // 60 students, one every 150 ms of clock, each a browser: follow the redirect into the app, or wait on the page.
  const student = async (i: number): Promise<void> => {
    await r.clock.sleep(i * 150 + 5);
    const jar = new CookieJar();
    studentJars.push(jar);
    for (;;) {
      const first = await request(`${r.p.url}/demo/`, { jar, headers: html });
      if (first.status === 302) {
        assert.equal((await request(`${r.p.url}${first.headers.location}`, { jar, headers: html })).status, 200);
        break;
      }
      if (first.status === 429) {
        await r.clock.sleep(Number(first.headers['retry-after']) * 1000);
        continue;
      }
      assert.equal(first.status, 503);
      const s = await openEventStream(`${r.p.url}${waitUrlOf(first)}`, { jar });
      const e = await waitFor(s);
      if (e.event !== 'ready') continue;
      await enter(r, jar, e.data.url);
      break;
    }
    admittedAt[i] = r.clock.now() - t0;
  };
  // A student waits as long as it takes (on the clock): no real-time limit on their stream.
  const waitFor = async (s: EventStream) => {
    for (;;) {
      const e = s.events.find((x) => x.event === 'ready' || x.event === 'gone');
      if (e) return e;
      await new Promise((res) => setTimeout(res, 2));
    }
  };
  const students = Promise.all(Array.from({ length: 60 }, (_, i) => student(i)));
  let done = false;
  void students.then(() => {
    done = true;
  });

  // The clock, in small steps while requests fly (larger once all are in), letting loopback I/O through between steps.
  let drainEnd = Infinity;
  for (let step = 0; ; step++) {
    await r.clock.advance(drain.fired < 1000 ? 50 : done ? 1000 : 100);
    await new Promise((res) => setTimeout(res, 3));
    maxDrainerHeld = Math.max(maxDrainerHeld, drainerHeld());
    if (drain.fired === 1000 && drainEnd === Infinity) {
      await Promise.all(inflight);
      drainEnd = r.clock.now();
    }
    if (done && r.clock.now() >= drainEnd + 30_000) break;
    assert.ok(step < 4000, `stuck: ${JSON.stringify({ drain, admitted: admittedAt.filter((x) => x !== undefined).length, status: r.fleet.status()[0] })}`);
  }
  await drainer;
  await students;
  const heldAtEnd = drainerHeld();
  const st = r.fleet.status()[0]!;
  const free = POOL - heldAtEnd;
  console.log(
    `# drain: ${JSON.stringify(drain)}; the drainer held at most ${maxDrainerHeld} instances, ${heldAtEnd} at drain end + 30 s; ` +
      `students admitted within ${Math.max(...admittedAt)} ms of clock (median ${[...admittedAt].sort((x, y) => x - y)[30]} ms); ` +
      `pool then: ${st.ready} ready, ${st.claimed} claimed, ${st.starting} starting of max ${POOL}; free for others ${free}/${POOL}; instances created ${r.rt.created.length}, removed ${r.rt.removed.length}`,
  );
  assert.equal(admittedAt.filter((x) => x !== undefined).length, 60, 'all 60 students got instances');
  const studentSessions = new Set(studentJars.map((j) => sessionOf(r, j)));
  assert.equal(studentSessions.size, 60);
  assert.ok(
    r.fleet
      .liveSessions()
      .filter((s) => studentSessions.has(s.id))
      .every((s) => s.firstRequestSeen),
    'each student is in the app',
  );
  assert.equal(drain.fired, 1000);
  assert.ok(maxDrainerHeld <= 10, `the drainer never held more than queue.unusedClaimsPerAddress (held ${maxDrainerHeld})`);
  assert.ok(free / POOL >= 0.8, `at least 80 % of the pool free for others 30 s after the drain (${free}/${POOL})`);
  assert.equal(heldAtEnd, 0, 'every drained claim went back');
  assert.ok(r.log.entries.filter((e) => e.type === 'returned-unused').length >= drain.claimed, 'each unused claim went back, logged');
});

test("a browser's entry with no instance free is held (queue.pageHold) and redirected with its cookie the instant an instance is ready: no waiting page", async () => {
  const r = await room('{ warm: 0, max: 1, parallel: 1 }');
  const jar = new CookieJar();
  const pending = request(`${r.p.url}/demo/`, { jar, headers: html });
  await until('the request to hold a place', () => (r.fleet.status()[0]!.queued === 1 ? true : undefined));
  await r.clock.advance(1500); // within the default 2 s
  r.rt.print(r.rt.live[0]!, 'READY');
  const at = r.clock.now();
  const reply = await pending;
  assert.equal(reply.status, 302, reply.text.slice(0, 200));
  assert.equal(reply.headers.location, '/demo/open?path=webapp.jl');
  const s = r.fleet.liveSessions().find((x) => x.id === sessionOf(r, jar));
  assert.ok(s, 'the cookie names the new session');
  assert.equal(s.claimedAt, at, 'claimed at the instant of readiness');
  assert.equal((await request(`${r.p.url}${reply.headers.location}`, { jar, headers: html })).status, 200);
});

test('when queue.pageHold runs out the browser gets the waiting page, whose stream keeps the place it had; a held browser that leaves gives it up', async () => {
  const r = await room('{ warm: 0, max: 1, parallel: 1 }', { queue: '{ pageHold: 3s }' });
  const a = new CookieJar();
  const b = new CookieJar();
  const aReply = request(`${r.p.url}/demo/`, { jar: a, headers: html });
  await until('a to hold a place', () => (r.fleet.status()[0]!.queued === 1 ? true : undefined));
  await r.clock.advance(1000);
  const bReply = request(`${r.p.url}/demo/`, { jar: b, headers: html });
  await until('b to hold a place', () => (r.fleet.status()[0]!.queued === 2 ? true : undefined));
  await r.clock.advance(2000 - 1);
  assert.equal(r.fleet.status()[0]!.queued, 2, 'both still held 1 ms before the hold of a runs out');
  await r.clock.advance(1);
  const aPage = await aReply;
  assert.equal(aPage.status, 503);
  assert.match(aPage.text, /data-wait=/);
  const aStream = await openEventStream(`${r.p.url}${waitUrlOf(aPage)}`, { jar: a });
  cleanups.push(() => aStream.close());
  assert.equal((await aStream.next('line')).data.position, 1, 'a keeps its place ahead of b');
  await r.clock.advance(1000);
  const bPage = await bReply;
  assert.equal(bPage.status, 503);
  const bStream = await openEventStream(`${r.p.url}${waitUrlOf(bPage)}`, { jar: b });
  cleanups.push(() => bStream.close());
  assert.equal((await bStream.next('line')).data.position, 2);
  // A third browser, held, closes its tab: its place goes at once.
  const ac = new AbortController();
  const c = request(`${r.p.url}/demo/`, { headers: html, signal: ac.signal }).catch(() => undefined);
  await until('c to hold a place', () => (r.fleet.status()[0]!.queued === 3 ? true : undefined));
  ac.abort();
  await c;
  await until('c to give up its place', () => (r.fleet.status()[0]!.queued === 2 ? true : undefined));
  r.rt.print(r.rt.live[0]!, 'READY');
  await enter(r, a, (await aStream.next('ready')).data.url);
  assert.ok(sessionOf(r, a));
  assert.equal(sessionOf(r, b), undefined);
});
