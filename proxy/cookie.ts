// The session cookie: a compact signed payload {session, instance, app, issued}, its key ring
// (current key plus previous ones for rotation) and the Cookie/Set-Cookie header helpers.

import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import type { Clock } from '../core/clock.js';
import { WarmpoolError } from '../core/errors.js';

export interface CookiePayload {
  session: string;
  instance: string;
  app: string;
  /** Clock ms when the cookie was signed. */
  issued: number;
}

/** Signing keys: `current` signs; every key (current and previous) verifies. */
export interface KeyRing {
  current: Buffer;
  previous: Buffer[];
}

export type VerifyFailure = 'malformed' | 'bad-signature' | 'expired' | 'wrong-app' | 'ambiguous';
export type VerifyResult = { ok: true; payload: CookiePayload } | { ok: false; reason: VerifyFailure };

const MIN_KEY_CHARS = 16;
const VERSION = 'v1';
/** Default cookie lifetime: a school day. */
export const DEFAULT_COOKIE_MAX_AGE_MS = 12 * 3600_000;

/** Builds a key ring from strings (utf8 bytes are the key material) or raw bytes. */
export function keyRing(current: string | Buffer, previous: readonly (string | Buffer)[] = []): KeyRing {
  const conv = (k: string | Buffer, what: string): Buffer => {
    const b = typeof k === 'string' ? Buffer.from(k, 'utf8') : k;
    if (b.length < MIN_KEY_CHARS) {
      throw new WarmpoolError('CONFIG_INVALID', `${what} is ${b.length} bytes long; a cookie key needs at least ${MIN_KEY_CHARS}`, {
        hint: 'use e.g. `openssl rand -base64 32`',
      });
    }
    return b;
  };
  return { current: conv(current, 'the cookie key'), previous: previous.map((k, i) => conv(k, `previous cookie key #${i + 1}`)) };
}

/**
 * Loads the key ring from WARMPOOL_COOKIE_KEY | WARMPOOL_COOKIE_KEY_FILE and
 * WARMPOOL_COOKIE_KEY_PREVIOUS (comma list) | WARMPOOL_COOKIE_KEY_PREVIOUS_FILE (one key a line or comma list).
 * With no key configured, one is generated once and kept in <stateDir>/cookie-key (mode 0600),
 * so a restart keeps every visitor's cookie valid.
 */
export function loadKeys(env: NodeJS.ProcessEnv, stateDir: string): KeyRing {
  const readKeyFile = (file: string, name: string): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch (e) {
      throw new WarmpoolError('CONFIG_INVALID', `${name}=${file} cannot be read: ${(e as Error).message}`, {
        hint: 'point it at a readable file holding the key',
      });
    }
  };
  const list = (s: string): string[] =>
    s
      .split(/[,\n]/)
      .map((x) => x.trim())
      .filter((x) => x.length > 0);

  if (env.WARMPOOL_COOKIE_KEY && env.WARMPOOL_COOKIE_KEY_FILE) {
    throw new WarmpoolError('CONFIG_INVALID', 'both WARMPOOL_COOKIE_KEY and WARMPOOL_COOKIE_KEY_FILE are set', { hint: 'set one of them' });
  }
  let current: string | undefined = env.WARMPOOL_COOKIE_KEY?.trim() || undefined;
  if (!current && env.WARMPOOL_COOKIE_KEY_FILE) current = readKeyFile(env.WARMPOOL_COOKIE_KEY_FILE, 'WARMPOOL_COOKIE_KEY_FILE').trim();
  const previous: string[] = [];
  if (env.WARMPOOL_COOKIE_KEY_PREVIOUS) previous.push(...list(env.WARMPOOL_COOKIE_KEY_PREVIOUS));
  if (env.WARMPOOL_COOKIE_KEY_PREVIOUS_FILE) previous.push(...list(readKeyFile(env.WARMPOOL_COOKIE_KEY_PREVIOUS_FILE, 'WARMPOOL_COOKIE_KEY_PREVIOUS_FILE')));

  if (!current) {
    const file = join(stateDir, 'cookie-key');
    try {
      current = readFileSync(file, 'utf8').trim();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new WarmpoolError('CONFIG_INVALID', `cannot read the cookie key ${file}: ${(e as Error).message}`, {
          hint: 'fix its permissions, or set WARMPOOL_COOKIE_KEY',
        });
      }
      current = randomBytes(32).toString('base64url');
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      // 'wx': never overwrite a key another process just wrote (cookies signed with it stay valid).
      writeFileSync(file, current + '\n', { mode: 0o600, flag: 'wx' });
      chmodSync(file, 0o600);
    }
  }
  return keyRing(current, previous);
}

