// The WebSocket relay through real sockets: a Pluto session with realistic traffic and its activity
// signal, a 150 MiB message, Jupyter subprotocols, permessage-deflate, close codes, refusals, an
// instance killed mid-session, and no socket left behind.

import { test, describe, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import { startStandin, type StandinHandle } from '../examples/standin/server.js';
import { startJupyterStandin } from '../examples/standin/jupyter.js';
import { JupyterClient, PlutoClient } from '../examples/standin/driver.js';
import { JUPYTER_V1_SUBPROTOCOL } from '../examples/standin/protocol.js';
import { ManualClock } from '../core/clock.js';
import { openWebSocketSockets } from '../proxy/index.js';
import { FakePool, appConfig, startProxyServer, warmpoolConfig, type ProxyServer } from './helpers/fake-pool.js';
import { CookieJar, closeServer, listen, rawUpgrade, request, wsClosed, wsOpen } from './helpers/http.js';

const quiet = { out: () => {}, log: () => {} };
const SECRET = 'Wss3cret';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
  assert.equal(openWebSocketSockets(), 0, 'every relayed socket is closed after each test');
});
after(() => assert.equal(openWebSocketSockets(), 0));

async function proxyFor(pool: FakePool, o: Partial<Parameters<typeof startProxyServer>[0]> = {}): Promise<ProxyServer> {
  const p = await startProxyServer({ config: warmpoolConfig([...pool.apps()]), pool, ...o });
  cleanups.push(async () => {
    await p.close();
    assert.equal(p.proxy.openSockets(), 0);
  });
  return p;
}

async function standin(o: Parameters<typeof startStandin>[0] = {}): Promise<StandinHandle> {
  const s = await startStandin({ port: 0, stateBytes: 200_000, ...quiet, ...o });
  cleanups.push(() => s.close());
  return s;
}

/** A ws echo server (optionally deflating) standing in for an instance; records close codes it saw. */
async function echoServer(o: { perMessageDeflate?: boolean; handleProtocols?: (p: Set<string>) => string | false } = {}) {
  const server = createServer();
  const wss = new WebSocketServer({
    server,
    maxPayload: 256 * 1024 * 1024,
    perMessageDeflate: o.perMessageDeflate ?? false,
    handleProtocols: o.handleProtocols,
  });
  const closes: { code: number; reason: string }[] = [];
  const sockets = new Set<WebSocket>();
  wss.on('connection', (ws) => {
    sockets.add(ws);
    ws.on('error', () => undefined);
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? '' : data.toString();
      if (text.startsWith('close-me:')) ws.close(Number(text.slice(9)), 'server says bye');
      else ws.send(data, { binary: isBinary });
    });
    ws.on('close', (code, reason) => {
      sockets.delete(ws);
      closes.push({ code, reason: reason.toString() });
    });
  });
  const port = await listen(server);
  const h = {
    port,
    closes,
    wss,
    sockets,
    async close() {
      for (const s of sockets) s.terminate();
      wss.close();
      await closeServer(server);
    },
  };
  cleanups.push(() => h.close());
  return h;
}

async function enter(p: ProxyServer, app: string): Promise<CookieJar> {
  const jar = new CookieJar();
  const r = await request(`${p.url}/${app}/`, { jar, headers: { accept: 'text/html' } });
  assert.equal(r.status, 302);
  return jar;
}

