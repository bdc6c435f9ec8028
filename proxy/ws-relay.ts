// Relays a WebSocket without terminating it: the handshake goes to the instance, its 101 answer
// (subprotocol, permessage-deflate) reaches the browser unchanged, then raw bytes are piped both
// ways. Client frames are tapped (FrameTap → the app's classifier → coalesced pool.activity()).

import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { PoolApi, SessionTraffic } from '../pool/api.js';
import type { ActivityReporter } from './activity.js';
import { refuseUpgrade, writeRawAnswer } from './answers.js';
import { FrameTap } from './frames.js';
import type { RelayTarget } from './http-relay.js';
import { upstreamHeaders, upstreamPath } from './headers.js';
import { leaksSecret } from './secret.js';

/** Sockets held by every WsRelay in this process (client and upstream), for leak tests. */
let openWsSockets = 0;
export function openWebSocketSockets(): number {
  return openWsSockets;
}

export interface WsRelayOptions {
  pool: PoolApi;
  reporter: ActivityReporter;
  log?: (msg: string) => void;
  /** Until the instance's handshake answer arrives. */
  handshakeTimeoutMs?: number;
  /** TCP keepalive probes on both sockets: notices a vanished peer, never closes a quiet live one. */
  keepAliveMs?: number;
  /** Client messages up to this size are captured for the classifier. */
  captureLimit?: number;
}

const HANDSHAKE_HEADER_LIMIT = 64 * 1024;

// Socket listeners are shared functions that find their state through a symbol on the socket (`this`
// is the emitting socket), not closures: a relayed socket lives for an hour, and a closure made during
// the handshake would keep the handshake's request objects alive with it (issue 5: memory per session).
const RELAY = Symbol('warmpool.wsRelay');
const LINK = Symbol('warmpool.wsLink');
type Tracked = Duplex & { [RELAY]?: WsRelay; [LINK]?: Link };

function destroySelf(this: Duplex): void {
  this.destroy();
}
function untrack(this: Tracked): void {
  if (this[RELAY]?.forget(this)) openWsSockets--;
}
function onClientData(this: Tracked, chunk: Buffer): void {
  this[LINK]!.fromClient(chunk);
}
function onUpstreamData(this: Tracked, chunk: Buffer): void {
  this[LINK]!.fromUpstream(chunk);
}
function onClientDrain(this: Tracked): void {
  this[LINK]!.upstream.resume();
}
function onUpstreamDrain(this: Tracked): void {
  this[LINK]!.client.resume();
}
// Half-close passes through (the closing handshake may end one direction first); a close ends both.
function onClientEnd(this: Tracked): void {
  this[LINK]!.upstream.end();
}
function onUpstreamEnd(this: Tracked): void {
  this[LINK]!.client.end();
}
function onLinkEnd(this: Tracked): void {
  this[LINK]!.finish();
}

export class WsRelay {
  private readonly live = new Set<Duplex>();
  readonly handshakeTimeoutMs: number;
  readonly keepAliveMs: number;

  constructor(readonly o: WsRelayOptions) {
    this.handshakeTimeoutMs = o.handshakeTimeoutMs ?? 30_000;
    this.keepAliveMs = o.keepAliveMs ?? 30_000;
  }

  /** Sockets this relay holds open (client and upstream). */
  openSockets(): number {
    return this.live.size;
  }

  /** Relays an upgrade whose session is already resolved. The socket already has an error handler. */
  relay(req: IncomingMessage, client: Duplex, head: Buffer, t: RelayTarget): void {
    this.track(client);
    tune(client, this.keepAliveMs);
    const path = upstreamPath(t.app, t.rest, req.url!, t.target);
    const headers = upstreamHeaders(req.rawHeaders, { app: t.app, target: t.target, visit: t.visit, upgrade: String(req.headers.upgrade) });
    const upReq: ClientRequest = httpRequest({
      host: t.target.host,
      port: t.target.port,
      method: req.method,
      path,
      headers,
      setHost: false,
      agent: false,
      maxHeaderSize: HANDSHAKE_HEADER_LIMIT,
    });
    let settled = false;
    // Our own timer, not upReq.setTimeout(): that one leaves a Timeout on the upstream socket for its whole life.
    const timer = setTimeout(() => fail(true, 'handshake-timeout'), this.handshakeTimeoutMs);
    timer.unref();
    /** The handshake is decided (answered, failed or abandoned): true the first time only. */
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      return true;
    };
    const fail = (timeout: boolean, detail: string): void => {
      if (!settle()) return;
      upReq.destroy();
      this.o.pool.event(t.target.session, 'upstream-error', { code: detail, path: t.rest.split('?')[0], websocket: true });
      refuseUpgrade(req, client, { kind: 'upstream-down', app: t.app.name, timeout });
    };
    upReq.on('socket', (s: Socket) => this.track(s));
    upReq.on('error', (e: NodeJS.ErrnoException) => fail(false, e.code ?? e.message));
    // The visitor left during the handshake: drop the upstream attempt.
    const onEarlyClose = (): void => {
      if (!settle()) return;
      upReq.destroy();
    };
    client.once('close', onEarlyClose);

