// The pure passes of the request path, table-style: routing, upstream and downstream headers,
// secret injection and scrubbing, trusted proxies, answers and escaping.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { render } from '../proxy/answers.js';
import { TrustedProxies, normalizeIp, visitOf } from '../proxy/forwarded.js';
import { Leaving } from '../proxy/leaving.js';
import { downstreamHeaders, publicLocation, upstreamHeaders, upstreamPath } from '../proxy/headers.js';
import { esc } from '../proxy/pages.js';
import { route } from '../proxy/router.js';
import { leaksSecret, withSecretQuery, withoutQueryParam } from '../proxy/secret.js';
import { appConfig, newTraffic } from './helpers/fake-pool.js';
import type { LineStatus, SessionTarget } from '../pool/api.js';

const isApp = (n: string) => n === 'demo' || n === 'jup';

test('route', () => {
  const table: [string | undefined, unknown][] = [
    ['/', { kind: 'landing' }],
    ['/?x=1', { kind: 'landing' }],
    ['/demo', { kind: 'app-bare', app: 'demo', query: '' }],
    ['/demo?fresh=1', { kind: 'app-bare', app: 'demo', query: '?fresh=1' }],
    ['/demo/', { kind: 'app', app: 'demo', rest: '/', isRoot: true }],
    ['/demo/?ticket=t1', { kind: 'app', app: 'demo', rest: '/?ticket=t1', isRoot: true }],
    ['/demo/edit?id=1', { kind: 'app', app: 'demo', rest: '/edit?id=1', isRoot: false }],
    ['/demo//x', { kind: 'app', app: 'demo', rest: '//x', isRoot: false }],
    ['/jup/api/kernels/1/channels?session_id=2', { kind: 'app', app: 'jup', rest: '/api/kernels/1/channels?session_id=2', isRoot: false }],
    ['/_warmpool/healthz', { kind: 'internal', path: '/healthz' }],
    ['/_warmpool', { kind: 'internal', path: '/' }],
    ['/nope/x', { kind: 'other', segment: 'nope' }],
    ['/Demo/', { kind: 'other', segment: 'Demo' }],
    ['/favicon.ico', { kind: 'other', segment: 'favicon.ico' }],
    ['*', { kind: 'invalid' }],
    ['http://evil/demo/', { kind: 'invalid' }],
    [undefined, { kind: 'invalid' }],
  ];
  for (const [url, want] of table) assert.deepEqual(route(url, isApp), want, String(url));
});

function target(o: Partial<SessionTarget> = {}): SessionTarget {
  return { session: 's1', app: 'demo', instanceId: 'i1', host: '127.0.0.1', port: 4321, claimedAt: 0, traffic: newTraffic(), ...o };
}
const visit = { peer: '10.0.0.9', trusted: false, proto: 'http' as const, forwardedFor: '10.0.0.9', forwardedHost: 'pub.example', visitor: '10.0.0.9' };

