// End to end: the proxy in front of the real Fleet with the process runtime running the stand-in
// app as child processes. Entry → cookie → deep link → editor → live WebSocket; reuse; two apps;
// the waiting page while an instance is created on demand; an instance killed mid-session.

import { test, describe, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PlutoClient } from '../examples/standin/driver.js';
import { parseConfig, type WarmpoolConfig } from '../core/config.js';
import { Fleet } from '../pool/fleet.js';
import { PortAllocator } from '../pool/ports.js';
import { ProcessRuntime } from '../pool/runtimes/process.js';
import { MemoryTrafficLog } from '../pool/traffic-log.js';
import { createProxy, keyRing, openWebSocketSockets, type Proxy as ProxyHandle } from '../proxy/index.js';
import { CookieJar, closeServer, follow, listen, request } from './helpers/http.js';
import { openEventStream } from './helpers/sse.js';
import { eventually, waitForStatus } from './helpers/wait.js';

const SERVER = join(process.cwd(), 'dist/examples/standin/server.js');
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
  assert.equal(openWebSocketSockets(), 0, 'no relayed socket left open');
});
after(() => assert.equal(openWebSocketSockets(), 0));

interface World {
  config: WarmpoolConfig;
  fleet: Fleet;
  rt: ProcessRuntime;
  proxy: ProxyHandle;
  url: string;
  log: MemoryTrafficLog;
}

async function world(apps: string): Promise<World> {
  const stateDir = mkdtempSync(join(tmpdir(), 'wp-e2e-'));
  const config = parseConfig(`
deployment: e2e
stateDir: ${stateDir}
ports: { from: 43000, to: 43999 }
# The waiting page at once: these tests follow the page and its stream (the held entry: proxy-line.test.ts).
queue: { pageHold: 0 }
apps:
${apps}
`);
  const rt = new ProcessRuntime({ deployment: 'e2e', ports: new PortAllocator(43000, 43999), stateDir, pollMs: 100 });
  const log = new MemoryTrafficLog();
  const fleet = new Fleet({ config, runtimes: { process: rt }, trafficLog: log, log: () => undefined });
  const proxy = createProxy({ config, pool: fleet, keys: keyRing('e2e-cookie-key-0123456789') });
  const server = createServer((req, res) => proxy.handleRequest(req, res));
  server.on('upgrade', (req, socket, head) => proxy.handleUpgrade(req, socket, head));
  const port = await listen(server);
  cleanups.push(async () => {
    await proxy.close();
    assert.equal(proxy.openSockets(), 0, 'proxy sockets back to zero');
    await closeServer(server);
    await fleet.stop(false);
    const left = (await rt.list()).filter((r) => r.running);
    assert.deepEqual(
      left.map((r) => r.instanceId),
      [],
      'no instance process left behind',
    );
    rmSync(stateDir, { recursive: true, force: true });
  });
  await fleet.start();
  return { config, fleet, rt, proxy, url: `http://127.0.0.1:${port}`, log };
}

const demo = (name: string, pool: string, env = 'STATE_BYTES: 50000') => `
  - name: ${name}
    command: [${process.execPath}, ${SERVER}]
    env: { ${env} }
    deepLink: /open?path=webapp.jl
    readiness: { log: "^READY$", timeout: 20s }
    pool: ${pool}
    classifier: pluto
    secret: { env: PLUTO_SECRET, inject: { query: secret } }
`;

