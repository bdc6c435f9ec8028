// Relays one HTTP exchange to a visitor's instance and streams the answer back, bodies never buffered.
// Upstream connections are warmpool's own HTTP/1.1 client (proxy/upstream/): one pool of kept-alive
// connections per instance, a hand-written response parser, and the body written on with backpressure
// both ways: through the ServerResponse, or (a Content-Length body, after its head and first piece)
// straight to the visitor's socket, from the upstream read buffers without a copy (upstream/read-buffers.ts).
//
// Why not undici (used before): on a reused keep-alive connection undici waits a setImmediate before
// writing the request (its idle-socket validation) and another after each response, and copies every
// body byte into its WASM llhttp parser. Measured on the 2-core bench VM (wrk, Node backend, medians of
// 3 interleaved rounds, undici run vs this client's run): one connection, added p50 +149 → +128 µs
// (nginx +36) and proxy CPU 158 → 127 µs/request; 1 KiB at -c64 17.7k → 21.1k req/s (47 µs CPU);
// 256 KiB at -c64 2,610 → 2,872 req/s, 392 → 369 µs CPU per response (CHP 1,805, nginx 2,688).
// Per request the proxy now makes the minimum of syscalls (2 reads, 1 write, 1 writev, 2 epoll waits).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AppConfig } from '../core/config.js';
import type { PoolApi, SessionTarget } from '../pool/api.js';
import type { Clock } from '../core/clock.js';
import type { ActivityReporter } from './activity.js';
import { sendAnswer } from './answers.js';
import { isOutOfDescriptors, type DescriptorAlarm } from './descriptors.js';
import type { Classifier } from './classify/index.js';
import type { Visit } from './forwarded.js';
import { downstreamHeaders, upstreamHeaders, upstreamPath } from './headers.js';
import { UpstreamPool, type ConnUser, type UpstreamConn, type UpstreamError } from './upstream/pool.js';
import { UpstreamProtocolError, type ResponseParser } from './protocol/http1-response.js';
import type { Socket } from 'node:net';
import type { Log } from '../core/log.js';

/** One request's destination, resolved by the passes before the relay. */
export interface RelayTarget {
  app: AppConfig;
  target: SessionTarget;
  /** The path under /<app> (starts with '/', query included). */
  rest: string;
  visit: Visit;
  classifier: Classifier;
}

export interface HttpRelayOptions {
  pool: PoolApi;
  clock: Clock;
  reporter: ActivityReporter;
  log?: Log;
  /** Time to the upstream's response head. Notebook REST calls answer fast; 60 s is generous. */
  headersTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Upstream pools unused this long are dropped (checked lazily, no timers). */
  idlePoolMs?: number;
  /** A kept-alive upstream connection idle this long is closed (sooner if the instance's Keep-Alive says so). */
  idleSocketMs?: number;
  /** Told when a connection failed for want of file descriptors (logs it, rate-limited). */
  fds?: DescriptorAlarm;
  /** Connections to one instance at once; more exchanges wait in line (default 32). */
  maxConnectionsPerInstance?: number;
}

const TIMEOUTS = new Set(['UPSTREAM_HEADERS_TIMEOUT', 'UPSTREAM_CONNECT_TIMEOUT']);

export class HttpRelay {
  /** Exchanges in progress (a client waiting or being streamed to). */
  inFlight = 0;
  private readonly upstreams = new Map<string, UpstreamPool>();
  private lastSweep = 0;
  private closed = false;
  private sweeper: NodeJS.Timeout | undefined;
  readonly headersTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly idlePoolMs: number;
  readonly idleSocketMs: number;

  constructor(readonly o: HttpRelayOptions) {
    this.headersTimeoutMs = o.headersTimeoutMs ?? 60_000;
    this.connectTimeoutMs = o.connectTimeoutMs ?? 10_000;
    this.idlePoolMs = o.idlePoolMs ?? 120_000;
    this.idleSocketMs = o.idleSocketMs ?? 30_000;
  }

  /** Relays req to the target; answers 502/504 itself when the instance does not answer. */
  relay(req: IncomingMessage, res: ServerResponse, t: RelayTarget): void {
    const up = this.upstreamFor(t.target);
    new Exchange(this, up, req, res, t).enter();
  }

