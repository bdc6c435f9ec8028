// The proxy's HTTP side through real sockets: entry, cookie, deep link, routing by cookie, refusals
// that reach no instance, the waiting page, the ended and not-answering pages, X-Forwarded-* and
// hop-by-hop headers, secret injection, streaming both ways, mounting beside other routes.

import { test, describe, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { startStandin, type StandinHandle } from '../examples/standin/server.js';
import { ManualClock } from '../core/clock.js';
import { createProxy, keyRing, openWebSocketSockets } from '../proxy/index.js';
import { FakePool, appConfig, proxyForPool, type startProxyServer, warmpoolConfig, TEST_KEYS, type ProxyServer } from './helpers/fake-pool.js';
import { CookieJar, closeServer, follow, listen, rawUpgrade, request } from './helpers/http.js';
import { openEventStream } from './helpers/sse.js';
import { until } from './helpers/wait.js';

const SECRET = 'S3cr3tXY';
const quiet = { out: () => {}, log: () => {} };
const demoApp = () =>
  appConfig('demo', {
    deepLink: '/open?path=webapp.jl',
    classifier: 'pluto',
    secret: { env: 'PLUTO_SECRET', inject: { query: 'secret', headerFormat: '{secret}' } },
  });

/** A backend that records every request and answers with what it saw. */
async function echoBackend(
  handler?: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; port: number; seen: { method: string; url: string; rawHeaders: string[] }[]; upgrades: number; close(): Promise<void> }> {
  const seen: { method: string; url: string; rawHeaders: string[] }[] = [];
  const b = { upgrades: 0 } as { upgrades: number };
  const server = createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, rawHeaders: req.rawHeaders });
    if (handler) return handler(req, res);
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, url: req.url, rawHeaders: req.rawHeaders }));
    });
  });
  server.on('upgrade', (_req, socket) => {
    b.upgrades++;
    socket.destroy();
  });
  const port = await listen(server);
  return Object.assign(b, { server, port, seen, close: () => closeServer(server) });
}

function headerOf(raw: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) out.push(raw[i + 1]!);
  return out;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});
after(() => {
  assert.equal(openWebSocketSockets(), 0, 'no relayed WebSocket socket left open');
});

async function proxyFor(pool: FakePool, o: Partial<Parameters<typeof startProxyServer>[0]> = {}): Promise<ProxyServer> {
  const p = await proxyForPool(pool, o);
  cleanups.push(() => p.close());
  return p;
}

async function standin(o: Parameters<typeof startStandin>[0] = {}): Promise<StandinHandle> {
  const s = await startStandin({ port: 0, stateBytes: 20_000, ...quiet, ...o });
  cleanups.push(() => s.close());
  return s;
}

