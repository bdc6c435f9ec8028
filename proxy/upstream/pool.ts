// Kept-alive HTTP/1.1 connections to one instance: connect, hand a connection to one exchange at a
// time, take it back idle (last in, first out), drop it the moment it ends, errs or idles too long.

import type { Socket } from 'node:net';
import { ResponseParser, type ResponseHandler } from '../protocol/http1-response.js';
import { connectLeased, ReadLease } from './read-buffers.js';

/** An exchange that holds a connection: the response handler plus the connection's own failures. */
export interface ConnUser extends ResponseHandler {
  /** The connection is ready: fresh (just connected) or reused from the idle list. */
  onConn(conn: UpstreamConn): void;
  /**
   * The connection failed while this exchange held it (connect error or timeout, reset, closed,
   * headers timeout, a response that breaks HTTP). `retryable`: a reused connection that died
   * before a single response byte, the usual race with the instance closing an idle connection.
   */
  onConnError(err: UpstreamError, retryable: boolean): void;
  /** The upstream socket drained (request body backpressure). */
  onUpstreamDrain(): void;
}

export interface UpstreamError extends Error {
  code?: string;
}

export interface PoolOptions {
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  /** An idle connection is closed after this long (or the instance's Keep-Alive timeout less a second, if shorter). */
  idleMs: number;
  /** Connections to this instance at once (connecting, busy and idle); further exchanges wait in line for one. */
  maxConnections: number;
}

function upstreamError(message: string, code: string): UpstreamError {
  const e: UpstreamError = new Error(message);
  e.code = code;
  return e;
}

const CONN = Symbol('warmpool.upstream-conn');
type Tagged = Socket & { [CONN]: UpstreamConn };

// Socket listeners shared by every connection (no closure per connection or exchange).
function onConnect(this: Tagged): void {
  this[CONN].connected();
}
/** net's onread callback: `n` bytes were read into buf (the buffer this connection's lease chose). */
function onRead(this: Tagged, n: number, buf: Uint8Array): boolean {
  const c = this[CONN];
  try {
    c.data(c.lease.view(n, buf));
  } finally {
    c.lease.afterRead(!c.dead, c.user);
  }
  return true;
}
function onEnd(this: Tagged): void {
  this[CONN].ended();
}
function onClose(this: Tagged): void {
  this[CONN].closed();
}
function onError(this: Tagged, err: Error): void {
  this[CONN].fail(err);
}
function onDrain(this: Tagged): void {
  this[CONN].user?.onUpstreamDrain();
}
function onConnectTimeout(c: UpstreamConn): void {
  c.fail(upstreamError(`no connection to ${c.pool.origin} within ${c.pool.o.connectTimeoutMs} ms`, 'UPSTREAM_CONNECT_TIMEOUT'));
}
function onHeadTimer(c: UpstreamConn): void {
  // Armed (refreshed) at every request sent on this connection: when it fires, the latest request is that old.
  if (c.user && c.parser.inHead)
    c.fail(upstreamError(`no response head from ${c.pool.origin} within ${c.pool.o.headersTimeoutMs} ms`, 'UPSTREAM_HEADERS_TIMEOUT'));
}