  /**
   * Opens a spare connection to an instance just handed out, while its visitor follows the redirect:
   * their first request then skips the TCP connect (measured in the classroom burst).
   */
  preconnect(target: SessionTarget): void {
    if (this.closed) return;
    this.upstreamFor(target).preconnect();
  }

  /** Open upstream connections (kept-alive ones included), summed over instance pools. */
  upstreamSockets(): number {
    let n = 0;
    for (const u of this.upstreams.values()) n += u.open;
    return n;
  }

  /** Closes the connections of an instance that is gone (busy ones once their exchange ends). */
  forget(host: string, port: number): void {
    const key = `${host}:${port}`;
    const u = this.upstreams.get(key);
    if (!u) return;
    this.upstreams.delete(key);
    u.close();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    const all = [...this.upstreams.values()];
    this.upstreams.clear();
    for (const u of all) u.destroy();
  }

  private upstreamFor(target: SessionTarget): UpstreamPool {
    const now = this.o.clock.now();
    if (now - this.lastSweep > 30_000) this.sweepPools(now);
    const key = `${target.host}:${target.port}`;
    let u = this.upstreams.get(key);
    if (u && u.instanceId !== target.instanceId) {
      // The port now belongs to another instance: never reuse a connection made to the old one.
      this.upstreams.delete(key);
      u.close();
      u = undefined;
    }
    if (!u) {
      u = new UpstreamPool(target.host, target.port, target.instanceId, {
        connectTimeoutMs: this.connectTimeoutMs,
        headersTimeoutMs: this.headersTimeoutMs,
        idleMs: this.idleSocketMs,
        maxConnections: this.o.maxConnectionsPerInstance ?? 32,
      });
      this.upstreams.set(key, u);
      // Idle connections past their time are closed even when no request comes to look.
      if (!this.sweeper && !this.closed) {
        this.sweeper = setInterval(sweepSockets, Math.max(1000, this.idleSocketMs / 2), this);
        this.sweeper.unref();
      }
    }
    u.lastUsed = now;
    return u;
  }

  private sweepPools(now: number): void {
    this.lastSweep = now;
    for (const [key, u] of this.upstreams) {
      if (u.inFlight === 0 && now - u.lastUsed > this.idlePoolMs) {
        this.upstreams.delete(key);
        u.close();
      }
    }
  }

  /** For the sweeper. */
  sweepIdleSockets(): void {
    const now = Date.now();
    for (const u of this.upstreams.values()) u.sweep(now);
  }

  /** For Exchange. */
  get isClosed(): boolean {
    return this.closed;
  }
}

function sweepSockets(relay: HttpRelay): void {
  relay.sweepIdleSockets();
}

const EXCHANGE = Symbol('warmpool.exchange');
const LANE = Symbol('warmpool.lane');
type TrackedRes = ServerResponse & { [EXCHANGE]?: Exchange };
type TrackedReq = IncomingMessage & { [EXCHANGE]?: Exchange };
type LaneSocket = Socket & { [LANE]?: Lane };

// Shared listeners (not closures per request); each finds its exchange through a symbol.
/** res 'close': the visitor went away, or the exchange ended. */
function onResClose(this: TrackedRes): void {
  this[EXCHANGE]?.clientClosed();
}
function onReqData(this: TrackedReq, chunk: Buffer): void {
  this[EXCHANGE]?.bodyData(chunk);
}
function onReqEnd(this: TrackedReq): void {
  this[EXCHANGE]?.bodyEnd();
}
/** The client connection closed: exchanges still waiting their turn on it are dropped, never sent. */
function onLaneClose(this: LaneSocket): void {
  this[LANE]?.abandon();
}
function ignore(): void {}

const CRLF = '\r\n';
const LAST_CHUNK = '0\r\n\r\n';

/** Methods whose request may be sent again when a reused connection dies before any answer (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * The exchanges of one client connection, one at a time towards the instance: HTTP/1.1 answers a
 * pipelined series in order anyway, so a client writing a thousand requests at once holds one
 * upstream connection, not a thousand, and what is still waiting is dropped the moment it leaves.
 */
class Lane {
  current: Exchange | null = null;
  private readonly waiting: Exchange[] = [];

  constructor(private readonly socket: LaneSocket) {
    socket[LANE] = this;
    socket.once('close', onLaneClose);
  }

