// Relays one HTTP exchange to a visitor's instance and streams the answer back, bodies never buffered.
// Upstream connections are warmpool's own HTTP/1.1 client (proxy/upstream/): one pool of kept-alive
// connections per instance, a hand-written response parser, and the body written straight into
// the ServerResponse with backpressure both ways.
//
// Why not undici (used before): on a reused keep-alive connection undici waits a setImmediate before
// writing the request (its idle-socket validation) and another after each response, and copies every
// body byte into its WASM llhttp parser. Measured on the 2-core bench VM (wrk, Node backend, medians of
// 3 interleaved rounds, undici run vs this client's run): one connection, added p50 +149 → +128 µs
// (nginx +36) and proxy CPU 158 → 127 µs/request; 1 KiB at -c64 17.7k → 21.1k req/s (47 µs CPU);
// 256 KiB at -c64 2,610 → 2,872 req/s, 392 → 369 µs CPU per response (CHP 1,805, nginx 2,688).
// Per request the proxy now makes the minimum of syscalls (2 reads, 1 write, 1 writev, 2 epoll waits).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AppConfig } from '../pool/config.js';
import type { PoolApi, SessionTarget } from '../pool/api.js';
import type { Clock } from '../pool/clock.js';
import type { ActivityReporter } from './activity.js';
import { sendAnswer } from './answers.js';
import type { Classifier } from './classify/index.js';
import type { Visit } from './forwarded.js';
import { downstreamHeaders, upstreamHeaders, upstreamPath } from './headers.js';
import { UpstreamPool, type ConnUser, type UpstreamConn, type UpstreamError } from './upstream/pool.js';
import type { ResponseParser } from './protocol/http1-response.js';

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
  log?: (msg: string) => void;
  /** Time to the upstream's response head. Notebook REST calls answer fast; 60 s is generous. */
  headersTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Upstream pools unused this long are dropped (checked lazily, no timers). */
  idlePoolMs?: number;
  /** A kept-alive upstream connection idle this long is closed (sooner if the instance's Keep-Alive says so). */
  idleSocketMs?: number;
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
    new Exchange(this, up, req, res, t).start();
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
type TrackedRes = ServerResponse & { [EXCHANGE]?: Exchange };
type TrackedReq = IncomingMessage & { [EXCHANGE]?: Exchange };

// Shared listeners (not closures per request); each finds its exchange through a symbol.
/** res 'close': the visitor went away, or the exchange ended. */
function onResClose(this: TrackedRes): void { this[EXCHANGE]?.clientClosed(); }
/** res 'drain': the visitor caught up, read from the instance again. */
function onResDrain(this: TrackedRes): void { this[EXCHANGE]?.conn?.socket.resume(); }
function onReqData(this: TrackedReq, chunk: Buffer): void { this[EXCHANGE]?.bodyData(chunk); }
function onReqEnd(this: TrackedReq): void { this[EXCHANGE]?.bodyEnd(); }
function ignore(): void {}

const CRLF = '\r\n';
const LAST_CHUNK = '0\r\n\r\n';