/** One TCP connection to an instance, carrying one exchange at a time. */
export class UpstreamConn {
  readonly socket: Tagged;
  readonly parser = new ResponseParser();
  user: ConnUser | null;
  /** Came from the idle list for the current exchange. */
  reused = false;
  /** Response bytes seen in the current exchange. */
  gotBytes = false;
  /** The current request's body is still being written: the connection cannot go back idle. */
  bodyPending = false;
  /** Date.now() after which this idle connection is not reused. */
  idleUntil = 0;
  dead = false;
  /** The memory the socket reads into: shared, or lent to this connection once it streams (kept while it lives). */
  readonly lease = new ReadLease();
  private connecting = true;
  private connectTimer: NodeJS.Timeout | undefined;
  private headTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly pool: UpstreamPool,
    user: ConnUser | null,
  ) {
    this.user = user;
    const s = connectLeased(pool.host, pool.port, onRead as (n: number, buf: Uint8Array) => boolean) as Tagged;
    s[CONN] = this;
    this.socket = s;
    s.on('connect', onConnect);
    s.on('end', onEnd);
    s.on('close', onClose);
    s.on('error', onError);
    s.on('drain', onDrain);
    this.connectTimer = setTimeout(onConnectTimeout, pool.o.connectTimeoutMs, this);
    this.connectTimer.unref();
  }

  /** Sends a request head; the response goes to the current user. */
  send(head: string, headOnly: boolean): void {
    this.gotBytes = false;
    this.parser.start(this.user!, headOnly);
    if (this.headTimer) this.headTimer.refresh();
    else (this.headTimer = setTimeout(onHeadTimer, this.pool.o.headersTimeoutMs, this)).unref();
    this.socket.write(head, 'latin1');
  }

  /** The exchange is over and the response complete: back to the idle list if the connection is still sound. */
  release(): void {
    this.user = null;
    if (this.dead) return;
    if (!this.parser.complete || !this.parser.keepAlive || this.bodyPending || this.pool.closed) {
      this.kill();
      return;
    }
    if (this.socket.isPaused()) this.socket.resume(); // an idle connection must still see its 'end'
    this.pool.putIdle(this);
  }

  /** The exchange gave up (visitor gone): this connection is in an unknown state, close it. */
  abort(): void {
    this.user = null;
    this.kill();
  }

  connected(): void {
    this.connecting = false;
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    if (this.pool.spare === this) this.pool.spare = null;
    if (this.user) this.user.onConn(this);
    else this.pool.putIdle(this); // a preconnected spare, or its exchange went away while connecting
  }

  /** Whether the latest read's views stay valid after it returns (see ReadLease.own). */
  get ownBuffer(): boolean {
    return this.lease.own;
  }

  /**
   * The current exchange still writes views of the latest read (own buffer) and has paused the socket:
   * the buffer is not read into again before it resumes, nor by another exchange.
   */
  pin(): void {
    this.lease.pin(this.user);
  }

  data(buf: Buffer): void {
    if (!this.user) {
      // Bytes on an idle connection: nothing can be trusted on it any more.
      this.kill();
      return;
    }
    this.gotBytes = true;
    try {
      this.parser.execute(buf);
    } catch (e) {
      this.fail(e as UpstreamError);
    }
  }

  ended(): void {
    if (this.user && this.parser.finish()) return; // a body read until close is complete (released by its exchange)
    this.closed();
  }

  /**
   * The socket closed, or the instance ended it. An error (which captures a stack) only for an exchange
   * still on it: every claim closes a connection nobody uses any more (killed here, or idle).
   */
  closed(): void {
    if (this.dead) return;
    if (this.user === null) this.kill();
    else this.fail(upstreamError('the instance closed the connection', 'UPSTREAM_CLOSED'));
  }

  /** Any failure: the connection is closed and its exchange (if any) told once. */
  fail(err: UpstreamError): void {
    if (this.dead) return;
    const u = this.user;
    const retryable = u !== null && this.reused && !this.gotBytes && !this.connecting && err.code !== 'UPSTREAM_HEADERS_TIMEOUT';
    this.user = null;
    this.kill();
    u?.onConnError(err, retryable);
  }

  kill(): void {
    if (this.dead) return;
    this.dead = true;
    this.parser.stop();
    this.lease.end();
    clearTimeout(this.connectTimer);
    clearTimeout(this.headTimer);
    this.pool.dropped(this);
    this.socket.destroy();
  }
}

/** Connections to one instance (host, port and instance id: a port reused by a new instance gets a new pool). */
export class UpstreamPool {
  readonly origin: string;
  /** Idle connections, most recently used last. */
  private readonly idle: UpstreamConn[] = [];
  private readonly all = new Set<UpstreamConn>();
  /** A preconnect() still connecting, for the first exchange to take over. */
  spare: UpstreamConn | null = null;
  /** Exchanges waiting for a connection while maxConnections are open, first come first served. */
  private readonly waiters: ConnUser[] = [];
  closed = false;
  /** Exchanges using this pool (for the relay's sweep of unused pools). */
  inFlight = 0;
  lastUsed = 0;
  private lastKeepAlive = '';
  private lastLimit = 0;

  constructor(
    readonly host: string,
    readonly port: number,
    readonly instanceId: string,
    readonly o: PoolOptions,
  ) {
    this.origin = `${host}:${port}`;
  }

