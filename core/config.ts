// The YAML configuration: parsed, validated field by field, unknown keys refused.
// Every error names the field path, the bad value and what is allowed.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { WarmpoolError } from './errors.js';

export type RuntimeKind = 'process' | 'docker' | 'swarm';
export type ClassifierKind = 'pluto' | 'jupyter' | 'generic';

export interface ReadinessConfig {
  /** HTTP probe: GET path until status matches. */
  http?: { path: string; status: number };
  /** Output probe: a line of the instance's output matching this regular expression. */
  log?: RegExp;
  /** Give up (and replace the instance) after this long, ms. */
  timeoutMs: number;
  /** Between HTTP probes, ms. */
  intervalMs: number;
}

export interface SecretConfig {
  /** Env var the instance reads its secret from (e.g. JUPYTER_TOKEN). */
  env?: string;
  /** For images that make up their own token: a regex with one group, matched against the output. */
  fromOutput?: RegExp;
  /** How the proxy adds the secret to every forwarded request. */
  inject: { query?: string; header?: string; headerFormat: string; cookie?: string };
}

/** runtime swarm: where each instance's service may run and what the scheduler reserves for it. */
export interface SwarmAppConfig {
  /** Placement constraints, as `docker service create --constraint` takes them (`node.labels.pool==notebooks`). */
  constraints: string[];
  /** Spread preferences: a node attribute to spread instances over (`node.labels.zone`). */
  spread: string[];
  /** Set aside per instance: a node takes a task only while it has this much unreserved. Unset: nothing reserved. */
  reservations: { cpus?: number; memoryBytes?: number };
  /**
   * An overlay network (attachable, made by the operator) to put instances on; warmpool dials each
   * task's own address on it (never the service's virtual IP), at `port`. Unset: host networking on an
   * allocated port bound to 127.0.0.1.
   */
  network?: string;
}

export interface AppConfig {
  name: string;
  runtime: RuntimeKind;
  /** process: argv; `{port}` is replaced by the allocated port. */
  command?: string[];
  /** process: working directory. */
  cwd?: string;
  /** docker: image reference. */
  image?: string;
  /** docker: command override. */
  args?: string[];
  /** The port the app listens on. 0 = allocated (process, docker host networking): the app reads it from env PORT or `{port}`. */
  port: number;
  env: Record<string, string>;
  deepLink: string;
  prefix: { mode: 'strip' } | { mode: 'base-url'; env: string };
  /** refillPerSecond: creates start at most this often (a token bucket on the clock, one at a time); unset: as fast as `parallel` lets them. */
  pool: { warm: number; max: number; parallel: number; refillPerSecond?: number };
  readiness: ReadinessConfig;
  limits: { cpus?: number; memoryBytes?: number };
  network: 'host' | 'bridge';
  idleTimeoutMs: number;
  maxLifetimeMs: number;
  graceMs: number;
  classifier: ClassifierKind;
  secret?: SecretConfig;
  /** runtime swarm only. */
  swarm?: SwarmAppConfig;
  /**
   * runtime docker only: the CPU weight (cgroup cpu shares) of an instance until its claim is recorded,
   * so notebooks executing for the pool yield the CPU to the students' instances (1024). Unset: one weight.
   */
  warming?: { cpuShares: number };
}

/**
 * What one visitor, one session or one instance may take of the shared proxy. Every default leaves a
 * class of 60 behind one NAT address room (each browser keeps ~6 connections and a WebSocket per tab),
 * and nothing here cuts a long-idle notebook WebSocket.
 */
export interface RelayLimits {
  /** Bytes of a request head (request line + headers), as Node's maxHeaderSize; larger heads get 431. */
  headerBytes: number;
  /** A request head must arrive within this, ms (slow-drip heads get 408). */
  headerTimeoutMs: number;
  /** WebSockets open at once per session; more are refused with 429. */
  websocketsPerSession: number;
  /** Client connections open at once per visitor address (a trusted proxy's are not counted); more get 429. */
  connectionsPerAddress: number;
  /** HTTP connections to one instance at once; further requests wait for one to be free. */
  upstreamConnectionsPerInstance: number;
}

export const DEFAULT_RELAY_LIMITS: Readonly<RelayLimits> = Object.freeze({
  headerBytes: 16 * 1024,
  headerTimeoutMs: 20_000,
  websocketsPerSession: 32,
  connectionsPerAddress: 1024,
  upstreamConnectionsPerInstance: 32,
});

/**
 * The waiting line and fair sharing without logins, applied to each app on its own. A place in line
 * lives only while its waiting page (or held request) is connected; claims a visitor never uses go
 * back to the pool; one address cannot hold more than its share of unused claims or places.
 */