describe('through the real fleet (process runtime)', () => {
  test('entry → cookie → deep link → editor → WebSocket session; a second visit reuses the instance', async () => {
    const w = await world(demo('demo', '{ warm: 2, max: 3 }'));
    await waitForStatus(w.fleet, 'demo', (s) => s.ready === 2);
    const jar = new CookieJar();
    const { hops, final, url } = await follow(`${w.url}/demo/`, { jar, headers: { accept: 'text/html' } });
    // The entry sends a new visitor straight where the deep link led when the instance became ready.
    assert.deepEqual(
      hops.map((h) => h.reply.status),
      [302, 200],
    );
    assert.match(String(hops[0]!.reply.headers.location), /^\/demo\/edit\?id=[0-9a-f-]{36}$/);
    assert.match(url, /\/demo\/edit\?id=[0-9a-f-]{36}$/);
    assert.match(final.text, /id="bond-value"/);
    const session = w.fleet.liveSessions()[0]!;
    const secret = session.target.secret!;
    assert.ok(secret && secret.length >= 8, 'the fleet gave the instance a secret');
    for (const h of hops) {
      assert.ok(!h.reply.rawHeaders.join('\n').includes(secret), `secret in headers of ${h.url}`);
      assert.ok(!h.reply.text.includes(secret), `secret in body of ${h.url}`);
    }
    const direct = await request(`http://127.0.0.1:${session.target.port}/edit`);
    assert.equal(direct.status, 403, 'the instance refuses anyone who bypasses the proxy');

    const c = await PlutoClient.open(`${w.url}/demo/`, { cookie: jar.header('/demo/') });
    assert.ok((await c.start()) > 45_000);
    await c.ping();
    await c.currentTimeBurst(18);
    const activeBefore = session.target.traffic.lastActive;
    await new Promise((r) => setTimeout(r, 5));
    await c.setBond(7);
    assert.ok(session.target.traffic.lastActive! > activeBefore!, 'the slider counts as activity');
    assert.equal(session.target.traffic.openConnections, 1);
    assert.equal(session.target.traffic.messagesIn.current_time, 18);

    const again = await request(`${w.url}/demo/`, { jar, headers: { accept: 'text/html' } });
    assert.equal(again.status, 302);
    assert.equal(again.headers['set-cookie'], undefined);
    assert.equal(again.headers.location, '/demo/open?path=webapp.jl', 'a returning visitor goes through the deep link (it reopens a closed notebook)');
    assert.equal(w.fleet.liveSessions().length, 1, 'no second claim');
    await c.close();
    await eventually(() => session.target.traffic.openConnections === 0, 'the fleet heard the socket close');
    assert.ok(w.log.entries.some((e) => e.type === 'ws-open'));
    assert.ok(w.log.entries.some((e) => e.type === 'first-request'));
  });

  test('two apps in one browser, side by side', async () => {
    const w = await world(demo('demo', '{ warm: 1, max: 1 }') + demo('demo2', '{ warm: 1, max: 1 }'));
    await waitForStatus(w.fleet, 'demo', (s) => s.ready === 1);
    await waitForStatus(w.fleet, 'demo2', (s) => s.ready === 1);
    const jar = new CookieJar();
    await follow(`${w.url}/demo/`, { jar, headers: { accept: 'text/html' } });
    await follow(`${w.url}/demo2/`, { jar, headers: { accept: 'text/html' } });
    const a = await PlutoClient.open(`${w.url}/demo/`, { cookie: jar.header('/demo/') });
    const b = await PlutoClient.open(`${w.url}/demo2/`, { cookie: jar.header('/demo2/') });
    await a.start();
    await b.start();
    await a.setBond(1);
    await b.setBond(2);
    const [sa, sb] = ['demo', 'demo2'].map((n) => w.fleet.liveSessions().find((s) => s.app.name === n)!);
    assert.notEqual(sa!.target.port, sb!.target.port);
    assert.equal(sa!.target.traffic.messagesIn.update_notebook, 2);
    assert.equal(sb!.target.traffic.messagesIn.update_notebook, 2);
    await a.close();
    await b.close();
  });

  test("pool empty: the waiting page's stream (and, without JavaScript, its held refresh) gets in the moment an instance created on demand is ready", async () => {
    const w = await world(demo('demo', '{ warm: 0, max: 2 }', 'STATE_BYTES: 5000, STARTUP_DELAY_MS: 800'));
    const js = new CookieJar();
    const nojs = new CookieJar();
    const first = await request(`${w.url}/demo/`, { jar: js, headers: { accept: 'text/html' } });
    assert.equal(first.status, 503);
    const second = await request(`${w.url}/demo/`, { jar: nojs, headers: { accept: 'text/html' } });
    // A browser with JavaScript opens the page's stream; one without follows the <noscript> refresh, which is held.
    const stream = await openEventStream(`${w.url}${/data-wait="([^"]+)"/.exec(first.text)![1]!}`);
    assert.equal((await stream.next('line')).data.position, 1);
    const refresh = /<noscript><meta http-equiv="refresh" content="0;url=([^"]+)"><\/noscript>/.exec(second.text)![1]!.replace(/&amp;/g, '&');
    assert.match(refresh, /^\/demo\/\?wait=/);
    const held = request(`${w.url}${refresh}`, { jar: nojs, headers: { accept: 'text/html' } });
    const ready = await stream.next('ready', 20_000);
    const page = await follow(`${w.url}${ready.data.url}`, { jar: js, headers: { accept: 'text/html' } });
    assert.equal(page.final.status, 200);
    assert.match(page.url, /\/demo\/edit\?id=/);
    const r = await held;
    assert.equal(r.status, 302, 'the held refresh is answered with the claim');
    assert.match(String(r.headers.location), /^\/demo\/edit\?id=/);
    assert.equal((await follow(`${w.url}/demo/`, { jar: nojs, headers: { accept: 'text/html' } })).final.status, 200);
    assert.equal(w.fleet.liveSessions().length, 2);
    assert.ok(
      w.fleet.liveSessions().every((s) => s.firstRequestSeen),
      'both claims used',
    );
  });

  test('an instance killed mid-session: the socket closes and the visitor gets the session-ended page', async () => {
    const w = await world(demo('demo', '{ warm: 1, max: 2 }'));
    await waitForStatus(w.fleet, 'demo', (s) => s.ready === 1);
    const jar = new CookieJar();
    await follow(`${w.url}/demo/`, { jar, headers: { accept: 'text/html' } });
    const c = await PlutoClient.open(`${w.url}/demo/`, { cookie: jar.header('/demo/') });
    await c.start();
    const s = w.fleet.liveSessions()[0]!;
    const rec = (await w.rt.list()).find((r) => r.instanceId === s.member.id)!;
    process.kill(-Number(rec.runtimeId), 'SIGKILL');
    const closed = await c.closed;
    assert.equal(closed.code, 1006);
    await eventually(() => w.fleet.liveSessions().length === 0, 'the fleet noticed the exit');
    const r = await request(`${w.url}/demo/edit?id=x`, { jar, headers: { accept: 'text/html' } });
    assert.equal(r.status, 410);
    assert.match(r.text, /stopped unexpectedly/);
    // The button on the page gets a fresh instance (once the pool has refilled).
    await waitForStatus(w.fleet, 'demo', (st) => st.ready >= 1);
    const fresh = await follow(`${w.url}/demo/?fresh=1`, { jar, headers: { accept: 'text/html' } });
    assert.equal(fresh.final.status, 200);
    assert.equal(w.fleet.liveSessions().length, 1);
    assert.notEqual(w.fleet.liveSessions()[0]!.member.id, s.member.id);
  });
});
