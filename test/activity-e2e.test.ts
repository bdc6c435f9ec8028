// End to end for activity from observed traffic: the real proxy and Fleet on one ManualClock, the process
// runtime running the Pluto and Jupyter stand-ins, the driver clients over real sockets. Each scenario plays a tab's
// traffic at its simulated instants and reads when and why the session ended from the traffic log's `ended` entry.

import { test, describe, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JupyterClient, PlutoClient, pollRest, type PlutoReply } from '../examples/standin/driver.js';
import { createWarmpool, type Warmpool } from '../index.js';
import { ManualClock } from '../core/clock.js';
import { parseConfig } from '../core/config.js';
import type { Session } from '../pool/fleet.js';
import { PortAllocator } from '../pool/ports.js';
import { ProcessRuntime } from '../pool/runtimes/process.js';
import { JsonlTrafficLog, type TrafficLogSink } from '../pool/traffic-log.js';
import { openWebSocketSockets } from '../proxy/index.js';
import { CookieJar, closeServer, follow, listen, rawUpgrade, request, wsClosed, wsOpen } from './helpers/http.js';
import { eventually, waitForStatus } from './helpers/wait.js';

const SEC = 1000;
const MIN = 60 * SEC;
const IDLE = 20 * MIN;
const LIFE = 75 * MIN;
const GRACE = 5 * MIN;
/** A Monday, 09:00 UTC: the class starts. All simulated instants below are offsets from here. */
const T0 = Date.UTC(2025, 0, 6, 9, 0, 0);
const PLUTO = join(process.cwd(), 'dist/examples/standin/server.js');
const JUPYTER = join(process.cwd(), 'dist/examples/standin/jupyter.js');
const CLI = join(process.cwd(), 'dist/bin/warmpool.js');

type Entry = Record<string, unknown> & { t: number };

/** The traffic log as the fleet writes it: the JSON-lines files (for the CLI) and a copy in memory (to assert on). */
class TeeLog implements TrafficLogSink {
  readonly entries: Entry[] = [];
  constructor(private readonly file: JsonlTrafficLog) {}
  write(e: Entry): void {
    this.entries.push(e);
    this.file.write(e);
  }
  close(): Promise<void> {
    return this.file.close();
  }
}

interface World {
  wp: Warmpool;
  rt: ProcessRuntime;
  clock: ManualClock;
  url: string;
  log: TeeLog;
  logDir: string;
  /** Ports of removed instances, in order (fleet.onInstanceRemoved). */
  removed: number[];
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
  assert.equal(openWebSocketSockets(), 0, 'no relayed socket left open');
});
after(() => assert.equal(openWebSocketSockets(), 0));

async function world(apps: string): Promise<World> {
  const stateDir = mkdtempSync(join(tmpdir(), 'wp-activity-'));
  const logDir = join(stateDir, 'log');
  const config = parseConfig(`
deployment: activity-e2e
stateDir: ${stateDir}
ports: { from: 44000, to: 44999 }
log: { dir: ${logDir} }
apps:
${apps}
`);
  const clock = new ManualClock(T0);
  const rt = new ProcessRuntime({ deployment: 'activity-e2e', ports: new PortAllocator(44000, 44999), stateDir, pollMs: 100 });
  const log = new TeeLog(new JsonlTrafficLog(logDir));
  const wp = await createWarmpool(config, {
    clock,
    runtimes: { process: rt },
    trafficLog: log,
    log: () => undefined,
    env: { WARMPOOL_COOKIE_KEY: 'activity-e2e-cookie-key-0123456789abcdef' },
  });
  const removed: number[] = [];
  wp.fleet.onInstanceRemoved((_host, port) => removed.push(port));
  const server = createServer((req, res) => wp.handleRequest(req, res));
  server.on('upgrade', (req, socket, head) => wp.handleUpgrade(req, socket, head));
  const port = await listen(server);
  // Two steps, so a test can stop warmpool (flushing the log) and still read the log before the folder goes.
  cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
  cleanups.push(async () => {
    await wp.close(false);
    assert.equal(wp.openSockets(), 0, 'proxy sockets back to zero');
    await closeServer(server);
    const left = (await rt.list()).filter((r) => r.running);
    assert.deepEqual(
      left.map((r) => r.instanceId),
      [],
      'no instance process left behind',
    );
  });
  for (const app of wp.config.apps) await waitForStatus(wp.fleet, app.name, (s) => s.ready === app.pool.warm);
  return { wp, rt, clock, url: `http://127.0.0.1:${port}`, log, logDir, removed };
}

