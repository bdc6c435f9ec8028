// warmpool as a library: one call builds the fleet (pool/) and the proxy (proxy/) from a config and
// returns a request handler and an upgrade handler to mount in any Node HTTP server. The CLI
// (bin/warmpool.ts) is a thin wrapper around this. The only file that wires pool/ to proxy/.
//
//   import http from 'node:http';
//   import { createWarmpool } from 'warmpool';
//   const wp = await createWarmpool('warmpool.yaml');
//   const server = http.createServer((req, res) => wp.handleRequest(req, res, () => myRoutes(req, res)));
//   server.on('upgrade', wp.handleUpgrade);
//   server.listen(8080);

import { resolve } from 'node:path';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { RuntimeKind, WarmpoolConfig } from './core/config.js';
import { loadConfigIsolated } from './core/config-load.js';
import { replicaFromHost } from './core/names.js';
import { ClaimJournal } from './pool/claim-journal.js';
import { systemClock, type Clock } from './core/clock.js';
import { Fleet } from './pool/fleet.js';
import { PortAllocator } from './pool/ports.js';
import { privateDir } from './pool/private-dir.js';
import type { Runtime } from './pool/runtime.js';
import { ProcessRuntime } from './pool/runtimes/process.js';
import { ProcessUsers, isolationPlan } from './pool/runtimes/process-users.js';
import { JsonlTrafficLog, type TrafficLogSink } from './pool/traffic-log.js';
import { LogRetention } from './pool/log-retention.js';
import { withAddressPolicy } from './pool/traffic-log-privacy.js';
import { createProxy } from './proxy/index.js';
import { descriptorLimitNote, openFilesLimit } from './proxy/descriptors.js';
import { loadKeys } from './proxy/cookie.js';
import { FleetMonitor, adminToken, buildAdmin, measureClaimWaits, teeLog, type WarmpoolAdmin } from './admin/index.js';
import { createLogger, parseLevel, type Log } from './core/log.js';

export type { WarmpoolConfig } from './core/config.js';
export { Fleet } from './pool/fleet.js';
export { listenAdmin, type WarmpoolAdmin } from './admin/index.js';

export interface WarmpoolOptions {
  clock?: Clock;
  log?: Log;
  env?: NodeJS.ProcessEnv;
  /** Replaces the JSON-lines traffic log under config.log.dir. */
  trafficLog?: TrafficLogSink;
  /** Replaces the runtimes built from the config (tests, embedding). */
  runtimes?: Partial<Record<RuntimeKind, Runtime>>;
  /**
   * Aborted while start-up still waits for an engine that does not answer (it retries with backoff):
   * createWarmpool() gives up and rejects with POOL_STOPPED. Nothing was adopted or created by then.
   */
  signal?: AbortSignal;
}

export interface Warmpool {
  readonly config: WarmpoolConfig;
  readonly fleet: Fleet;
  /** Serves warmpool's paths; calls next() (or answers 404) for anything else. */
  handleRequest(req: IncomingMessage, res: ServerResponse, next?: () => void): void;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** An HTTP server (not yet listening) serving warmpool with the limits of config.relay; `next` serves other paths. */
  createServer(next?: (req: IncomingMessage, res: ServerResponse) => void): Server;
  /** Sockets the proxy holds open (client and upstream), for leak checks. */
  openSockets(): number;
  /** The admin surface (dashboard, API, /metrics), when a token is set; listen with listenAdmin() or admin.createServer(). */
  readonly admin?: WarmpoolAdmin;
  /** Stops the proxy and the fleet; removes instances unless config.keepOnExit (or keep). */
  close(keep?: boolean): Promise<void>;
}