    upReq.on('response', (res) => {
      // The instance refused the upgrade (403 without the secret, 404, ...): relay its answer, then close.
      if (!settle()) {
        res.destroy();
        return;
      }
      client.removeListener('close', onEarlyClose);
      this.relayRefusal(res, client, t, () => upReq.destroy());
    });

    upReq.on('upgrade', (res: IncomingMessage, upstream: Socket, upHead: Buffer) => {
      if (!settle()) {
        upstream.destroy();
        return;
      }
      upstream.on('error', destroySelf);
      client.removeListener('close', onEarlyClose);
      upstream.setTimeout(0);
      this.track(upstream);
      tune(upstream, this.keepAliveMs);
      if (client.destroyed) {
        upstream.destroy();
        return;
      }
      // The 101 head as the instance wrote it (its subprotocol and extensions reach the browser).
      client.write(Buffer.from(responseHead(res, t.target.secret), 'latin1'));
      new Link(this, client, upstream, t).start(head, upHead, res);
    });
    upReq.end();
  }

  /** Destroys every socket (shutdown); resolves once all of them have closed. */
  async close(): Promise<void> {
    const all = [...this.live];
    await Promise.all(all.map((s) => new Promise<void>((resolve) => {
      if (!this.live.has(s)) return resolve();
      s.once('close', () => resolve());
      s.destroy();
    })));
  }

  private track(s: Tracked): void {
    if (this.live.has(s)) return;
    this.live.add(s);
    openWsSockets++;
    s[RELAY] = this;
    s.on('close', untrack);
    if (s.listenerCount('error') === 0) s.on('error', destroySelf);
  }

  /** For untrack(): true when s was tracked here. */
  forget(s: Duplex): boolean {
    return this.live.delete(s);
  }

  private relayRefusal(res: IncomingMessage, client: Duplex, t: RelayTarget, dropUpstream: () => void): void {
    const body: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      if (size < 64 * 1024) body.push(c);
      size += c.length;
    });
    res.on('error', () => client.destroy());
    res.on('end', () => {
      const headers: Record<string, string | string[]> = {};
      const secret = t.target.secret;
      for (const [k, v] of Object.entries(res.headers)) {
        if (v === undefined || k === 'connection' || k === 'keep-alive' || k === 'transfer-encoding' || k === 'content-length' || k === 'upgrade') continue;
        const vals = (Array.isArray(v) ? v : [v]).filter((x) => !secret || !leaksSecret(x, secret));
        if (vals.length) headers[k] = vals.length === 1 ? vals[0]! : vals;
      }
      dropUpstream();
      const text = Buffer.concat(body).toString('utf8');
      writeRawAnswer(client, { status: res.statusCode ?? 502, headers, body: secret ? text.split(secret).join('') : text });
    });
  }
}

/**
 * Both sockets of one relayed WebSocket once they are live: piped both ways, the client side tapped and
 * classified, both counted, both torn down together. One object per connection; the socket listeners
 * are the shared functions above.
 */
class Link {
  private readonly tapIn: FrameTap;
  private readonly tapOut: FrameTap;
  private readonly traffic: SessionTraffic;
  private readonly openedAt: number;
  private undecodable = false;
  private closeCodeSeen = false;
  private closed = false;
  // Frame counts already added to traffic (the taps count; traffic gets the difference).
  private inData = 0;
  private inCtl = 0;
  private outData = 0;
  private outCtl = 0;
  private outMsgs = 0;

  constructor(private readonly relay: WsRelay, readonly client: Tracked, readonly upstream: Tracked, private readonly t: RelayTarget) {
    const { reporter, log } = relay.o;
    const target = t.target;
    this.traffic = target.traffic;
    this.openedAt = reporter.now();
    const classify = t.classifier.newConnection();
    // Client → instance: frames parsed, messages classified; only user activity reaches the pool.
    this.tapIn = new FrameTap({
      requireMask: true,
      captureLimit: relay.o.captureLimit,
      onMessage: (opcode, totalLength, payload, compressed) => {
        const c = classify.clientMessage(opcode, payload, totalLength, compressed);
        reporter.messageIn(this.traffic, c.type);
        if (c.kind === 'active') reporter.active(target, reporter.now());
      },
      onControl: (opcode) => {
        if (opcode === 8) this.closeCodeSeen = true;
      },
      onDesync: (reason) => {
        // Cannot tell keepalives from people any more: count every later chunk as activity (never reap a person).
        this.undecodable = true;
        log?.(`websocket of session ${target.session}: frame tap stopped (${reason}); its traffic counts as activity from now on`);
      },
    });
    // Instance → client: counted only; server pushes never count as activity.
    this.tapOut = new FrameTap({ requireMask: false, captureLimit: 0 });
  }