/** A short id naming a key inside the (signed) cookie, so verification tries one key, not all. */
function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest().subarray(0, 6).toString('base64url');
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64url');
const unb64 = (s: string): string | undefined => {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) return undefined;
  return Buffer.from(s, 'base64url').toString('utf8');
};

/**
 * Signs and verifies cookie values. Format: v1.<kid>.<session>.<instance>.<app>.<issued36>.<hmac>
 * (fields base64url; HMAC-SHA256 over everything before the last dot).
 * Verified values are cached (bounded LRU), so the hot path is one map lookup; forged values are
 * cached only in a small negative LRU, so a flood of distinct forgeries costs one HMAC each and
 * bounded memory.
 */
export class CookieCodec {
  readonly maxAgeMs: number;
  private readonly clock: Clock;
  private readonly signKey: Buffer;
  private readonly signKid: string;
  private readonly keys = new Map<string, Buffer>();
  private readonly good: LRUCache<string, CookiePayload>;
  private readonly bad: LRUCache<string, VerifyFailure>;

  constructor(opts: { keys: KeyRing; clock: Clock; maxAgeMs?: number; cacheSize?: number; negativeCacheSize?: number }) {
    this.clock = opts.clock;
    this.maxAgeMs = opts.maxAgeMs ?? DEFAULT_COOKIE_MAX_AGE_MS;
    if (!(this.maxAgeMs > 0)) throw new WarmpoolError('CONFIG_INVALID', `cookie maxAgeMs is ${opts.maxAgeMs}; expected a positive number of ms`);
    this.signKey = opts.keys.current;
    this.signKid = keyId(this.signKey);
    for (const k of [opts.keys.current, ...opts.keys.previous]) {
      const id = keyId(k);
      if (!this.keys.has(id)) this.keys.set(id, k);
    }
    this.good = new LRUCache({ max: opts.cacheSize ?? 10_000 });
    this.bad = new LRUCache({ max: opts.negativeCacheSize ?? 1_000 });
  }

  /** Entries in the verified and rejected caches (bounded by the sizes given). */
  cacheSizes(): { verified: number; rejected: number } {
    return { verified: this.good.size, rejected: this.bad.size };
  }

  sign(p: { session: string; instance: string; app: string; issued?: number }): string {
    const issued = p.issued ?? this.clock.now();
    const body = `${VERSION}.${this.signKid}.${b64(p.session)}.${b64(p.instance)}.${b64(p.app)}.${issued.toString(36)}`;
    const value = `${body}.${mac(this.signKey, body).toString('base64url')}`;
    this.good.set(value, { session: p.session, instance: p.instance, app: p.app, issued });
    return value;
  }

  /** Verifies a cookie value for `app`: signature (any key of the ring), app, age. */
  verify(value: string, app: string): VerifyResult {
    let payload = this.good.get(value);
    if (!payload) {
      const known = this.bad.get(value);
      if (known) return { ok: false, reason: known };
      const r = this.check(value);
      if (!r.ok) {
        this.bad.set(value, r.reason);
        return r;
      }
      payload = r.payload;
      this.good.set(value, payload);
    }
    if (payload.app !== app) return { ok: false, reason: 'wrong-app' };
    const age = this.clock.now() - payload.issued;
    // A cookie from the future (more than a minute of clock skew) is as suspect as an old one.
    if (age >= this.maxAgeMs || age < -60_000) return { ok: false, reason: 'expired' };
    return { ok: true, payload };
  }

  private check(value: string): VerifyResult {
    if (value.length > 1024) return { ok: false, reason: 'malformed' };
    const parts = value.split('.');
    if (parts.length !== 7 || parts[0] !== VERSION) return { ok: false, reason: 'malformed' };
    const [, kid, s, i, a, t, sig] = parts as [string, string, string, string, string, string, string];
    const key = this.keys.get(kid);
    // 32 bytes spelled the one way they are signed: the last character's two unused bits zero. A decoder
    // ignores those bits, so without this one cookie had four spellings that all verified.
    const given = SIGNATURE.test(sig) ? Buffer.from(sig, 'base64url') : undefined;
    if (!key || !given || given.length !== 32) return { ok: false, reason: 'bad-signature' };
    const expected = mac(key, value.slice(0, value.length - sig.length - 1));
    if (!timingSafeEqual(expected, given)) return { ok: false, reason: 'bad-signature' };
    const session = unb64(s),
      instance = unb64(i),
      appName = unb64(a);
    const issued = /^[0-9a-z]{1,12}$/.test(t) ? parseInt(t, 36) : NaN;
    if (!session || !instance || !appName || !Number.isFinite(issued)) return { ok: false, reason: 'malformed' };
    return { ok: true, payload: { session, instance, app: appName, issued } };
  }
}

