// The harness of the hostile corpora: a raw TCP "instance" whose every connection does what a case
// says (bytes, holds, resets, drips), a well-behaved bystander app with its own session in the same
// proxy, deadline-bounded clients, and checkAfter(): after every case the proxy still serves the
// bystander and holds no socket, descriptor or instance connection more than before.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { WebSocketServer, type WebSocket } from 'ws';
import { DEFAULT_RELAY_LIMITS, type AppConfig, type RelayLimits, type WarmpoolConfig } from '../../core/config.js';
import type { ProxyOptions } from '../../proxy/index.js';
import { FakePool, appConfig, enterApp, proxyForPool, warmpoolConfig, type ProxyServer } from './fake-pool.js';
import { closeServer, listen, wsOpen, type CookieJar } from './http.js';
import { eventually } from './wait.js';

// ---------------------------------------------------------------------------------------------
// Relay limits (config.relay)

/** The defaults with the given fields changed. */
export function relayLimits(o: Partial<RelayLimits> = {}): RelayLimits {
  return { ...DEFAULT_RELAY_LIMITS, ...o };
}

// ---------------------------------------------------------------------------------------------
// Measures

export function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

let gcFn: (() => void) | undefined;
/** A full GC, twice (weak callbacks of the first free more on the second). */
export function forceGc(): void {
  if (!gcFn) {
    setFlagsFromString('--expose_gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
  gcFn();
}

/** JS heap plus Buffer memory after a forced GC: what the proxy could be holding on to. */
export function liveBytes(): { heap: number; buffers: number } {
  forceGc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, buffers: m.arrayBuffers };
}

export const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// The hostile instance

export interface HostileConn {
  readonly socket: Socket;
  /** Accept order on this instance, from 0. */
  readonly index: number;
  /** Requests parsed on this connection so far. */
  requests: number;
  /** After an upgrade request's head: everything else the proxy sent (WebSocket bytes), up to a cap. */
  after: Buffer[];
}

export interface Behaviour {
  /** Once per accepted connection, before any byte is read (pause the socket here to never read). */
  connection?(c: HostileConn): void;
  /** Once per complete request head; `n` counts requests on this connection from 0. */
  request?(head: string, c: HostileConn, n: number): void;
}

/** The default answer: 200 with the request target as the body (so a test sees which request it answers). */
export const echo: Behaviour = {
  request(head, c) {
    const target = head.slice(head.indexOf(' ') + 1, head.indexOf(' HTTP/'));
    c.socket.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(target, 'latin1')}\r\n\r\n${target}`, 'latin1');
  },
};

const RECORD_CAP = 256 * 1024;

/**
 * A raw `net` server standing in for a student's notebook that does anything: each connection runs
 * the current behaviour; it counts connections (now and at peak), request heads and bytes received.
 */
export class HostileInstance {
  port = 0;
  id = '';
  /** Connections accepted since the last reset. */
  accepted = 0;
  /** Connections open right now, and the most at once since the last reset. */
  open = 0;
  peakOpen = 0;
  /** Request heads, in arrival order, since the last reset. */
  heads: string[] = [];
  /** Bytes received since the last reset. */
  bytes = 0;
  readonly conns = new Set<HostileConn>();
  private behaviour: Behaviour = echo;
  private server!: NetServer;

  static async start(): Promise<HostileInstance> {
    const h = new HostileInstance();
    h.server = createNetServer((socket) => h.accept(socket));
    // EMFILE on accept and the like must not take the test process (and so the proxy) down.
    h.server.on('error', () => undefined);
    h.port = await new Promise<number>((resolve) => h.server.listen(0, '127.0.0.1', () => resolve((h.server.address() as AddressInfo).port)));
    return h;
  }

  /** The behaviour for connections accepted from now on (and requests on open ones). */
  behave(b: Behaviour): void {
    this.behaviour = b;
  }

  /** Back to echo, counters zeroed (connections still open are counted in `open`). */
  reset(): void {
    this.behaviour = echo;
    this.accepted = 0;
    this.peakOpen = this.open;
    this.heads = [];
    this.bytes = 0;
  }

  /** The instance drops every connection it holds. */
  dropAll(): void {
    for (const c of this.conns) c.socket.destroy();
  }

  close(): Promise<void> {
    this.dropAll();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    const c: HostileConn = { socket, index: this.accepted++, requests: 0, after: [] };
    this.conns.add(c);
    this.open++;
    if (this.open > this.peakOpen) this.peakOpen = this.open;
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.conns.delete(c);
      this.open--;
    });
    let buf: Buffer = Buffer.alloc(0);
    let skip = 0;
    let chunked = false;
    let upgraded = false;
    let kept = 0;
    socket.on('data', (d: Buffer) => {
      this.bytes += d.length;
      if (upgraded) {
        if (kept < RECORD_CAP) c.after.push(d);
        kept += d.length;
        return;
      }
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      for (;;) {
        if (skip > 0) {
          const k = Math.min(skip, buf.length);
          skip -= k;
          buf = buf.subarray(k);
          if (skip > 0) return;
        }
        if (chunked) {
          const end = buf.indexOf('0\r\n\r\n');
          if (end < 0) {
            if (buf.length > 8) buf = buf.subarray(buf.length - 8);
            return;
          }
          chunked = false;
          buf = buf.subarray(end + 5);
        }
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) {
          if (buf.length > RECORD_CAP) buf = Buffer.alloc(0); // a runaway head: stop keeping it
          return;
        }
        const head = buf.subarray(0, end).toString('latin1');
        buf = buf.subarray(end + 4);
        skip = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        chunked = /\r\ntransfer-encoding: *[^\r]*chunked/i.test(head);
        upgraded = /\r\nupgrade: *websocket/i.test(head);
        this.heads.push(head);
        const n = c.requests++;
        this.behaviour.request?.(head, c, n);
        if (upgraded) {
          if (buf.length) c.after.push(Buffer.from(buf));
          return;
        }
      }
    });
    this.behaviour.connection?.(c);
  }
}

/** Writes bytes a few at a time, one piece per `everyMs`, until done or the socket is gone. */
export async function drip(socket: Socket, data: string | Buffer, everyMs: number, step = 1): Promise<void> {
  const b = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
  for (let i = 0; i < b.length; i += step) {
    if (socket.destroyed) return;
    socket.write(b.subarray(i, i + step));
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The target of a request head (`GET /x?y HTTP/1.1` → `/x?y`). */
export function targetOf(head: string): string {
  return head.slice(head.indexOf(' ') + 1, head.indexOf(' HTTP/'));
}

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** The Sec-WebSocket-Accept for a handshake request head. */
export function acceptFor(head: string): string {
  const key = /\r\nsec-websocket-key: *([^\r]+)/i.exec(head)?.[1] ?? '';
  return createHash('sha1')
    .update(key + GUID)
    .digest('base64');
}

/** A valid 101 for a request head, `extra` header lines (each ending CRLF) added. */
export function switching(head: string, extra = ''): string {
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(head)}\r\n${extra}\r\n`;
}

// ---------------------------------------------------------------------------------------------
// The bystander: a normal node:http app and a ws echo

export class Bystander {
  port = 0;
  /** Request targets received (HTTP and upgrades). */
  readonly targets: string[] = [];
  private server!: Server;
  private wss!: WebSocketServer;

  static async start(): Promise<Bystander> {
    const b = new Bystander();
    b.server = createServer((req, res) => {
      b.targets.push(req.url!);
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('good');
      });
    });
    // The proxy's kept-alive connection to it stays for the whole file: part of the socket baseline.
    b.server.keepAliveTimeout = 600_000;
    b.wss = new WebSocketServer({ server: b.server, perMessageDeflate: false });
    b.wss.on('connection', (ws, req) => {
      b.targets.push(req.url!);
      ws.on('message', (d, binary) => ws.send(d, { binary }));
    });
    b.port = await listen(b.server);
    return b;
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await closeServer(this.server);
  }
}