export interface QueueConfig {
  /** An API client's request is held this long for an instance, then answered 503 + Retry-After, ms. */
  holdMs: number;
  /** A waiting page must open its live stream within this after it was served, or its ticket lapses, ms. */
  attachMs: number;
  /** An instance offered to a waiter goes back to the line unless collected within this, ms. */
  collectMs: number;
  /** A claim that no request has used within this is returned to the pool as ready, ms. */
  firstUseMs: number;
  /** Claims not yet used (and offers not yet collected) per visitor address; more wait in line (a held API request gets 429). */
  unusedClaimsPerAddress: number;
  /** Places in line per visitor address; more get 429. */
  waitingPerAddress: number;
  /** Visitors' claims of one app, as a token bucket: this many per second, this many at once. */
  claimRate: { perSecond: number; burst: number };
}

export const DEFAULT_QUEUE: Readonly<QueueConfig> = Object.freeze({
  holdMs: 25_000,
  attachMs: 10_000,
  collectMs: 10_000,
  firstUseMs: 15_000,
  unusedClaimsPerAddress: 10,
  waitingPerAddress: 100,
  claimRate: Object.freeze({ perSecond: 5, burst: 60 }),
});

/**
 * Runtime `process`, when warmpool runs as root: each instance runs under its own uid (gid the same
 * number) taken from this range, so instances cannot read each other's environment or files.
 */
export interface ProcessUsersConfig {
  uidFrom: number;
  count: number;
}

/**
 * Default: the first 10,000 uids of the range systemd leaves unused (1879048192–2147352575, see
 * https://systemd.io/UIDS-GIDS/), so no system, regular, DynamicUser= or container uid is met. It
 * stays below 2^31: Node's spawn takes an int32 uid.
 */
export const DEFAULT_PROCESS_USERS: Readonly<ProcessUsersConfig> = Object.freeze({ uidFrom: 1879048192, count: 10_000 });

export interface WarmpoolConfig {
  host: string;
  port: number;
  /** Names the warmpool deployment that owns instances (label warmpool.deployment). */
  deployment: string;
  /** Where `/` redirects; unset: a landing page lists the apps. */
  landingRedirect?: string;
  trustedProxies: string[];
  /** Host ports handed to process and host-network instances. */
  ports: { from: number; to: number };
  /** Directory for process-runtime state and the traffic log. */
  stateDir: string;
  /** Leave instances running on SIGTERM/SIGINT (they are adopted on the next start). */
  keepOnExit: boolean;
  /** Per-instance uids for runtime process (used when warmpool runs as root); false: instances run as warmpool's own user. */
  processUsers: ProcessUsersConfig | false;
  log: LogConfig;
  /** Limits of the public listener and the relay. */
  relay: RelayLimits;
  /** The waiting line and fair sharing (each app on its own). */
  queue: QueueConfig;
  /** What the swarm runtime needs beyond the apps (always set by validateConfig). */
  swarm?: SwarmConfig;
  apps: AppConfig[];
  /** The admin surface's own listener (admin/). Optional for configs built in code; validateConfig always sets it. */
  admin?: AdminConfig;
}

/** How visitor addresses are written to the traffic log. */
export type AddressMode = 'full' | 'truncate' | 'hash';

export interface LogConfig {
  dir: string;
  rotateBytes: number;
  /** full (default); truncate: IPv4 to /24, IPv6 to /48; hash: keyed HMAC (key kept in stateDir). */
  addresses?: AddressMode;
  /** Log files whose last possible entry is older than this are removed, ms; unset: kept forever. */
  retentionMs?: number;
}

/**
 * The admin surface (dashboard, JSON API, /metrics): its own listener, because notebooks run
 * arbitrary JavaScript on the public origin. On only when a token is set (WARMPOOL_ADMIN_TOKEN[_FILE])
 * or generateToken is true.
 */
export interface AdminConfig {
  host: string;
  port: number;
  /** Also serve it on the public listener under /_warmpool/admin/ (same token). Default false. */
  public: boolean;
  /** No token in the environment: make one up at each start and print the dashboard URL with it (the demo). */
  generateToken: boolean;
}

export interface SwarmConfig {
  /**
   * Names this warmpool process among those sharing one swarm and deployment; a claim records it, and a
   * restarted process restores only its own replica's sessions. Must be stable across restarts and
   * distinct per process. Default: WARMPOOL_REPLICA, else the host name.
   */
  replica: string;
  /** A task no node takes for this long (constraints, reservations) fails its create, ms. */
  schedulingTimeoutMs: number;
}

