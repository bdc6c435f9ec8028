// Relays WebSockets without terminating them: WsRelay admits an upgrade (its session under the
// per-session cap), a Handshake (ws-handshake.ts) asks the instance, and a Link (ws-link.ts) pipes
// raw bytes both ways with the client side tapped. This file owns the sockets' bookkeeping: every
// socket it holds is counted, and every one gets an error handler at once.

import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { PoolApi } from '../pool/api.js';
import type { ActivityReporter } from './activity.js';
import { refuseUpgrade } from './answers.js';
import type { DescriptorAlarm } from './descriptors.js';
import type { RelayTarget } from './http-relay.js';
import { Handshake } from './ws-handshake.js';
import type { Log } from '../core/log.js';

/** Sockets held by every WsRelay in this process (client and upstream), for leak tests. */
let openWsSockets = 0;
export function openWebSocketSockets(): number {
  return openWsSockets;
}

export interface WsRelayOptions {
  pool: PoolApi;
  reporter: ActivityReporter;
  log?: Log;
  /** Until the instance's handshake answer (a refusal's body included) has arrived. */
  handshakeTimeoutMs?: number;
  /** TCP keepalive probes on both sockets: notices a vanished peer, never closes a quiet live one. */
  keepAliveMs?: number;
  /** Client messages are captured for the classifier up to this size (longer ones: their first this many bytes). Default 8 KiB. */
  captureLimit?: number;
  /** Told when a connection failed for want of file descriptors (logs it, rate-limited). */
  fds?: DescriptorAlarm;
  /** WebSockets open at once per session (default 32). */
  perSession?: number;
}

// Socket listeners are shared functions that find their state through a symbol on the socket (`this`
// is the emitting socket), not closures: a relayed socket lives for an hour, and a closure made during
// the handshake would keep the handshake's objects alive with it (memory per session).
const RELAY = Symbol('warmpool.wsRelay');
const SESSION = Symbol('warmpool.wsSession');
export type Tracked = Duplex & { [RELAY]?: WsRelay; [SESSION]?: string };

function destroySelf(this: Duplex): void {
  this.destroy();
}
function untrack(this: Tracked): void {
  if (this[RELAY]?.forget(this)) openWsSockets--;
}

export class WsRelay {
  private readonly live = new Set<Duplex>();
  /** Open client WebSockets per session (handshakes in progress included). */
  private readonly perSession = new Map<string, number>();
  readonly handshakeTimeoutMs: number;
  readonly keepAliveMs: number;
  readonly maxPerSession: number;

  constructor(readonly o: WsRelayOptions) {
    this.handshakeTimeoutMs = o.handshakeTimeoutMs ?? 30_000;
    this.keepAliveMs = o.keepAliveMs ?? 30_000;
    this.maxPerSession = o.perSession ?? 32;
  }

  /** Sockets this relay holds open (client and upstream). */
  openSockets(): number {
    return this.live.size;
  }

  /** Relays an upgrade whose session is already resolved. The socket already has an error handler. */
  relay(req: IncomingMessage, client: Duplex, head: Buffer, t: RelayTarget): void {
    const session = t.target.session;
    const n = this.perSession.get(session) ?? 0;
    if (n >= this.maxPerSession) {
      refuseUpgrade(req, client, { kind: 'too-many', message: `this session already has ${n} WebSockets open; close a tab and try again`, retryAfterS: 5 });
      return;
    }
    this.perSession.set(session, n + 1);
    (client as Tracked)[SESSION] = session;
    this.track(client);
    tune(client, this.keepAliveMs);
    new Handshake(this, req, client, head, t);
  }

  /** Destroys every socket (shutdown); resolves once all of them have closed. */
  async close(): Promise<void> {
    const all = [...this.live];
    await Promise.all(
      all.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (!this.live.has(s)) return resolve();
            s.once('close', () => resolve());
            s.destroy();
          }),
      ),
    );
  }

  track(s: Tracked): void {
    if (this.live.has(s)) return;
    this.live.add(s);
    openWsSockets++;
    s[RELAY] = this;
    s.on('close', untrack);
    if (s.listenerCount('error') === 0) s.on('error', destroySelf);
  }

  /** For untrack(): true when s was tracked here. A client socket also gives its session's place back. */
  forget(s: Tracked): boolean {
    if (!this.live.delete(s)) return false;
    const session = s[SESSION];
    if (session !== undefined) {
      const n = (this.perSession.get(session) ?? 1) - 1;
      if (n > 0) this.perSession.set(session, n);
      else this.perSession.delete(session);
    }
    return true;
  }
}

/** TCP settings for an hour-long socket: no idle timeout, no Nagle delay, keepalive probes. */
export function tune(s: Duplex, keepAliveMs: number): void {
  const sock = s as Partial<Socket>;
  sock.setTimeout?.(0);
  sock.setNoDelay?.(true);
  sock.setKeepAlive?.(true, keepAliveMs);
}

export { destroySelf };