// ---------------------------------------------------------------------------------------------
// Clients with deadlines: a case fails on a hang instead of hanging the file

export interface Fetched {
  /** answered: a complete response; cut: a head, then the connection dropped mid-body; reset: dropped before a head; timeout: nothing settled in time. */
  outcome: 'answered' | 'cut' | 'reset' | 'timeout';
  status: number;
  statusMessage: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  text: string;
  ms: number;
  error?: string;
}

export interface FetchOptions {
  method?: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  jar?: CookieJar;
  deadlineMs?: number;
}

/** One request on a fresh connection; always settles (by the deadline at the latest). */
export function fetchWithin(url: string, o: FetchOptions = {}): Promise<Fetched> {
  const u = new URL(url);
  const headers: Record<string, string | string[]> = { ...(o.headers ?? {}) };
  const c = o.jar?.header(u.pathname);
  if (c) headers.cookie = headers.cookie ? `${headers.cookie}; ${c}` : c;
  const start = Date.now();
  const deadline = o.deadlineMs ?? 5000;
  return new Promise((resolve) => {
    const r: Fetched = { outcome: 'timeout', status: 0, statusMessage: '', headers: {}, rawHeaders: [], body: Buffer.alloc(0), text: '', ms: 0 };
    let settled = false;
    const settle = (outcome: Fetched['outcome'], chunks?: Buffer[], err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      r.outcome = outcome;
      r.ms = Date.now() - start;
      if (chunks) {
        r.body = Buffer.concat(chunks);
        r.text = r.body.toString('latin1');
      }
      if (err) r.error = (err as NodeJS.ErrnoException).code ?? err.message;
      req.destroy();
      resolve(r);
    };
    const req = httpRequest({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: o.method ?? 'GET', headers, agent: false }, (res) => {
      r.status = res.statusCode!;
      r.statusMessage = res.statusMessage ?? '';
      r.headers = res.headers;
      r.rawHeaders = res.rawHeaders;
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('error', () => undefined);
      res.on('close', () => settle(res.complete ? 'answered' : 'cut', chunks));
    });
    const timer = setTimeout(() => settle('timeout'), deadline);
    req.on('error', (e) => settle(r.status ? 'cut' : 'reset', undefined, e));
    req.end(o.body);
  });
}

