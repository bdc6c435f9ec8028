// Relays one HTTP exchange to a visitor's instance and streams the answer back, bodies never buffered.
// Upstream connections are undici Pools, one per instance origin, kept alive and closed when idle.
//
// Why undici and not http-proxy (the design card's library): relaying 1 KiB responses on this 2-core
// machine (wrk, Node backend) http-proxy-3 managed ~6,300 req/s, Node's http.request with a
// keep-alive agent ~8,200/s, undici Pool.stream ~13,400/s (direct: ~30,000/s). This file goes one
// level lower than Pool.stream, to Dispatcher.dispatch with a handler that writes straight into the
// ServerResponse (no intermediate Writable, no per-request promise), and respects backpressure
// with the handler controller's pause()/resume().

import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { Dispatcher, Pool as UndiciPool } from 'undici';
import type { AppConfig } from '../pool/config.js';
import type { PoolApi, SessionTarget } from '../pool/api.js';
import type { Clock } from '../pool/clock.js';
import type { ActivityReporter } from './activity.js';
import { sendAnswer } from './answers.js';
import type { Classifier } from './classify/index.js';
import type { Visit } from './forwarded.js';
import { downstreamHeaders, upstreamHeaders, upstreamPath } from './headers.js';

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
  /** Upstream pools unused this long are closed (checked lazily, no timers). */
  idlePoolMs?: number;
}

interface Upstream {
  pool: Pool;
  instanceId: string;
  lastUsed: number;
  inFlight: number;
}

// Only undici's connection pool, not its index: the index also loads fetch, WebSocket, caches and mocks,
// about 9 MiB of resident memory a relay never uses (issue 5: proxy RSS at rest below CHP's).
type Pool = UndiciPool;
const Pool = createRequire(import.meta.url)('undici/lib/dispatcher/pool.js') as typeof UndiciPool;

const RETRYABLE = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);
const TIMEOUTS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

export class HttpRelay {
  /** Exchanges in progress (a client waiting or being streamed to). */
  inFlight = 0;
  private readonly upstreams = new Map<string, Upstream>();
  private lastSweep = 0;
  private closed = false;
  readonly headersTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly idlePoolMs: number;

  constructor(readonly o: HttpRelayOptions) {
    this.headersTimeoutMs = o.headersTimeoutMs ?? 60_000;
    this.connectTimeoutMs = o.connectTimeoutMs ?? 10_000;
    this.idlePoolMs = o.idlePoolMs ?? 120_000;
  }

  /** Relays req to the target; answers 502/504 itself when the instance does not answer. */
  relay(req: IncomingMessage, res: ServerResponse, t: RelayTarget): void {
    const up = this.upstreamFor(t.target);
    const exchange = new Exchange(this, up, req, res, t);
    exchange.start();
  }

  /** Open upstream connections (kept-alive ones included), summed over instance pools. */
  upstreamSockets(): number {
    let n = 0;
    for (const u of this.upstreams.values()) n += u.pool.stats.connected;
    return n;
  }

  /** Closes the pool of an instance that is gone. */
  forget(host: string, port: number): void {
    const key = `${host}:${port}`;
    const u = this.upstreams.get(key);
    if (!u) return;
    this.upstreams.delete(key);
    void u.pool.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.upstreams.values()];
    this.upstreams.clear();
    await Promise.all(all.map((u) => u.pool.destroy().catch(() => undefined)));
  }

  private upstreamFor(target: SessionTarget): Upstream {
    const now = this.o.clock.now();
    if (now - this.lastSweep > 30_000) this.sweep(now);
    const key = `${target.host}:${target.port}`;
    let u = this.upstreams.get(key);
    if (u && u.instanceId !== target.instanceId) {
      // The port now belongs to another instance: never reuse a connection made to the old one.
      this.upstreams.delete(key);
      void u.pool.close().catch(() => undefined);
      u = undefined;
    }
    if (!u) {
      const pool = new Pool(`http://${key}`, {
        pipelining: 1,
        keepAliveTimeout: 30_000,
        keepAliveMaxTimeout: 600_000,
        headersTimeout: this.headersTimeoutMs,
        // Long streams (exports, big state files) must not be cut by a gap between chunks.
        bodyTimeout: 0,
        connectTimeout: this.connectTimeoutMs,
      });
      u = { pool, instanceId: target.instanceId, lastUsed: now, inFlight: 0 };
      this.upstreams.set(key, u);
    }
    u.lastUsed = now;
    return u;
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [key, u] of this.upstreams) {
      if (u.inFlight === 0 && now - u.lastUsed > this.idlePoolMs) {
        this.upstreams.delete(key);
        void u.pool.close().catch(() => undefined);
      }
    }
  }

  /** For Exchange. */
  get isClosed(): boolean {
    return this.closed;
  }
}