  start(head: Buffer, upHead: Buffer, res: IncomingMessage): void {
    const { pool, reporter } = this.relay.o;
    const { client, upstream, t } = this;
    const session = t.target.session;
    pool.connectionOpened(session);
    // What the instance chose (not what the browser offered): the subprotocol and extensions in force.
    pool.event(session, 'ws-open', { path: t.rest.split('?')[0], protocol: res.headers['sec-websocket-protocol'] ?? null, extensions: res.headers['sec-websocket-extensions'] ?? null });
    reporter.seen(this.traffic, this.openedAt);
    client[LINK] = this;
    upstream[LINK] = this;
    client.on('data', onClientData);
    upstream.on('data', onUpstreamData);
    client.on('drain', onClientDrain);
    upstream.on('drain', onUpstreamDrain);
    client.on('end', onClientEnd);
    upstream.on('end', onUpstreamEnd);
    client.on('close', onLinkEnd);
    upstream.on('close', onLinkEnd);
    client.on('error', onLinkEnd);
    upstream.on('error', onLinkEnd);
    if (upHead.length > 0) this.fromUpstream(upHead);
    if (head.length > 0) this.fromClient(head);
    client.resume();
    upstream.resume();
    if (client.destroyed || upstream.destroyed) this.finish();
  }

  fromClient(chunk: Buffer): void {
    const { traffic, tapIn } = this;
    const reporter = this.relay.o.reporter;
    traffic.bytesIn += chunk.length;
    const ok = this.upstream.write(chunk);
    const now = reporter.now();
    reporter.seen(traffic, now);
    tapIn.push(chunk);
    this.syncIn();
    if (this.undecodable) reporter.active(this.t.target, now);
    if (!ok) this.client.pause();
  }

  fromUpstream(chunk: Buffer): void {
    this.traffic.bytesOut += chunk.length;
    const ok = this.client.write(chunk);
    this.tapOut.push(chunk);
    this.syncOut();
    if (!ok) this.upstream.pause();
  }

  private syncIn(): void {
    const { tapIn, traffic } = this;
    if (tapIn.dataFrames !== this.inData) {
      traffic.framesIn.data += tapIn.dataFrames - this.inData;
      this.inData = tapIn.dataFrames;
    }
    if (tapIn.controlFrames !== this.inCtl) {
      traffic.framesIn.control += tapIn.controlFrames - this.inCtl;
      this.inCtl = tapIn.controlFrames;
    }
  }

  private syncOut(): void {
    const { tapOut, traffic } = this;
    if (tapOut.dataFrames !== this.outData) {
      traffic.framesOut.data += tapOut.dataFrames - this.outData;
      this.outData = tapOut.dataFrames;
    }
    if (tapOut.controlFrames !== this.outCtl) {
      traffic.framesOut.control += tapOut.controlFrames - this.outCtl;
      this.outCtl = tapOut.controlFrames;
    }
    if (tapOut.messages !== this.outMsgs) {
      traffic.messagesOut += tapOut.messages - this.outMsgs;
      this.outMsgs = tapOut.messages;
    }
  }

  finish(): void {
    if (this.closed) return;
    this.closed = true;
    const { pool, reporter } = this.relay.o;
    const { tapIn, tapOut, t } = this;
    this.client.destroy();
    this.upstream.destroy();
    this.syncIn();
    this.syncOut();
    const session = t.target.session;
    pool.connectionClosed(session);
    pool.event(session, 'ws-close', {
      path: t.rest.split('?')[0],
      durationMs: reporter.now() - this.openedAt,
      closeFrame: this.closeCodeSeen,
      framesIn: tapIn.dataFrames + tapIn.controlFrames,
      framesOut: tapOut.dataFrames + tapOut.controlFrames,
    });
  }
}

/** TCP settings for an hour-long socket: no idle timeout, no Nagle delay, keepalive probes. */
function tune(s: Duplex, keepAliveMs: number): void {
  const sock = s as Partial<Socket>;
  sock.setTimeout?.(0);
  sock.setNoDelay?.(true);
  sock.setKeepAlive?.(true, keepAliveMs);
}

/** Rebuilds the instance's response head from the parser's raw headers (names, order, values kept). */
function responseHead(res: IncomingMessage, secret: string | undefined): string {
  let head = `HTTP/1.1 ${res.statusCode} ${res.statusMessage ?? ''}\r\n`;
  const raw = res.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (secret && leaksSecret(raw[i + 1]!, secret)) continue;
    head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  return head + '\r\n';
}