export interface RawResult {
  buf: Buffer;
  text: string;
  /** The proxy closed (or reset) the connection. */
  closed: boolean;
  timedOut: boolean;
  ms: number;
  socket: Socket;
}

/**
 * A raw TCP client to the proxy: writes `data` (or lets `write` do it), collects everything until the
 * proxy closes, `until(bytes)` holds, or the deadline passes. The socket is destroyed unless keepOpen.
 */
export function rawExchange(
  port: number,
  data: string | Buffer | ((s: Socket) => void),
  o: { until?: (b: Buffer) => boolean; deadlineMs?: number; keepOpen?: boolean } = {},
): Promise<RawResult> {
  const start = Date.now();
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let settled = false;
    const settle = (closed: boolean, timedOut: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const buf = Buffer.concat(chunks);
      if (!o.keepOpen || closed || timedOut) socket.destroy();
      resolve({ buf, text: buf.toString('latin1'), closed, timedOut, ms: Date.now() - start, socket });
    };
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      if (o.until?.(Buffer.concat(chunks))) settle(false, false);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => settle(true, false));
    const timer = setTimeout(() => settle(false, true), o.deadlineMs ?? 5000);
    if (typeof data === 'function') data(socket);
    else socket.write(data);
  });
}

// A small, independent HTTP/1.1 response reader for raw byte streams (pipelined answers, heads the
// node:http client would refuse): not the proxy's own parser, so it can judge it.

export interface RawResponse {
  status: number;
  reason: string;
  /** [name, value] as received. */
  headers: [string, string][];
  body: Buffer;
}

/** Complete responses at the start of buf, in order, and how many bytes they took. */
export function readResponses(buf: Buffer, o: { eof?: boolean } = {}): { responses: RawResponse[]; used: number } {
  const responses: RawResponse[] = [];
  let at = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const lines = buf.toString('latin1', at, end).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0]!);
    if (!m) break;
    const headers = lines.slice(1).map((l): [string, string] => {
      const i = l.indexOf(':');
      return [l.slice(0, i), l.slice(i + 1).trim()];
    });
    const status = Number(m[1]);
    const get = (n: string): string | undefined => headers.find(([k]) => k.toLowerCase() === n)?.[1];
    let p = end + 4;
    let body: Buffer;
    if (status < 200 || status === 204 || status === 304) body = Buffer.alloc(0);
    else if (/chunked/i.test(get('transfer-encoding') ?? '')) {
      const parts: Buffer[] = [];
      let done = false;
      for (;;) {
        const eol = buf.indexOf('\r\n', p);
        if (eol < 0) break;
        const size = parseInt(buf.toString('latin1', p, eol), 16);
        if (Number.isNaN(size)) break;
        if (size === 0) {
          const fin = buf.indexOf('\r\n\r\n', eol);
          if (fin < 0) break;
          p = fin + 4;
          done = true;
          break;
        }
        if (buf.length < eol + 2 + size + 2) break;
        parts.push(buf.subarray(eol + 2, eol + 2 + size));
        p = eol + 2 + size + 2;
      }
      if (!done) break;
      body = Buffer.concat(parts);
    } else if (get('content-length') !== undefined) {
      const n = Number(get('content-length'));
      if (buf.length < p + n) break;
      body = buf.subarray(p, p + n);
      p += n;
    } else {
      if (!o.eof) break;
      body = buf.subarray(p);
      p = buf.length;
    }
    responses.push({ status, reason: m[2]!, headers, body });
    at = p;
  }
  return { responses, used: at };
}