  static of(socket: LaneSocket): Lane {
    return socket[LANE] ?? new Lane(socket);
  }

  enter(x: Exchange): void {
    if (this.current === null) {
      this.current = x;
      x.start();
    } else this.waiting.push(x);
  }

  /** x is over: the next one waiting goes (x may also be one that gave up while waiting). */
  leave(x: Exchange): void {
    if (this.current !== x) {
      const i = this.waiting.indexOf(x);
      if (i >= 0) this.waiting.splice(i, 1);
      return;
    }
    this.current = null;
    if (this.socket.destroyed) {
      this.abandon();
      return;
    }
    const next = this.waiting.shift();
    if (next) {
      this.current = next;
      next.start();
    }
  }

  abandon(): void {
    for (const x of this.waiting.splice(0)) x.clientClosed();
  }
}

/** Where one exchange is. Every transition is one assignment, and Done is final. */
const enum Step {
  /** Behind an earlier exchange of the same client connection. */
  Queued,
  /** Waiting for a connection to the instance (connecting, or in line at the per-instance cap). */
  Connecting,
  /** Request sent (its body may still be streaming); no response head yet. */
  Requested,
  /** The response head went to the visitor; its body is streaming. */
  Responding,
  /** Complete, answered with an error, or abandoned by the visitor. */
  Done,
}

// Listener bookkeeping (which shared listeners this exchange added, to remove them once done).
const HOOK_BODY = 1;

/** How an exchange writes body pieces to the visitor. */
const enum Body {
  /** Through the ServerResponse (which may frame them itself: chunked for a body without a length). */
  Response,
  /** A Content-Length body: its first piece goes with the head through the ServerResponse, then Direct. */
  DirectAfterHead,
  /**
   * Straight to the visitor's socket: Node writes a Content-Length body as it is, so the ServerResponse
   * would only add a cork, a tick and a writev per piece. Its head went first through the same socket.
   */
  Direct,
}

/** One request/response pair: the request written to an upstream connection, the response into the ServerResponse. */
class Exchange implements ConnUser {
  conn: UpstreamConn | null = null;
  private step = Step.Queued;
  private hooks = 0;
  /** Sent once more on a fresh connection after a reused one died unanswered (idempotent requests only). */
  private retried = false;
  /** Some of the body went out with res.write (else the last piece may go with res.end, in one write). */
  private wroteBody = false;
  /** How body pieces reach the visitor (decided with the head). */
  private body = Body.Response;
  /** The upstream socket is paused until the visitor's socket has taken every body write. */
  private paused = false;
  /** Called by each body write once it went out (one function per exchange, not per piece). */
  private readonly flushed = (): void => this.onFlushed();
  private readonly lane: Lane;
  private readonly hasBody: boolean;
  private readonly chunked: boolean;
  private readonly path: string;
  private readonly head: string;

  constructor(
    private readonly relay: HttpRelay,
    private readonly up: UpstreamPool,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly t: RelayTarget,
  ) {
    const h = req.headers;
    const cl = h['content-length'];
    // Node has de-chunked a chunked body: it goes up chunked again (its length is not known in advance).
    this.chunked = h['transfer-encoding'] !== undefined;
    this.hasBody = this.chunked || (cl !== undefined && cl !== '0');
    this.path = upstreamPath(t.app, t.rest, req.url!, t.target);
    this.head = requestHead(req.method!, this.path, upstreamHeaders(req.rawHeaders, { app: t.app, target: t.target, visit: t.visit }), up.origin, this.chunked);
    this.lane = Lane.of(req.socket as LaneSocket);
    relay.inFlight++;
    up.inFlight++;
    // The visitor went away (tab closed, navigation): tear the upstream exchange down with it.
    (res as TrackedRes)[EXCHANGE] = this;
    res.on('close', onResClose);
  }

  /** Takes its turn on the client connection (at once, unless an earlier exchange is still on it). */
  enter(): void {
    this.lane.enter(this);
  }

  /** Its turn: ask for a connection to the instance. */
  start(): void {
    if (this.step !== Step.Queued) return;
    this.step = Step.Connecting;
    const cl = this.req.headers['content-length'];
    if (cl !== undefined) this.t.target.traffic.bytesIn += Number(cl) || 0;
    this.up.acquire(this);
  }

