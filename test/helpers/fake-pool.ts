// A small PoolApi over instances the test starts itself (stand-ins, echo servers), for proxy tests:
// claims hand out added instances, an empty pool gives tickets whose waiters are offered instances
// in order as they are added, and everything the proxy reports (activity, connections, events) is
// recorded. Plus a proxy server on port 0. (The real line, with its limits: pool/warm-pool.ts.)

import type { Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import type {
  ClaimOptions,
  ClaimResult,
  CollectResult,
  EndReason,
  FindResult,
  LineStatus,
  PoolApi,
  SessionTarget,
  SessionTraffic,
  WaitOptions,
  WaitOutcome,
} from '../../pool/api.js';
import { DEFAULT_QUEUE, DEFAULT_RELAY_LIMITS, type AppConfig, type RelayLimits, type WarmpoolConfig } from '../../core/config.js';
import type { Clock } from '../../core/clock.js';
import { WarmpoolError } from '../../core/errors.js';
import { newTraffic } from '../../pool/session.js';
import { createProxy, keyRing, type KeyRing, type Proxy as ProxyHandle, type ProxyOptions } from '../../proxy/index.js';
import assert from 'node:assert/strict';
import { CookieJar, closeServer, listen, request } from './http.js';

/** An AppConfig with test defaults (process runtime, strip prefix, generic classifier). */
export function appConfig(name: string, o: Partial<AppConfig> = {}): AppConfig {
  return {
    name,
    runtime: 'process',
    command: ['true'],
    port: 0,
    env: {},
    deepLink: '/',
    resolveDeepLink: false,
    prefix: { mode: 'strip' },
    pool: { warm: 1, max: 1, parallel: 1 },
    readiness: { http: { path: '/', status: 200 }, timeoutMs: 10_000, intervalMs: 50 },
    limits: {},
    network: 'host',
    idleTimeoutMs: 600_000,
    maxLifetimeMs: 3600_000,
    graceMs: 60_000,
    classifier: 'generic',
    ...o,
  };
}

export function warmpoolConfig(apps: AppConfig[], o: Omit<Partial<WarmpoolConfig>, 'relay'> & { relay?: Partial<RelayLimits> } = {}): WarmpoolConfig {
  const { relay, ...rest } = o;
  return {
    host: '127.0.0.1',
    port: 0,
    deployment: 'test',
    trustedProxies: [],
    ports: { from: 20000, to: 29999 },
    stateDir: '/tmp/warmpool-test-state',
    keepOnExit: false,
    processUsers: false,
    log: { dir: '/tmp/warmpool-test-state/log', rotateBytes: 64 * 1024 * 1024 },
    apps,
    queue: DEFAULT_QUEUE,
    ...rest,
    relay: { ...DEFAULT_RELAY_LIMITS, ...relay },
  };
}

export { newTraffic };

interface Instance {
  id: string;
  app: string;
  host: string;
  port: number;
  secret?: string;
  deepLinkRedirect?: string;
  claimedBy?: string;
  offeredTo?: string;
}
interface Place {
  ticket: string;
  waiter?: { resolve: (o: WaitOutcome) => void; onLine?: (s: LineStatus) => void };
}

export class FakePool implements PoolApi {
  readonly sessions = new Map<string, SessionTarget>();
  readonly ended = new Map<string, { reason: EndReason; at: number }>();
  readonly activities: { session: string; at: number }[] = [];
  readonly events: { session: string; type: string; detail?: Record<string, unknown> }[] = [];
  readonly claims: ({ app: string } & ClaimOptions)[] = [];
  opened = 0;
  closed = 0;
  private readonly instances = new Map<string, Instance>();
  private readonly lines = new Map<string, Place[]>();
  private readonly offers = new Map<string, Instance>();
  private seq = 0;

  constructor(
    private readonly appList: AppConfig[],
    private readonly clock: Clock = { now: () => Date.now(), setTimer: () => ({ cancel() {} }), sleep: async () => {} },
  ) {}

  apps(): readonly AppConfig[] {
    return this.appList;
  }
  app(name: string): AppConfig | undefined {
    return this.appList.find((a) => a.name === name);
  }

  /** Makes an instance available for claims; returns its id. */
  addInstance(app: string, where: { host?: string; port: number; secret?: string; id?: string; deepLinkRedirect?: string }): string {
    const id = where.id ?? `i${++this.seq}`;
    this.instances.set(id, { id, app, host: where.host ?? '127.0.0.1', port: where.port, secret: where.secret, deepLinkRedirect: where.deepLinkRedirect });
    this.dispatch(app);
    return id;
  }

  /** The instance died: its session ends with 'instance-exited'. */
  instanceExited(id: string): void {
    const inst = this.instances.get(id);
    if (!inst) return;
    this.instances.delete(id);
    if (inst.claimedBy) this.finish(inst.claimedBy, 'instance-exited');
  }

  async claim(app: string, opts: ClaimOptions = {}): Promise<ClaimResult> {
    this.claims.push({ app, ...opts });
    if (!this.app(app)) throw new WarmpoolError('APP_UNKNOWN', `no app ${app}`);
    const line = this.lineOf(app);
    const free = this.free(app);
    // First come, first served: a free instance goes to a newcomer only when nobody waits.
    if (free && !line.some((p) => p.waiter)) return { kind: 'session', target: this.open(free) };
    const ticket = randomBytes(16).toString('base64url');
    line.push({ ticket });
    return { kind: 'queued', ticket, line: this.status(app, line.filter((p) => p.waiter).length + 1) };
  }

  async wait(app: string, ticket: string, o: WaitOptions): Promise<WaitOutcome> {
    const line = this.lineOf(app);
    const p = line.find((x) => x.ticket === ticket);
    if (!p) return { kind: 'gone', why: 'unknown' };
    if (p.waiter) return { kind: 'gone', why: 'taken' };
    if (o.signal.aborted) return { kind: 'gone', why: 'left' };
    // A browser's entry is not held here (as with queue.pageHold 0): its ticket goes to the waiting page at once.
    if (o.kind === 'page') return { kind: 'timeout', ticket, line: this.status(app, line.filter((x) => x.waiter).length + 1) };
    return new Promise((resolve) => {
      p.waiter = { resolve, onLine: o.onLine };
      o.signal.addEventListener(
        'abort',
        () => {
          const i = line.indexOf(p);
          if (i < 0) return;
          line.splice(i, 1);
          resolve({ kind: 'gone', why: 'left' });
          this.tell(app);
        },
        { once: true },
      );
      this.dispatch(app);
      this.tell(app);
    });
  }

  async collect(app: string, token: string): Promise<CollectResult> {
    const inst = this.offers.get(token);
    if (!inst || inst.app !== app || !this.instances.has(inst.id)) return { kind: 'gone' };
    this.offers.delete(token);
    inst.offeredTo = undefined;
    return { kind: 'session', target: this.open(inst) };
  }

  decline(_app: string, token: string): void {
    const inst = this.offers.get(token);
    if (!inst) return;
    this.offers.delete(token);
    inst.offeredTo = undefined;
    this.dispatch(inst.app);
  }

  private lineOf(app: string): Place[] {
    let line = this.lines.get(app);
    if (!line) this.lines.set(app, (line = []));
    return line;
  }

  private free(app: string): Instance | undefined {
    return [...this.instances.values()].find((i) => i.app === app && !i.claimedBy && !i.offeredTo);
  }

  private open(inst: Instance): SessionTarget {
    const session = `s${++this.seq}`;
    inst.claimedBy = session;
    const target: SessionTarget = {
      session,
      app: inst.app,
      instanceId: inst.id,
      host: inst.host,
      port: inst.port,
      secret: inst.secret,
      deepLinkRedirect: inst.deepLinkRedirect,
      claimedAt: this.clock.now(),
      traffic: newTraffic(),
    };
    this.sessions.set(session, target);
    return target;
  }

  private dispatch(app: string): void {
    const line = this.lineOf(app);
    for (let inst = this.free(app), p = line.find((x) => x.waiter); inst && p; inst = this.free(app), p = line.find((x) => x.waiter)) {
      line.splice(line.indexOf(p), 1);
      const token = randomBytes(16).toString('base64url');
      inst.offeredTo = p.ticket;
      this.offers.set(token, inst);
      p.waiter!.resolve({ kind: 'offer', collect: token, expiresAt: this.clock.now() + 10_000 });
    }
  }

  private tell(app: string): void {
    const waiting = this.lineOf(app).filter((p) => p.waiter);
    for (const [i, p] of waiting.entries()) p.waiter!.onLine?.(this.status(app, i + 1));
  }

  private status(app: string, position: number): LineStatus {
    const all = [...this.instances.values()].filter((i) => i.app === app);
    const claimed = all.filter((i) => i.claimedBy).length;
    return {
      position,
      waiting: this.lineOf(app).filter((p) => p.waiter).length,
      reason: 'starting',
      ready: all.length - claimed,
      starting: 0,
      claimed,
      max: this.app(app)!.pool.max,
    };
  }

  find(session: string, instanceId: string): FindResult {
    const t = this.sessions.get(session);
    if (t && t.instanceId === instanceId) return { kind: 'live', target: t };
    const e = this.ended.get(session);
    if (e) return { kind: 'ended', ...e };
    return { kind: 'unknown' };
  }

  async end(session: string, reason: EndReason): Promise<void> {
    this.finish(session, reason);
  }

  private finish(session: string, reason: EndReason): void {
    const t = this.sessions.get(session);
    if (!t) return;
    this.sessions.delete(session);
    this.ended.set(session, { reason, at: this.clock.now() });
    const inst = this.instances.get(t.instanceId);
    if (inst) inst.claimedBy = undefined; // handed out again only in tests that say so by re-adding
    if (inst) this.instances.delete(inst.id);
  }

  activity(session: string, at: number): void {
    this.activities.push({ session, at });
  }
  connectionOpened(session: string): void {
    this.opened++;
    const t = this.sessions.get(session);
    if (t) t.traffic.openConnections++;
  }
  connectionClosed(session: string): void {
    this.closed++;
    const t = this.sessions.get(session);
    if (t) t.traffic.openConnections--;
  }
  event(session: string, type: string, detail?: Record<string, unknown>): void {
    this.events.push({ session, type, detail });
  }

  eventsOf(type: string): { session: string; type: string; detail?: Record<string, unknown> }[] {
    return this.events.filter((e) => e.type === type);
  }
}

export const TEST_KEYS: KeyRing = keyRing('test-cookie-key-0123456789abcdef');

export interface ProxyServer {
  url: string;
  port: number;
  proxy: ProxyHandle;
  server: Server;
  close(): Promise<void>;
}

/** The proxy in a plain http server on 127.0.0.1:0, as the CLI mounts it. */
export async function startProxyServer(o: Omit<ProxyOptions, 'keys'> & { keys?: KeyRing }): Promise<ProxyServer> {
  const proxy = createProxy({ keys: TEST_KEYS, ...o });
  const server = proxy.createServer();
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    proxy,
    server,
    async close() {
      await proxy.close();
      await closeServer(server);
    },
  };
}

/** startProxyServer for a FakePool's apps; its close() also checks that the proxy holds no socket afterwards. */
export async function proxyForPool(pool: FakePool, o: Partial<Parameters<typeof startProxyServer>[0]> = {}): Promise<ProxyServer> {
  const p = await startProxyServer({ config: warmpoolConfig([...pool.apps()]), pool, ...o });
  const close = p.close.bind(p);
  p.close = async () => {
    await close();
    assert.equal(p.proxy.openSockets(), 0, 'proxy holds no socket after close');
  };
  return p;
}

/** A browser's first visit to /<app>/: the session cookie it gets, in a jar. */
export async function enterApp(p: ProxyServer, app: string): Promise<CookieJar> {
  const jar = new CookieJar();
  const entry = await request(`${p.url}/${app}/`, { jar, headers: { accept: 'text/html' } });
  assert.equal(entry.status, 302, `entry to /${app}/`);
  return jar;
}