describe('Pluto session', () => {
  test('realistic traffic relayed; only user activity reaches the pool, coalesced; counters and events', async () => {
    const s = await standin({ secret: SECRET });
    const clock = new ManualClock();
    const pool = new FakePool(
      [
        appConfig('demo', {
          classifier: 'pluto',
          deepLink: '/open?path=webapp.jl',
          secret: { env: 'PLUTO_SECRET', inject: { query: 'secret', headerFormat: '{secret}' } },
        }),
      ],
      clock,
    );
    pool.addInstance('demo', { port: s.port, secret: SECRET });
    const p = await proxyFor(pool, { clock });
    const jar = await enter(p, 'demo');
    const session = [...pool.sessions.keys()][0]!;
    const traffic = pool.sessions.get(session)!.traffic;

    const c = await PlutoClient.open(`${p.url}/demo/`, { cookie: jar.header('/demo/') });
    const stateBytes = await c.start();
    assert.ok(stateBytes > 190_000, 'the full state came through');
    await c.ping();
    await c.currentTimeBurst(18);
    assert.equal(pool.activities.length, 0, 'start-up, ping and clock sync are not activity');
    assert.equal(traffic.messagesIn.ping, 1);
    assert.equal(traffic.messagesIn.current_time, 18);
    assert.equal(traffic.messagesIn.connect, 1);
    assert.equal(pool.opened, 1);
    assert.equal(pool.eventsOf('ws-open').length, 1);

    // A person moves a slider five times within one clock second: one activity report.
    for (let v = 1; v <= 5; v++) {
      const r = await c.setBond(v);
      assert.equal(r.type, 'notebook_diff');
    }
    assert.equal(pool.activities.length, 1);
    assert.equal(traffic.lastActive, clock.now());
    await clock.advance(1500);
    await c.runCells();
    assert.equal(pool.activities.length, 2);
    assert.equal(pool.activities[1]!.at, clock.now());
    assert.equal(s.stats.received.update_notebook, 6);
    assert.equal(c.state.cell_results[Object.keys(c.state.cell_results)[3]!].output.body, '5');

    // Server pushes never count.
    s.push();
    await new Promise<void>((resolve) => {
      c.onPush = () => resolve();
    });
    assert.equal(pool.activities.length, 2);

    const msgsIn = Object.values(traffic.messagesIn).reduce((a, b) => a + b, 0);
    assert.equal(msgsIn, 1 + 1 + 2 + 1 + 18 + 5 + 1);
    assert.equal(traffic.framesIn.data, msgsIn);
    assert.ok(traffic.messagesOut >= msgsIn);
    assert.ok(traffic.bytesOut > stateBytes && traffic.bytesIn > 0);

    const closed = await c.close();
    assert.equal(closed.code, 1000);
    await waitFor(() => pool.closed === 1);
    const ev = pool.eventsOf('ws-close')[0]!;
    assert.equal(ev.detail!.closeFrame, true);
    assert.ok(traffic.framesIn.control >= 1);
  });

  test('a second tab and a reconnect reuse the same instance', async () => {
    const s = await standin();
    const pool = new FakePool([appConfig('demo', { classifier: 'pluto' })]);
    pool.addInstance('demo', { port: s.port });
    const p = await proxyFor(pool);
    const jar = await enter(p, 'demo');
    const a = await PlutoClient.open(`${p.url}/demo/`, { cookie: jar.header('/demo/') });
    const b = await PlutoClient.open(`${p.url}/demo/`, { cookie: jar.header('/demo/') });
    await a.start();
    await b.start();
    await a.setBond(42);
    assert.equal(s.connections(), 2);
    await a.terminate();
    const a2 = await PlutoClient.open(`${p.url}/demo/`, { cookie: jar.header('/demo/') });
    await a2.resetSharedState();
    assert.equal(a2.state.bonds.x.value, 42);
    await a2.close();
    await b.close();
    assert.equal(pool.claims.length, 1);
  });

  test('an instance killed mid-session: the socket closes, then the ended page', async () => {
    const s = await standin();
    const pool = new FakePool([appConfig('demo', { classifier: 'pluto' })]);
    const id = pool.addInstance('demo', { port: s.port });
    const p = await proxyFor(pool);
    const jar = await enter(p, 'demo');
    const c = await PlutoClient.open(`${p.url}/demo/`, { cookie: jar.header('/demo/') });
    await c.start();
    await s.close();
    const closed = await c.closed;
    assert.equal(closed.code, 1006, 'the drop reaches the browser as an abnormal close');
    await waitFor(() => pool.closed === 1);
    pool.instanceExited(id);
    const r = await request(`${p.url}/demo/edit?id=x`, { jar, headers: { accept: 'text/html' } });
    assert.equal(r.status, 410);
    assert.match(r.text, /has ended/);
    const u = await rawUpgrade(`${p.url}/demo/`, { cookie: `warmpool_demo=${jar.get('warmpool_demo') ?? ''}` });
    assert.ok(u.status === 410 || u.status === 400);
  });
});