const NAME_RE = /^[a-z0-9][a-z0-9-]{0,39}$/;
const RESERVED = new Set(['_warmpool', 'favicon.ico', 'robots.txt']);

/** Reads and validates a config file. Throws CONFIG_UNREADABLE or CONFIG_INVALID. */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): WarmpoolConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new WarmpoolError('CONFIG_UNREADABLE', `cannot read config file ${path}: ${(e as Error).message}`, {
      hint: 'pass an existing YAML file with --config or WARMPOOL_CONFIG',
    });
  }
  return parseConfig(text, path, env);
}

export function parseConfig(text: string, source = 'config', env: NodeJS.ProcessEnv = {}): WarmpoolConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new WarmpoolError('CONFIG_INVALID', `${source}: not valid YAML: ${(e as Error).message}`);
  }
  return validateConfig(raw, source, env);
}

class V {
  constructor(readonly source: string) {}
  fail(path: string, value: unknown, allowed: string): never {
    throw new WarmpoolError('CONFIG_INVALID', `${this.source}: ${path} is ${show(value)}; ${allowed}`);
  }
  obj(path: string, v: unknown, keys: readonly string[]): Record<string, unknown> {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(path, v, 'expected a mapping');
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (!keys.includes(k)) this.fail(`${path ? path + '.' : ''}${k}`, o[k], `unknown key; allowed keys here: ${keys.join(', ')}`);
    }
    return o;
  }
  str(path: string, v: unknown, re?: RegExp, what?: string): string {
    if (typeof v !== 'string' || v.length === 0) this.fail(path, v, 'expected a non-empty string');
    if (re && !re.test(v)) this.fail(path, v, what ?? `expected to match ${re}`);
    return v;
  }
  int(path: string, v: unknown, min: number, max: number): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) this.fail(path, v, `expected an integer from ${min} to ${max}`);
    return v;
  }
  num(path: string, v: unknown, min: number, max: number): number {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) this.fail(path, v, `expected a number from ${min} to ${max}`);
    return v;
  }
  bool(path: string, v: unknown): boolean {
    if (typeof v !== 'boolean') this.fail(path, v, 'expected true or false');
    return v;
  }
  oneOf<T extends string>(path: string, v: unknown, allowed: readonly T[]): T {
    if (typeof v !== 'string' || !allowed.includes(v as T)) this.fail(path, v, `allowed: ${allowed.join(', ')}`);
    return v as T;
  }
  strList(path: string, v: unknown): string[] {
    if (!Array.isArray(v) || v.length === 0) this.fail(path, v, 'expected a non-empty list of strings');
    return v.map((x, i) => this.str(`${path}[${i}]`, x));
  }
  regex(path: string, v: unknown): RegExp {
    const s = this.str(path, v);
    try {
      return new RegExp(s);
    } catch (e) {
      return this.fail(path, v, `expected a regular expression (${(e as Error).message})`);
    }
  }
  duration(path: string, v: unknown, min = 0): number {
    const ms = parseDuration(v);
    if (ms === undefined || ms < min) this.fail(path, v, `expected a duration like 90s, 20m, 1h30m, 30d or a number of seconds${min ? `, at least ${min} ms` : ''}`);
    return ms;
  }
  /** A byte size (`16k`, `64kb`, a number of bytes) from min to max. */
  size(path: string, v: unknown, min: number, max: number): number {
    const b = parseBytes(v);
    if (b === undefined || b < min || b > max) this.fail(path, v, `expected a size like 16k or 64k, from ${min} to ${max} bytes`);
    return b;
  }
  bytes(path: string, v: unknown): number {
    const b = parseBytes(v);
    if (b === undefined || b < 4 * 1024 * 1024) this.fail(path, v, 'expected a size like 512m or 2g (at least 4m)');
    return b;
  }
}

function show(v: unknown): string {
  if (v === undefined) return 'missing';
  try {
    const s = JSON.stringify(v);
    return s.length > 60 ? s.slice(0, 57) + '...' : s;
  } catch {
    return String(v);
  }
}

/** The host name as a replica name: lower case, dashes for anything else, at most 40 characters. */
export function replicaFromHost(name: string): string {
  const r = name.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+/, '').slice(0, 40).replace(/-+$/, '');
  return r || 'warmpool';
}

export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.round(v * 1000) : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$/.exec(v.trim());
  if (!m || v.trim() === '') return undefined;
  const [, d, h, mi, s, ms] = m;
  return (((+(d ?? 0) * 24 + +(h ?? 0)) * 60 + +(mi ?? 0)) * 60 + +(s ?? 0)) * 1000 + +(ms ?? 0);
}

