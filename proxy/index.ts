// createProxy(): warmpool's public entry as a request handler and an upgrade handler, mountable in
// any Node HTTP server beside the operator's own routes. The request path is a row of small passes:
// route → (landing | internal | entry | session) → relay, each answering through answers.ts.
//
//   const proxy = createProxy({ config, pool });
//   const server = http.createServer((req, res) => proxy.handleRequest(req, res, () => myRoutes(req, res)));
//   server.on('upgrade', (req, socket, head) => proxy.handleUpgrade(req, socket, head));

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { PoolApi } from '../pool/api.js';
import type { AppConfig, WarmpoolConfig } from '../core/config.js';
import { systemClock, type Clock } from '../core/clock.js';
import { ActivityReporter } from './activity.js';
import { refuseUpgrade, sendAnswer, type Answer } from './answers.js';
import { classifierFor, type Classifier } from './classify/index.js';
import { CookieCodec, loadKeys, type KeyRing } from './cookie.js';
import { entry } from './entry.js';
import { TrustedProxies, visitOf, type Visit } from './forwarded.js';
import { DescriptorAlarm, isOutOfDescriptors } from './descriptors.js';
import { requestProblem } from './headers.js';
import { HttpRelay, type RelayTarget } from './http-relay.js';
import { Leaving } from './leaving.js';
import { createPublicServer } from './listener.js';
import { queryParam, route } from './router.js';
import { readSession } from './session.js';
import { acceptsEventStream, WaitingStreams } from './waiting.js';
import { WsRelay } from './ws-relay.js';
import type { Log } from '../core/log.js';

/** Why an entry's wait was stopped: its visitor's request closed. */
const VISITOR_LEFT = new Error('the visitor left');

export { openWebSocketSockets } from './ws-relay.js';
export type { Answer } from './answers.js';
export type { CookiePayload, KeyRing } from './cookie.js';
export { CookieCodec, keyRing, loadKeys, cookieName } from './cookie.js';

export interface ProxyOptions {
  config: WarmpoolConfig;
  pool: PoolApi;
  clock?: Clock;
  /** Cookie keys; default loadKeys(process.env, config.stateDir). */
  keys?: KeyRing;
  log?: Log;
  /** Cookie lifetime, ms (default 12 h). */
  cookieMaxAgeMs?: number;
  /** Serve `/` (the landing page or config.landingRedirect). Default true; false leaves `/` to next(). */
  landing?: boolean;
  /**
   * Extra routes under /_warmpool/ (admin API, dashboard, metrics): return true when handled.
   * `path` is what follows /_warmpool (starts with '/', query kept).
   */
  internal?: (req: IncomingMessage, res: ServerResponse, path: string) => boolean;
  /** Upstream response head timeout, ms (default 60 s). */
  headersTimeoutMs?: number;
  /** Until an instance answers a WebSocket handshake (connect included), ms (default 30 s). */
  wsHandshakeTimeoutMs?: number;
  /** pool.activity() at most this often per session, ms (default 1000). */
  activityCoalesceMs?: number;
}

export interface Proxy {
  /**
   * Serves warmpool's paths (`/`, `/_warmpool/…`, `/<app>`, `/<app>/…`). For anything else it calls
   * next() and returns false; without next it answers 404 (listing the apps) itself.
   */
  handleRequest(req: IncomingMessage, res: ServerResponse, next?: () => void): boolean;
  /**
   * Relays WebSocket upgrades under `/<app>/` by the app's cookie. Other paths: next() and false
   * (socket untouched); without next, refused with 404.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, next?: () => void): boolean;
  /** Sockets this proxy holds: WebSocket client + upstream sockets, HTTP exchanges in flight, kept-alive upstream connections, waiting streams and held entry requests. */
  openSockets(): number;
  /** An instance is gone: close the kept-alive connections to it now (they are also closed when idle, or when its port gets a new instance). */
  forgetInstance(host: string, port: number): void;
  readonly codec: CookieCodec;
  /**
   * A Node HTTP server serving this proxy with the relay limits of config.relay (head size and
   * timeout, connections per address); `next` serves what is not warmpool's. Not listening yet.
   */
  createServer(next?: (req: IncomingMessage, res: ServerResponse) => void): Server;
  /** Closes every relayed WebSocket and upstream connection. Does not close the HTTP server. */
  close(): Promise<void>;
}

