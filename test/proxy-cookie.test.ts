// The session cookie codec and key ring: signing, tampering, forging, expiry, rotation, bounded
// caches under a flood of forgeries, key loading from env, files and the state directory.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../core/clock.js';
import { isWarmpoolError } from '../core/errors.js';
import { CookieCodec, clearCookieHeader, forwardableCookies, keyRing, loadKeys, readCookie, setCookieHeader } from '../proxy/cookie.js';

const KEY = 'k'.repeat(32);

test('sign then verify; app, age and signature are checked', async () => {
  const clock = new ManualClock();
  const codec = new CookieCodec({ keys: keyRing(KEY), clock, maxAgeMs: 60_000 });
  const v = codec.sign({ session: 'sess-1', instance: 'inst-1', app: 'demo' });
  assert.match(v, /^v1\.[\w-]{8}\.[\w-]+\.[\w-]+\.[\w-]+\.[0-9a-z]+\.[\w-]{43}$/);
  assert.deepEqual(codec.verify(v, 'demo'), { ok: true, payload: { session: 'sess-1', instance: 'inst-1', app: 'demo', issued: clock.now() } });
  assert.deepEqual(codec.verify(v, 'other'), { ok: false, reason: 'wrong-app' });
  await clock.advance(59_999);
  assert.equal(codec.verify(v, 'demo').ok, true);
  await clock.advance(1);
  assert.deepEqual(codec.verify(v, 'demo'), { ok: false, reason: 'expired' });
});

test('tampering with any field, or forging, fails; a fresh codec (no cache) agrees', () => {
  const clock = new ManualClock();
  const codec = new CookieCodec({ keys: keyRing(KEY), clock });
  const v = codec.sign({ session: 's', instance: 'i', app: 'demo' });
  const parts = v.split('.');
  for (let i = 1; i < parts.length; i++) {
    const p = [...parts];
    p[i] = p[i]!.slice(0, -1) + (p[i]!.endsWith('A') ? 'B' : 'A');
    const r = new CookieCodec({ keys: keyRing(KEY), clock }).verify(p.join('.'), 'demo');
    assert.equal(r.ok, false, `field ${i}`);
  }
  for (const bad of [
    '',
    'x',
    'v1',
    'v2.a.b.c.d.e.f',
    `${v}.extra`,
    v.replace('v1.', 'v0.'),
    'v1.AAAAAAAA.cw.aQ.ZGVtbw.1.' + 'A'.repeat(43),
    'a'.repeat(5000),
  ]) {
    assert.equal(codec.verify(bad, 'demo').ok, false, bad.slice(0, 40));
  }
  // Signed by another key.
  const other = new CookieCodec({ keys: keyRing('z'.repeat(32)), clock }).sign({ session: 's', instance: 'i', app: 'demo' });
  assert.deepEqual(codec.verify(other, 'demo'), { ok: false, reason: 'bad-signature' });
});

test("a signature spelled another way (its last character's two unused bits set) is refused: one spelling per cookie", () => {
  const clock = new ManualClock();
  const codec = new CookieCodec({ keys: keyRing(KEY), clock });
  const ABC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  for (const session of ['s', 't', 'u', 'v']) {
    const v = codec.sign({ session, instance: 'i', app: 'demo' });
    const last = ABC.indexOf(v.at(-1)!);
    assert.equal(last & 3, 0, 'a signed cookie spells its signature canonically');
    for (const bits of [1, 2, 3]) {
      const respelled = v.slice(0, -1) + ABC[last | bits];
      // Same 32 bytes once decoded: only the spelling differs.
      assert.deepEqual(Buffer.from(respelled.split('.')[6]!, 'base64url'), Buffer.from(v.split('.')[6]!, 'base64url'));
      assert.deepEqual(new CookieCodec({ keys: keyRing(KEY), clock }).verify(respelled, 'demo'), { ok: false, reason: 'bad-signature' });
    }
  }
});

test('rotation: previous keys verify, only the current key signs', () => {
  const clock = new ManualClock();
  const old = new CookieCodec({ keys: keyRing('old-key-0123456789'), clock });
  const v = old.sign({ session: 's', instance: 'i', app: 'demo' });
  const rotated = new CookieCodec({ keys: keyRing('new-key-0123456789', ['old-key-0123456789']), clock });
  assert.equal(rotated.verify(v, 'demo').ok, true);
  const fresh = rotated.sign({ session: 's', instance: 'i', app: 'demo' });
  assert.equal(new CookieCodec({ keys: keyRing('new-key-0123456789'), clock }).verify(fresh, 'demo').ok, true);
  assert.equal(new CookieCodec({ keys: keyRing('new-key-0123456789'), clock }).verify(v, 'demo').ok, false);
});