export function parseBytes(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v > 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)i?b?$/i.exec(v.trim());
  if (!m) return undefined;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Math.round(parseFloat(m[1]!) * mult);
}

const TOP_KEYS = ['listen', 'deployment', 'landing', 'trustedProxies', 'ports', 'stateDir', 'keepOnExit', 'processUsers', 'log', 'relay', 'queue', 'swarm', 'apps', 'admin'] as const;
const QUEUE_KEYS = ['hold', 'attach', 'collect', 'firstUse', 'unusedClaimsPerAddress', 'waitingPerAddress', 'claimRate'] as const;
const RELAY_KEYS = ['headerSize', 'headerTimeout', 'websocketsPerSession', 'connectionsPerAddress', 'upstreamConnectionsPerInstance'] as const;
const APP_KEYS = ['name', 'runtime', 'command', 'cwd', 'image', 'args', 'port', 'env', 'deepLink', 'prefix', 'pool', 'readiness', 'limits', 'network', 'idleTimeout', 'maxLifetime', 'grace', 'classifier', 'secret', 'swarm', 'warming'] as const;

export function validateConfig(raw: unknown, source = 'config', env: NodeJS.ProcessEnv = {}): WarmpoolConfig {
  const v = new V(source);
  const top = v.obj('', raw ?? {}, TOP_KEYS);

  const listen = v.obj('listen', top.listen ?? {}, ['host', 'port']);
  let host = listen.host === undefined ? '127.0.0.1' : v.str('listen.host', listen.host);
  let port = listen.port === undefined ? 8080 : v.int('listen.port', listen.port, 0, 65535);
  if (env.WARMPOOL_HOST) host = v.str('WARMPOOL_HOST (env)', env.WARMPOOL_HOST);
  if (env.WARMPOOL_PORT !== undefined && env.WARMPOOL_PORT !== '') {
    port = v.int('WARMPOOL_PORT (env)', /^\d+$/.test(env.WARMPOOL_PORT) ? Number(env.WARMPOOL_PORT) : env.WARMPOOL_PORT, 0, 65535);
  }

  const deployment = top.deployment === undefined ? 'default' : v.str('deployment', top.deployment, NAME_RE, 'expected lower-case letters, digits and dashes (at most 40)');
  let landingRedirect: string | undefined;
  if (top.landing !== undefined) {
    const l = v.obj('landing', top.landing, ['redirect']);
    if (l.redirect !== undefined) landingRedirect = v.str('landing.redirect', l.redirect, /^(https?:\/\/|\/)/, 'expected an absolute http(s) URL or a path starting with /');
  }
  const trustedProxies = top.trustedProxies === undefined ? [] : (Array.isArray(top.trustedProxies) ? top.trustedProxies.map((x, i) => v.str(`trustedProxies[${i}]`, x)) : v.fail('trustedProxies', top.trustedProxies, 'expected a list of IP addresses'));

  const p = v.obj('ports', top.ports ?? {}, ['from', 'to']);
  const from = p.from === undefined ? 20000 : v.int('ports.from', p.from, 1024, 65535);
  const to = p.to === undefined ? Math.min(65535, from + 9999) : v.int('ports.to', p.to, from, 65535);

  const stateDir = top.stateDir === undefined ? '.state' : v.str('stateDir', top.stateDir);
  const keepOnExit = top.keepOnExit === undefined ? false : v.bool('keepOnExit', top.keepOnExit);
  const lg = v.obj('log', top.log ?? {}, ['dir', 'rotateSize', 'addresses', 'retention']);
  const log: LogConfig = {
    dir: lg.dir === undefined ? `${stateDir}/log` : v.str('log.dir', lg.dir),
    rotateBytes: lg.rotateSize === undefined ? 64 * 1024 * 1024 : v.bytes('log.rotateSize', lg.rotateSize),
    addresses: lg.addresses === undefined ? 'full' : v.oneOf('log.addresses', lg.addresses, ['full', 'truncate', 'hash'] as const),
  };
  // At least a day: files are per UTC day, and the one being written must never be removed.
  if (lg.retention !== undefined) log.retentionMs = v.duration('log.retention', lg.retention, 86_400_000);

  const rl = v.obj('relay', top.relay ?? {}, RELAY_KEYS);
  const d = DEFAULT_RELAY_LIMITS;
  const relay: RelayLimits = {
    headerBytes: rl.headerSize === undefined ? d.headerBytes : v.size('relay.headerSize', rl.headerSize, 1024, 1024 * 1024),
    headerTimeoutMs: rl.headerTimeout === undefined ? d.headerTimeoutMs : v.duration('relay.headerTimeout', rl.headerTimeout, 100),
    websocketsPerSession: rl.websocketsPerSession === undefined ? d.websocketsPerSession : v.int('relay.websocketsPerSession', rl.websocketsPerSession, 1, 10_000),
    connectionsPerAddress: rl.connectionsPerAddress === undefined ? d.connectionsPerAddress : v.int('relay.connectionsPerAddress', rl.connectionsPerAddress, 1, 1_000_000),
    upstreamConnectionsPerInstance: rl.upstreamConnectionsPerInstance === undefined ? d.upstreamConnectionsPerInstance : v.int('relay.upstreamConnectionsPerInstance', rl.upstreamConnectionsPerInstance, 1, 10_000),
  };

  const qu = v.obj('queue', top.queue ?? {}, QUEUE_KEYS);
  const dq = DEFAULT_QUEUE;
  const rate = v.obj('queue.claimRate', qu.claimRate ?? {}, ['perSecond', 'burst']);
  const queue: QueueConfig = {
    holdMs: qu.hold === undefined ? dq.holdMs : v.duration('queue.hold', qu.hold, 1000),
    attachMs: qu.attach === undefined ? dq.attachMs : v.duration('queue.attach', qu.attach, 1000),
    collectMs: qu.collect === undefined ? dq.collectMs : v.duration('queue.collect', qu.collect, 1000),
    firstUseMs: qu.firstUse === undefined ? dq.firstUseMs : v.duration('queue.firstUse', qu.firstUse, 1000),
    unusedClaimsPerAddress: qu.unusedClaimsPerAddress === undefined ? dq.unusedClaimsPerAddress : v.int('queue.unusedClaimsPerAddress', qu.unusedClaimsPerAddress, 1, 100_000),
    waitingPerAddress: qu.waitingPerAddress === undefined ? dq.waitingPerAddress : v.int('queue.waitingPerAddress', qu.waitingPerAddress, 1, 100_000),
    claimRate: {
      perSecond: rate.perSecond === undefined ? dq.claimRate.perSecond : v.num('queue.claimRate.perSecond', rate.perSecond, 0.01, 100_000),
      burst: rate.burst === undefined ? dq.claimRate.burst : v.int('queue.claimRate.burst', rate.burst, 1, 100_000),
    },
  };

  const sw = v.obj('swarm', top.swarm ?? {}, ['replica', 'schedulingTimeout']);
  const defaultReplica = env.WARMPOOL_REPLICA || replicaFromHost(hostname());
  const swarm: SwarmConfig = {
    replica: sw.replica === undefined ? v.str('WARMPOOL_REPLICA (env) or the host name', defaultReplica, NAME_RE, 'expected lower-case letters, digits and dashes (at most 40): set swarm.replica') : v.str('swarm.replica', sw.replica, NAME_RE, 'expected lower-case letters, digits and dashes (at most 40)'),
    schedulingTimeoutMs: sw.schedulingTimeout === undefined ? 60_000 : v.duration('swarm.schedulingTimeout', sw.schedulingTimeout, 1000),
  };

  const rawApps = top.apps;
  if (!Array.isArray(rawApps) || rawApps.length === 0) v.fail('apps', rawApps, 'expected a non-empty list of apps');
  const apps = (rawApps as unknown[]).map((a, i) => validateApp(v, `apps[${i}]`, a));
  const seen = new Set<string>();
  apps.forEach((a, i) => {
    if (seen.has(a.name)) v.fail(`apps[${i}].name`, a.name, 'app names must be unique');
    seen.add(a.name);
  });
  const processUsers = validateProcessUsers(v, top.processUsers, apps);
  const admin = validateAdmin(v, top.admin, port, env);
  return { host, port, deployment, landingRedirect, trustedProxies, ports: { from, to }, stateDir, keepOnExit, processUsers, log, relay, queue, swarm, apps, admin };
}