describe('transparent relay', () => {
  test('a 150 MiB message both ways, intact', async () => {
    const e = await echoServer();
    const pool = new FakePool([appConfig('echo')]);
    pool.addInstance('echo', { port: e.port });
    const p = await proxyFor(pool);
    const jar = await enter(p, 'echo');
    const ws = await wsOpen(`${p.url}/echo/`, { jar, maxPayload: 256 * 1024 * 1024 });
    const big = randomBytes(150 * 1024 * 1024);
    const want = createHash('sha256').update(big).digest('hex');
    const got = new Promise<Buffer>((resolve) => ws.once('message', (d) => resolve(d as Buffer)));
    ws.send(big);
    const back = await got;
    assert.equal(back.length, big.length);
    assert.equal(createHash('sha256').update(back).digest('hex'), want);
    const t = pool.sessions.values().next().value!.traffic;
    assert.equal(t.messagesIn.data, 1, 'counted, not captured (over the capture limit)');
    ws.close();
    await wsClosed(ws);
  });

  test('messages of every size to several clients at once, some reading slowly: each gets its own bytes back, in order', async () => {
    // Backpressure both ways with several links at once: nothing lost, reordered or mixed between them.
    const e = await echoServer();
    const pool = new FakePool([appConfig('echo')]);
    pool.addInstance('echo', { port: e.port });
    const p = await proxyFor(pool);
    const jar = await enter(p, 'echo');
    const sizes = [10, 5000, 20_000, 65_536, 200_000, 1_500_000];
    await Promise.all(
      [0, 1, 2, 3].map(async (c) => {
        const ws = await wsOpen(`${p.url}/echo/`, { jar, maxPayload: 256 * 1024 * 1024 });
        const sent = Array.from({ length: 24 }, (_, i) => randomBytes(sizes[(i + c) % sizes.length]!));
        const back: Buffer[] = [];
        const all = new Promise<void>((resolve) =>
          ws.on('message', (d) => {
            back.push(d as Buffer);
            // Clients 0 and 2 read slowly: the proxy's writes to them queue.
            if (c % 2 === 0 && back.length % 3 === 0) {
              ws.pause();
              setTimeout(() => ws.resume(), 15);
            }
            if (back.length === sent.length) resolve();
          }),
        );
        for (const m of sent) ws.send(m);
        await all;
        for (const [i, m] of sent.entries()) assert.ok(back[i]!.equals(m), `client ${c} message ${i} (${m.length} bytes)`);
        ws.close();
        await wsClosed(ws);
      }),
    );
  });

  test('text and binary frames, close codes both ways', async () => {
    const e = await echoServer();
    const pool = new FakePool([appConfig('echo')]);
    pool.addInstance('echo', { port: e.port });
    const p = await proxyFor(pool);
    const jar = await enter(p, 'echo');

    const a = await wsOpen(`${p.url}/echo/sub/path?x=1`, { jar });
    const text = new Promise<[string, boolean]>((r) => a.once('message', (d, bin) => r([d.toString(), bin])));
    a.send('héllo');
    assert.deepEqual(await text, ['héllo', false]);
    const bin = new Promise<[Buffer, boolean]>((r) => a.once('message', (d, isBin) => r([d as Buffer, isBin])));
    a.send(Buffer.from([1, 2, 3]));
    const [b, isBin] = await bin;
    assert.deepEqual([...b], [1, 2, 3]);
    assert.equal(isBin, true);
    a.close(4001, 'client says bye');
    assert.deepEqual(await wsClosed(a), { code: 4001, reason: 'client says bye' });
    await waitFor(() => e.closes.length === 1);
    assert.deepEqual(e.closes[0], { code: 4001, reason: 'client says bye' });

    const c = await wsOpen(`${p.url}/echo/`, { jar });
    c.send('close-me:4002');
    assert.deepEqual(await wsClosed(c), { code: 4002, reason: 'server says bye' });
  });

  test('permessage-deflate negotiated end to end when both ends offer it, not otherwise', async () => {
    const e = await echoServer({ perMessageDeflate: true });
    const pool = new FakePool([appConfig('echo')]);
    pool.addInstance('echo', { port: e.port });
    const p = await proxyFor(pool);
    const jar = await enter(p, 'echo');
    const on = await wsOpen(`${p.url}/echo/`, { jar, perMessageDeflate: true });
    assert.match(on.extensions, /permessage-deflate/);
    const payload = 'abc'.repeat(100_000);
    const got = new Promise<string>((r) => on.once('message', (d) => r(d.toString())));
    on.send(payload);
    assert.equal(await got, payload);
    const t = pool.sessions.values().next().value!.traffic;
    assert.ok(t.bytesIn < payload.length / 10, 'compressed on the wire through the proxy');
    on.close();
    await wsClosed(on);
    const off = await wsOpen(`${p.url}/echo/`, { jar, perMessageDeflate: false });
    assert.equal(off.extensions, '');
    off.close();
    await wsClosed(off);
  });

  test('Jupyter: the server-chosen v1 subprotocol reaches the client; legacy when not offered; base-url kept, token injected', async () => {
    const token = 'a'.repeat(48);
    const j = await startJupyterStandin({ port: 0, baseUrl: '/jup/', token, pingIntervalMs: 50, ...quiet });
    cleanups.push(() => j.close());
    const pool = new FakePool([
      appConfig('jup', {
        classifier: 'jupyter',
        deepLink: '/lab',
        prefix: { mode: 'base-url', env: 'BASE_URL' },
        secret: { env: 'JUPYTER_TOKEN', inject: { header: 'Authorization', headerFormat: 'token {secret}' } },
      }),
    ]);
    pool.addInstance('jup', { port: j.port, secret: token });
    const p = await proxyFor(pool);
    const jar = await enter(p, 'jup');
    const cookie = { cookie: jar.header('/jup/'), origin: p.url };

    const api = await request(`${p.url}/jup/api/kernels`, { jar });
    assert.equal(api.status, 200);
    assert.ok(!api.text.includes(token));
    const direct = await request(`http://127.0.0.1:${j.port}/jup/api/kernels`);
    assert.equal(direct.status, 403);

    const v1 = await JupyterClient.open(JupyterClient.channelsUrl(`${p.url}/jup/`, j.kernelId), { headers: cookie });
    assert.equal(v1.protocol, JUPYTER_V1_SUBPROTOCOL);
    assert.equal(pool.eventsOf('ws-open')[0]!.detail!.protocol, JUPYTER_V1_SUBPROTOCOL, 'the log names the protocol the server chose');
    const ex = await v1.execute('1+1');
    assert.equal(ex.text, '2');
    await waitFor(() => v1.pingsReceived >= 2, 'server ping frames relayed');
    await v1.close();

    const legacy = await JupyterClient.open(JupyterClient.channelsUrl(`${p.url}/jup/`, j.kernelId), { headers: cookie, subprotocol: false });
    assert.equal(legacy.protocol, '');
    assert.equal((await legacy.execute('2*3')).text, '6');
    await legacy.close();
    const t = pool.sessions.values().next().value!.traffic;
    assert.equal(t.messagesIn.execute_request, 2);
    assert.ok(t.framesIn.control >= 2, 'pongs counted as control frames');
  });
});