/** An HMAC-SHA256 in canonical unpadded base64url: 42 characters, then one whose low two bits are zero. */
const SIGNATURE = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

function mac(key: Buffer, body: string): Buffer {
  return createHmac('sha256', key).update(body).digest();
}

// --- headers -------------------------------------------------------------------------------

export const COOKIE_PREFIX = 'warmpool_';

/** The per-app cookie name: each app's cookie has its own name and Path, so two apps live side by side. */
export function cookieName(app: string): string {
  return COOKIE_PREFIX + app;
}

/** The value of cookie `name` in a Cookie header (the first one; readCookies gives them all). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  const all = readCookies(header, name);
  return all === undefined ? undefined : typeof all === 'string' ? all : all[0];
}

/**
 * Every value of cookie `name` in a Cookie header: one string in the usual case, a list when the
 * browser sent several (a cookie of the same name set at another path or by page script), so the
 * caller can choose among them rather than trust whichever the browser put first.
 */
export function readCookies(header: string | undefined, name: string): string | string[] | undefined {
  if (!header || header.indexOf(name) < 0) return undefined;
  let found: string | string[] | undefined;
  let from = 0;
  while (from < header.length) {
    let end = header.indexOf(';', from);
    if (end < 0) end = header.length;
    const eq = header.indexOf('=', from);
    if (eq > from && eq < end && header.slice(from, eq).trim() === name) {
      let v = header.slice(eq + 1, end).trim();
      if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
      found = found === undefined ? v : typeof found === 'string' ? [found, v] : (found.push(v), found);
    }
    from = end + 1;
  }
  return found;
}

/**
 * Whether a Set-Cookie value from an instance would set, shadow or delete one of warmpool's own
 * cookies (any `warmpool_*` name, any case: browsers compare names exactly, but no instance has a
 * reason to come that close). Such a header never reaches a visitor.
 */
export function setsWarmpoolCookie(setCookie: string): boolean {
  let i = 0;
  while (i < setCookie.length && (setCookie.charCodeAt(i) === 32 || setCookie.charCodeAt(i) === 9)) i++;
  if (setCookie.length - i < COOKIE_PREFIX.length) return false;
  return setCookie.slice(i, i + COOKIE_PREFIX.length).toLowerCase() === COOKIE_PREFIX;
}

export function setCookieHeader(app: string, value: string, opts: { secure: boolean; maxAgeMs: number }): string {
  return `${cookieName(app)}=${value}; Path=/${app}/; Max-Age=${Math.floor(opts.maxAgeMs / 1000)}; HttpOnly; SameSite=Lax${opts.secure ? '; Secure' : ''}`;
}

export function clearCookieHeader(app: string, secure: boolean): string {
  return `${cookieName(app)}=; Path=/${app}/; Max-Age=0; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`;
}

/**
 * The Cookie header to forward: the visitor's cookies minus warmpool's own (and minus `drop`,
 * the name of the secret cookie the proxy injects, so a visitor cannot supply a competing one).
 * Returns undefined when nothing is left.
 */
export function forwardableCookies(header: string | undefined, drop?: string): string | undefined {
  if (!header) return undefined;
  if (header.indexOf(COOKIE_PREFIX) < 0 && (drop === undefined || header.indexOf(drop) < 0)) return header;
  // Every proxied request carries warmpool's own cookie, so this is the usual path: one scan, no split.
  let kept: string | undefined;
  let from = 0;
  while (from < header.length) {
    let end = header.indexOf(';', from);
    if (end < 0) end = header.length;
    const p = header.slice(from, end).trim();
    from = end + 1;
    if (p.length === 0) continue;
    const eq = p.indexOf('=');
    const name = eq < 0 ? p : p.slice(0, eq).trim();
    if (name.startsWith(COOKIE_PREFIX) || name === drop) continue;
    kept = kept === undefined ? p : `${kept}; ${p}`;
  }
  return kept;
}
