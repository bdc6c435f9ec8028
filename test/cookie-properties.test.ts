// Property tests of the session cookie codec and of choosing among several cookies of one name:
// round trips, no input that throws, no altered value that verifies as another session, and a
// route only ever to a session whose own valid cookie the browser sent (the newest of them).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { IncomingMessage } from 'node:http';
import { ManualClock } from '../core/clock.js';
import { CookieCodec, keyRing, readCookies } from '../proxy/cookie.js';
import { readSession } from '../proxy/session.js';
import { FakePool, appConfig, newTraffic } from './helpers/fake-pool.js';

const KEY = keyRing('property-test-key-0123456789abcdef');
const ids = fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' });

test('sign then verify gives back exactly what was signed, for any ids', () => {
  const clock = new ManualClock();
  const codec = new CookieCodec({ keys: KEY, clock });
  fc.assert(
    fc.property(ids, ids, ids, (session, instance, app) => {
      const v = codec.sign({ session, instance, app });
      const fresh = new CookieCodec({ keys: KEY, clock }); // no cache: the value itself must verify
      assert.deepEqual(fresh.verify(v, app), { ok: true, payload: { session, instance, app, issued: clock.now() } });
    }),
    { numRuns: 300 },
  );
});

test('verify never throws, whatever the value and app', () => {
  const codec = new CookieCodec({ keys: KEY, clock: new ManualClock() });
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.stringMatching(/^v1\.[\w.-]{0,120}$/)), fc.string(), (value, app) => {
      const r = codec.verify(value, app);
      assert.equal(typeof r.ok, 'boolean');
    }),
    { numRuns: 1000 },
  );
});

test('a signed value with any one character changed, dropped or added never verifies as a different payload', () => {
  const clock = new ManualClock();
  const signer = new CookieCodec({ keys: KEY, clock });
  const chars = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.'.split(''));
  fc.assert(
    fc.property(ids, ids, fc.nat(), chars, fc.constantFrom('replace', 'drop', 'add'), (session, instance, at, ch, how) => {
      const v = signer.sign({ session, instance, app: 'demo' });
      const i = at % v.length;
      const altered =
        how === 'replace' ? v.slice(0, i) + ch + v.slice(i + 1) : how === 'drop' ? v.slice(0, i) + v.slice(i + 1) : v.slice(0, i) + ch + v.slice(i);
      if (altered === v) return;
      const r = new CookieCodec({ keys: KEY, clock }).verify(altered, 'demo');
      if (r.ok) assert.deepEqual(r.payload, { session, instance, app: 'demo', issued: clock.now() }, 'an altered value may only ever name the same session');
    }),
    { numRuns: 1000 },
  );
});

test('several cookies of one name: the route is the newest valid one the browser sent, or none', () => {
  const clock = new ManualClock();
  const codec = new CookieCodec({ keys: KEY, clock });
  const pool = new FakePool([appConfig('demo')], clock);
  const t0 = clock.now();
  for (let i = 0; i < 6; i++) {
    pool.sessions.set(`s${i}`, { session: `s${i}`, app: 'demo', instanceId: `i${i}`, host: '127.0.0.1', port: 1, claimedAt: t0, traffic: newTraffic() });
  }
  // A cookie: valid for session k issued at t0 - age, forged, or for another app.
  const cookie = fc.record({
    k: fc.integer({ min: 0, max: 5 }),
    age: fc.integer({ min: 0, max: 5 }),
    kind: fc.constantFrom('valid', 'valid', 'forged', 'other-app'),
  });
  fc.assert(
    fc.property(fc.array(cookie, { minLength: 1, maxLength: 6 }), fc.array(fc.stringMatching(/^[a-z]{1,6}=[a-z0-9]{0,8}$/), { maxLength: 3 }), (jar, noise) => {
      const values = jar.map((c) => {
        const v = codec.sign({ session: `s${c.k}`, instance: `i${c.k}`, app: c.kind === 'other-app' ? 'other' : 'demo', issued: t0 - c.age * 1000 });
        // A forged value: its signature's first characters changed (a real one never equals it).
        return c.kind === 'forged' ? v.slice(0, v.length - 43) + (v[v.length - 43] === 'A' ? 'B' : 'A') + v.slice(v.length - 42) : v;
      });
      const header = [...noise, ...values.map((v) => `warmpool_demo=${v}`)].join('; ');
      const r = readSession({ headers: { cookie: header } } as unknown as IncomingMessage, 'demo', codec, pool, false);
      const valid = jar.filter((c) => c.kind === 'valid');
      if (valid.length === 0) {
        assert.equal(r.ok, false);
        return;
      }
      const newest = Math.min(...valid.map((c) => c.age));
      const candidates = new Set(valid.filter((c) => c.age === newest).map((c) => `s${c.k}`));
      if (candidates.size > 1) assert.equal(r.ok, false, 'two sessions issued at the same instant: routed nowhere');
      else assert.equal(r.ok && r.target.session, [...candidates][0]);
    }),
    { numRuns: 500 },
  );
  assert.deepEqual(readCookies('a=1; warmpool_demo=x; warmpool_demo=y', 'warmpool_demo'), ['x', 'y']);
});
