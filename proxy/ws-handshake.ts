// The upstream half of one WebSocket upgrade until it is decided: the request head written in one
// piece on a fresh connection to the instance, the answer parsed as it arrives by the relay's own
// HTTP/1.1 parser. A valid 101 hands both sockets to a Link; any other answer is relayed as a
// refusal; a broken or late one becomes the instance-down answer. One deadline covers it all.
// (A raw socket, not node:http's client: its request, agent and parser machinery were ~10-15 % of
// a burst's CPU.)

import type { IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { refuseUpgrade, writeRawAnswer } from './answers.js';
import { setsWarmpoolCookie } from './cookie.js';
import { isOutOfDescriptors } from './descriptors.js';
import type { RelayTarget } from './http-relay.js';
import { upstreamHeaders, upstreamPath } from './headers.js';
import { hasToken, ResponseParser, UpstreamProtocolError, type ResponseHandler } from './protocol/http1-response.js';
import { leaksSecret } from './secret.js';
import { Link } from './ws-link.js';
import { destroySelf, tune, type Tracked, type WsRelay } from './ws-relay.js';

/** A refused upgrade's body is relayed up to this size (the rest is read and dropped). */
const REFUSAL_BODY_LIMIT = 64 * 1024;
const EMPTY = Buffer.alloc(0);

const HANDSHAKE = Symbol('warmpool.wsHandshake');
type HsSocket = Tracked & { [HANDSHAKE]?: Handshake };

// The handshake's listeners (upstream socket, and the client's close), removed once it is decided.
function onHandshakeData(this: HsSocket, chunk: Buffer): void {
  this[HANDSHAKE]?.data(chunk);
}
function onHandshakeEnd(this: HsSocket): void {
  this[HANDSHAKE]?.ended();
}
function onHandshakeError(this: HsSocket, e: NodeJS.ErrnoException): void {
  this[HANDSHAKE]?.error(e);
}
function onHandshakeClientClose(this: HsSocket): void {
  this[HANDSHAKE]?.abandon();
}
function onHandshakeTimeout(h: Handshake): void {
  h.timedOut();
}

/** Where a handshake is. */
const enum Step {
  /** The request is on its way or answered only in part: no head yet. */
  Waiting,
  /** A non-101 answer is being read, to be relayed to the visitor when complete. */
  Refusing,
  /** Switched, refused, failed or abandoned: nothing more happens here. */
  Done,
}

export class Handshake implements ResponseHandler {
  private readonly upstream: HsSocket;
  private readonly parser = new ResponseParser();
  private readonly timer: NodeJS.Timeout;
  private step = Step.Waiting;
  private body: Buffer[] = [];
  private bodySize = 0;

  constructor(
    private readonly relay: WsRelay,
    private readonly req: IncomingMessage,
    private readonly client: HsSocket,
    private readonly head: Buffer,
    private readonly t: RelayTarget,
  ) {
    const target = t.target;
    const up = connect({ host: target.host, port: target.port, noDelay: true }) as HsSocket;
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

  /** Moves to Done: true the first time only; the deadline is off from then on. */
  private finish(): boolean {
    if (this.step === Step.Done) return false;
    this.step = Step.Done;
    clearTimeout(this.timer);
    this.body = [];
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
    if (p.status === 101 || this.step !== Step.Waiting) return;
    // The instance refused the upgrade (403 without the secret, 404, ...): read its answer, under
    // the same deadline, then relay it and close.
    this.step = Step.Refusing;
  }

  onBody(chunk: Buffer): void {
    if (this.step !== Step.Refusing) return;
    if (this.bodySize < REFUSAL_BODY_LIMIT) this.body.push(chunk);
    this.bodySize += chunk.length;
  }

  onEnd(): void {
    if (this.step !== Step.Refusing) return;
    const p = this.parser;
    const secret = this.t.target.secret;
    const headers: Record<string, string | string[]> = Object.create(null);
    for (const k in p.headers) {
      if (k === 'connection' || k === 'keep-alive' || k === 'transfer-encoding' || k === 'content-length' || k === 'upgrade') continue;
      const v = p.headers[k]!;
      // Repeated fields as node:http gave them before: Set-Cookie as a list, any other joined.
      const vals = (typeof v === 'string' ? [v] : k === 'set-cookie' ? v : [v.join(', ')]).filter(
        (x) => !(secret && leaksSecret(x, secret)) && !(k === 'set-cookie' && setsWarmpoolCookie(x)),
      );
      if (vals.length) headers[k] = vals.length === 1 ? vals[0]! : vals;
    }
    const body = Buffer.concat(this.body).subarray(0, REFUSAL_BODY_LIMIT).toString('utf8');
    this.finish();
    this.dropUpstream();
    writeRawAnswer(this.client, { status: p.status, headers, body: secret ? body.split(secret).join('') : body });
  }

  /** The upstream ended or closed before the handshake was decided, or while a refusal was read. */
  ended(): void {
    if (this.step === Step.Refusing) {
      // A body read until close is complete now (and relayed); one cut short drops the visitor.
      if (!this.parser.finish()) this.drop();
      return;
    }
    // As node's client reported it ("socket hang up").
    this.fail(false, 'ECONNRESET');
  }

  error(e: NodeJS.ErrnoException): void {
    if (this.step === Step.Refusing) this.drop();
    else this.fail(false, e.code ?? e.message);
  }

  /** The deadline passed: no answer, or a refusal whose body never completed. */
  timedOut(): void {
    this.fail(true, 'handshake-timeout');
  }

  /** The visitor went away: the upstream attempt goes too. */
  abandon(): void {
    if (!this.finish()) return;
    this.dropUpstream();
  }

  /** The instance's answer breaks HTTP (or is no WebSocket switch): logged, then refused as a failed upstream. */
  private broken(e: Error): void {
    const t = this.t;
    this.relay.o.log?.(
      `websocket handshake for ${t.rest.split('?')[0]} with ${t.app.name} instance ${t.target.instanceId} (${t.target.host}:${t.target.port}) failed: ${e.message}`,
      { app: t.app.name, instance: t.target.instanceId, session: t.target.session },
      'warn',
    );
    this.fail(false, (e as UpstreamProtocolError).code ?? e.message);
  }

  /** Connect error, timeout, hang-up, a broken answer: the visitor gets the instance-down answer. */
  private fail(timeout: boolean, detail: string): void {
    if (!this.finish()) return;
    this.dropUpstream();
    const t = this.t;
    this.relay.o.pool.event(t.target.session, 'upstream-error', { code: detail, path: t.rest.split('?')[0], websocket: true });
    const outOfFds = isOutOfDescriptors(detail);
    if (outOfFds) this.relay.o.fds?.exhausted();
    refuseUpgrade(this.req, this.client, outOfFds ? { kind: 'at-capacity' } : { kind: 'upstream-down', app: t.app.name, timeout });
  }

  /** A refusal that cannot be relayed (cut short): both sockets closed, as node's client did. */
  private drop(): void {
    if (!this.finish()) return;
    this.dropUpstream();
    this.client.destroy();
  }

  private dropUpstream(): void {
    this.parser.stop();
    this.upstream.destroy();
  }

  /** A 101: valid for a WebSocket, its head (filtered) goes to the visitor, then the Link pipes. */
  private switchProtocols(rest: Buffer): void {
    const p = this.parser;
    if (!hasToken(p.headers['upgrade'], 'websocket') || !hasToken(p.headers['connection'], 'upgrade')) {
      this.broken(new UpstreamProtocolError('101 Switching Protocols without Upgrade: websocket and Connection: Upgrade'));
      return;
    }
    if (!this.finish()) return;
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
    // The 101 head rebuilt from the fields the parser validated (its subprotocol and extensions
    // reach the browser), and WebSocket bytes that came in the same read, in one write.
    client.cork();
    client.write(Buffer.from(responseHead(p, t.target.secret), 'latin1'));
    new Link(this.relay, client, upstream, t).start(
      this.head,
      rest,
      single(p.headers['sec-websocket-protocol']),
      single(p.headers['sec-websocket-extensions']),
    );
    client.uncork();
  }
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

/**
 * The instance's 101 head for the visitor, from the parser's validated raw fields (names, order
 * and values kept), minus anything carrying the secret or touching warmpool's cookies.
 */
function responseHead(p: ResponseParser, secret: string | undefined): string {
  let head = `HTTP/1.1 101 Switching Protocols\r\n`;
  const raw = p.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (secret && leaksSecret(value, secret)) continue;
    if (name.length === 10 && name.toLowerCase() === 'set-cookie' && setsWarmpoolCookie(value)) continue;
    head += `${name}: ${value}\r\n`;
  }
  return head + '\r\n';
}