function validateAdmin(v: V, raw: unknown, publicPort: number, env: NodeJS.ProcessEnv): AdminConfig {
  const a = v.obj('admin', raw ?? {}, ['host', 'port', 'public', 'generateToken']);
  let host = a.host === undefined ? '127.0.0.1' : v.str('admin.host', a.host);
  let port = a.port === undefined ? 8081 : v.int('admin.port', a.port, 0, 65535);
  if (env.WARMPOOL_ADMIN_HOST) host = v.str('WARMPOOL_ADMIN_HOST (env)', env.WARMPOOL_ADMIN_HOST);
  if (env.WARMPOOL_ADMIN_PORT !== undefined && env.WARMPOOL_ADMIN_PORT !== '') {
    port = v.int('WARMPOOL_ADMIN_PORT (env)', /^\d+$/.test(env.WARMPOOL_ADMIN_PORT) ? Number(env.WARMPOOL_ADMIN_PORT) : env.WARMPOOL_ADMIN_PORT, 0, 65535);
  }
  if (port !== 0 && port === publicPort) {
    v.fail('admin.port', port, `the admin listener needs a port of its own (listen.port is ${publicPort}); allowed: any other port, or 0 for a free one; to serve the admin surface on the public port as well, set admin.public: true`);
  }
  return {
    host,
    port,
    public: a.public === undefined ? false : v.bool('admin.public', a.public),
    generateToken: a.generateToken === undefined ? false : v.bool('admin.generateToken', a.generateToken),
  };
}