const durations = `
    idleTimeout: 20m
    maxLifetime: 75m
    grace: 5m`;

/** The Pluto stand-in as a process app: readiness by its "Go to" line (printed once it listens), secret in the query. */
const plutoApp = (env = '') => `
  - name: demo
    command: [${process.execPath}, ${PLUTO}]
    env: { STATE_BYTES: 20000${env} }
    deepLink: /open?path=webapp.jl
    readiness: { log: "^Go to http", timeout: 1h }
    pool: { warm: 1, max: 1 }
    classifier: pluto${durations}
    secret: { env: PLUTO_SECRET, inject: { query: secret } }
`;

/** The Jupyter stand-in: served under its base URL (never stripped), token in an Authorization header. */
const jupyterApp = `
  - name: jup
    command: [${process.execPath}, ${JUPYTER}]
    env: { PING_INTERVAL_MS: 500 }
    deepLink: /lab
    prefix: { baseUrlEnv: BASE_URL }
    readiness: { log: "is running at", timeout: 1h }
    pool: { warm: 1, max: 1 }
    classifier: jupyter${durations}
    secret: { env: JUPYTER_TOKEN, inject: { header: Authorization, headerFormat: "token {secret}" } }
`;

// ---------------------------------------------------------------------------------------------
// Helpers

/** A visitor opens the app: the entry claims and sets the cookie, the deep link loads the page. */
async function visit(w: World, app: string): Promise<{ jar: CookieJar; session: Session }> {
  const jar = new CookieJar();
  const { final } = await follow(`${w.url}/${app}/`, { jar, headers: { accept: 'text/html' } });
  assert.equal(final.status, 200);
  const live = w.wp.fleet.liveSessions();
  assert.equal(live.length, 1);
  return { jar, session: live[0]! };
}

function isLive(w: World, s: Session): boolean {
  return w.wp.fleet.liveSessions().some((x) => x.id === s.id);
}

function endedEntry(w: World, s: Session): Entry | undefined {
  return w.log.entries.find((e) => e.type === 'ended' && e.session === s.id);
}

/** The `ended` entry says the session was reaped for `reason` at `expected` (±1 s of simulated time). */
function assertReaped(w: World, s: Session, reason: string, expected: number): Entry {
  const e = endedEntry(w, s);
  assert.ok(e, `session ended (clock at +${(w.clock.now() - T0) / SEC} s)`);
  const at = (t: unknown) => `+${((t as number) - T0) / SEC} s`;
  assert.equal(e.reason, reason, `reason ${String(e.reason)} at ${at(e.t)}, expected ${reason} at ${at(expected)}`);
  assert.ok(Math.abs(e.t - expected) <= SEC, `reaped at ${at(e.t)}, expected ${at(expected)} ±1 s`);
  assert.ok(Math.abs((e.deadline as number) - expected) <= SEC, `deadline ${at(e.deadline)}, expected ${at(expected)}`);
  assert.ok((e.late as number) >= 0 && (e.late as number) <= SEC, `late ${String(e.late)} ms`);
  return e;
}

/** Moves the clock to `at` unless the session ended first (the reaper fires inside advance). */
async function advanceTo(w: World, at: number): Promise<void> {
  if (at > w.clock.now()) await w.clock.advance(at - w.clock.now());
}

function sum(o: Record<string, number>): number {
  return Object.values(o).reduce((a, b) => a + b, 0);
}