/** Builds warmpool and starts its pools warming (adopting what an earlier run left). */
export async function createWarmpool(config: WarmpoolConfig | string, opts: WarmpoolOptions = {}): Promise<Warmpool> {
  const env = opts.env ?? process.env;
  // A file is read and validated in a worker thread: the schema library never enters this process's heap.
  const cfg = typeof config === 'string' ? await loadConfigIsolated(config, env) : config;
  const clock = opts.clock ?? systemClock;
  // Structured lines on stderr (JSON, or readable on a terminal); WARMPOOL_LOG_LEVEL=debug|info|warn|error.
  const log = opts.log ?? createLogger({ level: parseLevel(env.WARMPOOL_LOG_LEVEL) }).log;
  privateDir(resolve(cfg.stateDir)); // cookie key, process state: warmpool's alone
  const token = adminToken(cfg, env);
  const fdNote = descriptorLimitNote(
    openFilesLimit(),
    cfg.apps.reduce((n, a) => n + a.pool.max, 0),
  );
  if (fdNote) log(fdNote, undefined, 'warn');
  // Engine calls are timed for the admin metrics; the monitor exists once the token is known.
  let monitorRef: FleetMonitor | undefined;
  const runtimes = opts.runtimes ?? (await buildRuntimes(cfg, log, (route, ms, ok) => monitorRef?.engineCall(route, ms, ok)));
  const fileLog = opts.trafficLog
    ? undefined
    : new JsonlTrafficLog(resolve(cfg.log.dir), cfg.log.rotateBytes, { onError: (e) => log(e.message, undefined, 'error') });
  const logged = withAddressPolicy(opts.trafficLog ?? fileLog!, cfg.log.addresses, resolve(cfg.stateDir));
  // The admin surface counts what happens from the fleet's traffic log entries (admin/monitor.ts).
  const monitor = token ? new FleetMonitor(clock) : undefined;
  monitorRef = monitor;
  const trafficLog = monitor ? teeLog(logged, monitor) : logged;
  // Claims not recorded before their answer (every runtime but swarm's) go to the journal first.
  const journal = cfg.apps.some((a) => runtimes[a.runtime]?.sharedClaims !== true)
    ? ClaimJournal.forDeployment(resolve(cfg.stateDir), cfg.deployment, { log })
    : undefined;
  const fleet = new Fleet({ config: cfg, runtimes, clock, log, trafficLog, journal });
  const keys = loadKeys(env, resolve(cfg.stateDir));
  let admin: WarmpoolAdmin | undefined;
  const proxy = createProxy({
    config: cfg,
    pool: monitor ? measureClaimWaits(fleet, clock, (app, ms) => monitor.waited(app, ms)) : fleet,
    clock,
    keys,
    log,
    // admin.public: the admin surface on the public listener too, under /_warmpool/admin/ (same token).
    internal: cfg.admin?.public
      ? (req, res, path) => {
          if (!admin || !/^\/admin(?:[/?]|$)/.test(path)) return false;
          admin.surface.handle(req, res, path.slice('/admin'.length), '/_warmpool/admin');
          return true;
        }
      : undefined,
  });
  fleet.onInstanceRemoved((host, port) => proxy.forgetInstance(host, port));
  if (monitor && token) {
    admin = await buildAdmin({
      config: cfg,
      fleet,
      monitor,
      token,
      clock,
      openSockets: () => proxy.openSockets(),
      logDir: fileLog ? resolve(cfg.log.dir) : undefined,
      flushLog: fileLog && (() => fileLog.flush()),
      log,
    });
  } else {
    log('admin surface off: no admin token (set WARMPOOL_ADMIN_TOKEN or WARMPOOL_ADMIN_TOKEN_FILE for the dashboard, JSON API and /metrics)');
  }
  const retention = fileLog && cfg.log.retentionMs ? new LogRetention({ dir: resolve(cfg.log.dir), retentionMs: cfg.log.retentionMs, clock, log }) : undefined;
  retention?.start();
  try {
    await fleet.start(opts.signal);
  } catch (e) {
    admin?.close();
    retention?.stop();
    await proxy.close();
    await fleet.stop(false);
    throw e;
  }
  return {
    config: cfg,
    fleet,
    admin,
    handleRequest: (req, res, next) => proxy.handleRequest(req, res, next),
    handleUpgrade: (req, socket, head) => proxy.handleUpgrade(req, socket, head),
    createServer: (next) => proxy.createServer(next),
    openSockets: () => proxy.openSockets(),
    async close(keep?: boolean) {
      admin?.close();
      retention?.stop();
      await proxy.close();
      await fleet.stop(keep);
      await retention?.idle();
    },
  };
}

/** One runtime per kind the config uses; the Docker and Swarm runtimes (and the engine client) are loaded only when an app uses them. */
export async function buildRuntimes(
  cfg: WarmpoolConfig,
  log: Log,
  onEngineCall?: (route: string, ms: number, ok: boolean) => void,
): Promise<Partial<Record<RuntimeKind, Runtime>>> {
  // One Engine client for the Docker-based runtimes: one keep-alive pool to the engine, every call timed.
  let engine: import('./pool/runtimes/engine.js').Engine | undefined;
  const engineFor = async () => {
    if (!engine) {
      const { Engine } = await import('./pool/runtimes/engine.js');
      engine = new Engine(onEngineCall ? { onCall: onEngineCall } : {});
    }
    return engine;
  };
  const ports = new PortAllocator(cfg.ports.from, cfg.ports.to);
  const out: Partial<Record<RuntimeKind, Runtime>> = {};
  const kinds = new Set(cfg.apps.map((a) => a.runtime));
  if (kinds.has('process')) {
    const plan = isolationPlan(cfg.processUsers, process.geteuid?.());
    if (plan.kind === 'shared') log(`WARNING: ${plan.warning}`, undefined, 'warn');
    const users = plan.kind === 'isolate' ? new ProcessUsers(plan.users) : undefined;
    out.process = new ProcessRuntime({ deployment: cfg.deployment, ports, stateDir: resolve(cfg.stateDir), users });
  }
  if (kinds.has('docker')) {
    const { DockerRuntime } = await import('./pool/runtimes/docker.js');
    out.docker = new DockerRuntime({ deployment: cfg.deployment, ports, log, engine: await engineFor() });
  }
  if (kinds.has('swarm')) {
    const { SwarmRuntime } = await import('./pool/runtimes/swarm.js');
    const replica = cfg.swarm?.replica ?? replicaFromHost((await import('node:os')).hostname());
    out.swarm = new SwarmRuntime({
      deployment: cfg.deployment,
      replica,
      ports,
      log,
      schedulingTimeoutMs: cfg.swarm?.schedulingTimeoutMs,
      engine: await engineFor(),
    });
  }
  return out;
}