/** True once buf holds a complete response (for rawExchange's `until`). */
export function hasResponse(buf: Buffer): boolean {
  return readResponses(buf).responses.some((r) => r.status >= 200 || r.status === 101);
}

/** The value(s) of a header in a raw [name, value] list (names compared case-insensitively). */
export function headerValues(headers: [string, string][] | string[], name: string): string[] {
  const out: string[] = [];
  const n = name.toLowerCase();
  if (headers.length > 0 && Array.isArray(headers[0])) {
    for (const [k, v] of headers as [string, string][]) if (k.toLowerCase() === n) out.push(v);
  } else {
    const raw = headers as string[];
    for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === n) out.push(raw[i + 1]!);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The stage: one proxy, the hostile app `evil` and the bystander app `good`, each with a session

export interface StageOptions {
  /** Proxy options (timeouts). */
  proxy?: Partial<Omit<ProxyOptions, 'config' | 'pool' | 'log'>>;
  /** The planned config.relay limits; when given, every field is filled (relayLimits()). */
  relay?: Partial<RelayLimits>;
  trustedProxies?: string[];
  /** Overrides for app `evil`'s config (a secret, a prefix mode). */
  evilApp?: Partial<AppConfig>;
  /** The secret of every evil instance. */
  evilSecret?: string;
  /** Hostile instances of app evil (default 1); the first gets the stage's evil session. */
  evilInstances?: number;
}

export interface EvilSession {
  jar: CookieJar;
  session: string;
  instanceId: string;
  instance: HostileInstance;
}

export class Stage {
  /** Evil sessions entered so far, by instance index (the stage enters the first). */
  private readonly sessions = new Map<number, EvilSession>();
  baseline = { sockets: 0, fds: 0 };
  private checks = 0;

  private constructor(
    readonly p: ProxyServer,
    readonly pool: FakePool,
    readonly evils: HostileInstance[],
    readonly good: Bystander,
    readonly goodJar: CookieJar,
    /** The proxy's log lines since the last checkAfter(). */
    readonly logs: string[],
  ) {}

  static async start(o: StageOptions = {}): Promise<Stage> {
    const good = await Bystander.start();
    const evils: HostileInstance[] = [];
    for (let i = 0; i < (o.evilInstances ?? 1); i++) evils.push(await HostileInstance.start());
    const apps = [appConfig('evil', o.evilApp ?? {}), appConfig('good')];
    const pool = new FakePool(apps);
    pool.addInstance('good', { port: good.port, id: 'good-1' });
    for (const [i, e] of evils.entries()) e.id = pool.addInstance('evil', { port: e.port, id: `evil-${i + 1}`, secret: o.evilSecret });
    const config: WarmpoolConfig & { relay?: RelayLimits } = {
      ...warmpoolConfig(apps, { trustedProxies: o.trustedProxies ?? [] }),
      ...(o.relay ? { relay: relayLimits(o.relay) } : {}),
    };
    const logs: string[] = [];
    const p = await proxyForPool(pool, { ...o.proxy, config, log: (m) => logs.push(m) });
    const goodJar = await enterApp(p, 'good');
    const s = new Stage(p, pool, evils, good, goodJar, logs);
    await s.evilSession(0);
    // The entries opened spare connections; the baseline is the steady state after a bystander round.
    await s.checkAfter({ measure: true });
    return s;
  }

  get evil(): HostileInstance {
    return this.evils[0]!;
  }

  get evilJar(): CookieJar {
    return this.sessions.get(0)!.jar;
  }

  /** A session of app evil on instance `i` (entered once, then reused). */
  async evilSession(i: number): Promise<EvilSession> {
    const had = this.sessions.get(i);
    if (had) return had;
    const inst = this.evils[i]!;
    // FakePool hands out the first free instance: the ones before i are claimed already.
    const jar = await enterApp(this.p, 'evil');
    const target = [...this.pool.sessions.values()].find((t) => t.instanceId === inst.id);
    assert.ok(target, `the entry claimed ${inst.id}`);
    const s = { jar, session: target.session, instanceId: inst.id, instance: inst };
    this.sessions.set(i, s);
    return s;
  }

  url(path: string): string {
    return `${this.p.url}${path}`;
  }

  /** The Cookie header of the stage's evil session. */
  get evilCookie(): string {
    return this.evilJar.header('/evil/');
  }

  /**
   * After a case: the proxy still serves the bystander (HTTP and a WebSocket round trip), let go of
   * every hostile connection on its own (idle kept-alive ones are dropped with forgetInstance, busy
   * ones must have ended), and the socket and descriptor counts are back to the baseline.
   */
  async checkAfter(o: { measure?: boolean } = {}): Promise<void> {
    const n = ++this.checks;
    // Kept-alive connections the proxy may legitimately hold idle; a connection still busy stays open and fails the check.
    for (const e of this.evils) {
      this.p.proxy.forgetInstance('127.0.0.1', e.port);
      // A paused socket reads nothing, so it would never see the proxy's FIN: resumed to notice it.
      for (const c of e.conns) c.socket.resume();
    }
    const r = await fetchWithin(this.url(`/good/ping-${n}`), { jar: this.goodJar, deadlineMs: 5000 });
    assert.equal(r.outcome, 'answered', `bystander GET: ${r.outcome} ${r.error ?? ''}`);
    assert.equal(r.status, 200, 'bystander GET status');
    assert.equal(r.text, 'good');
    await wsEcho(this, `echo-${n}`);
    await eventually(
      () => this.evils.every((e) => e.open === 0),
      `the proxy closing its connections to the hostile instance (open: ${this.evils.map((e) => e.open)})`,
      5000,
      10,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; still open: ${this.evils.map((x) => x.open).join(',')}`);
    });
    if (o.measure) {
      // The bystander's kept-alive upstream connection (its server keeps it for 10 min) is the steady state.
      await eventually(() => this.p.proxy.openSockets() === 1, 'one kept-alive bystander connection', 5000, 10);
      this.baseline.sockets = this.p.proxy.openSockets();
      this.baseline.fds = await settledFds();
    } else {
      await eventually(() => this.p.proxy.openSockets() === this.baseline.sockets, 'proxy.openSockets() back to its baseline', 5000, 10).catch((e: Error) => {
        throw new Error(`${e.message}: ${this.p.proxy.openSockets()} != ${this.baseline.sockets}`);
      });
      // Closed sockets give their descriptors back once libuv has run their close callbacks: polled, no slack.
      await eventually(() => fdCount() <= this.baseline.fds, 'file descriptors back to the baseline', 5000, 10).catch((e: Error) => {
        throw new Error(`${e.message}: ${fdCount()} > ${this.baseline.fds}`);
      });
    }
    for (const e of this.evils) e.reset();
    this.logs.length = 0;
    // What the fake pool records is the test's memory, not the proxy's: kept from growing over 2,000-request cases.
    this.pool.events.length = 0;
    this.pool.activities.length = 0;
  }

  async close(): Promise<void> {
    try {
      await this.p.close();
    } finally {
      for (const e of this.evils) await e.close();
      await this.good.close();
    }
  }
}

/** The fd count once it stops moving (a just-closed socket's descriptor is released a tick later). */
async function settledFds(): Promise<number> {
  let last = fdCount();
  for (let same = 0; same < 3; ) {
    await new Promise((r) => setImmediate(r));
    const now = fdCount();
    same = now === last ? same + 1 : 0;
    last = now;
  }
  return last;
}

/** A WebSocket round trip through the bystander's session, closed and waited for. */
async function wsEcho(s: Stage, text: string): Promise<void> {
  const ws: WebSocket = await withDeadline(wsOpen(`${s.url('/good/ws')}`, { jar: s.goodJar, perMessageDeflate: false }), 5000, 'bystander WebSocket open');
  try {
    const got = await withDeadline(
      new Promise<string>((resolve) => {
        ws.once('message', (d) => resolve(d.toString()));
        ws.send(text);
      }),
      5000,
      'bystander WebSocket echo',
    );
    assert.equal(got, text);
  } finally {
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    ws.close();
    await withDeadline(closed, 5000, 'bystander WebSocket close');
  }
}

export function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
    }),
  ]);
}

// ---------------------------------------------------------------------------------------------
// The corpus: cases on one shared stage, each followed by checkAfter()

export interface CaseOptions {
  /** What fails on today's code: node:test runs it and reports it without failing the run. */
  todo?: string;
  timeout?: number;
}

/**
 * Cases share one stage (one proxy for the whole class, as in production). A case that fails, or whose
 * checkAfter fails, leaves a stage that cannot be trusted: it is closed and the next case gets a new one.
 */
export function corpus(o: StageOptions) {
  let current: Stage | null = null;
  let heap0: { heap: number; buffers: number } | undefined;
  // node:test fails a case at once on an uncaught exception and starts the next while the first case's
  // body still runs: cases take turns so no two ever share the stage, whatever node:test reports.
  // A waiting case awaits a promise of its own making: node:test pins an uncaught exception on a test by
  // the trigger chain of the resource that threw, and awaiting another case's promise would re-parent it.
  let busy = false;
  const waiters: (() => void)[] = [];
  const turn = async (): Promise<void> => {
    if (busy) await new Promise<void>((resolve) => waiters.push(resolve));
    busy = true;
  };
  const next = (): void => {
    const w = waiters.shift();
    if (w) w();
    else busy = false;
  };
  // In production an uncaught exception ends the proxy process (and every student's session with it).
  let uncaught: Error | undefined;
  process.on('uncaughtExceptionMonitor', (e) => {
    uncaught ??= e;
  });

  // The shared stage's servers would keep the file's process alive if finish() did not run (a name filter).
  after(async () => {
    if (current) await discard(current);
  });

  async function stage(): Promise<Stage> {
    if (!current) {
      current = await Stage.start(o);
      heap0 ??= liveBytes();
    }
    return current;
  }

  async function discard(s: Stage): Promise<void> {
    if (current === s) current = null;
    for (const e of s.evils) e.dropAll();
    await s.close().catch(() => undefined);
  }

  async function run(fresh: StageOptions | null, fn: (s: Stage) => Promise<void>): Promise<void> {
    const s = fresh ? await Stage.start(fresh) : await stage();
    uncaught = undefined;
    let failed = true;
    try {
      await fn(s);
      if (uncaught) throw new Error(`an uncaught exception, which would end the proxy process: ${(uncaught as Error).stack}`);
      await s.checkAfter();
      if (uncaught) throw new Error(`an uncaught exception, which would end the proxy process: ${(uncaught as Error).stack}`);
      failed = false;
    } finally {
      if (fresh || failed) await discard(s);
    }
  }

  function register(name: string, opts: CaseOptions, fresh: StageOptions | null, fn: (s: Stage) => Promise<void>): void {
    test(name, { todo: opts.todo, timeout: opts.timeout ?? 30_000 }, async () => {
      await turn();
      try {
        await run(fresh, fn);
      } finally {
        next();
      }
    });
  }

  /** A case on the shared stage. */
  function kase(name: string, opts: CaseOptions, fn: (s: Stage) => Promise<void>): void {
    register(name, opts, null, fn);
  }

  /** A case on a stage of its own (other limits), checked and closed after. */
  function alone(name: string, stageOpts: StageOptions, opts: CaseOptions, fn: (s: Stage) => Promise<void>): void {
    register(name, opts, stageOpts, fn);
  }

  /** The last case of a file: memory back near where it started, then the shared stage closed. */
  function finish(slackMiB = 6): void {
    test(`heap and Buffer memory after a forced GC: within ${slackMiB} MiB of the start`, async () => {
      await turn();
      let now: { heap: number; buffers: number };
      try {
        const s = await stage();
        now = liveBytes();
        await discard(s);
      } finally {
        next();
      }
      const base = heap0!;
      assert.ok(now.heap - base.heap < slackMiB * MiB, `heap grew by ${((now.heap - base.heap) / MiB).toFixed(1)} MiB`);
      assert.ok(now.buffers - base.buffers < slackMiB * MiB, `Buffer memory grew by ${((now.buffers - base.buffers) / MiB).toFixed(1)} MiB`);
    });
  }

  return { kase, alone, finish, stage };
}

/** Responses read as bytes arrive (pipelined answers): push() returns the ones each chunk completes. */
export class ResponseStream {
  private buf: Buffer = Buffer.alloc(0);
  count = 0;

  push(chunk: Buffer): RawResponse[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const { responses, used } = readResponses(this.buf);
    if (used > 0) this.buf = this.buf.subarray(used);
    this.count += responses.length;
    return responses;
  }
}
