// Relays a WebSocket without terminating it: the handshake goes to the instance, its 101 answer
// (subprotocol, permessage-deflate) reaches the browser unchanged, then raw bytes are piped both
// ways. Client frames are tapped (FrameTap → the app's classifier → coalesced pool.activity()).

import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { PoolApi } from '../pool/api.js';
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
    const fail = (timeout: boolean, detail: string): void => {
      if (settled) return;
      settled = true;
      upReq.destroy();
      this.o.pool.event(t.target.session, 'upstream-error', { code: detail, path: t.rest.split('?')[0], websocket: true });
      refuseUpgrade(req, client, { kind: 'upstream-down', app: t.app.name, timeout });
    };
    upReq.on('socket', (s: Socket) => this.track(s));
    upReq.setTimeout(this.handshakeTimeoutMs, () => fail(true, 'handshake-timeout'));
    upReq.on('error', (e: NodeJS.ErrnoException) => fail(false, e.code ?? e.message));
    // The visitor left during the handshake: drop the upstream attempt.
    const onEarlyClose = (): void => {
      if (settled) return;
      settled = true;
      upReq.destroy();
    };
    client.once('close', onEarlyClose);

    upReq.on('response', (res) => {
      // The instance refused the upgrade (403 without the secret, 404, ...): relay its answer, then close.
      if (settled) {
        res.destroy();
        return;
      }
      settled = true;
      client.removeListener('close', onEarlyClose);
      this.relayRefusal(res, client, t, () => upReq.destroy());
    });

    upReq.on('upgrade', (res: IncomingMessage, upstream: Socket, upHead: Buffer) => {
      if (settled) {
        upstream.destroy();
        return;
      }
      settled = true;
      upstream.on('error', () => upstream.destroy());
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
      this.join(client, head, upstream, upHead, t, res);
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

  private track(s: Duplex): void {
    if (this.live.has(s)) return;
    this.live.add(s);
    openWsSockets++;
    s.once('close', () => {
      if (this.live.delete(s)) openWsSockets--;
    });
    if (s.listenerCount('error') === 0) s.on('error', () => s.destroy());
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

  /** Both sockets are live: pipe them, tap the client side, count both, tear both down together. */
  private join(client: Duplex, head: Buffer, upstream: Socket, upHead: Buffer, t: RelayTarget, res: IncomingMessage): void {
    const { pool, reporter } = this.o;
    const target = t.target;
    const traffic = target.traffic;
    const session = target.session;
    const classify = t.classifier.newConnection();
    const openedAt = reporter.now();
    let undecodable = false;
    let closeCodeSeen = false;

    // Client → instance: frames parsed, messages classified; only user activity reaches the pool.
    const tapIn = new FrameTap({
      requireMask: true,
      captureLimit: this.o.captureLimit,
      onMessage: (opcode, totalLength, payload, compressed) => {
        const c = classify.clientMessage(opcode, payload, totalLength, compressed);
        reporter.messageIn(traffic, c.type);
        if (c.kind === 'active') reporter.active(target, reporter.now());
      },
      onControl: (opcode) => {
        if (opcode === 8) closeCodeSeen = true;
      },
      onDesync: (reason) => {
        // Cannot tell keepalives from people any more: count every later chunk as activity (never reap a person).
        undecodable = true;
        this.o.log?.(`websocket of session ${session}: frame tap stopped (${reason}); its traffic counts as activity from now on`);
      },
    });
    // Instance → client: counted only; server pushes never count as activity.
    const tapOut = new FrameTap({ requireMask: false, captureLimit: 0 });
    let inData = 0, inCtl = 0, outData = 0, outCtl = 0, outMsgs = 0;
    const syncIn = (): void => {
      traffic.framesIn.data += tapIn.dataFrames - inData;
      traffic.framesIn.control += tapIn.controlFrames - inCtl;
      inData = tapIn.dataFrames;
      inCtl = tapIn.controlFrames;
    };
    const syncOut = (): void => {
      traffic.framesOut.data += tapOut.dataFrames - outData;
      traffic.framesOut.control += tapOut.controlFrames - outCtl;
      traffic.messagesOut += tapOut.messages - outMsgs;
      outData = tapOut.dataFrames;
      outCtl = tapOut.controlFrames;
      outMsgs = tapOut.messages;
    };

    const fromClient = (chunk: Buffer): void => {
      traffic.bytesIn += chunk.length;
      const ok = upstream.write(chunk);
      const now = reporter.now();
      reporter.seen(traffic, now);
      tapIn.push(chunk);
      syncIn();
      if (undecodable) reporter.active(target, now);
      if (!ok) client.pause();
    };
    const fromUpstream = (chunk: Buffer): void => {
      traffic.bytesOut += chunk.length;
      const ok = client.write(chunk);
      tapOut.push(chunk);
      syncOut();
      if (!ok) upstream.pause();
    };

    let closed = false;
    const finish = (): void => {
      if (closed) return;
      closed = true;
      client.destroy();
      upstream.destroy();
      syncIn();
      syncOut();
      pool.connectionClosed(session);
      pool.event(session, 'ws-close', {
        path: t.rest.split('?')[0],
        durationMs: reporter.now() - openedAt,
        closeFrame: closeCodeSeen,
        framesIn: tapIn.dataFrames + tapIn.controlFrames,
        framesOut: tapOut.dataFrames + tapOut.controlFrames,
      });
    };

    pool.connectionOpened(session);
    // What the instance chose (not what the browser offered): the subprotocol and extensions in force.
    pool.event(session, 'ws-open', { path: t.rest.split('?')[0], protocol: res.headers['sec-websocket-protocol'] ?? null, extensions: res.headers['sec-websocket-extensions'] ?? null });
    reporter.seen(traffic, openedAt);

    client.on('data', fromClient);
    upstream.on('data', fromUpstream);
    client.on('drain', () => upstream.resume());
    upstream.on('drain', () => client.resume());
    // Half-close passes through (the closing handshake may end one direction first); a close ends both.
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('close', finish);
    upstream.on('close', finish);
    client.on('error', finish);
    upstream.on('error', finish);

    if (upHead.length > 0) fromUpstream(upHead);
    if (head.length > 0) fromClient(head);
    client.resume();
    upstream.resume();
    if (client.destroyed || upstream.destroyed) finish();
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