  /** Open connections, idle and busy, connecting ones included. */
  get open(): number {
    return this.all.size;
  }

  get idleCount(): number {
    return this.idle.length;
  }

  /** Hands user a connection: the most recently idled one that has not expired, else a new one. */
  acquire(user: ConnUser): void {
    const idle = this.idle;
    while (idle.length > 0) {
      const c = idle.pop()!;
      if (c.idleUntil < Date.now()) {
        c.kill();
        continue;
      }
      c.user = user;
      c.reused = true;
      user.onConn(c);
      return;
    }
    const spare = this.spare;
    if (spare) {
      // Still connecting (a connected spare is idle): this exchange waits for it instead of opening another.
      this.spare = null;
      spare.user = user;
      return;
    }
    this.connect(user);
  }

  /** An exchange waiting in line gave up (its visitor left): it no longer wants a connection. */
  cancel(user: ConnUser): void {
    const i = this.waiters.indexOf(user);
    if (i >= 0) this.waiters.splice(i, 1);
  }

  /** Exchanges waiting for a connection. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** A spare connection for an exchange about to come, when there is none: idle once connected. */
  preconnect(): void {
    if (this.closed || this.all.size > 0) return;
    const c = new UpstreamConn(this, null);
    this.all.add(c);
    this.spare = c;
  }

  /** A new connection (the retry after a reused connection failed too), or a place in line at the cap. */
  connect(user: ConnUser): void {
    if (this.all.size >= this.o.maxConnections) {
      this.waiters.push(user);
      return;
    }
    const c = new UpstreamConn(this, user);
    this.all.add(c);
  }

  putIdle(c: UpstreamConn): void {
    if (this.closed) {
      c.kill();
      return;
    }
    const next = this.waiters.shift();
    if (next) {
      // Someone is waiting for a connection: this one goes straight on (it just answered soundly).
      c.user = next;
      c.reused = true;
      next.onConn(c);
      return;
    }
    c.reused = false;
    c.idleUntil = Date.now() + this.idleLimit(c);
    this.idle.push(c);
  }

  /** Kept-alive connections past their time are closed: idleMs, or sooner if the instance said so. */
  private idleLimit(c: UpstreamConn): number {
    const ka = c.parser.headers['keep-alive'];
    if (typeof ka !== 'string') return this.o.idleMs;
    if (ka === this.lastKeepAlive) return this.lastLimit; // an instance says the same thing every time
    const m = /timeout=(\d+)/i.exec(ka);
    // A second earlier than the instance's own timeout, so a request does not race its close.
    const limit = m ? Math.min(this.o.idleMs, Math.max(0, Number(m[1]) * 1000 - 1000)) : this.o.idleMs;
    this.lastKeepAlive = ka;
    this.lastLimit = limit;
    return limit;
  }

  dropped(c: UpstreamConn): void {
    this.all.delete(c);
    if (this.spare === c) this.spare = null;
    const i = this.idle.lastIndexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    // A place freed under the cap: the first in line gets a new connection.
    if (this.waiters.length > 0 && !this.closed && this.all.size < this.o.maxConnections) {
      const c2 = new UpstreamConn(this, this.waiters.shift()!);
      this.all.add(c2);
    }
  }

  /** Closes idle connections past their time (called from the relay's periodic sweep). */
  sweep(now: number): void {
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const c = this.idle[i]!;
      if (c.idleUntil < now) c.kill();
    }
  }

  /** No new exchanges: idle connections closed now, busy ones when their exchange ends; those in line fail. */
  close(): void {
    this.closed = true;
    for (const c of [...this.idle]) c.kill();
    // An Error captures a stack: built only when someone is in line to be told.
    if (this.waiters.length > 0) this.failWaiters(upstreamError(`the instance at ${this.origin} is gone`, 'UPSTREAM_CLOSED'));
  }

  /** Every connection closed now; exchanges in progress and in line fail. */
  destroy(): void {
    this.closed = true;
    const err = upstreamError(`connection to ${this.origin} closed: the proxy is shutting down`, 'UPSTREAM_CLOSED');
    for (const c of [...this.all]) c.fail(err);
    this.failWaiters(err);
  }

  private failWaiters(err: UpstreamError): void {
    const w = this.waiters.splice(0);
    for (const u of w) u.onConnError(err, false);
  }
}