/**
 * An open Pluto tab as the real client drives it (NOTEBOOK-TRAFFIC.md): `ping` 28 s after each `pong`, a burst of 18
 * back-to-back `current_time` every 60 s; optionally a person moving a slider every `bondEveryMs`. Each message goes
 * out at its simulated instant; the reply has come back through the proxy (so the proxy has counted it) before the
 * clock moves on.
 */
class PlutoTab {
  private nextPing: number;
  private nextBurst: number;
  private nextBond: number;
  bonds = 0;

  constructor(
    private readonly w: World,
    private readonly s: Session,
    readonly c: PlutoClient,
    private readonly bondEveryMs = 0,
  ) {
    const now = w.clock.now();
    this.nextPing = now + 28 * SEC;
    this.nextBurst = now + MIN;
    this.nextBond = bondEveryMs > 0 ? now + bondEveryMs : Infinity;
  }

  /** Plays the tab until the clock reaches `until`, or until the session ends. */
  async runTo(until: number): Promise<void> {
    const { w, s, c } = this;
    for (;;) {
      const next = Math.min(this.nextPing, this.nextBurst, this.nextBond);
      if (next > until) break;
      await advanceTo(w, next);
      if (!isLive(w, s)) return;
      if (next === this.nextBond) {
        await c.setBond(++this.bonds);
        this.nextBond += this.bondEveryMs;
      }
      if (next === this.nextPing) {
        await c.ping();
        this.nextPing = w.clock.now() + 28 * SEC; // 28 s after the pong, which came back at once
      }
      if (next === this.nextBurst) {
        await c.currentTimeBurst(18);
        this.nextBurst += MIN;
      }
      const t = s.target.traffic;
      for (const [type, n] of Object.entries(c.sent)) assert.equal(t.messagesIn[type], n, `proxy counted every ${type}`);
    }
    await advanceTo(w, until);
  }
}

/**
 * An open JupyterLab tab: REST polls every 10 s (kernels, sessions, terminals) and every 61 s (also kernelspecs, me)
 * through the proxy, the kernel socket answering the server's ping frames by itself (real time, every 500 ms: the
 * stand-in gives up after 1.5 s without a pong, which a loaded machine must not reach); optionally an
 * `execute_request` every `executeEveryMs`. Every `pongEveryMs` of simulated time it waits for another pong to be
 * relayed, so keepalives really interleave with simulated time.
 */
class JupyterTab {
  private nextPoll: number;
  private nextSlow: number;
  private nextExec: number;
  private nextPong: number;
  private closedWith?: { code: number; reason: string };
  executes = 0;
  polls = 0;

  constructor(
    private readonly w: World,
    private readonly s: Session,
    readonly k: JupyterClient,
    private readonly headers: Record<string, string>,
    private readonly o: { executeEveryMs?: number; pongEveryMs: number },
  ) {
    const now = w.clock.now();
    this.nextPoll = now + 10 * SEC;
    this.nextSlow = now + 61 * SEC;
    this.nextExec = o.executeEveryMs ? now + o.executeEveryMs : Infinity;
    this.nextPong = now + o.pongEveryMs;
    void k.closed.then((c) => {
      this.closedWith = c;
    });
  }

  async runTo(until: number): Promise<void> {
    const { w, s, k } = this;
    const base = `${w.url}/jup/`;
    const t = s.target.traffic;
    for (;;) {
      const next = Math.min(this.nextPoll, this.nextSlow, this.nextExec, this.nextPong);
      if (next > until) break;
      await advanceTo(w, next);
      if (!isLive(w, s)) return;
      if (next === this.nextPoll || next === this.nextSlow) {
        const before = t.requests['GET 2xx'] ?? 0;
        const slow = next === this.nextSlow;
        const statuses = await pollRest(base, this.headers, { slow });
        assert.deepEqual(new Set(Object.values(statuses)), new Set([200]));
        assert.equal(t.requests['GET 2xx'], before + Object.keys(statuses).length, 'proxy counted every poll');
        this.polls++;
        if (next === this.nextPoll) this.nextPoll += 10 * SEC;
        if (slow) this.nextSlow += 61 * SEC;
      }
      if (next === this.nextExec) {
        assert.ok(!this.closedWith, `kernel socket open at +${(next - T0) / SEC} s (closed with ${JSON.stringify(this.closedWith)})`);
        const ex = await k.execute(`${++this.executes}*7`);
        assert.equal(ex.text, String(this.executes * 7));
        assert.equal(t.messagesIn.execute_request, this.executes);
        this.nextExec += this.o.executeEveryMs!;
      }
      if (next === this.nextPong) {
        const before = t.framesIn.control;
        await eventually(() => t.framesIn.control > before, 'a pong to a server ping relayed', 10_000, 5);
        this.nextPong += this.o.pongEveryMs;
      }
    }
    await advanceTo(w, until);
  }
}