  onConn(conn: UpstreamConn): void {
    if (this.step !== Step.Connecting) {
      conn.release(); // never used: back to the idle list (or to the next in line)
      return;
    }
    this.conn = conn;
    this.step = Step.Requested;
    conn.send(this.head, this.req.method === 'HEAD');
    if (!this.hasBody) return;
    conn.bodyPending = true;
    if (!(this.hooks & HOOK_BODY)) {
      this.hooks |= HOOK_BODY;
      const req = this.req as TrackedReq;
      req[EXCHANGE] = this;
      req.on('data', onReqData);
      req.on('end', onReqEnd);
      req.on('error', ignore); // a visitor who aborts an upload: handled through res 'close'
    }
  }

  bodyData(chunk: Buffer): void {
    const conn = this.conn;
    if (!conn || conn.dead) return;
    const s = conn.socket;
    let ok: boolean;
    if (this.chunked) {
      if (chunk.length === 0) return; // a zero-size chunk would end the body
      this.t.target.traffic.bytesIn += chunk.length; // no Content-Length to count up front
      s.cork();
      s.write(chunk.length.toString(16) + CRLF, 'latin1');
      s.write(chunk);
      ok = s.write(CRLF, 'latin1');
      s.uncork();
    } else ok = s.write(chunk);
    if (!ok) this.req.pause();
  }

  bodyEnd(): void {
    const conn = this.conn;
    if (!conn || conn.dead) return;
    if (this.chunked) conn.socket.write(LAST_CHUNK, 'latin1');
    conn.bodyPending = false;
    // The response may already be complete (an early answer): the connection was not reusable then.
  }

  onUpstreamDrain(): void {
    if (this.hasBody && this.req.isPaused()) this.req.resume();
  }

  /** The visitor went away: whatever is under way upstream stops. */
  clientClosed(): void {
    if (this.step === Step.Done) return;
    if (this.step === Step.Connecting) this.up.cancel(this);
    this.step = Step.Done;
    const conn = this.conn;
    this.conn = null;
    conn?.abort();
    this.done();
  }

  onHead(p: ResponseParser): void {
    const { t, res, req } = this;
    const out = downstreamHeaders(p.headers, { app: t.app, target: t.target });
    // The parser admits only what Node's writeHead accepts; should the two ever disagree, the
    // visitor still gets a clean 502 (through onConnError) and the process does not notice.
    try {
      if (p.reason) res.writeHead(p.status, p.reason, out);
      else res.writeHead(p.status, out);
    } catch (e) {
      throw new UpstreamProtocolError(`response head refused by node:http: ${(e as Error).message}`);
    }
    this.step = Step.Responding;
    if (p.framing === 'length' && hasContentLength(out)) this.body = Body.DirectAfterHead;
    const at = this.relay.o.clock.now();
    const rep = this.relay.o.reporter;
    rep.seen(t.target.traffic, at);
    rep.request(t.target.traffic, req.method!, p.status);
    this.relay.o.pool.event(t.target.session, 'request');
    if (t.classifier.http(req.method!, this.path, p.status) === 'active') rep.active(t.target, at);
  }

  onBody(chunk: Buffer, last: boolean): void {
    this.t.target.traffic.bytesOut += chunk.length;
    const conn = this.conn;
    if (conn === null) return; // torn down while this read was being parsed
    const own = conn.ownBuffer;
    // A view of the shared read buffer is overwritten by the next read of any connection: copied.
    const data = own ? chunk : Buffer.from(chunk);
    const res = this.res;
    if (last && !this.wroteBody) {
      // A whole body in one read: head and body go out in one write, in this tick.
      res.end(data);
      if (own && res.writableLength > 0) conn.pin();
      return;
    }
    let ok: boolean;
    const socket = res.socket;
    if (this.body === Body.Direct && socket !== null) ok = socket.write(data, this.flushed);
    else {
      if (this.body === Body.DirectAfterHead && socket !== null) {
        // Head and this piece through the ServerResponse (one write); the rest straight to the socket.
        this.body = Body.Direct;
      } else this.body = Body.Response;
      ok = res.write(data, this.flushed);
    }
    this.wroteBody = true;
    if (!ok || (own && res.writableLength > 0)) {
      // Backpressure, or the read buffer still being written from: no reading until the visitor took it all.
      if (own) conn.pin();
      conn.socket.pause();
      this.paused = true;
    }
  }

