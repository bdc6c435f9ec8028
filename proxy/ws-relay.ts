// Relays a WebSocket without terminating it: the handshake goes to the instance, its 101 answer
// (subprotocol, permessage-deflate) reaches the browser unchanged, then raw bytes are piped both
// ways. Client frames are tapped (FrameTap → the app's classifier → coalesced pool.activity()).
// The handshake is written and read on a raw socket with the relay's own response parser, not
// node:http's client (its request, agent and parser machinery were ~10-15 % of a burst's CPU, issue 5).

import type { IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { PoolApi, SessionTraffic } from '../pool/api.js';
import type { ActivityReporter } from './activity.js';
import { refuseUpgrade, writeRawAnswer } from './answers.js';
import { FrameTap } from './protocol/ws-frames.js';
import type { RelayTarget } from './http-relay.js';
import { upstreamHeaders, upstreamPath } from './headers.js';
import { leaksSecret } from './secret.js';
import { hasToken, ResponseParser, UpstreamProtocolError, type ResponseHandler } from './protocol/http1-response.js';

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

/** A refused upgrade's body is relayed up to this size (the rest is read and dropped). */
const REFUSAL_BODY_LIMIT = 64 * 1024;
const EMPTY = Buffer.alloc(0);

// Socket listeners are shared functions that find their state through a symbol on the socket (`this`
// is the emitting socket), not closures: a relayed socket lives for an hour, and a closure made during
// the handshake would keep the handshake's objects alive with it (issue 5: memory per session).
const RELAY = Symbol('warmpool.wsRelay');
const LINK = Symbol('warmpool.wsLink');
const HANDSHAKE = Symbol('warmpool.wsHandshake');
type Tracked = Duplex & { [RELAY]?: WsRelay; [LINK]?: Link; [HANDSHAKE]?: Handshake };

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
// The handshake's listeners (upstream socket, and the client's close), removed once it is decided.
function onHandshakeData(this: Tracked, chunk: Buffer): void {
  this[HANDSHAKE]?.data(chunk);
}
function onHandshakeEnd(this: Tracked): void {
  this[HANDSHAKE]?.ended();
}
function onHandshakeError(this: Tracked, e: NodeJS.ErrnoException): void {
  this[HANDSHAKE]?.error(e);
}
function onHandshakeClientClose(this: Tracked): void {
  this[HANDSHAKE]?.abandon();
}
function onHandshakeTimeout(h: Handshake): void {
  h.fail(true, 'handshake-timeout');
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
    new Handshake(this, req, client, head, t);
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

  track(s: Tracked): void {
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
}

/**
 * The upstream half of one upgrade until it is decided: the request head written in one piece on a
 * fresh connection, the answer parsed as it arrives. A 101 hands both sockets to a Link (and this
 * object becomes garbage: no listener or timer keeps it); any other answer is relayed as a refusal.
 */
class Handshake implements ResponseHandler {
  private readonly upstream: Tracked;
  private readonly parser = new ResponseParser();
  private readonly timer: NodeJS.Timeout;
  /** The outcome is known (switched, failed, refusing or abandoned): the timer is off. */
  private settled = false;
  /** A non-101 answer is being read, to be relayed when complete. */
  private refusing = false;
  private body: Buffer[] | null = null;
  private bodySize = 0;

  constructor(private readonly relay: WsRelay, private readonly req: IncomingMessage, private readonly client: Tracked, private readonly head: Buffer, private readonly t: RelayTarget) {
    const target = t.target;
    const up = connect({ host: target.host, port: target.port, noDelay: true }) as Tracked;
    this.upstream = up;
    up[HANDSHAKE] = this;
    up.on('error', onHandshakeError);
    up.on('data', onHandshakeData);
    up.on('end', onHandshakeEnd);
    up.on('close', onHandshakeEnd);
    relay.track(up);
    client[HANDSHAKE] = this;
    // The visitor left during the handshake: drop the upstream attempt.
    client.on('close', onHandshakeClientClose);
    this.timer = setTimeout(onHandshakeTimeout, relay.handshakeTimeoutMs, this);
    this.timer.unref();
    this.parser.start(this, false, true);
    // Queued by the socket until it connects: one write, one packet.
    up.write(requestHead(req, t), 'latin1');
  }

  /** The handshake is decided: true the first time only. */
  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    clearTimeout(this.timer);
    return true;
  }

  data(chunk: Buffer): void {
    let used: number;
    try {
      used = this.parser.execute(chunk);
    } catch (e) {
      this.broken(e as Error);
      return;
    }
    if (this.parser.upgraded) this.switchProtocols(used < chunk.length ? chunk.subarray(used) : EMPTY);
  }

  // ResponseHandler: a 101 is taken up after execute() (which says where the WebSocket bytes begin).
  onHead(p: ResponseParser): void {
    if (p.status === 101) return;
    // The instance refused the upgrade (403 without the secret, 404, ...): relay its answer, then close.
    if (!this.settle()) return;
    this.refusing = true;
    this.body = [];
  }

  onBody(chunk: Buffer): void {
    if (this.bodySize < REFUSAL_BODY_LIMIT) this.body!.push(chunk);
    this.bodySize += chunk.length;
  }

  onEnd(): void {
    if (!this.refusing) return;
    this.refusing = false;
    const p = this.parser;
    const secret = this.t.target.secret;
    const headers: Record<string, string | string[]> = {};
    for (const k in p.headers) {
      if (k === 'connection' || k === 'keep-alive' || k === 'transfer-encoding' || k === 'content-length' || k === 'upgrade') continue;
      const v = p.headers[k]!;
      // Repeated fields as node:http gave them before: Set-Cookie as a list, any other joined.
      const vals = (typeof v === 'string' ? [v] : k === 'set-cookie' ? v : [v.join(', ')]).filter((x) => !secret || !leaksSecret(x, secret));
      if (vals.length) headers[k] = vals.length === 1 ? vals[0]! : vals;
    }
    this.dropUpstream();
    const text = Buffer.concat(this.body!).toString('utf8');
    writeRawAnswer(this.client, { status: p.status, headers, body: secret ? text.split(secret).join('') : text });
  }

  /** The upstream ended or closed before the handshake was decided, or while a refusal was read. */
  ended(): void {
    if (this.refusing) {
      // A body read until close is complete now (and relayed); one cut short drops the visitor.
      if (!this.parser.finish()) this.drop();
      return;
    }
    // As node's client reported it ("socket hang up").
    this.fail(false, 'ECONNRESET');
  }

  error(e: NodeJS.ErrnoException): void {
    if (this.refusing) this.drop();
    else this.fail(false, e.code ?? e.message);
  }

  /** The visitor went away: the upstream attempt goes too. */
  abandon(): void {
    this.settle();
    this.refusing = false;
    this.dropUpstream();
  }

  /** The instance's answer breaks HTTP (or is no WebSocket switch): logged, then refused as a failed upstream. */
  private broken(e: Error): void {
    const t = this.t;
    this.relay.o.log?.(`websocket handshake for ${t.rest.split('?')[0]} with ${t.app.name} instance ${t.target.instanceId} (${t.target.host}:${t.target.port}) failed: ${e.message}`);
    if (this.refusing) this.drop();
    else this.fail(false, (e as UpstreamProtocolError).code ?? e.message);
  }

  /** Connect error, timeout, hang-up, a broken answer: the visitor gets the instance-down answer. */
  fail(timeout: boolean, detail: string): void {
    if (!this.settle()) return;
    this.dropUpstream();
    const t = this.t;
    this.relay.o.pool.event(t.target.session, 'upstream-error', { code: detail, path: t.rest.split('?')[0], websocket: true });
    refuseUpgrade(this.req, this.client, { kind: 'upstream-down', app: t.app.name, timeout });
  }

  /** A refusal that cannot be relayed (cut short, broken): both sockets closed, as node's client did. */
  private drop(): void {
    this.refusing = false;
    this.dropUpstream();
    this.client.destroy();
  }

  private dropUpstream(): void {
    this.parser.stop();
    this.upstream.destroy();
  }

  /** A 101: valid for a WebSocket, its head goes to the visitor as the instance wrote it, then the Link pipes. */
  private switchProtocols(rest: Buffer): void {
    const p = this.parser;
    if (!hasToken(p.headers['upgrade'], 'websocket') || !hasToken(p.headers['connection'], 'upgrade')) {
      this.broken(new UpstreamProtocolError('101 Switching Protocols without Upgrade: websocket and Connection: Upgrade'));
      return;
    }
    if (!this.settle()) return;
    const { upstream, client, t } = this;
    // From here the Link's listeners own both sockets; nothing keeps this object.
    upstream.on('error', destroySelf);
    upstream.removeListener('error', onHandshakeError);
    upstream.removeListener('data', onHandshakeData);
    upstream.removeListener('end', onHandshakeEnd);
    upstream.removeListener('close', onHandshakeEnd);
    client.removeListener('close', onHandshakeClientClose);
    upstream[HANDSHAKE] = undefined;
    client[HANDSHAKE] = undefined;
    tune(upstream, this.relay.keepAliveMs);
    if (client.destroyed) {
      upstream.destroy();
      return;
    }
    // The 101 head as the instance wrote it (its subprotocol and extensions reach the browser), and
    // WebSocket bytes that came in the same read, in one write.
    client.cork();
    client.write(Buffer.from(responseHead(p, t.target.secret), 'latin1'));
    new Link(this.relay, client, upstream, t).start(this.head, rest, single(p.headers['sec-websocket-protocol']), single(p.headers['sec-websocket-extensions']));
    client.uncork();
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

  start(head: Buffer, upHead: Buffer, protocol: string | null, extensions: string | null): void {
    const { pool, reporter } = this.relay.o;
    const { client, upstream, t } = this;
    const session = t.target.session;
    pool.connectionOpened(session);
    // What the instance chose (not what the browser offered): the subprotocol and extensions in force.
    pool.event(session, 'ws-open', { path: t.rest.split('?')[0], protocol, extensions });
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

/**
 * The handshake request head, written in one piece: request line, the headers upstreamHeaders()
 * chose (Host as the visitor sent it, none added), `Connection: Upgrade` and the visitor's Upgrade.
 */
function requestHead(req: IncomingMessage, t: RelayTarget): string {
  const headers = upstreamHeaders(req.rawHeaders, { app: t.app, target: t.target, visit: t.visit, upgrade: String(req.headers.upgrade) });
  let head = `${req.method} ${upstreamPath(t.app, t.rest, req.url!, t.target)} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]!}: ${headers[i + 1]!}\r\n`;
  return head + '\r\n';
}

/** A field as one string (repeated lines joined, as node:http joins them), or null when absent. */
function single(v: string | string[] | undefined): string | null {
  return v === undefined ? null : typeof v === 'string' ? v : v.join(', ');
}

/** Rebuilds the instance's 101 head from the parser's raw headers (names, order, values kept). */
function responseHead(p: ResponseParser, secret: string | undefined): string {
  let head = `HTTP/1.1 ${p.status} ${p.reason}\r\n`;
  const raw = p.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (secret && leaksSecret(raw[i + 1]!, secret)) continue;
    head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  return head + '\r\n';
}