/** One request/response pair: the request written to an upstream connection, the response into the ServerResponse. */
class Exchange implements ConnUser {
  conn: UpstreamConn | null = null;
  private responded = false;
  private finished = false;
  /** The response was ended by res.end(body) in onBody (a whole Content-Length body in one piece). */
  private ended = false;
  private wroteBody = false;
  private aborted = false;
  private retried = false;
  private doneOnce = false;
  private drainHooked = false;
  private bodyHooked = false;
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
  }

  start(): void {
    const { req, res } = this;
    this.relay.inFlight++;
    this.up.inFlight++;
    // The visitor went away (tab closed, navigation): tear the upstream exchange down with it.
    (res as TrackedRes)[EXCHANGE] = this;
    res.on('close', onResClose);
    const cl = req.headers['content-length'];
    if (cl !== undefined) this.t.target.traffic.bytesIn += Number(cl) || 0;
    this.up.acquire(this);
  }

  onConn(conn: UpstreamConn): void {
    if (this.aborted) {
      conn.release(); // never used: back to the idle list
      return;
    }
    this.conn = conn;
    conn.send(this.head, this.req.method === 'HEAD');
    if (!this.hasBody) return;
    conn.bodyPending = true;
    const req = this.req as TrackedReq;
    if (!this.bodyHooked) {
      this.bodyHooked = true;
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

  clientClosed(): void {
    if (this.finished) return;
    this.aborted = true;
    const conn = this.conn;
    this.conn = null;
    conn?.abort();
    this.done();
  }

  onHead(p: ResponseParser): void {
    const { t, res, req } = this;
    const out = downstreamHeaders(p.headers, { app: t.app, target: t.target });
    // An instance header Node refuses to forward throws here: a 502 for this exchange, not a crash.
    if (p.reason) res.writeHead(p.status, p.reason, out);
    else res.writeHead(p.status, out);
    this.responded = true;
    const at = this.relay.o.clock.now();
    const rep = this.relay.o.reporter;
    rep.seen(t.target.traffic, at);
    rep.request(t.target.traffic, req.method!, p.status);
    this.relay.o.pool.event(t.target.session, 'request');
    if (t.classifier.http(req.method!, this.path, p.status) === 'active') rep.active(t.target, at);
  }

  onBody(chunk: Buffer, last: boolean): void {
    this.t.target.traffic.bytesOut += chunk.length;
    const res = this.res;
    if (last && !this.wroteBody) {
      // A whole body in one read: head and body go out in one write, in this tick.
      this.ended = true;
      res.end(chunk);
      return;
    }
    this.wroteBody = true;
    if (!res.write(chunk)) {
      this.conn?.socket.pause();
      if (!this.drainHooked) {
        this.drainHooked = true;
        res.on('drain', onResDrain);
      }
    }
  }

  onEnd(): void {
    this.finished = true;
    const conn = this.conn;
    this.conn = null;
    conn?.release();
    if (!this.ended) this.res.end();
    this.done();
  }

  onConnError(err: UpstreamError, retryable: boolean): void {
    this.conn = null;
    if (this.finished) return;
    if (this.aborted) {
      this.finished = true;
      this.done();
      return;
    }
    // A kept-alive connection the instance had just closed: a bodiless request is safe to send again.
    if (retryable && !this.responded && !this.hasBody && !this.retried && !this.relay.isClosed && !this.up.closed) {
      this.retried = true;
      this.up.connect(this);
      return;
    }
    this.finished = true;
    const { t, req, res } = this;
    const code = err.code ?? err.message;
    // A response that breaks HTTP, or a header Node refuses to forward (ERR_INVALID_CHAR...): the instance's fault, worth a line.
    if (code === 'UPSTREAM_BAD_RESPONSE' || code.startsWith('ERR_')) {
      this.relay.o.log?.(`relaying ${req.method} ${t.rest.split('?')[0]} to ${t.app.name} instance ${t.target.instanceId} (${this.up.origin}) failed: ${err.message}`);
    }
    this.relay.o.pool.event(t.target.session, 'upstream-error', { code, path: t.rest.split('?')[0], responded: this.responded });
    if (!this.responded && !res.headersSent) {
      sendAnswer(req, res, { kind: 'upstream-down', app: t.app.name, timeout: TIMEOUTS.has(code) });
      if (req.method) t.target.traffic.requests[`${req.method} 5xx`] = (t.target.traffic.requests[`${req.method} 5xx`] ?? 0) + 1;
    } else {
      // Mid-stream failure: the only honest signal left is a cut connection.
      res.destroy(err);
    }
    this.done();
  }

  private done(): void {
    if (this.doneOnce) return;
    this.doneOnce = true;
    this.relay.inFlight--;
    this.up.inFlight--;
    this.up.lastUsed = this.relay.o.clock.now();
    const res = this.res as TrackedRes;
    res.removeListener('close', onResClose);
    if (this.drainHooked) res.removeListener('drain', onResDrain);
    res[EXCHANGE] = undefined;
    if (this.bodyHooked) {
      const req = this.req as TrackedReq;
      req.removeListener('data', onReqData);
      req.removeListener('end', onReqEnd);
      req[EXCHANGE] = undefined;
      // An unread rest of the body (an early answer) is drained by Node's server, not left paused.
      if (req.isPaused()) req.resume();
    }
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