describe('entry', () => {
  test('claims, sets the cookie, redirects to the deep link; the app relative redirect lands on the editor', async () => {
    const s = await standin({ secret: SECRET });
    const pool = new FakePool([demoApp()]);
    pool.addInstance('demo', { port: s.port, secret: SECRET });
    const p = await proxyFor(pool);
    const jar = new CookieJar();

    const bare = await request(`${p.url}/demo`);
    assert.equal(bare.status, 302);
    assert.equal(bare.headers.location, '/demo/');

    const { hops, final, url } = await follow(`${p.url}/demo/`, { jar, headers: { accept: 'text/html' } });
    assert.deepEqual(
      hops.map((h) => h.reply.status),
      [302, 302, 200],
    );
    assert.equal(hops[0]!.reply.headers.location, '/demo/open?path=webapp.jl');
    const setCookie = hops[0]!.reply.headers['set-cookie']![0]!;
    assert.match(setCookie, /^warmpool_demo=v1\./);
    assert.match(setCookie, /; Path=\/demo\/;/);
    assert.match(setCookie, /HttpOnly/);
    assert.match(setCookie, /SameSite=Lax/);
    assert.doesNotMatch(setCookie, /Secure/);
    assert.equal(hops[1]!.reply.headers.location, `./edit?id=${s.notebookId}`);
    assert.equal(url, `${p.url}/demo/edit?id=${s.notebookId}`);
    assert.match(final.text, /id="status"/);
    assert.equal(pool.claims.length, 1);

    // Nothing the visitor received gives the secret away (the stand-in sets a `secret` cookie, like Pluto).
    for (const h of hops) {
      assert.ok(!h.reply.rawHeaders.join('\n').includes(SECRET), `secret in headers of ${h.url}`);
      assert.ok(!h.reply.text.includes(SECRET), `secret in body of ${h.url}`);
    }
    assert.equal(jar.get('secret'), undefined);

    // A second visit goes back to the same instance: no new claim, no new cookie.
    const again = await request(`${p.url}/demo/`, { jar, headers: { accept: 'text/html' } });
    assert.equal(again.status, 302);
    assert.equal(again.headers.location, '/demo/open?path=webapp.jl');
    assert.equal(again.headers['set-cookie'], undefined);
    assert.equal(pool.claims.length, 1);

    // An API client with a live cookie is routed to the instance (its own root), not redirected.
    const api = await request(`${p.url}/demo/`, { jar, headers: { accept: 'application/json' } });
    assert.equal(api.status, 200);
    assert.match(api.text, /Pluto.jl stand-in/);

    // The instance refuses anyone who bypasses the proxy.
    const direct = await request(`http://127.0.0.1:${s.port}/edit?id=${s.notebookId}`);
    assert.equal(direct.status, 403);
    assert.ok(pool.eventsOf('request').length >= 3);
  });

  test("a new session goes straight where the instance's deep link led; a returning one through the deep link; a Location that leaves the app is not followed", async () => {
    const s = await standin({ secret: SECRET });
    const pool = new FakePool([demoApp()]);
    pool.addInstance('demo', { port: s.port, secret: SECRET, deepLinkRedirect: `./edit?id=${s.notebookId}&secret=${SECRET}` });
    pool.addInstance('demo', { port: s.port, secret: SECRET, deepLinkRedirect: '//evil.example/edit' });
    pool.addInstance('demo', { port: s.port, secret: SECRET, deepLinkRedirect: `/x/${SECRET}` });
    const p = await proxyFor(pool);
    const jar = new CookieJar();
    const { hops, url } = await follow(`${p.url}/demo/`, { jar, headers: { accept: 'text/html' } });
    assert.deepEqual(
      hops.map((h) => h.reply.status),
      [302, 200],
    );
    assert.equal(hops[0]!.reply.headers.location, `/demo/edit?id=${s.notebookId}`, 'the echoed secret removed');
    assert.equal(url, `${p.url}/demo/edit?id=${s.notebookId}`);
    const again = await request(`${p.url}/demo/`, { jar, headers: { accept: 'text/html' } });
    assert.equal(again.headers.location, '/demo/open?path=webapp.jl');
    for (const what of ['another origin', 'the secret in the path']) {
      const r = await request(`${p.url}/demo/`, { jar: new CookieJar(), headers: { accept: 'text/html' } });
      assert.equal(r.status, 302, what);
      assert.equal(r.headers.location, '/demo/open?path=webapp.jl', what);
      assert.ok(!r.rawHeaders.join('\n').includes(SECRET), what);
    }
    assert.equal(pool.claims.length, 3);
  });

  test('two apps in one browser: per-path cookies, each to its own instance', async () => {
    const a = await standin({ secret: SECRET, notebookId: '11111111-1111-4111-8111-111111111111' });
    const b = await standin({ notebookId: '22222222-2222-4222-8222-222222222222' });
    const pool = new FakePool([demoApp(), appConfig('other', { deepLink: '/open?path=x.jl', classifier: 'pluto' })]);
    pool.addInstance('demo', { port: a.port, secret: SECRET });
    pool.addInstance('other', { port: b.port });
    const p = await proxyFor(pool);
    const jar = new CookieJar();
    const ra = await follow(`${p.url}/demo/`, { jar, headers: { accept: 'text/html' } });
    const rb = await follow(`${p.url}/other/`, { jar, headers: { accept: 'text/html' } });
    assert.equal(ra.url, `${p.url}/demo/edit?id=${a.notebookId}`);
    assert.equal(rb.url, `${p.url}/other/edit?id=${b.notebookId}`);
    assert.equal(jar.cookies.length, 2);
    assert.deepEqual(jar.cookies.map((c) => c.path).sort(), ['/demo/', '/other/']);
    // Each cookie is sent only under its app's path, and each path reaches its own instance.
    assert.ok(!jar.header('/other/x').includes('warmpool_demo'));
    const sa = await request(`${p.url}/demo/notebooklist`, { jar });
    const sb = await request(`${p.url}/other/notebooklist`, { jar });
    assert.match(sa.text, new RegExp(a.notebookId));
    assert.match(sb.text, new RegExp(b.notebookId));
  });

  test('fresh=1 ends the current session and claims a new one; from another site it asks first', async () => {
    const s1 = await standin();
    const s2 = await standin();
    const pool = new FakePool([demoApp()]);
    pool.addInstance('demo', { port: s1.port });
    pool.addInstance('demo', { port: s2.port });
    const p = await proxyFor(pool);
    const jar = new CookieJar();
    await request(`${p.url}/demo/`, { jar, headers: { accept: 'text/html' } });
    const first = [...pool.sessions.keys()][0]!;

    const cross = await request(`${p.url}/demo/?fresh=1`, { jar, headers: { accept: 'text/html', 'sec-fetch-site': 'cross-site' } });
    assert.equal(cross.status, 200);
    assert.match(cross.text, /Start a fresh/);
    assert.ok(pool.sessions.has(first));

    const fresh = await request(`${p.url}/demo/?fresh=1`, { jar, headers: { accept: 'text/html', 'sec-fetch-site': 'same-origin' } });
    assert.equal(fresh.status, 302);
    assert.ok(fresh.headers['set-cookie']);
    assert.deepEqual(pool.ended.get(first)?.reason, 'fresh-requested');
    assert.equal(pool.sessions.size, 1);
    assert.notEqual([...pool.sessions.keys()][0], first);
  });
});

