// Both sockets of one relayed WebSocket once the instance said 101: raw bytes piped both ways with
// backpressure, the client side tapped (FrameTap → the app's classifier → coalesced activity), both
// counted, both torn down together.

import type { SessionTraffic } from '../pool/api.js';
import type { RelayTarget } from './http-relay.js';
import { FrameTap } from './protocol/ws-frames.js';
import type { Tracked, WsRelay } from './ws-relay.js';

const LINK = Symbol('warmpool.wsLink');
/** Client messages are classified from at most their first this many bytes. */
const CLASSIFY_PREFIX = 8 * 1024;
type LinkSocket = Tracked & { [LINK]?: Link };

function onClientData(this: LinkSocket, chunk: Buffer): void {
  this[LINK]!.fromClient(chunk);
}
function onUpstreamData(this: LinkSocket, chunk: Buffer): void {
  this[LINK]!.fromUpstream(chunk);
}
function onClientDrain(this: LinkSocket): void {
  this[LINK]!.upstream.resume();
}
function onUpstreamDrain(this: LinkSocket): void {
  this[LINK]!.client.resume();
}
// Half-close passes through (the closing handshake may end one direction first); a close ends both.
function onClientEnd(this: LinkSocket): void {
  this[LINK]!.upstream.end();
}
function onUpstreamEnd(this: LinkSocket): void {
  this[LINK]!.client.end();
}
function onLinkEnd(this: LinkSocket): void {
  this[LINK]!.finish();
}

/**
 * Both sockets of one relayed WebSocket once they are live: piped both ways, the client side tapped and
 * classified, both counted, both torn down together. One object per connection; the socket listeners
 * are the shared functions above.
 */
export class Link {
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

  constructor(
    private readonly relay: WsRelay,
    readonly client: LinkSocket,
    readonly upstream: LinkSocket,
    private readonly t: RelayTarget,
  ) {
    const { reporter, log } = relay.o;
    const target = t.target;
    this.traffic = target.traffic;
    this.openedAt = reporter.now();
    const classify = t.classifier.newConnection();
    // Client → instance: frames parsed, messages classified; only user activity reaches the pool.
    this.tapIn = new FrameTap({
      requireMask: true,
      // A message's type comes first: its first bytes are enough to classify it, and unmasking
      // 64 KiB to find 30 bytes cost ~60 µs a message (bench/tap-micro.ts, large binary).
      captureLimit: relay.o.captureLimit ?? CLASSIFY_PREFIX,
      prefix: true,
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
        log?.(`websocket of session ${target.session}: frame tap stopped (${reason}); its traffic counts as activity from now on`, {
          app: target.app,
          instance: target.instanceId,
          session: target.session,
        });
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