test('a flood of distinct forgeries costs bounded memory', () => {
  const clock = new ManualClock();
  const codec = new CookieCodec({ keys: keyRing(KEY), clock, cacheSize: 100, negativeCacheSize: 50 });
  const good = codec.sign({ session: 's', instance: 'i', app: 'demo' });
  const parts = good.split('.');
  for (let n = 0; n < 20_000; n++) {
    const p = [...parts];
    p[2] = Buffer.from(`forged-${n}`).toString('base64url');
    assert.equal(codec.verify(p.join('.'), 'demo').ok, false);
  }
  const sizes = codec.cacheSizes();
  assert.ok(sizes.verified <= 100 && sizes.rejected <= 50, JSON.stringify(sizes));
  assert.equal(codec.verify(good, 'demo').ok, true);
});

test('keys must be long enough', () => {
  assert.throws(
    () => keyRing('short'),
    (e) => isWarmpoolError(e, 'CONFIG_INVALID'),
  );
  assert.throws(() => keyRing(KEY, ['short']), /previous cookie key #1/);
});

test('loadKeys: env, files, previous list; generated once and persisted 0600 when none is given', () => {
  const dir = mkdtempSync(join(tmpdir(), 'warmpool-keys-'));
  try {
    const fromEnv = loadKeys({ WARMPOOL_COOKIE_KEY: KEY, WARMPOOL_COOKIE_KEY_PREVIOUS: 'p'.repeat(20) + ', ' + 'q'.repeat(20) }, dir);
    assert.equal(fromEnv.current.toString(), KEY);
    assert.deepEqual(fromEnv.previous.map(String), ['p'.repeat(20), 'q'.repeat(20)]);

    writeFileSync(join(dir, 'cur'), 'f'.repeat(24) + '\n');
    writeFileSync(join(dir, 'prev'), 'g'.repeat(24) + '\n' + 'h'.repeat(24) + '\n');
    const fromFiles = loadKeys({ WARMPOOL_COOKIE_KEY_FILE: join(dir, 'cur'), WARMPOOL_COOKIE_KEY_PREVIOUS_FILE: join(dir, 'prev') }, dir);
    assert.equal(fromFiles.current.toString(), 'f'.repeat(24));
    assert.deepEqual(fromFiles.previous.map(String), ['g'.repeat(24), 'h'.repeat(24)]);
    assert.throws(() => loadKeys({ WARMPOOL_COOKIE_KEY_FILE: join(dir, 'missing') }, dir), /WARMPOOL_COOKIE_KEY_FILE/);
    assert.throws(() => loadKeys({ WARMPOOL_COOKIE_KEY: KEY, WARMPOOL_COOKIE_KEY_FILE: join(dir, 'cur') }, dir), /both/);

    const state = join(dir, 'state');
    const a = loadKeys({}, state);
    const file = join(state, 'cookie-key');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const b = loadKeys({}, state);
    assert.ok(a.current.equals(b.current), 'a restart keeps the generated key');
    assert.equal(readFileSync(file, 'utf8').trim(), a.current.toString());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Cookie and Set-Cookie helpers', () => {
  assert.equal(readCookie('a=1; warmpool_demo=xyz; b=2', 'warmpool_demo'), 'xyz');
  assert.equal(readCookie('warmpool_demo2=1; warmpool_demo="q"', 'warmpool_demo'), 'q');
  assert.equal(readCookie('a=1', 'warmpool_demo'), undefined);
  assert.equal(readCookie(undefined, 'x'), undefined);
  assert.equal(readCookie('x', 'x'), undefined);

  assert.equal(forwardableCookies('a=1; b=2', 'secret'), 'a=1; b=2');
  assert.equal(forwardableCookies('a=1; warmpool_demo=x; warmpool_other=y; b=2'), 'a=1; b=2');
  assert.equal(forwardableCookies('warmpool_demo=x; secret=evil', 'secret'), undefined);
  assert.equal(forwardableCookies('secrets=1; secret=evil', 'secret'), 'secrets=1');

  assert.equal(setCookieHeader('demo', 'V', { secure: false, maxAgeMs: 3600_000 }), 'warmpool_demo=V; Path=/demo/; Max-Age=3600; HttpOnly; SameSite=Lax');
  assert.match(setCookieHeader('demo', 'V', { secure: true, maxAgeMs: 1000 }), /; Secure$/);
  assert.equal(clearCookieHeader('demo', false), 'warmpool_demo=; Path=/demo/; Max-Age=0; HttpOnly; SameSite=Lax');
});