async function openJupyterTab(w: World): Promise<{ jar: CookieJar; session: Session; k: JupyterClient; headers: Record<string, string> }> {
  const { jar, session } = await visit(w, 'jup');
  const headers = { cookie: jar.header('/jup/') };
  const kernels = await request(`${w.url}/jup/api/kernels`, { jar });
  assert.equal(kernels.status, 200);
  const kernelId = (JSON.parse(kernels.text) as { id: string }[])[0]!.id;
  const k = await JupyterClient.open(JupyterClient.channelsUrl(`${w.url}/jup/`, kernelId), { headers });
  await k.kernelInfo(); // what JupyterLab sends on every kernel socket (re)connect: not activity
  return { jar, session, k, headers };
}

// ---------------------------------------------------------------------------------------------

describe('idle and active tabs, reaped on the injected clock (process runtime, real sockets)', () => {
  test('an idle Pluto tab (pings and clock-sync bursts only) is reaped at its idle deadline; afterwards the cookie gets the session-ended page and the process is gone', async () => {
    const w = await world(plutoApp());
    const { jar, session: s } = await visit(w, 'demo');
    const pid = Number((await w.rt.list()).find((r) => r.instanceId === s.member.id)!.runtimeId);
    const c = await PlutoClient.open(`${w.url}/demo/`, { cookie: jar.header('/demo/') });
    await c.start();
    // The page loads at the claim instant are the last user activity.
    assert.equal(s.lastActive, T0);
    const deadline = T0 + IDLE;
    const tab = new PlutoTab(w, s, c);
    await tab.runTo(deadline - SEC);
    assert.ok(isLive(w, s), 'alive a second before the idle deadline');
    assert.equal(s.target.traffic.messagesIn.current_time, 19 * 18, 'the tab kept its clock synced all along');
    assert.ok(s.target.traffic.messagesIn.ping! >= 40);
    assert.equal(s.lastActive, T0, 'pings, clock syncs and the start-up messages are not activity');
    await tab.runTo(deadline + SEC);
    const e = assertReaped(w, s, 'idle', deadline);
    assert.equal((e.summary as { activeMs: number }).activeMs, 0, 'no active time at all');
    assert.ok(
      w.log.entries.some((e) => e.type === 'idle' && e.session === s.id && e.t === T0 + MIN),
      'noted idle after a minute',
    );
    const closed = await c.closed;
    assert.notEqual(closed.code, 1000, 'the reaped instance dropped the tab');

    // Scenario 6: coming back with the same cookie.
    const cookie = jar.header('/demo/');
    const up = await rawUpgrade(`${w.url}/demo/`, { cookie });
    assert.equal(up.status, 410, 'the reconnecting WebSocket is refused as ended');
    const page = await request(`${w.url}/demo/edit?id=x`, { jar, headers: { accept: 'text/html' } });
    assert.equal(page.status, 410);
    assert.match(page.text, /has ended\. It was idle for too long/);
    assert.match(page.text, /href="\/demo\/\?fresh=1"/, 'a button for a fresh instance');
    assert.equal(jar.header('/demo/'), '', 'the ended cookie is cleared');
    assert.equal((await request(`${w.url}/demo/ping`, { headers: { cookie } })).status, 410, 'the same cookie again: still ended');
    await eventually(() => w.removed.includes(s.target.port), 'the instance removed');
    assert.throws(() => process.kill(pid, 0), /ESRCH/, 'the instance process is gone');
    await eventually(() => w.wp.openSockets() === 0, 'the proxy holds no socket of the reaped session');
    // The button: a fresh instance once the pool has refilled.
    await waitForStatus(w.wp.fleet, 'demo', (st) => st.ready === 1);
    const fresh = await follow(`${w.url}/demo/?fresh=1`, { jar, headers: { accept: 'text/html' } });
    assert.equal(fresh.final.status, 200);
    const again = w.wp.fleet.liveSessions();
    assert.equal(again.length, 1);
    assert.notEqual(again[0]!.id, s.id);
    assert.notEqual(again[0]!.member.id, s.member.id);
  });

  test('an active Pluto tab (a slider moved every minute) outlives the idle deadline and is reaped at its maximum lifetime', async () => {
    const w = await world(plutoApp());
    const { jar, session: s } = await visit(w, 'demo');
    const c = await PlutoClient.open(`${w.url}/demo/`, { cookie: jar.header('/demo/') });
    await c.start();
    const tab = new PlutoTab(w, s, c, MIN);
    await tab.runTo(T0 + IDLE + SEC);
    assert.ok(isLive(w, s), 'not reaped at the idle deadline');
    assert.equal(s.lastActive, T0 + 20 * MIN, 'the last slider move is the last activity');
    await tab.runTo(T0 + LIFE - SEC);
    assert.ok(isLive(w, s), 'alive a second before the lifetime ends');
    await tab.runTo(T0 + LIFE + SEC);
    const e = assertReaped(w, s, 'lifetime', T0 + LIFE);
    assert.equal(tab.bonds, 74, 'a move every minute until then');
    assert.equal((e.summary as { activeMs: number }).activeMs, 74 * MIN, 'active from the claim to the last move');
    await c.closed;
  });

  test('Jupyter: a tab with only server pings and REST polling is reaped at its idle deadline', async () => {
    const w = await world(jupyterApp);
    const { session: s, k, headers } = await openJupyterTab(w);
    assert.equal(s.lastActive, T0, 'the lab page load at the claim is the last activity');
    const tab = new JupyterTab(w, s, k, headers, { pongEveryMs: 5 * MIN });
    await tab.runTo(T0 + IDLE - SEC);
    assert.ok(isLive(w, s));
    const t = s.target.traffic;
    assert.ok(tab.polls >= 110);
    assert.ok(k.pingsReceived >= 3 && t.framesIn.control >= 3, 'pongs relayed');
    assert.equal(t.messagesIn.kernel_info_request, 1);
    assert.equal(s.lastActive, T0, 'polls, pongs and kernel_info are not activity');
    await tab.runTo(T0 + IDLE + SEC);
    assertReaped(w, s, 'idle', T0 + IDLE);
    await k.closed;
    await eventually(() => w.wp.openSockets() === 0, 'the proxy holds no socket of the reaped session');
  });

  test('Jupyter: with execute requests the tab lives past the idle deadline, until its maximum lifetime', async () => {
    const w = await world(jupyterApp);
    const { session: s, k, headers } = await openJupyterTab(w);
    const tab = new JupyterTab(w, s, k, headers, { executeEveryMs: 4 * MIN, pongEveryMs: 25 * MIN });
    await tab.runTo(T0 + IDLE + SEC);
    assert.ok(isLive(w, s), 'not reaped at the idle deadline');
    assert.equal(s.lastActive, T0 + 20 * MIN);
    await tab.runTo(T0 + LIFE - SEC);
    assert.ok(isLive(w, s));
    await tab.runTo(T0 + LIFE + SEC);
    assertReaped(w, s, 'lifetime', T0 + LIFE);
    assert.equal(tab.executes, 18);
    await k.closed;
  });

  test('a session whose last connection closed is reaped after the grace period; requests without a socket hold it open', async () => {
    const w = await world(plutoApp());
    const { jar, session: s } = await visit(w, 'demo');
    const c = await PlutoClient.open(`${w.url}/demo/`, { cookie: jar.header('/demo/') });
    await c.start();
    const tab = new PlutoTab(w, s, c, MIN);
    await tab.runTo(T0 + 2 * MIN + 10 * SEC);
    assert.equal(s.lastActive, T0 + 2 * MIN);
    // The tab is closed.
    assert.equal((await c.close()).code, 1000);
    await eventually(() => s.target.traffic.openConnections === 0, 'the fleet heard the socket close');
    const closedAt = w.clock.now();
    assert.ok(w.log.entries.some((e) => e.type === 'ws-close' && e.session === s.id && e.t === closedAt));
    await advanceTo(w, closedAt + GRACE - SEC);
    assert.ok(isLive(w, s), 'alive a second before the grace period ends');
    await advanceTo(w, closedAt + GRACE + SEC);
    assertReaped(w, s, 'grace', closedAt + GRACE);

    // A visitor who loads the page but never opens a socket: the grace runs from the last request.
    await waitForStatus(w.wp.fleet, 'demo', (st) => st.ready === 1);
    const t1 = w.clock.now();
    const { jar: jar2, session: s2 } = await visit(w, 'demo');
    await advanceTo(w, t1 + 3 * MIN);
    assert.equal((await request(`${w.url}/demo/ping`, { jar: jar2 })).status, 200);
    await advanceTo(w, t1 + 3 * MIN + GRACE - SEC);
    assert.ok(isLive(w, s2), 'the request at +3 min held the grace period open');
    await advanceTo(w, t1 + 3 * MIN + GRACE + SEC);
    assertReaped(w, s2, 'grace', t1 + 3 * MIN + GRACE);
  });

  test('server pushes alone (a timer cell, a tab that sends nothing) never keep the instance alive', async () => {
    const w = await world(plutoApp(', PUSH_INTERVAL_MS: 20'));
    const { jar, session: s } = await visit(w, 'demo');
    const c = await PlutoClient.open(`${w.url}/demo/`, { cookie: jar.header('/demo/') });
    let pushes = 0;
    c.onPush = () => {
      pushes++;
    };
    const t = s.target.traffic;
    // Each simulated minute, at least one more push reaches the tab through the proxy before the clock moves on.
    for (let m = 1; m < 20; m++) {
      const before = t.messagesOut;
      await eventually(() => t.messagesOut > before, 'a push relayed', 10_000, 5);
      await advanceTo(w, T0 + m * MIN);
    }
    await advanceTo(w, T0 + IDLE - SEC);
    assert.ok(isLive(w, s));
    assert.ok(pushes >= 19 && t.messagesOut >= 19 && t.framesOut.data >= 19, `${pushes} pushes relayed`);
    assert.equal(sum(t.messagesIn), 0, 'the tab sent nothing');
    assert.equal(s.lastActive, T0);
    await advanceTo(w, T0 + IDLE + SEC);
    assertReaped(w, s, 'idle', T0 + IDLE);
    await c.closed;
  });
});