  /** A body write went out (or failed: the exchange ends through res 'close' then). */
  private onFlushed(): void {
    if (this.paused && this.res.writableLength === 0) {
      this.paused = false;
      this.conn?.socket.resume();
    }
  }

  onEnd(): void {
    if (this.step === Step.Done) return;
    this.step = Step.Done;
    const conn = this.conn;
    this.conn = null;
    conn?.release();
    if (!this.res.writableEnded) this.res.end();
    this.done();
  }

  onConnError(err: UpstreamError, retryable: boolean): void {
    this.conn = null;
    if (this.step === Step.Done) return;
    // A kept-alive connection the instance had just closed: a request that changes nothing and
    // carries no body is safe to send once more; a POST might already have been acted on.
    if (
      retryable &&
      this.step === Step.Requested &&
      !this.hasBody &&
      !this.retried &&
      IDEMPOTENT.has(this.req.method!) &&
      !this.relay.isClosed &&
      !this.up.closed
    ) {
      this.retried = true;
      this.step = Step.Connecting;
      this.up.connect(this);
      return;
    }
    const responded = this.step === Step.Responding;
    this.step = Step.Done;
    const { t, req, res } = this;
    const code = err.code ?? err.message;
    // A response that breaks HTTP, or a header Node refuses to forward: the instance's fault, worth a line.
    if (code === 'UPSTREAM_BAD_RESPONSE' || code.startsWith('ERR_')) {
      this.relay.o.log?.(
        `relaying ${req.method} ${t.rest.split('?')[0]} to ${t.app.name} instance ${t.target.instanceId} (${this.up.origin}) failed: ${err.message}`,
        { app: t.app.name, instance: t.target.instanceId, session: t.target.session, code },
        'warn',
      );
    }
    this.relay.o.pool.event(t.target.session, 'upstream-error', { code, path: t.rest.split('?')[0], responded });
    if (!responded && !res.headersSent) {
      const outOfFds = isOutOfDescriptors(code);
      if (outOfFds) this.relay.o.fds?.exhausted();
      sendAnswer(req, res, outOfFds ? { kind: 'at-capacity' } : { kind: 'upstream-down', app: t.app.name, timeout: TIMEOUTS.has(code) });
      if (req.method) t.target.traffic.requests[`${req.method} 5xx`] = (t.target.traffic.requests[`${req.method} 5xx`] ?? 0) + 1;
    } else {
      // Mid-stream failure: the only honest signal left is a cut connection.
      res.destroy(err);
    }
    this.done();
  }

  /** Once, on reaching Done: counters, listeners, and the next exchange of this client connection. */
  private done(): void {
    this.relay.inFlight--;
    this.up.inFlight--;
    this.up.lastUsed = this.relay.o.clock.now();
    const res = this.res as TrackedRes;
    res.removeListener('close', onResClose);
    res[EXCHANGE] = undefined;
    if (this.hooks & HOOK_BODY) {
      const req = this.req as TrackedReq;
      req.removeListener('data', onReqData);
      req.removeListener('end', onReqEnd);
      req[EXCHANGE] = undefined;
      // An unread rest of the body (an early answer) is drained by Node's server, not left paused.
      if (req.isPaused()) req.resume();
    }
    this.lane.leave(this);
  }
}

/**
 * The request head, written in one piece: request line, the headers upstreamHeaders() chose (the
 * visitor's Host among them; the instance's own address if the visitor sent none, as HTTP/1.0
 * clients may), and Transfer-Encoding for a body re-chunked here.
 */
function requestHead(method: string, path: string, headers: string[], origin: string, chunked: boolean): string {
  let head = `${method} ${path} HTTP/1.1\r\n`;
  let host = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') host = true;
    head += `${name}: ${headers[i + 1]!}\r\n`;
  }
  if (!host) head += `Host: ${origin}\r\n`;
  if (chunked) head += 'Transfer-Encoding: chunked\r\n';
  return head + CRLF;
}

/** Whether the visitor's head names a Content-Length (so Node sends the body as written, not chunked). */
function hasContentLength(headers: string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'content-length') return true;
  return false;
}