/** Highest uid a range may reach: Node's spawn takes an int32 uid. */
const UID_MAX = 2147483646;

function validateProcessUsers(v: V, raw: unknown, apps: AppConfig[]): ProcessUsersConfig | false {
  if (raw === false) return false;
  if (raw === undefined || raw === true) return { ...DEFAULT_PROCESS_USERS };
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) v.fail('processUsers', raw, 'expected false (off) or a mapping { uidFrom, count }');
  const o = v.obj('processUsers', raw, ['uidFrom', 'count']);
  const uidFrom = o.uidFrom === undefined ? DEFAULT_PROCESS_USERS.uidFrom : v.int('processUsers.uidFrom', o.uidFrom, 1000, UID_MAX);
  const count = o.count === undefined ? Math.min(DEFAULT_PROCESS_USERS.count, UID_MAX - uidFrom + 1) : v.int('processUsers.count', o.count, 1, UID_MAX - uidFrom + 1);
  const last = uidFrom + count - 1;
  // 65534 is nobody (NFS and user namespaces map strangers to it), 65535 the 16-bit (uid_t)-1.
  if (uidFrom <= 65535 && last >= 65534) v.fail('processUsers', raw, `the range ${uidFrom}-${last} includes 65534 (nobody) or 65535; allowed: a range of uids from 1000 up that leaves both out`);
  const needed = apps.filter((a) => a.runtime === 'process').reduce((n, a) => n + a.pool.max, 0);
  if (count < needed) v.fail('processUsers.count', count, `the process apps may run ${needed} instances at once (the sum of their pool.max); allowed: at least ${needed}`);
  return { uidFrom, count };
}