// ---------------------------------------------------------------------------------------------

/** Wire size of a client frame (masked) and of a server frame carrying n payload bytes, RFC 6455 §5.2. */
const clientFrame = (n: number) => n + 6 + (n < 126 ? 0 : n < 65536 ? 2 : 8);
const serverFrame = (n: number) => n + 2 + (n < 126 ? 0 : n < 65536 ? 2 : 8);

/** RFC 4180 rows (quoted fields, doubled quotes, CRLF). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\r') continue;
    else if (ch === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += ch;
  }
  return rows;
}

function cli(...args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, 'sessions', ...args], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, `warmpool sessions ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

describe('per-session accounting', () => {
  test('a scripted session: the ended summary and the CLI (list, show, --csv) give exactly the expected counts', async () => {
    const w = await world(plutoApp());
    const jar = new CookieJar();
    let httpOut = 0;
    let httpIn = 0;
    const relayed = async (method: string, path: string, status: number, body?: string) => {
      const r = await request(`${w.url}/demo${path}`, {
        jar,
        method,
        body,
        headers: { accept: 'text/html', ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
      });
      assert.equal(r.status, status, `${method} ${path}`);
      httpOut += r.body.length;
      httpIn += body ? Buffer.byteLength(body) : 0;
    };
    // The entry is answered by the proxy itself: a claim, not a relayed request.
    assert.equal((await request(`${w.url}/demo/`, { jar, headers: { accept: 'text/html' } })).status, 302);
    const s = w.wp.fleet.liveSessions()[0]!;
    await relayed('GET', '/open?path=webapp.jl', 302);
    await relayed('GET', `/edit?id=${s.target.session}`, 200);
    await relayed('GET', '/ping', 200);
    await relayed('GET', '/auth-check', 200);
    await relayed('GET', '/statefile?id=nope', 404);
    await relayed('POST', '/open?path=webapp.jl', 302, 'path=webapp.jl');
    await relayed('POST', '/edit', 404, 'x=1');
    await relayed('HEAD', '/ping', 200);
    const requests = { 'GET 3xx': 1, 'GET 2xx': 3, 'GET 4xx': 1, 'POST 3xx': 1, 'POST 4xx': 1, 'HEAD 2xx': 1 };

    // Tab 1: the Pluto client, each message sent alone so its size is known.
    const c = await PlutoClient.open(`${w.url}/demo/`, { cookie: jar.header('/demo/') });
    let wsIn = 0;
    let wsOut = 0;
    const one = async (send: () => Promise<PlutoReply>) => {
      const before = c.bytesSent;
      const reply = await send();
      wsIn += clientFrame(c.bytesSent - before);
      wsOut += serverFrame(reply.bytes);
    };
    await one(() => c.send('connect', {}));
    await one(() => c.send('update_notebook', { updates: [] }));
    await one(() => c.send('complete', { query: 'sq' }));
    await one(() => c.send('complete', { query: '\\sq' }));
    await one(() => c.ping());
    for (let i = 0; i < 18; i++) await one(() => c.send('current_time', {}, {}));
    await w.clock.advance(10 * SEC);
    await one(() => c.setBond(3));
    await one(() => c.setBond(4));
    await w.clock.advance(10 * SEC);
    await one(() => c.setBond(5));
    await one(() => c.runCells());
    await one(() => c.docs('sqrt'));
    await one(() => c.ping());
    const closed = await c.close();
    assert.deepEqual(closed, { code: 1000, reason: 'byebye' });
    wsIn += clientFrame(2 + 'byebye'.length);
    wsOut += serverFrame(2 + Buffer.byteLength(closed.reason)); // the server echoes code and reason
    await eventually(() => s.target.traffic.openConnections === 0, 'tab 1 closed');

    // Tab 2: a raw socket with two ping control frames, a text frame Pluto cannot read, an empty close.
    const raw = await wsOpen(`${w.url}/demo/`, { jar, perMessageDeflate: false });
    for (let i = 0; i < 2; i++) {
      const pong = new Promise((r) => raw.once('pong', r));
      raw.ping();
      await pong;
      wsIn += clientFrame(0);
      wsOut += serverFrame(0);
    }
    raw.send('hello');
    wsIn += clientFrame(5);
    await eventually(() => s.target.traffic.messagesIn.undecodable === 1, 'the text frame counted');
    raw.close();
    await wsClosed(raw);
    wsIn += clientFrame(0);
    wsOut += serverFrame(0);
    await eventually(() => s.target.traffic.openConnections === 0, 'tab 2 closed');

    const lastActive = T0 + 20 * SEC; // the text frame: undecodable counts as activity, at the clock's instant
    assert.equal(s.lastActive, lastActive);
    const closedAt = w.clock.now();
    await advanceTo(w, closedAt + GRACE + SEC);
    const e = assertReaped(w, s, 'grace', closedAt + GRACE);

    const messagesIn = { connect: 1, update_notebook: 4, complete: 2, ping: 2, current_time: 18, run_multiple_cells: 1, docs: 1, undecodable: 1 };
    const summary = e.summary as Record<string, unknown>;
    assert.deepEqual(summary.requests, requests);
    assert.deepEqual(summary.messagesIn, messagesIn);
    assert.deepEqual(summary.framesIn, { control: 4, data: 30 }, 'data: 29 Pluto messages and the text frame; control: 2 pings, 2 closes');
    assert.deepEqual(summary.framesOut, { control: 4, data: 29 }, 'data: one reply each; control: 2 pongs, 2 closes');
    assert.equal(summary.messagesOut, 29);
    assert.ok(c.bytesSent > 0 && wsIn > c.bytesSent);
    assert.equal(summary.bytesIn, httpIn + wsIn, 'request bodies plus every client frame, byte for byte');
    assert.ok(c.bytesReceived > 20_000 && wsOut > c.bytesReceived);
    assert.equal(summary.bytesOut, httpOut + wsOut, 'response bodies plus every server frame, byte for byte');
    assert.equal(summary.claimedAt, T0);
    assert.equal(summary.lastActive, lastActive);
    assert.equal(summary.durationMs, closedAt + GRACE - T0);
    assert.equal(summary.activeMs, 20 * SEC);

    await cleanups.pop()!(); // stop warmpool: the log is flushed and closed
    const id = s.id;
    const nReq = sum(requests);
    const nMsg = sum(messagesIn);

    const list = cli('--dir', w.logDir);
    const rows = list.trim().split('\n');
    assert.equal(rows.length, 3, list);
    const cols = rows[1]!.trim().split(/\s{2,}/);
    assert.ok(id.startsWith(cols[0]!), list);
    assert.equal(cols[1], 'demo');
    assert.equal(cols[5], 'grace');
    assert.deepEqual(cols.slice(-2), [String(nReq), String(nMsg)], list);
    assert.match(rows[2]!, /^1 session: 0 live, 1 ended \(grace 1\)$/);

    const shown = cli('show', id, '--dir', w.logDir);
    assert.match(shown, new RegExp(`^session ${id} \\(app demo, instance ${s.member.id}`));
    assert.match(shown, /\(grace\)/);
    assert.match(shown, new RegExp(`requests +${nReq} \\(GET 2xx 3, GET 3xx 1, GET 4xx 1, HEAD 2xx 1, POST 3xx 1, POST 4xx 1\\)`));
    assert.match(shown, new RegExp(`bytes +in .* \\(${httpIn + wsIn}\\), out .* \\(${httpOut + wsOut}\\)`));
    assert.match(shown, /frames in +control 4, data 30/);
    assert.match(shown, /frames out +control 4, data 29/);
    assert.match(shown, new RegExp(`messages in +${nMsg}, by type:`));
    for (const [type, n] of Object.entries(messagesIn)) assert.match(shown, new RegExp(`\\n {4}${type} +${n}\\n`), `${type} ${n}`);
    assert.match(shown, /messages out +29/);
    for (const type of ['claimed', 'first-request', 'ws-open', 'ws-close', 'idle', 'ended'])
      assert.match(shown, new RegExp(`  ${type}( |$)`, 'm'), `timeline has ${type}`);

    const csv = parseCsv(cli('--csv', '--dir', w.logDir));
    assert.equal(csv.length, 2);
    const row = Object.fromEntries(csv[0]!.map((k, i) => [k, csv[1]![i]!]));
    assert.equal(row.session, id);
    assert.equal(row.end_reason, 'grace');
    assert.equal(row.claimed_at, new Date(T0).toISOString());
    assert.equal(row.duration_ms, String(closedAt + GRACE - T0));
    assert.deepEqual(
      [
        row.requests,
        row.bytes_in,
        row.bytes_out,
        row.messages_in,
        row.messages_out,
        row.frames_in_control,
        row.frames_in_data,
        row.frames_out_control,
        row.frames_out_data,
      ],
      [nReq, httpIn + wsIn, httpOut + wsOut, nMsg, 29, 4, 30, 4, 29].map(String),
    );
    assert.deepEqual(JSON.parse(row.requests_by_kind!), requests);
    assert.deepEqual(JSON.parse(row.messages_in_by_type!), messagesIn);
  });
});
