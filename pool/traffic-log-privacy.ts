// Visitor addresses in the traffic log, as the operator chose (config log.addresses): kept, cut to
// their network (/24 for IPv4, /48 for IPv6: enough to tell a school's network from a home), or
// replaced by a keyed hash (the same visitor gets the same value, the address cannot be recovered
// without the key, kept 0600 in stateDir). A sink wrapper: the fleet writes entries as before.

import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { join } from 'node:path';
import type { AddressMode } from '../core/config.js';
import { WarmpoolError } from '../core/errors.js';
import type { TrafficLogSink } from './traffic-log.js';

/** 192.0.2.77 -> 192.0.2.0/24; 2001:db8:1:2::5 -> 2001:db8:1::/48; IPv4-mapped IPv6 as IPv4; anything else -> "unknown". */
export function truncateAddress(ip: string): string {
  const a = ip
    .trim()
    .replace(/%.*$/, '')
    .replace(/^\[|\]$/g, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  const v4 = mapped ? mapped[1]! : a;
  if (isIPv4(v4)) return v4.split('.').slice(0, 3).join('.') + '.0/24';
  if (!isIPv6(a)) return 'unknown';
  const groups = expandIPv6(a);
  return (
    groups
      .slice(0, 3)
      .map((g) => g.toString(16))
      .join(':') + '::/48'
  );
}

/** The eight 16-bit groups of a valid IPv6 address (`::` and a trailing dotted IPv4 allowed). */
function expandIPv6(a: string): number[] {
  let s = a;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (dotted) {
    const [b0, b1, b2, b3] = dotted[1]!.split('.').map(Number) as [number, number, number, number];
    s = s.slice(0, -dotted[1]!.length) + ((b0 << 8) | b1).toString(16) + ':' + ((b2 << 8) | b3).toString(16);
  }
  const [head, tail] = s.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail === undefined ? [] : tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : Array<string>(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((g) => parseInt(g, 16));
}

/** A keyed hash of an address: "h:" and 16 hex digits of HMAC-SHA256. */
export function hashAddress(ip: string, key: Buffer): string {
  return 'h:' + createHmac('sha256', key).update(ip.trim().toLowerCase()).digest('hex').slice(0, 16);
}

/** The key for hashed addresses: `log-hash-key` in stateDir, made (0600) on first use. */
export function loadLogHashKey(stateDir: string): Buffer {
  const file = join(stateDir, 'log-hash-key');
  try {
    return Buffer.from(readFileSync(file, 'utf8').trim(), 'base64url');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new WarmpoolError('CONFIG_INVALID', `cannot read the traffic log's address key ${file}: ${(e as Error).message}`, {
        hint: 'fix its permissions, or set log.addresses to full or truncate',
      });
    }
    const key = randomBytes(32);
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    try {
      writeFileSync(file, key.toString('base64url') + '\n', { mode: 0o600, flag: 'wx' });
      chmodSync(file, 0o600);
      return key;
    } catch (w) {
      // Another process made it first: use theirs, so one visitor keeps one hash.
      if ((w as NodeJS.ErrnoException).code === 'EEXIST') return Buffer.from(readFileSync(file, 'utf8').trim(), 'base64url');
      throw w;
    }
  }
}

/** Rewrites the `visitor` field of each entry before it reaches the inner sink. */
export class AddressPolicyLog implements TrafficLogSink {
  private readonly map: (ip: string) => string;

  constructor(
    private readonly inner: TrafficLogSink,
    mode: Exclude<AddressMode, 'full'>,
    key?: Buffer,
  ) {
    if (mode === 'hash' && !key) throw new Error('AddressPolicyLog: hash needs a key');
    this.map = mode === 'truncate' ? truncateAddress : (ip) => hashAddress(ip, key!);
  }

  write(entry: Record<string, unknown> & { t: number }): void {
    if (typeof entry.visitor === 'string' && entry.visitor !== '') entry = { ...entry, visitor: this.map(entry.visitor) };
    this.inner.write(entry);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** The sink for config.log.addresses: the inner one as it is for full. */
export function withAddressPolicy(inner: TrafficLogSink, mode: AddressMode | undefined, stateDir: string): TrafficLogSink {
  if (!mode || mode === 'full') return inner;
  return new AddressPolicyLog(inner, mode, mode === 'hash' ? loadLogHashKey(stateDir) : undefined);
}