describe('refusals reach no instance', () => {
  test('missing, forged, tampered, wrong-app and expired cookies: a page with a fresh button, nothing forwarded', async () => {
    const backend = await echoBackend();
    cleanups.push(() => backend.close());
    const clock = new ManualClock();
    const pool = new FakePool([appConfig('demo'), appConfig('other')], clock);
    pool.addInstance('demo', { port: backend.port });
    pool.addInstance('other', { port: backend.port });
    const p = await proxyFor(pool, { clock, cookieMaxAgeMs: 3600_000 });
    const good = new CookieJar();
    await request(`${p.url}/demo/`, { jar: good, headers: { accept: 'text/html' } });
    const otherJar = new CookieJar();
    await request(`${p.url}/other/`, { jar: otherJar, headers: { accept: 'text/html' } });
    const value = good.get('warmpool_demo')!;
    const otherValue = otherJar.get('warmpool_other')!;
    const parts = value.split('.');
    parts[2] = Buffer.from('s999').toString('base64url');
    const tampered = parts.join('.');
    const forged = 'v1.AAAAAAAA.czE.aTE.ZGVtbw.abc.' + 'A'.repeat(43);
    const html = { accept: 'text/html' };

    const cases: [string, string | undefined, number, RegExp][] = [
      ['missing', undefined, 400, /no session cookie/],
      ['forged', forged, 403, /not valid/],
      ['garbage', 'hello', 403, /not valid/],
      ['tampered', tampered, 403, /not valid/],
      ['wrong app', otherValue, 403, /another app/],
    ];
    for (const [name, cookie, status, text] of cases) {
      const r = await request(`${p.url}/demo/edit?id=x`, { headers: { ...html, ...(cookie ? { cookie: `warmpool_demo=${cookie}` } : {}) } });
      assert.equal(r.status, status, name);
      assert.match(r.text, text, name);
      assert.match(r.text, /href="\/demo\/\?fresh=1"/, name);
      assert.equal(r.headers['cache-control'], 'no-store');
      const u = await rawUpgrade(`${p.url}/demo/`, cookie ? { cookie: `warmpool_demo=${cookie}` } : {});
      assert.equal(u.status, status, `${name} (upgrade)`);
      assert.equal(u.headers.connection, 'close');
      // POST and HEAD to the app root do not claim either.
      const post = await request(`${p.url}/demo/`, { method: 'POST', body: 'x', headers: cookie ? { cookie: `warmpool_demo=${cookie}` } : {} });
      assert.equal(post.status, status, `${name} (POST)`);
    }
    const json = await request(`${p.url}/demo/api`, { headers: { cookie: `warmpool_demo=${forged}`, accept: 'application/json' } });
    assert.equal(json.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(JSON.parse(json.text).error.code, 'SESSION_UNKNOWN');

    // Expired: the same valid cookie, an hour later.
    const before = backend.seen.length;
    const ok = await request(`${p.url}/demo/x`, { jar: good });
    assert.equal(ok.status, 200);
    assert.equal(backend.seen.length, before + 1);
    await clock.advance(3600_000);
    const expired = await request(`${p.url}/demo/x`, { jar: good, headers: { accept: 'application/json' } });
    assert.equal(expired.status, 403);
    assert.equal(JSON.parse(expired.text).error.code, 'SESSION_EXPIRED');
    // The proxy clears a cookie it will not accept.
    assert.match(String(expired.headers['set-cookie']), /warmpool_demo=; Path=\/demo\/; Max-Age=0/);

    assert.equal(backend.seen.length, before + 1, 'no refused request reached the instance');
    assert.equal(backend.upgrades, 0, 'no refused upgrade reached the instance');
  });

  test('key rotation: a cookie signed with the previous key stays valid; an unknown key is refused', async () => {
    const backend = await echoBackend();
    cleanups.push(() => backend.close());
    const pool = new FakePool([appConfig('demo')]);
    pool.addInstance('demo', { port: backend.port });
    const oldKeys = keyRing('the-old-key-0123456789');
    const p1 = await proxyFor(pool, { keys: oldKeys });
    const jar = new CookieJar();
    await request(`${p1.url}/demo/`, { jar, headers: { accept: 'text/html' } });

    const rotated = await proxyFor(pool, { keys: keyRing('the-new-key-0123456789', ['the-old-key-0123456789']) });
    assert.equal((await request(`${rotated.url}/demo/x`, { jar })).status, 200);
    const retired = await proxyFor(pool, { keys: keyRing('the-new-key-0123456789') });
    assert.equal((await request(`${retired.url}/demo/x`, { jar })).status, 403);
  });
});

describe('pages', () => {
  test('pool empty: the waiting page holds its place with a live stream; an API request is held; both get in the moment an instance is added', async () => {
    const s = await standin();
    const s2 = await standin();
    const pool = new FakePool([demoApp()]);
    const p = await proxyFor(pool);
    const alice = new CookieJar();
    const bob = new CookieJar();
    const wa = await request(`${p.url}/demo/`, { jar: alice, headers: { accept: 'text/html' } });
    assert.equal(wa.status, 503);
    const wait = /data-wait="([^"]+)"/.exec(wa.text)![1]!;
    assert.match(wait, /^\/demo\/\?wait=[A-Za-z0-9_-]{22}$/, 'a 128-bit ticket');
    assert.match(wa.text, /You are next in line/);
    assert.match(wa.text, new RegExp(`<noscript><meta http-equiv="refresh" content="0;url=${wait.replace(/[?]/g, '\\?')}"></noscript>`));
    const stream = await openEventStream(`${p.url}${wait}`, { jar: alice });
    assert.equal(stream.status, 200);
    assert.equal(stream.headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.equal((await stream.next('line')).data.position, 1);
    // Bob's API client is held in line behind Alice.
    let bobDone = false;
    const held = request(`${p.url}/demo/`, { jar: bob, headers: { accept: 'application/json' } }).finally(() => {
      bobDone = true;
    });
    await until('bob to hold a place', () => (pool.claims.length === 2 ? true : undefined));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(bobDone, false, 'held open, not answered');

    pool.addInstance('demo', { port: s.port });
    const ready = await stream.next('ready');
    assert.match(ready.data.url, /^\/demo\/\?collect=[A-Za-z0-9_-]{22}$/);
    await stream.ended;
    assert.equal(bobDone, false, "the first instance is Alice's");
    const ra = await follow(`${p.url}${ready.data.url}`, { jar: alice, headers: { accept: 'text/html' } });
    assert.equal(ra.hops[0]!.reply.status, 302);
    assert.equal(ra.final.status, 200);
    assert.equal(ra.url, `${p.url}/demo/edit?id=${s.notebookId}`);
    assert.equal((await request(`${p.url}${ready.data.url}`, { headers: { accept: 'application/json' } })).status, 410, 'a collect URL works once');

    pool.addInstance('demo', { port: s2.port });
    const rb = await held;
    assert.equal(rb.status, 302);
    assert.equal(rb.headers.location, '/demo/open?path=webapp.jl');
    assert.ok(bob.get('warmpool_demo'), 'the held request got its cookie');
  });

  test('instance not answering: 502 page; session ended: 410 page with the reason and a fresh button', async () => {
    const backend = await echoBackend();
    const pool = new FakePool([appConfig('demo')]);
    const id = pool.addInstance('demo', { port: backend.port });
    const p = await proxyFor(pool);
    const jar = new CookieJar();
    await request(`${p.url}/demo/`, { jar, headers: { accept: 'text/html' } });
    assert.equal((await request(`${p.url}/demo/a`, { jar })).status, 200);
    await backend.close();
    const down = await request(`${p.url}/demo/a`, { jar, headers: { accept: 'text/html' } });
    assert.equal(down.status, 502);
    assert.match(down.text, /not answering/);
    assert.match(down.text, /\?fresh=1/);
    const downPost = await request(`${p.url}/demo/a`, { method: 'POST', jar, body: Buffer.alloc(200_000), headers: { accept: 'application/json' } });
    assert.equal(downPost.status, 502, 'a request with a body gets the answer too');
    assert.equal(JSON.parse(downPost.text).error.code, 'INSTANCE_NOT_READY');
    assert.equal((await rawUpgrade(`${p.url}/demo/`, { cookie: jar.header('/demo/') })).status, 502);
    assert.ok(pool.eventsOf('upstream-error').length >= 1);

    pool.instanceExited(id);
    const stale = jar.header('/demo/');
    const gone = await request(`${p.url}/demo/a`, { jar, headers: { accept: 'text/html' } });
    assert.equal(gone.status, 410);
    assert.match(gone.text, /stopped unexpectedly/);
    assert.match(gone.text, /href="\/demo\/\?fresh=1"/);
    const goneJson = JSON.parse((await request(`${p.url}/demo/a`, { jar: new CookieJar(), headers: { cookie: stale, accept: 'application/json' } })).text);
    assert.equal(goneJson.reason, 'instance-exited');
  });

  test('landing page, landing redirect, unknown app, healthz; everything escaped', async () => {
    const pool = new FakePool([appConfig('demo'), appConfig('a-b')]);
    const p = await proxyFor(pool);
    const land = await request(`${p.url}/`, { headers: { accept: 'text/html' } });
    assert.equal(land.status, 200);
    assert.match(land.text, /href="\/demo\/"/);
    assert.match(land.text, /href="\/a-b\/"/);
    const nope = await request(`${p.url}/%3Cscript%3E/x`, { headers: { accept: 'text/html' } });
    assert.equal(nope.status, 404);
    assert.match(nope.text, /href="\/demo\/"/);
    assert.ok(!nope.text.includes('<script'), 'the unknown name is escaped');
    const nopeJson = JSON.parse((await request(`${p.url}/nope/`)).text);
    assert.equal(nopeJson.error.code, 'APP_UNKNOWN');
    assert.deepEqual(
      nopeJson.apps.map((a: { name: string }) => a.name),
      ['demo', 'a-b'],
    );
    const hz = await request(`${p.url}/_warmpool/healthz`);
    assert.equal(hz.status, 200);
    assert.equal(JSON.parse(hz.text).ok, true);
    assert.equal((await request(`${p.url}/_warmpool/nothing`)).status, 404);

    const r = await proxyFor(pool, { config: warmpoolConfig([...pool.apps()], { landingRedirect: 'https://example.org/courses' }) });
    const red = await request(`${r.url}/`, { headers: { accept: 'text/html' } });
    assert.equal(red.status, 302);
    assert.equal(red.headers.location, 'https://example.org/courses');
  });

  test('mounted beside the operator routes: other paths go to next()', async () => {
    const backend = await echoBackend();
    cleanups.push(() => backend.close());
    const pool = new FakePool([appConfig('demo')]);
    pool.addInstance('demo', { port: backend.port });
    const proxy = createProxy({ config: warmpoolConfig([...pool.apps()]), pool, keys: TEST_KEYS, landing: false });
    const server = createServer((req, res) => {
      proxy.handleRequest(req, res, () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`operator ${req.url}`);
      });
    });
    server.on('upgrade', (req, socket, head) =>
      proxy.handleUpgrade(req, socket, head, () => {
        socket.end('HTTP/1.1 418 Teapot\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      }),
    );
    const port = await listen(server);
    cleanups.push(async () => {
      await proxy.close();
      await closeServer(server);
    });
    const base = `http://127.0.0.1:${port}`;
    assert.equal((await request(`${base}/mine/page`)).text, 'operator /mine/page');
    assert.equal((await request(`${base}/`)).text, 'operator /');
    assert.equal((await rawUpgrade(`${base}/mine/ws`)).status, 418);
    const jar = new CookieJar();
    assert.equal((await request(`${base}/demo/`, { jar, headers: { accept: 'text/html' } })).status, 302);
    assert.equal((await request(`${base}/demo/x`, { jar })).status, 200);
  });
});

describe('forwarding', () => {
  test('X-Forwarded-*, hop-by-hop headers both ways, Host kept, warmpool cookies stripped, secret injected', async () => {
    const backend = await echoBackend((req, res) => {
      req.resume();
      res.writeHead(200, [
        'Content-Type',
        'application/json',
        'Connection',
        'X-Resp-Hop',
        'X-Resp-Hop',
        '1',
        'Keep-Alive',
        'timeout=77',
        'X-Kept',
        'yes',
        'Set-Cookie',
        'app=1; Path=/',
        'Set-Cookie',
        `auth=${'tok-' + 'en-123456789'}; Path=/`,
      ]);
      res.end(JSON.stringify({ url: req.url, rawHeaders: req.rawHeaders }));
    });
    cleanups.push(() => backend.close());
    const apps = [
      appConfig('q', { secret: { env: 'S', inject: { query: 'token', headerFormat: '{secret}' } } }),
      appConfig('h', {
        secret: { env: 'S', inject: { header: 'Authorization', headerFormat: 'token {secret}' } },
        prefix: { mode: 'base-url', env: 'BASE_URL' },
      }),
      appConfig('c', { secret: { env: 'S', inject: { cookie: 'secret', headerFormat: '{secret}' } } }),
    ];
    const pool = new FakePool(apps);
    for (const a of apps) pool.addInstance(a.name, { port: backend.port, secret: 'tok-en-123456789' });
    const p = await proxyFor(pool);
    const jar = new CookieJar();
    for (const a of apps) await request(`${p.url}/${a.name}/`, { jar, headers: { accept: 'text/html' } });
    const sent = {
      host: 'public.example:8443',
      connection: 'keep-alive, X-Custom-Hop',
      'x-custom-hop': 'drop me',
      'keep-alive': 'timeout=5',
      te: 'trailers',
      'proxy-connection': 'keep-alive',
      'x-forwarded-for': '6.6.6.6',
      'x-forwarded-host': 'evil.example',
      'x-forwarded-proto': 'https',
      authorization: 'token forged',
      'x-visitor': 'kept',
    };

    const q = await request(`${p.url}/q/api/x?a=1&token=visitor-supplied`, { jar, headers: { ...sent, cookie: 'mine=1' } });
    const seenQ = JSON.parse(q.text) as { url: string; rawHeaders: string[] };
    assert.equal(seenQ.url, '/api/x?a=1&token=tok-en-123456789', 'prefix stripped, secret set once');
    const h = (n: string) => headerOf(seenQ.rawHeaders, n);
    assert.deepEqual(h('host'), ['public.example:8443']);
    assert.deepEqual(h('x-forwarded-for'), ['127.0.0.1']);
    assert.deepEqual(h('x-forwarded-proto'), ['http']);
    assert.deepEqual(h('x-forwarded-host'), ['public.example:8443']);
    for (const hop of ['x-custom-hop', 'keep-alive', 'te', 'proxy-connection']) assert.deepEqual(h(hop), [], hop);
    assert.deepEqual(h('x-visitor'), ['kept']);
    assert.deepEqual(h('cookie'), ['mine=1'], 'warmpool cookies are not forwarded');
    assert.deepEqual(h('authorization'), ['token forged'], 'query-injecting apps leave Authorization alone');
    // Response: hop-by-hop gone, the rest kept, the cookie carrying the secret dropped.
    assert.equal(q.headers['x-resp-hop'], undefined);
    assert.notEqual(q.headers['keep-alive'], 'timeout=77');
    assert.equal(q.headers['x-kept'], 'yes');
    assert.deepEqual(q.headers['set-cookie'], ['app=1; Path=/']);

    const hr = JSON.parse((await request(`${p.url}/h/api/x`, { jar, headers: sent })).text) as { url: string; rawHeaders: string[] };
    assert.equal(hr.url, '/h/api/x', 'base-url mode keeps the prefix');
    assert.deepEqual(headerOf(hr.rawHeaders, 'authorization'), ['token tok-en-123456789'], 'the visitor cannot override the injected header');

    const cr = JSON.parse((await request(`${p.url}/c/api/x`, { jar, headers: { cookie: 'secret=visitor; mine=2' } })).text) as {
      url: string;
      rawHeaders: string[];
    };
    assert.equal(cr.url, '/api/x');
    assert.deepEqual(headerOf(cr.rawHeaders, 'cookie'), ['mine=2; app=1; secret=tok-en-123456789'], "the visitor's own secret cookie is replaced");
  });

  test('a trusted proxy in front: X-Forwarded-For appended, its proto believed, cookies Secure', async () => {
    const backend = await echoBackend();
    cleanups.push(() => backend.close());
    const pool = new FakePool([appConfig('demo')]);
    pool.addInstance('demo', { port: backend.port });
    const p = await proxyFor(pool, { config: warmpoolConfig([...pool.apps()], { trustedProxies: ['127.0.0.0/8'] }) });
    const jar = new CookieJar();
    const e = await request(`${p.url}/demo/`, { jar, headers: { accept: 'text/html', 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.7' } });
    assert.match(String(e.headers['set-cookie']), /; Secure/);
    const r = JSON.parse(
      (
        await request(`${p.url}/demo/x`, {
          jar,
          headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'notebooks.example' },
        })
      ).text,
    );
    assert.deepEqual(headerOf(r.rawHeaders, 'x-forwarded-for'), ['203.0.113.7, 127.0.0.1']);
    assert.deepEqual(headerOf(r.rawHeaders, 'x-forwarded-proto'), ['https']);
    assert.deepEqual(headerOf(r.rawHeaders, 'x-forwarded-host'), ['notebooks.example']);
    assert.equal(pool.claims[0]!.visitor, '203.0.113.7');
  });

  test('Location: absolute paths and instance URLs map back under /<app>/, relative ones pass', async () => {
    let loc = '';
    const backend = await echoBackend((req, res) => {
      req.resume();
      res.writeHead(302, { location: loc });
      res.end();
    });
    cleanups.push(() => backend.close());
    const pool = new FakePool([appConfig('demo')]);
    pool.addInstance('demo', { port: backend.port });
    const p = await proxyFor(pool);
    const jar = new CookieJar();
    await request(`${p.url}/demo/`, { jar, headers: { accept: 'text/html' } });
    for (const [given, expected] of [
      ['./edit?id=1', './edit?id=1'],
      ['/tree', '/demo/tree'],
      [`http://127.0.0.1:${backend.port}/lab?x=1`, '/demo/lab?x=1'],
      ['https://elsewhere.example/', 'https://elsewhere.example/'],
    ]) {
      loc = given!;
      assert.equal((await request(`${p.url}/demo/r`, { jar })).headers.location, expected);
    }
  });

  test('bodies stream both ways intact; a visitor who leaves tears the upstream exchange down', async () => {
    const big = randomBytes(48 * 1024 * 1024);
    const bigHash = createHash('sha256').update(big).digest('hex');
    let upstreamClosed: () => void;
    const closedP = new Promise<void>((r) => (upstreamClosed = r));
    const backend = await echoBackend((req, res) => {
      if (req.url === '/upload') {
        const h = createHash('sha256');
        let n = 0;
        req.on('data', (c: Buffer) => {
          h.update(c);
          n += c.length;
        });
        req.on('end', () => res.end(JSON.stringify({ n, hash: h.digest('hex') })));
        return;
      }
      if (req.url === '/download') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.end(big);
        return;
      }
      // /forever: a slow endless stream, until the proxy lets go.
      res.writeHead(200, { 'content-type': 'text/plain' });
      const t = setInterval(() => res.write('tick\n'), 10);
      res.on('close', () => {
        clearInterval(t);
        upstreamClosed();
      });
    });
    cleanups.push(() => backend.close());
    const pool = new FakePool([appConfig('demo')]);
    pool.addInstance('demo', { port: backend.port });
    const p = await proxyFor(pool);
    const jar = new CookieJar();
    await request(`${p.url}/demo/`, { jar, headers: { accept: 'text/html' } });

    const up = await request(`${p.url}/demo/upload`, { method: 'POST', jar, body: big, headers: { 'content-type': 'application/octet-stream' } });
    assert.deepEqual(JSON.parse(up.text), { n: big.length, hash: bigHash });
    const down = await request(`${p.url}/demo/download`, { jar });
    assert.equal(createHash('sha256').update(down.body).digest('hex'), bigHash);
    const t = pool.sessions.values().next().value!.traffic;
    assert.ok(t.bytesIn >= big.length && t.bytesOut >= big.length);
    assert.equal(t.requests['POST 2xx'], 1);

    // Chunked upload (no Content-Length) streams too.
    const chunked = await new Promise<string>((resolve, reject) => {
      const r = httpRequest(
        {
          host: '127.0.0.1',
          port: p.port,
          path: '/demo/upload',
          method: 'POST',
          agent: false,
          headers: { cookie: jar.header('/demo/'), 'transfer-encoding': 'chunked' },
        },
        (res) => {
          let s = '';
          res.on('data', (c: Buffer) => (s += c));
          res.on('end', () => resolve(s));
        },
      );
      r.on('error', reject);
      r.write(big.subarray(0, 1000));
      r.end(big.subarray(1000, 5000));
    });
    assert.equal(JSON.parse(chunked).n, 5000);

    await new Promise<void>((resolve, reject) => {
      const r = httpRequest({ host: '127.0.0.1', port: p.port, path: '/demo/forever', agent: false, headers: { cookie: jar.header('/demo/') } }, (res) => {
        res.once('data', () => {
          r.destroy();
          resolve();
        });
      });
      r.on('error', () => undefined);
      r.end();
      setTimeout(() => reject(new Error('no data')), 5000).unref();
    });
    await closedP;
  });
});

describe('upstream connections per instance', () => {
  test('at most upstreamConnectionsPerInstance connections to one instance; the other requests wait their turn and all are answered', async () => {
    let open = 0;
    let most = 0;
    const held: ServerResponse[] = [];
    const b = await echoBackend((req, res) => {
      req.resume();
      held.push(res);
      // Answer only once 2 are waiting: proves the proxy does not open a third while two are busy.
      if (held.length >= 2) for (const r of held.splice(0)) r.end('ok');
    });
    b.server.on('connection', (s) => {
      open++;
      most = Math.max(most, open);
      s.on('close', () => open--);
    });
    cleanups.push(() => b.close());
    const pool = new FakePool([appConfig('demo')]);
    pool.addInstance('demo', { port: b.port });
    const p = await proxyFor(pool, { config: warmpoolConfig([...pool.apps()], { relay: { upstreamConnectionsPerInstance: 2 } }) });
    const jar = new CookieJar();
    assert.equal((await request(`${p.url}/demo/`, { jar, headers: { accept: 'text/html' } })).status, 302);
    // Ten requests on ten client connections at once.
    const replies = await Promise.all(Array.from({ length: 10 }, (_, i) => request(`${p.url}/demo/r${i}`, { jar })));
    assert.deepEqual(
      replies.map((r) => r.status),
      Array(10).fill(200),
    );
    assert.equal(b.seen.length, 10);
    assert.ok(most <= 2, `the instance saw ${most} connections at once`);
  });
});