function pairs(flat: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

test('upstreamPath: strip or keep the prefix; the secret query parameter set exactly once', () => {
  const strip = appConfig('demo', { secret: { env: 'S', inject: { query: 'secret', headerFormat: '{secret}' } } });
  const keep = appConfig('jup', { prefix: { mode: 'base-url', env: 'BASE_URL' } });
  const t = target({ secret: 'abc' });
  assert.equal(upstreamPath(strip, '/edit?id=1', '/demo/edit?id=1', t), '/edit?id=1&secret=abc');
  assert.equal(upstreamPath(strip, '/', '/demo/', t), '/?secret=abc');
  assert.equal(upstreamPath(strip, '/x?', '/demo/x?', t), '/x?secret=abc');
  assert.equal(upstreamPath(strip, '/x?secret=mine&a=1', '/demo/x?secret=mine&a=1', t), '/x?a=1&secret=abc');
  assert.equal(upstreamPath(strip, '/x', '/demo/x', target()), '/x', 'no secret on this instance');
  assert.equal(upstreamPath(keep, '/api/x', '/jup/api/x', t), '/jup/api/x');
  assert.equal(withSecretQuery('/a?b=secretive', 'secret', 'a b'), '/a?b=secretive&secret=a%20b');
});

test('upstreamHeaders: hop-by-hop out, Connection-listed out, X-Forwarded-* ours, Host kept, upgrade kept for WebSockets', () => {
  const raw = [
    'Host',
    'pub.example',
    'Connection',
    'keep-alive, X-Foo',
    'Connection',
    'Upgrade',
    'X-Foo',
    '1',
    'Keep-Alive',
    '300',
    'Transfer-Encoding',
    'chunked',
    'TE',
    'trailers',
    'Trailer',
    'X-T',
    'Upgrade',
    'websocket',
    'Proxy-Authorization',
    'x',
    'Expect',
    '100-continue',
    'X-Forwarded-For',
    '6.6.6.6',
    'Forwarded',
    'for=6.6.6.6',
    'Cookie',
    'a=1; warmpool_demo=v',
    'Cookie',
    'b=2',
    'Sec-WebSocket-Key',
    'k',
    'Sec-WebSocket-Protocol',
    'v1.kernel.websocket.jupyter.org',
    'Origin',
    'http://pub.example',
  ];
  const app = appConfig('demo');
  const out = pairs(upstreamHeaders(raw, { app, target: target(), visit }));
  assert.deepEqual(out, [
    ['Host', 'pub.example'],
    ['Sec-WebSocket-Key', 'k'],
    ['Sec-WebSocket-Protocol', 'v1.kernel.websocket.jupyter.org'],
    ['Origin', 'http://pub.example'],
    ['Cookie', 'a=1; b=2'],
    ['X-Forwarded-For', '10.0.0.9'],
    ['X-Forwarded-Proto', 'http'],
    ['X-Forwarded-Host', 'pub.example'],
  ]);
  const ws = pairs(upstreamHeaders(raw, { app, target: target(), visit, upgrade: 'websocket' }));
  assert.deepEqual(
    ws.filter(([k]) => /^(connection|upgrade)$/i.test(k)),
    [
      ['Connection', 'Upgrade'],
      ['Upgrade', 'websocket'],
    ],
  );

  const hdr = appConfig('jup', { secret: { env: 'T', inject: { header: 'Authorization', headerFormat: 'token {secret}', cookie: 'sc' } } });
  const withSecret = pairs(upstreamHeaders(['authorization', 'token evil', 'cookie', 'sc=evil; x=1'], { app: hdr, target: target({ secret: 'S' }), visit }));
  assert.deepEqual(withSecret, [
    ['Cookie', 'x=1; sc=S'],
    ['Authorization', 'token S'],
    ['X-Forwarded-For', '10.0.0.9'],
    ['X-Forwarded-Proto', 'http'],
    ['X-Forwarded-Host', 'pub.example'],
  ]);
});

test('downstreamHeaders and Location: hop-by-hop out, the secret never shown', () => {
  const app = appConfig('demo', { secret: { env: 'S', inject: { query: 'secret', headerFormat: '{secret}' } } });
  const t = target({ secret: 'Sec12345' });
  const out = pairs(
    downstreamHeaders(
      {
        connection: 'x-hop',
        'x-hop': '1',
        'keep-alive': 'timeout=5',
        'transfer-encoding': 'chunked',
        'content-type': 'text/html',
        'set-cookie': ['secret=Sec12345; HttpOnly', 'app=1'],
        'x-debug': 'token Sec12345',
        location: './edit?id=1&secret=Sec12345',
      },
      { app, target: t },
    ),
  );
  assert.deepEqual(out, [
    ['content-type', 'text/html'],
    ['set-cookie', 'app=1'],
    ['location', './edit?id=1'],
  ]);

  const o = { app, target: t };
  assert.equal(publicLocation('/tree?x=1', o), '/demo/tree?x=1');
  assert.equal(publicLocation('//cdn.example/x', o), '//cdn.example/x');
  assert.equal(publicLocation('http://127.0.0.1:4321', o), '/demo/');
  assert.equal(publicLocation('http://127.0.0.1:43210/x', o), 'http://127.0.0.1:43210/x');
  assert.equal(publicLocation('/x?secret=Sec12345#h', o), '/demo/x#h');
  assert.equal(publicLocation('/x?a=Sec12345', o), '/demo/x?a=');
  const keep = appConfig('jup', { prefix: { mode: 'base-url', env: 'B' } });
  assert.equal(publicLocation('/jup/lab', { app: keep, target: t }), '/jup/lab');
  assert.equal(withoutQueryParam('/a?x=1&secret=2&y=3', 'secret'), '/a?x=1&y=3');
  assert.equal(leaksSecret('a%2Fb', 'a/b'), true);
});

test("an entry's leaving: its signal aborts with the reason, whether the visitor left before or after it was asked for", () => {
  const after = new Leaving();
  const s1 = after.signal;
  assert.equal(after.signal, s1, 'one signal');
  assert.equal(s1.aborted, false);
  const why = new Error('the visitor left');
  after.leave(why);
  assert.equal(s1.aborted, true);
  assert.equal(s1.reason, why);
  after.leave(new Error('again'));
  assert.equal(s1.reason, why, 'the first reason stays');

  const before = new Leaving();
  before.leave(why);
  assert.equal(before.signal.aborted, true, 'made already aborted');
  assert.equal(before.signal.reason, why);

  const closing = new Leaving();
  closing.leave();
  assert.equal(closing.signal.aborted, true);
  assert.equal((closing.signal.reason as DOMException).name, 'AbortError', 'no reason: an AbortError, as AbortController.abort() gives');
});

test('trusted proxies and the visit', () => {
  const trust = new TrustedProxies(['10.0.0.0/8', '::1', '192.168.1.5']);
  assert.equal(trust.has('10.1.2.3'), true);
  assert.equal(trust.has('::ffff:10.1.2.3'), true);
  assert.equal(trust.has('::1'), true);
  assert.equal(trust.has('192.168.1.6'), false);
  assert.equal(trust.has(undefined), false);
  // Answers are remembered per address (bounded): the same answers past the bound and after it forgets.
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 5000; i++) {
      const tail = `${(i >> 8) & 255}.${i & 255}`;
      assert.equal(trust.has(`10.9.${tail}`), true);
      assert.equal(trust.has(`11.9.${tail}`), false);
      assert.equal(trust.has(`::ffff:11.9.${tail}`), false);
    }
  }
  assert.equal(trust.has('::ffff:10.1.2.3'), true);
  assert.equal(trust.has('192.168.1.5'), true);
  assert.equal(normalizeIp('::ffff:127.0.0.1'), '127.0.0.1');
  assert.throws(() => new TrustedProxies(['nope']), /trustedProxies\[0\]/);
  assert.throws(() => new TrustedProxies(['10.0.0.0/33']), /prefix length/);

  const req = (peer: string, headers: Record<string, string>) => ({ socket: { remoteAddress: peer }, headers }) as unknown as IncomingMessage;
  const h = { host: 'pub.example', 'x-forwarded-for': '1.2.3.4', 'x-forwarded-proto': 'https, http', 'x-forwarded-host': 'outer.example' };
  assert.deepEqual(visitOf(req('10.0.0.2', h), trust), {
    peer: '10.0.0.2',
    trusted: true,
    proto: 'https',
    forwardedFor: '1.2.3.4, 10.0.0.2',
    forwardedHost: 'outer.example',
    visitor: '1.2.3.4',
  });
  assert.deepEqual(visitOf(req('8.8.8.8', h), trust), {
    peer: '8.8.8.8',
    trusted: false,
    proto: 'http',
    forwardedFor: '8.8.8.8',
    forwardedHost: 'pub.example',
    visitor: '8.8.8.8',
  });
  // The visitor behind trusted proxies: the nearest untrusted hop; what the client wrote further left does not count.
  assert.equal(visitOf(req('10.0.0.2', { host: 'x', 'x-forwarded-for': '6.6.6.6, 5.5.5.5, 10.9.9.9' }), trust).visitor, '5.5.5.5');
  assert.equal(visitOf(req('10.0.0.2', { host: 'x', 'x-forwarded-for': '10.1.1.1' }), trust).visitor, '10.1.1.1', 'all hops trusted: the farthest');
  assert.equal(visitOf(req('10.0.0.2', { host: 'x' }), trust).visitor, '10.0.0.2');
});