export function createProxy(o: ProxyOptions): Proxy {
  const clock = o.clock ?? systemClock;
  const { pool, config, log } = o;
  const codec = new CookieCodec({ keys: o.keys ?? loadKeys(process.env, config.stateDir), clock, maxAgeMs: o.cookieMaxAgeMs });
  const trust = new TrustedProxies(config.trustedProxies);
  const reporter = new ActivityReporter(pool, clock, o.activityCoalesceMs ?? 1000);
  const limits = config.relay;
  const fds = new DescriptorAlarm(log, () => clock.now());
  const http = new HttpRelay({
    pool,
    clock,
    reporter,
    log,
    fds,
    headersTimeoutMs: o.headersTimeoutMs,
    maxConnectionsPerInstance: limits.upstreamConnectionsPerInstance,
  });
  const ws = new WsRelay({ pool, reporter, log, fds, handshakeTimeoutMs: o.wsHandshakeTimeoutMs, perSession: limits.websocketsPerSession });
  const streams = new WaitingStreams({ pool, clock, log });
  /** Entry requests in progress (a held one waits in line): left when their visitor leaves, or on close(). */
  const entries = new Set<Leaving>();
  const classifiers = new Map<string, Classifier>();
  const serveLanding = o.landing ?? true;
  let closed = false;

  const isApp = (name: string): boolean => pool.app(name) !== undefined;
  const appNames = (): string[] => pool.apps().map((a) => a.name);
  const classifierOf = (app: AppConfig): Classifier => {
    let c = classifiers.get(app.name);
    if (!c) {
      c = classifierFor(app.classifier, app.prefix.mode === 'base-url' ? { baseUrl: `/${app.name}/` } : {});
      classifiers.set(app.name, c);
    }
    return c;
  };
  // Stamped as a request sets off (the relay reports it once the answer's head is back): the pool
  // reads it before giving an apparently unused claim back (queue.firstUse).
  const firstSeen = (target: RelayTarget['target']): void => {
    if (target.traffic.firstSeen === undefined) target.traffic.firstSeen = clock.now();
  };
  const relayTarget = (app: AppConfig, rest: string, visit: Visit, target: RelayTarget['target']): RelayTarget => ({
    app,
    rest,
    visit,
    target,
    classifier: classifierOf(app),
  });

  function handleRequest(req: IncomingMessage, res: ServerResponse, next?: () => void): boolean {
    const r = route(req.url, isApp);
    switch (r.kind) {
      case 'landing':
        if (!serveLanding && next) break;
        if (config.landingRedirect) sendAnswer(req, res, { kind: 'redirect', status: 302, location: config.landingRedirect });
        else sendAnswer(req, res, { kind: 'landing', apps: appNames() });
        return true;
      case 'internal':
        if (r.path === '/healthz' || r.path.startsWith('/healthz?')) {
          healthz(req, res);
          return true;
        }
        if (o.internal?.(req, res, r.path)) return true;
        sendAnswer(req, res, { kind: 'not-found', path: r.path });
        return true;
      case 'app-bare': {
        const get = req.method === 'GET' || req.method === 'HEAD';
        sendAnswer(req, res, { kind: 'redirect', status: get ? 302 : 308, location: `/${r.app}/${r.query}` });
        return true;
      }
      case 'app':
        appRequest(req, res, pool.app(r.app)!, r.rest, r.isRoot);
        return true;
      case 'invalid':
        sendAnswer(req, res, { kind: 'bad-request', message: 'warmpool serves origin-form request targets only' });
        return true;
      case 'other':
        if (next) break;
        sendAnswer(req, res, { kind: 'unknown-app', name: r.segment, apps: appNames() });
        return true;
    }
    next!();
    return false;
  }

  /** Public: engine reachability and whether each pool can serve (pool.health), 503 when not; no session or address in it. */
  function healthz(req: IncomingMessage, res: ServerResponse): void {
    const send = (ok: boolean, extra: Record<string, unknown>) => {
      const body = JSON.stringify({ ok, apps: appNames(), ...extra }) + '\n';
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (closed || !pool.health) {
      send(!closed, {});
      return;
    }
    pool.health().then(
      (h) =>
        send(h.ok && !closed, {
          engines: h.engines.map((e) => ({ runtime: e.runtime, reachable: e.reachable })),
          pools: h.pools.map((p) => ({ app: p.app, state: p.state, canServe: p.canServe, ready: p.ready })),
        }),
      (e: unknown) => {
        log?.(`health check failed: ${(e as Error)?.stack ?? String(e)}`, undefined, 'error');
        send(false, { error: 'health check failed' });
      },
    );
  }

  function appRequest(req: IncomingMessage, res: ServerResponse, app: AppConfig, rest: string, isRoot: boolean): void {
    if (closed) {
      sendAnswer(req, res, { kind: 'pool-stopped', app: app.name });
      return;
    }
    const problem = requestProblem(req.rawHeaders);
    if (problem) {
      sendAnswer(req, res, { kind: 'bad-request', message: `${problem}; warmpool does not relay it` });
      return;
    }
    const visit = visitOf(req, trust);
    if (isRoot && req.method === 'GET') {
      const ticket = queryParam(req.url!, 'wait');
      if (ticket && acceptsEventStream(req)) {
        streams.stream(req, res, app, ticket);
        return;
      }
      const leaving = new Leaving();
      entries.add(leaving);
      // Only an entry still waiting has anything to stop (an abort builds a DOMException: not for every request).
      res.once('close', () => {
        if (entries.has(leaving)) leaving.leave(VISITOR_LEFT);
      });
      entry(req, app, visit, { pool, codec, log, leaving }).then(
        (out) => {
          entries.delete(leaving);
          if (closed && out.kind === 'answer' && out.answer.kind === 'place-lapsed') sendAnswer(req, res, { kind: 'pool-stopped', app: app.name });
          else if (out.kind === 'answer') {
            sendAnswer(req, res, out.answer);
            // The browser follows the redirect at once: have a connection to its instance ready by then.
            if (out.claimed) http.preconnect(out.claimed);
          } else http.relay(req, res, relayTarget(app, rest, visit, out.target));
        },
        (e: unknown) => {
          entries.delete(leaving);
          log?.(`entry to ${app.name} failed: ${(e as Error)?.stack ?? String(e)}`, { app: app.name }, 'error');
          sendAnswer(req, res, { kind: 'internal-error', message: 'warmpool could not start your session; try again in a moment.' });
        },
      );
      return;
    }
    const s = readSession(req, app.name, codec, pool, visit.proto === 'https');
    if (!s.ok) {
      sendAnswer(req, res, s.answer);
      return;
    }
    firstSeen(s.target);
    http.relay(req, res, relayTarget(app, rest, visit, s.target));
  }

  function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, next?: () => void): boolean {
    const r = route(req.url, isApp);
    if (r.kind !== 'app' && r.kind !== 'app-bare') {
      if (next) {
        next();
        return false;
      }
      socket.on('error', () => socket.destroy());
      const a: Answer = r.kind === 'other' ? { kind: 'unknown-app', name: r.segment, apps: appNames() } : { kind: 'not-found', path: req.url ?? '' };
      refuseUpgrade(req, socket, a);
      return true;
    }
    // Every socket gets an error handler at once: a reset before anything is written must not crash.
    socket.on('error', () => socket.destroy());
    if (closed) {
      refuseUpgrade(req, socket, { kind: 'pool-stopped', app: r.app });
      return true;
    }
    if (String(req.headers.upgrade).toLowerCase() !== 'websocket') {
      refuseUpgrade(req, socket, { kind: 'not-websocket' });
      return true;
    }
    const handshake = handshakeProblem(req);
    if (handshake) {
      refuseUpgrade(req, socket, { kind: 'bad-request', message: handshake });
      return true;
    }
    const problem = requestProblem(req.rawHeaders);
    if (problem) {
      refuseUpgrade(req, socket, { kind: 'bad-request', message: `${problem}; warmpool does not relay it` });
      return true;
    }
    const app = pool.app(r.app)!;
    const rest = r.kind === 'app' ? r.rest : '/' + r.query;
    const visit = visitOf(req, trust);
    const s = readSession(req, app.name, codec, pool, visit.proto === 'https');
    if (!s.ok) {
      refuseUpgrade(req, socket, s.answer);
      return true;
    }
    firstSeen(s.target);
    ws.relay(req, socket, head, relayTarget(app, rest, visit, s.target));
    return true;
  }

  return {
    handleRequest,
    handleUpgrade,
    codec,
    openSockets: () => ws.openSockets() + http.inFlight + http.upstreamSockets() + streams.size + entries.size,
    forgetInstance: (host, port) => http.forget(host, port),
    createServer(next) {
      return createPublicServer({
        limits,
        trustedProxies: config.trustedProxies,
        onRequest: (req, res) => handleRequest(req, res, next && (() => next(req, res))),
        onUpgrade: (req, socket, head) => handleUpgrade(req, socket, head),
        onError: (e) => {
          if (isOutOfDescriptors(e.code)) fds.exhausted();
          else log?.(`public listener: ${e.message}`, undefined, 'error');
        },
      });
    },
    async close() {
      closed = true;
      streams.close();
      for (const l of entries) l.leave();
      await Promise.all([ws.close(), http.close()]);
    },
  };
}

/**
 * What makes an upgrade request no WebSocket handshake (RFC 6455 §4.2.1), or undefined: refused
 * here, so an instance only ever sees handshakes a browser could have sent.
 */
function handshakeProblem(req: IncomingMessage): string | undefined {
  if (req.method !== 'GET') return `a WebSocket handshake is a GET, not ${req.method}`;
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !/^[+/0-9A-Za-z]{22}==$/.test(key)) return 'the WebSocket handshake has no valid Sec-WebSocket-Key';
  if (req.headers['sec-websocket-version'] !== '13') return 'the WebSocket handshake must ask for Sec-WebSocket-Version 13';
  return undefined;
}