describe('refusals and drops', () => {
  test('refused upgrades get an HTTP answer; the instance refusal is relayed without its secret', async () => {
    const s = await standin({ secret: SECRET });
    // The app config forgets to inject the secret: the instance refuses with 403.
    const pool = new FakePool([appConfig('demo')]);
    pool.addInstance('demo', { port: s.port, secret: SECRET });
    const p = await proxyFor(pool);
    const jar = await enter(p, 'demo');
    const r = await rawUpgrade(`${p.url}/demo/`, { cookie: jar.header('/demo/') });
    assert.equal(r.status, 403);
    assert.equal(r.headers.connection, 'close');
    assert.match(r.body, /Forbidden|authenticated/);
    assert.equal((await rawUpgrade(`${p.url}/demo/`)).status, 400);
    assert.equal((await rawUpgrade(`${p.url}/nope/`)).status, 404);
    assert.equal((await rawUpgrade(`${p.url}/demo/`, { cookie: jar.header('/demo/'), upgrade: 'h2c' })).status, 400);
  });

  test('either side dropping destroys the other; no socket leaks', async () => {
    const e = await echoServer();
    const pool = new FakePool([appConfig('echo')]);
    pool.addInstance('echo', { port: e.port });
    const p = await proxyFor(pool);
    const jar = await enter(p, 'echo');
    const sockets: WebSocket[] = [];
    for (let i = 0; i < 20; i++) sockets.push(await wsOpen(`${p.url}/echo/`, { jar }));
    await waitFor(() => e.sockets.size === 20);
    assert.equal(p.proxy.openSockets() >= 40, true);
    for (const ws of sockets.slice(0, 10)) ws.terminate();
    await waitFor(() => e.sockets.size === 10, 'client drops reach the instance');
    for (const ws of e.sockets) ws.terminate();
    await Promise.all(sockets.slice(10).map((ws) => wsClosed(ws)));
    // What stays is the one kept-alive HTTP connection the entry opened ahead of the visitor's first request.
    await waitFor(() => p.proxy.openSockets() === 1, 'proxy sockets back to the one kept-alive HTTP connection');
    assert.equal(pool.opened, 20);
    assert.equal(pool.closed, 20);
  });

  test('close() of the proxy destroys live relays', async () => {
    const e = await echoServer();
    const pool = new FakePool([appConfig('echo')]);
    pool.addInstance('echo', { port: e.port });
    const p = await proxyFor(pool);
    const jar = await enter(p, 'echo');
    const ws = await wsOpen(`${p.url}/echo/`, { jar });
    await p.proxy.close();
    assert.equal((await wsClosed(ws)).code, 1006);
  });
});