const line = (o: Partial<LineStatus> = {}): LineStatus => ({ position: 3, waiting: 5, reason: 'starting', ready: 0, starting: 4, claimed: 6, max: 10, ...o });

test('answers: status, content type, escaping, no caching', () => {
  const cases: [Parameters<typeof render>[0], number, string | undefined][] = [
    [{ kind: 'landing', apps: ['demo'] }, 200, undefined],
    [{ kind: 'waiting', app: 'demo', ticket: 't"<1', line: line() }, 503, 'POOL_EXHAUSTED'],
    [{ kind: 'line-limited', app: 'demo', why: 'unused-claims', limit: 10, retryAfterS: 12 }, 429, 'TOO_MANY'],
    [{ kind: 'line-limited', app: 'demo', why: 'waiting-places', limit: 100, retryAfterS: 25 }, 429, 'TOO_MANY'],
    [{ kind: 'unknown-app', name: '<x>', apps: ['demo'] }, 404, 'APP_UNKNOWN'],
    [{ kind: 'no-session', app: 'demo', why: 'missing' }, 400, 'SESSION_UNKNOWN'],
    [{ kind: 'no-session', app: 'demo', why: 'bad-signature' }, 403, 'SESSION_UNKNOWN'],
    [{ kind: 'no-session', app: 'demo', why: 'expired' }, 403, 'SESSION_EXPIRED'],
    [{ kind: 'ended', app: 'demo', reason: 'idle' }, 410, 'INSTANCE_GONE'],
    [{ kind: 'upstream-down', app: 'demo', timeout: false }, 502, 'INSTANCE_NOT_READY'],
    [{ kind: 'upstream-down', app: 'demo', timeout: true }, 504, 'INSTANCE_NOT_READY'],
    [{ kind: 'pool-stopped', app: 'demo' }, 503, 'POOL_STOPPED'],
  ];
  for (const [a, status, code] of cases) {
    const h = render(a, true);
    const j = render(a, false);
    assert.equal(h.status, status, a.kind);
    assert.equal(j.status, status, a.kind);
    assert.equal(h.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(j.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(h.headers['cache-control'], 'no-store');
    if (code) assert.equal(JSON.parse(j.body).error.code, code, a.kind);
    assert.ok(!/<x>|t"<1/.test(h.body), `${a.kind}: escaped`);
  }
  assert.equal(esc(`<a href="x" onclick='y'>&`), '&#60;a href=&#34;x&#34; onclick=&#39;y&#39;&#62;&#38;');
});

test('the waiting page: one script by nonce, its stream, a refresh without JavaScript, and the truth', () => {
  const w = render({ kind: 'waiting', app: 'demo', ticket: 't1', line: line({ estimatedWaitMs: 40_000 }) }, true);
  const csp = String(w.headers['content-security-policy']);
  const nonce = /script-src 'nonce-([A-Za-z0-9+/=]+)'/.exec(csp)?.[1];
  assert.ok(nonce && nonce.length >= 22, csp);
  assert.equal(csp, `default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-${nonce}'; connect-src 'self'; frame-ancestors 'none'`);
  assert.deepEqual(
    [...w.body.matchAll(/<script([^>]*)>/g)].map((m) => m[1]),
    [` nonce="${nonce}"`],
    'exactly one script, carrying the nonce',
  );
  assert.notEqual(
    String(render({ kind: 'waiting', app: 'demo', ticket: 't1', line: line() }, true).headers['content-security-policy']),
    csp,
    'a nonce per response',
  );
  assert.match(w.body, /<noscript><meta http-equiv="refresh" content="0;url=\/demo\/\?wait=t1"><\/noscript>/);
  assert.match(w.body, /data-wait="\/demo\/\?wait=t1"/);
  assert.match(w.body, /number 3 in line/);
  assert.match(w.body, /a new one is being started for you/);
  assert.match(w.body, /ready in about 40 seconds/);
  assert.equal(w.headers['retry-after'], undefined, 'the page waits live, not on a retry period');
  // Every other page keeps the script-free policy.
  assert.equal(
    render({ kind: 'landing', apps: ['demo'] }, true).headers['content-security-policy'],
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
  );

  const full = render(
    { kind: 'waiting', app: 'demo', ticket: 't1', line: line({ reason: 'full', position: 2, starting: 0, claimed: 10, estimatedWaitMs: 12 * 60_000 }) },
    true,
  ).body;
  assert.match(full, /The class is full: all 10 instances of demo are in use\./);
  assert.match(full, /number 2 in line/);
  assert.match(full, /free up in about 12 minutes, when the earliest session ends/);
  assert.doesNotMatch(full, /being (started|prepared)/);

  const api = render({ kind: 'waiting', app: 'demo', ticket: 't1', line: line() }, false);
  assert.equal(api.headers['retry-after'], '1');
  assert.equal(JSON.parse(api.body).wait, '/demo/?wait=t1');

  const limited = render({ kind: 'line-limited', app: 'demo', why: 'unused-claims', limit: 10, retryAfterS: 12 }, true);
  assert.equal(limited.headers['retry-after'], '12');
  assert.match(limited.body, /10 instances of demo opened from your network address have not been used yet\. Try again in 12 seconds/);
  assert.match(limited.body, /content="12;url=\/demo\/"/);
});