const EXCHANGE = Symbol('warmpool.exchange');
type Tracked = ServerResponse & { [EXCHANGE]?: Exchange };

/** res 'close' (a shared listener, not a closure per request): the visitor went away, or the exchange ended. */
function onResClose(this: Tracked): void {
  this[EXCHANGE]?.clientClosed();
}

/** One request/response pair: a dispatch handler writing into the ServerResponse. */
class Exchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private responded = false;
  private finished = false;
  private aborted = false;
  private retried = false;
  private doneOnce = false;
  private readonly hasBody: boolean;
  private readonly path: string;
  private readonly headers: string[];
  private resume: (() => void) | undefined;

  constructor(
    private readonly relay: HttpRelay,
    private readonly up: Upstream,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly t: RelayTarget,
  ) {
    const h = req.headers;
    const cl = h['content-length'];
    this.hasBody = h['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
    this.path = upstreamPath(t.app, t.rest, req.url!, t.target);
    this.headers = upstreamHeaders(req.rawHeaders, { app: t.app, target: t.target, visit: t.visit });
  }

  start(): void {
    const { req, res } = this;
    this.relay.inFlight++;
    this.up.inFlight++;
    // The visitor went away (tab closed, navigation): tear the upstream exchange down with it.
    (res as Tracked)[EXCHANGE] = this;
    res.on('close', onResClose);
    const traffic = this.t.target.traffic;
    const cl = req.headers['content-length'];
    if (cl !== undefined) traffic.bytesIn += Number(cl) || 0;
    this.dispatch();
  }

  private dispatch(): void {
    this.up.pool.dispatch({
      path: this.path,
      method: this.req.method!,
      headers: this.headers,
      body: this.hasBody ? this.req : null,
      headersTimeout: this.relay.headersTimeoutMs,
      bodyTimeout: 0,
    }, this);
  }

  clientClosed(): void {
    if (this.finished) return;
    this.aborted = true;
    this.controller?.abort(new Error('client went away'));
    this.done();
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.aborted) controller.abort(new Error('client went away'));
  }

  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string): void {
    if (status < 200 || this.aborted) return; // 1xx: Node's server already answered Expect itself
    this.responded = true;
    const { t, res, req } = this;
    const out = downstreamHeaders(headers, { app: t.app, target: t.target });
    try {
      if (statusMessage) res.writeHead(status, statusMessage, out);
      else res.writeHead(status, out);
    } catch (e) {
      // An instance sent a header Node refuses to forward: fail this exchange, not the process.
      this.controller?.abort(e as Error);
      return;
    }
    const at = this.relay.o.clock.now();
    const rep = this.relay.o.reporter;
    rep.seen(t.target.traffic, at);
    rep.request(t.target.traffic, req.method!, status);
    this.relay.o.pool.event(t.target.session, 'request');
    if (t.classifier.http(req.method!, this.path, status) === 'active') rep.active(t.target, at);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.t.target.traffic.bytesOut += chunk.length;
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', (this.resume ??= () => this.controller?.resume()));
    }
  }

  onResponseEnd(): void {
    this.finished = true;
    this.res.end();
    this.done();
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    if (this.finished) return;
    const code = (err as { code?: string }).code ?? '';
    if (this.aborted) {
      this.finished = true;
      this.done();
      return;
    }
    // A kept-alive connection the instance had just closed: a bodiless request is safe to send again.
    if (!this.responded && !this.hasBody && !this.retried && RETRYABLE.has(code) && !this.relay.isClosed) {
      this.retried = true;
      this.controller = undefined;
      this.dispatch();
      return;
    }
    this.finished = true;
    const { t, req, res } = this;
    this.relay.o.pool.event(t.target.session, 'upstream-error', { code: code || err.message, path: t.rest.split('?')[0], responded: this.responded });
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
    this.res.removeListener('close', onResClose);
    (this.res as Tracked)[EXCHANGE] = undefined;
  }
}