function validateApp(v: V, at: string, raw: unknown): AppConfig {
  const a = v.obj(at, raw, APP_KEYS);
  const name = v.str(`${at}.name`, a.name, NAME_RE, 'expected lower-case letters, digits and dashes (at most 40); it becomes the public prefix /<name>/');
  if (RESERVED.has(name)) v.fail(`${at}.name`, name, 'this name is reserved');
  const runtime = v.oneOf(`${at}.runtime`, a.runtime ?? 'process', ['process', 'docker', 'swarm'] as const);

  let command: string[] | undefined;
  let image: string | undefined;
  let args: string[] | undefined;
  if (runtime === 'process') {
    command = v.strList(`${at}.command`, a.command);
    if (a.image !== undefined) v.fail(`${at}.image`, a.image, 'image is for runtime docker; a process app has a command');
  } else {
    image = v.str(`${at}.image`, a.image, /^[a-z0-9][\w./:@-]*$/i, 'expected an image reference like warmpool/standin:latest');
    if (a.command !== undefined) v.fail(`${at}.command`, a.command, `command is for runtime process; use args to override a ${runtime} image command`);
    if (a.args !== undefined) args = v.strList(`${at}.args`, a.args);
  }
  const cwd = a.cwd === undefined ? undefined : v.str(`${at}.cwd`, a.cwd);
  const network = v.oneOf(`${at}.network`, a.network ?? 'host', ['host', 'bridge'] as const);
  const port = a.port === undefined ? 0 : v.int(`${at}.port`, a.port, 0, 65535);
  if (runtime === 'docker' && network === 'bridge' && port === 0) v.fail(`${at}.port`, a.port, 'a bridge-network app needs the container port it listens on (1-65535)');
  if (runtime === 'swarm' && network !== 'host') v.fail(`${at}.network`, a.network, 'runtime swarm runs instances on host networking, or on the overlay network named in swarm.network');
  let swarm: SwarmAppConfig | undefined;
  if (a.swarm !== undefined && runtime !== 'swarm') v.fail(`${at}.swarm`, a.swarm, 'swarm: is for runtime swarm');
  if (runtime === 'swarm') {
    const sw = v.obj(`${at}.swarm`, a.swarm ?? {}, ['constraints', 'spread', 'reservations', 'network']);
    const list = (key: string, raw: unknown, re: RegExp, what: string) => raw === undefined ? [] : (Array.isArray(raw) ? raw.map((x, i) => v.str(`${at}.swarm.${key}[${i}]`, x, re, what)) : v.fail(`${at}.swarm.${key}`, raw, 'expected a list'));
    const re = v.obj(`${at}.swarm.reservations`, sw.reservations ?? {}, ['cpus', 'memory']);
    swarm = {
      constraints: list('constraints', sw.constraints, /^\s*[\w.-]+\s*(==|!=)\s*\S.*$/, 'expected a constraint like node.role==worker or node.labels.pool!=gpu'),
      spread: list('spread', sw.spread, /^(node\.(id|hostname|role|platform\.os|platform\.arch)|node\.labels\.[\w.-]+|engine\.labels\.[\w.-]+)$/, 'expected a node attribute to spread over, like node.labels.zone'),
      reservations: {
        cpus: re.cpus === undefined ? undefined : v.num(`${at}.swarm.reservations.cpus`, re.cpus, 0.01, 1024),
        memoryBytes: re.memory === undefined ? undefined : v.bytes(`${at}.swarm.reservations.memory`, re.memory),
      },
      network: sw.network === undefined ? undefined : v.str(`${at}.swarm.network`, sw.network, /^[A-Za-z0-9][\w.-]*$/, 'expected the name of an overlay network'),
    };
    if (swarm.network && port === 0) v.fail(`${at}.port`, a.port, 'an app on an overlay network (swarm.network) needs the port it listens on (1-65535)');
    if (!swarm.network && a.port !== undefined) v.fail(`${at}.port`, a.port, 'a host-network swarm app gets an allocated port (env PORT); leave port unset');
  }

  const env: Record<string, string> = {};
  if (a.env !== undefined) {
    const e = v.obj(`${at}.env`, a.env, Object.keys(a.env as object ?? {}));
    for (const [k, val] of Object.entries(e)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) v.fail(`${at}.env.${k}`, k, 'expected an environment variable name');
      if (typeof val !== 'string' && typeof val !== 'number' && typeof val !== 'boolean') v.fail(`${at}.env.${k}`, val, 'expected a string, number or boolean');
      env[k] = String(val);
    }
  }
  const deepLink = a.deepLink === undefined ? '/' : v.str(`${at}.deepLink`, a.deepLink, /^\/[^\s]*$/, 'expected a path starting with / (e.g. /open?path=webapp.jl)');

  let prefix: AppConfig['prefix'] = { mode: 'strip' };
  if (a.prefix !== undefined) {
    if (a.prefix === 'strip') prefix = { mode: 'strip' };
    else {
      const pr = v.obj(`${at}.prefix`, a.prefix, ['baseUrlEnv']);
      prefix = { mode: 'base-url', env: v.str(`${at}.prefix.baseUrlEnv`, pr.baseUrlEnv, /^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name') };
    }
  }

  const po = v.obj(`${at}.pool`, a.pool ?? {}, ['warm', 'max', 'parallel', 'refillPerSecond']);
  const warm = po.warm === undefined ? 2 : v.int(`${at}.pool.warm`, po.warm, 0, 1000);
  const max = po.max === undefined ? Math.max(warm, 10) : v.int(`${at}.pool.max`, po.max, 1, 10000);
  if (max < warm) v.fail(`${at}.pool.max`, max, `must be at least pool.warm (${warm})`);
  const parallel = po.parallel === undefined ? 4 : v.int(`${at}.pool.parallel`, po.parallel, 1, 100);
  const refillPerSecond = po.refillPerSecond === undefined ? undefined : v.num(`${at}.pool.refillPerSecond`, po.refillPerSecond, 0.001, 1000);

  let warming: AppConfig['warming'];
  if (a.warming !== undefined) {
    // A swarm service's resources live in its task template: changing them replaces the task (and its executed notebook).
    if (runtime === 'swarm') v.fail(`${at}.warming`, a.warming, 'swarm instances keep one CPU weight: changing a service\'s resources replaces its task (and the notebook it executed); leave warming unset');
    if (runtime !== 'docker') v.fail(`${at}.warming`, a.warming, 'warming (a CPU weight while an instance warms) is for runtime docker');
    const wa = v.obj(`${at}.warming`, a.warming, ['cpuShares']);
    warming = { cpuShares: v.int(`${at}.warming.cpuShares`, wa.cpuShares, 2, 1024) };
  }

  const r = v.obj(`${at}.readiness`, a.readiness ?? { http: { path: '/' } }, ['http', 'log', 'timeout', 'interval']);
  const readiness: ReadinessConfig = {
    timeoutMs: r.timeout === undefined ? 300_000 : v.duration(`${at}.readiness.timeout`, r.timeout, 100),
    intervalMs: r.interval === undefined ? 250 : v.duration(`${at}.readiness.interval`, r.interval, 10),
  };
  if (r.http !== undefined) {
    const h = v.obj(`${at}.readiness.http`, r.http, ['path', 'status']);
    readiness.http = {
      path: v.str(`${at}.readiness.http.path`, h.path, /^\//, 'expected a path starting with /'),
      status: h.status === undefined ? 200 : v.int(`${at}.readiness.http.status`, h.status, 100, 599),
    };
  }
  if (r.log !== undefined) readiness.log = v.regex(`${at}.readiness.log`, r.log);
  if (!readiness.http && !readiness.log) v.fail(`${at}.readiness`, a.readiness, 'expected http: {path, status} or log: <pattern>');
  if (readiness.http && readiness.log) v.fail(`${at}.readiness`, a.readiness, 'choose one of http or log');

  const li = v.obj(`${at}.limits`, a.limits ?? {}, ['cpus', 'memory']);
  const limits = {
    cpus: li.cpus === undefined ? undefined : v.num(`${at}.limits.cpus`, li.cpus, 0.01, 1024),
    memoryBytes: li.memory === undefined ? undefined : v.bytes(`${at}.limits.memory`, li.memory),
  };

  const idleTimeoutMs = a.idleTimeout === undefined ? 20 * 60_000 : v.duration(`${at}.idleTimeout`, a.idleTimeout, 1000);
  const maxLifetimeMs = a.maxLifetime === undefined ? 90 * 60_000 : v.duration(`${at}.maxLifetime`, a.maxLifetime, 1000);
  const graceMs = a.grace === undefined ? 5 * 60_000 : v.duration(`${at}.grace`, a.grace, 0);
  const classifier = v.oneOf(`${at}.classifier`, a.classifier ?? 'generic', ['pluto', 'jupyter', 'generic'] as const);

  let secret: SecretConfig | undefined;
  if (a.secret !== undefined) {
    const s = v.obj(`${at}.secret`, a.secret, ['env', 'fromOutput', 'inject']);
    const inj = v.obj(`${at}.secret.inject`, s.inject, ['query', 'header', 'headerFormat', 'cookie']);
    secret = {
      env: s.env === undefined ? undefined : v.str(`${at}.secret.env`, s.env, /^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name'),
      fromOutput: s.fromOutput === undefined ? undefined : v.regex(`${at}.secret.fromOutput`, s.fromOutput),
      inject: {
        query: inj.query === undefined ? undefined : v.str(`${at}.secret.inject.query`, inj.query),
        header: inj.header === undefined ? undefined : v.str(`${at}.secret.inject.header`, inj.header, /^[A-Za-z0-9-]+$/, 'expected a header name'),
        headerFormat: inj.headerFormat === undefined ? '{secret}' : v.str(`${at}.secret.inject.headerFormat`, inj.headerFormat, /\{secret\}/, 'expected a template containing {secret}'),
        cookie: inj.cookie === undefined ? undefined : v.str(`${at}.secret.inject.cookie`, inj.cookie, /^[A-Za-z0-9_-]+$/, 'expected a cookie name'),
      },
    };
    if (!secret.env && !secret.fromOutput) v.fail(`${at}.secret`, a.secret, 'expected env (the proxy generates the secret) or fromOutput (the image makes its own)');
    if (secret.env && secret.fromOutput) v.fail(`${at}.secret`, a.secret, 'choose one of env or fromOutput');
    if (!secret.inject.query && !secret.inject.header && !secret.inject.cookie) v.fail(`${at}.secret.inject`, s.inject, 'expected at least one of query, header, cookie');
    if (secret.fromOutput && secret.fromOutput.source.indexOf('(') < 0) v.fail(`${at}.secret.fromOutput`, s.fromOutput, 'expected a regular expression with one capture group holding the token');
  }

  const app: AppConfig = { name, runtime, command, cwd, image, args, port, env, deepLink, prefix, pool: { warm, max, parallel }, readiness, limits, network, idleTimeoutMs, maxLifetimeMs, graceMs, classifier, secret };
  if (refillPerSecond !== undefined) app.pool.refillPerSecond = refillPerSecond;
  if (swarm) app.swarm = swarm;
  if (warming) app.warming = warming;
  return app;
}
