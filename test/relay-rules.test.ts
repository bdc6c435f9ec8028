// The relay's rules as pure functions, table-style: which visitor requests are refused before
// anything is sent, which instance Set-Cookie and header values never reach a visitor, and which of
// several cookies of one name routes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CookieCodec, readCookies, setsWarmpoolCookie } from '../proxy/cookie.js';
import { downstreamHeaders, requestProblem } from '../proxy/headers.js';
import { leaksSecret } from '../proxy/secret.js';
import { readSession } from '../proxy/session.js';
import { ManualClock } from '../core/clock.js';
import { appConfig, FakePool, newTraffic, TEST_KEYS } from './helpers/fake-pool.js';
import type { IncomingMessage } from 'node:http';

const requests: [string, string[], RegExp | undefined][] = [
  ['plain', ['Host', 'a', 'Connection', 'keep-alive'], undefined],
  ['Connection names an ordinary header', ['Host', 'a', 'Connection', 'x-foo, close'], undefined],
  ['Connection names Content-Length', ['Host', 'a', 'Connection', 'content-length'], /names content-length/],
  ['Connection names Transfer-Encoding among others', ['Host', 'a', 'Connection', 'keep-alive, Transfer-Encoding'], /names transfer-encoding/],
  ['Connection names Host', ['Host', 'a', 'Connection', 'HOST'], /names host/],
  ['second Connection line names Content-Length', ['Host', 'a', 'Connection', 'close', 'connection', 'content-length'], /names content-length/],
  ['two Host headers', ['Host', 'a', 'host', 'b'], /more than one Host/],
];
for (const [what, raw, problem] of requests) {
  test(`requestProblem: ${what}`, () => {
    const p = requestProblem(raw);
    if (problem) assert.match(p ?? '', problem);
    else assert.equal(p, undefined);
  });
}

test('setsWarmpoolCookie: any warmpool_ name in any case, nothing else', () => {
  for (const v of ['warmpool_demo=x; Path=/', ' warmpool_other=1', 'WARMPOOL_DEMO=x', 'Warmpool_=', 'warmpool_demo'])
    assert.equal(setsWarmpoolCookie(v), true, v);
  for (const v of ['theme=dark', 'xwarmpool_demo=1', 'warmpool=1', '__Host-warmpool_demo=1', '']) assert.equal(setsWarmpoolCookie(v), false, v);
});

test('downstreamHeaders: planted cookies dropped, the rest kept; every Location mapped under the app', () => {
  const headers = Object.assign(Object.create(null) as Record<string, string | string[]>, {
    'set-cookie': ['theme=dark', 'warmpool_demo=planted; Path=/; Max-Age=999999', 'WarmPool_Other=1'],
    location: ['/a', '/b'],
    constructor: 'ok',
  });
  const target = { session: 's', app: 'demo', instanceId: 'i', host: '127.0.0.1', port: 1, claimedAt: 0, traffic: newTraffic() };
  const out = downstreamHeaders(headers, { app: appConfig('demo'), target });
  assert.deepEqual(out, ['set-cookie', 'theme=dark', 'location', '/demo/a', 'location', '/demo/b', 'constructor', 'ok']);
});

test('leaksSecret: raw, percent-encoded in either case or in part, base64 in both alphabets at every alignment', () => {
  const secret = 'k/+=Q9z~secret-value_42';
  const forms = [
    secret,
    encodeURIComponent(secret),
    encodeURIComponent(secret).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
    secret.replace('secret', '%73ecret'),
  ];
  for (let k = 0; k < 3; k++) {
    const b64 = Buffer.concat([Buffer.from('xyz'.slice(0, k)), Buffer.from(secret)]).toString('base64');
    forms.push(b64, b64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''), `token ${b64}; more`);
  }
  for (const f of forms) assert.equal(leaksSecret(`a=${f}`, secret), true, f);
  for (const f of ['a=1', '%zz%', Buffer.from('something else entirely').toString('base64'), 'secret-value']) assert.equal(leaksSecret(f, secret), false, f);
});

test('readCookies: one value as a string, several as a list in header order', () => {
  assert.equal(readCookies('a=1; warmpool_demo=x', 'warmpool_demo'), 'x');
  assert.deepEqual(readCookies('warmpool_demo=x; b=2; warmpool_demo="y"', 'warmpool_demo'), ['x', 'y']);
  assert.equal(readCookies('warmpool_demo2=x', 'warmpool_demo'), undefined);
});

test('readSession with several cookies of one name: the newest valid one routes; a tie between sessions routes nowhere', () => {
  const clock = new ManualClock();
  const codec = new CookieCodec({ keys: TEST_KEYS, clock });
  const pool = new FakePool([appConfig('demo')], clock);
  pool.addInstance('demo', { port: 1, id: 'i1' });
  pool.addInstance('demo', { port: 2, id: 'i2' });
  const live = (session: string, instanceId: string) => {
    pool.sessions.set(session, { session, app: 'demo', instanceId, host: '127.0.0.1', port: 1, claimedAt: 0, traffic: newTraffic() });
  };
  live('old', 'i1');
  live('new', 'i2');
  const t = clock.now();
  const older = codec.sign({ session: 'old', instance: 'i1', app: 'demo', issued: t - 1000 });
  const newer = codec.sign({ session: 'new', instance: 'i2', app: 'demo', issued: t });
  const req = (cookie: string) => ({ headers: { cookie } }) as unknown as IncomingMessage;
  for (const cookie of [`warmpool_demo=${older}; warmpool_demo=${newer}`, `warmpool_demo=${newer}; warmpool_demo=${older}`]) {
    const s = readSession(req(cookie), 'demo', codec, pool, false);
    assert.equal(s.ok && s.target.session, 'new', cookie);
  }
  const forged = newer.slice(0, -4) + 'AAAA';
  const s2 = readSession(req(`warmpool_demo=${forged}; warmpool_demo=${older}`), 'demo', codec, pool, false);
  assert.equal(s2.ok && s2.target.session, 'old');
  const twin = codec.sign({ session: 'old', instance: 'i1', app: 'demo', issued: t });
  const s3 = readSession(req(`warmpool_demo=${twin}; warmpool_demo=${newer}`), 'demo', codec, pool, false);
  assert.equal(s3.ok, false);
  assert.equal(!s3.ok && s3.answer.kind === 'no-session' && s3.answer.why, 'ambiguous');
});
