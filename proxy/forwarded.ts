// Who is asking, as far as the proxy can tell: the socket peer, and X-Forwarded-* only when that
// peer is a configured trusted proxy. Decides Secure cookies and the X-Forwarded-* sent upstream.

import { BlockList, isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { WarmpoolError } from '../core/errors.js';

/** Addresses whose answer TrustedProxies keeps; past this many it forgets them all and starts again. */
const KNOWN_MAX = 4096;

/** config.trustedProxies: IP addresses or CIDR ranges ("10.0.0.0/8", "::1"). */
export class TrustedProxies {
  private readonly list = new BlockList();
  /**
   * Answers by address as given: BlockList.check builds a SocketAddress on every call, ~2 % of a
   * claim's CPU (two requests and a connection each ask). Bounded, as addresses come from visitors.
   */
  private readonly known = new Map<string, boolean>();
  readonly size: number;

  constructor(entries: readonly string[]) {
    for (const [i, e] of entries.entries()) {
      const [addr, bits] = e.split('/') as [string, string | undefined];
      const fam = isIP(addr);
      if (fam === 0) throw new WarmpoolError('CONFIG_INVALID', `trustedProxies[${i}] is ${JSON.stringify(e)}; expected an IP address or CIDR range`);
      const type = fam === 4 ? 'ipv4' : 'ipv6';
      if (bits === undefined) this.list.addAddress(addr, type);
      else {
        const n = Number(bits);
        if (!Number.isInteger(n) || n < 0 || n > (fam === 4 ? 32 : 128)) {
          throw new WarmpoolError('CONFIG_INVALID', `trustedProxies[${i}] is ${JSON.stringify(e)}; the prefix length must be 0-${fam === 4 ? 32 : 128}`);
        }
        this.list.addSubnet(addr, n, type);
      }
    }
    this.size = entries.length;
  }

  has(address: string | undefined): boolean {
    if (!address || this.size === 0) return false;
    let trusted = this.known.get(address);
    if (trusted === undefined) {
      const a = normalizeIp(address);
      trusted = this.list.check(a, isIP(a) === 4 ? 'ipv4' : 'ipv6');
      if (this.known.size >= KNOWN_MAX) this.known.clear();
      this.known.set(address, trusted);
    }
    return trusted;
  }
}

/** `::ffff:1.2.3.4` (an IPv4 peer on a dual-stack socket) → `1.2.3.4`. */
export function normalizeIp(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

export interface Visit {
  /** The socket peer (normalized). */
  peer: string;
  /** The peer is a trusted proxy: its X-Forwarded-* are believed. */
  trusted: boolean;
  /** The visitor's scheme: https when the socket is TLS, or a trusted proxy says so. */
  proto: 'http' | 'https';
  /** X-Forwarded-For to send upstream: the trusted chain plus the peer. */
  forwardedFor: string;
  /** X-Forwarded-Host to send upstream. */
  forwardedHost: string;
  /**
   * The visitor's address, for per-address limits: the peer, or behind trusted proxies the nearest
   * X-Forwarded-For entry that is not one of them (entries further left are whatever the client wrote).
   */
  visitor: string;
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

export function visitOf(req: IncomingMessage, trust: TrustedProxies): Visit {
  const peer = normalizeIp(req.socket.remoteAddress ?? '');
  const trusted = trust.has(peer);
  const tls = (req.socket as TLSSocket).encrypted === true;
  let proto: 'http' | 'https' = tls ? 'https' : 'http';
  let forwardedFor = peer;
  let forwardedHost = req.headers.host ?? '';
  let visitor = peer;
  if (trusted) {
    const xfp = first(req.headers['x-forwarded-proto']);
    if (xfp) {
      // A chain of proxies may have appended: the first entry is the visitor's.
      const p = xfp.split(',')[0]!.trim().toLowerCase();
      if (p === 'https' || p === 'http') proto = p;
    }
    const xff = req.headers['x-forwarded-for'];
    if (xff) {
      const chain = Array.isArray(xff) ? xff.join(', ') : xff;
      forwardedFor = `${chain}, ${peer}`;
      const hops = chain
        .split(',')
        .map((h) => h.trim())
        .filter((h) => h !== '');
      for (let i = hops.length - 1; i >= 0; i--) {
        visitor = normalizeIp(hops[i]!);
        if (!trust.has(visitor)) break;
      }
    }
    const xfh = first(req.headers['x-forwarded-host']);
    if (xfh) forwardedHost = xfh;
  }
  return { peer, trusted, proto, forwardedFor, forwardedHost, visitor };
}