async function waitFor(pred: () => boolean, what = 'condition', limitMs = 10_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('limits', () => {
  test('a quiet WebSocket outlives the request head timeout and the keep-alive timeout: limits never cut an idle notebook tab', async () => {
    const e = await echoServer();
    const pool = new FakePool([appConfig('echo')]);
    pool.addInstance('echo', { port: e.port });
    const p = await proxyFor(pool, { config: warmpoolConfig([...pool.apps()], { relay: { headerTimeoutMs: 150 } }) });
    p.server.keepAliveTimeout = 150;
    const jar = new CookieJar();
    assert.equal((await request(`${p.url}/echo/`, { jar, headers: { accept: 'text/html' } })).status, 302);
    const ws = await wsOpen(`${p.url}/echo/`, { jar });
    let closed = false;
    ws.on('close', () => {
      closed = true;
    });
    // Several head-timeout periods and checking rounds of Node's server pass with the socket silent.
    await new Promise((r) => setTimeout(r, 900));
    assert.equal(closed, false, 'the idle WebSocket is still open');
    const echoed = new Promise<string>((r) => ws.once('message', (d) => r(d.toString())));
    ws.send('still here');
    assert.equal(await echoed, 'still here');
    ws.close();
    await wsClosed(ws);
  });

  test('WebSockets per session: the one over the limit gets 429, a place frees when one closes, other sessions are unaffected', async () => {
    const e = await echoServer();
    const pool = new FakePool([appConfig('echo')]);
    pool.addInstance('echo', { port: e.port });
    pool.addInstance('echo', { port: e.port });
    const p = await proxyFor(pool, { config: warmpoolConfig([...pool.apps()], { relay: { websocketsPerSession: 2 } }) });
    const enter = async () => {
      const jar = new CookieJar();
      assert.equal((await request(`${p.url}/echo/`, { jar, headers: { accept: 'text/html' } })).status, 302);
      return jar;
    };
    const a = await enter();
    const b = await enter();
    const a1 = await wsOpen(`${p.url}/echo/`, { jar: a });
    const a2 = await wsOpen(`${p.url}/echo/`, { jar: a });
    const refused = await rawUpgrade(`${p.url}/echo/`, { cookie: a.header('/echo/') });
    assert.equal(refused.status, 429);
    assert.match(refused.body, /TOO_MANY/);
    const b1 = await wsOpen(`${p.url}/echo/`, { jar: b });
    a1.close();
    await wsClosed(a1);
    const a3 = await wsOpen(`${p.url}/echo/`, { jar: a });
    for (const ws of [a2, a3, b1]) {
      ws.close();
      await wsClosed(ws);
    }
  });
});
