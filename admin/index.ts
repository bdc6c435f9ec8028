// Builds the admin surface for createWarmpool(): the token (from the environment, or made up for
// the demo), the monitor the fleet's traffic log is teed into, metrics, and the request handler.
// index.ts wires it; bin/warmpool.ts listens on admin.host:admin.port.

import type { Server } from 'node:http';
import type { AdminConfig, WarmpoolConfig } from '../core/config.js';
import type { Clock } from '../core/clock.js';
import { errorMessage } from '../core/errors.js';
import type { Fleet } from '../pool/fleet.js';
import { generateAdminToken, loadAdminToken } from './auth.js';
import type { Metrics } from './metrics.js';
import type { FleetMonitor } from './monitor.js';
import { createAdmin, type AdminSurface } from './server.js';
import type { Log } from '../core/log.js';

export { FleetMonitor, teeLog } from './monitor.js';
export { measureClaimWaits } from './claim-waits.js';
export type { AdminSurface } from './server.js';

export const DEFAULT_ADMIN: Readonly<AdminConfig> = Object.freeze({ host: '127.0.0.1', port: 8081, public: false, generateToken: false });

/** The token to use: the environment's, else a made-up one when admin.generateToken; undefined: admin off. */
export function adminToken(cfg: WarmpoolConfig, env: NodeJS.ProcessEnv): { token: string; generated: boolean } | undefined {
  const t = loadAdminToken(env);
  if (t) return { token: t, generated: false };
  if (cfg.admin?.generateToken) return { token: generateAdminToken(), generated: true };
  return undefined;
}

export interface WarmpoolAdmin {
  readonly config: AdminConfig;
  readonly surface: AdminSurface;
  readonly metrics: Metrics;
  /** Set when warmpool made the token up (admin.generateToken): shown once, in the start output. */
  readonly generatedToken?: string;
  /** The admin listener's server, not yet listening. */
  createServer(): Server;
  close(): void;
}

/**
 * Builds the admin surface. prom-client (and the metrics module) is loaded here, not at import: a
 * warmpool without an admin token never carries it (~2 MiB of heap).
 */
export async function buildAdmin(o: {
  config: WarmpoolConfig;
  fleet: Fleet;
  monitor: FleetMonitor;
  token: { token: string; generated: boolean };
  clock: Clock;
  openSockets: () => number;
  logDir?: string;
  flushLog?: () => void;
  log?: Log;
}): Promise<WarmpoolAdmin> {
  const { createMetrics } = await import('./metrics.js');
  const offWatch = o.monitor.watch(o.fleet);
  const metrics = createMetrics({ fleet: o.fleet, monitor: o.monitor, openSockets: o.openSockets });
  const surface = createAdmin({
    fleet: o.fleet,
    monitor: o.monitor,
    metrics,
    token: o.token.token,
    clock: o.clock,
    logDir: o.logDir,
    flushLog: o.flushLog,
    log: o.log,
  });
  return {
    config: o.config.admin ?? DEFAULT_ADMIN,
    surface,
    metrics,
    generatedToken: o.token.generated ? o.token.token : undefined,
    createServer: () => surface.createServer(),
    close() {
      surface.close();
      metrics.close();
      offWatch();
    },
  };
}

/**
 * Listens on admin.host:admin.port. Resolves with the server and the dashboard's URL: with the
 * token in its fragment (never sent to a server, removed from the address bar by the page) when
 * warmpool made the token up.
 */
export async function listenAdmin(admin: WarmpoolAdmin): Promise<{ server: Server; url: string }> {
  const server = admin.createServer();
  const { host, port } = admin.config;
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(port, host, () => res());
  }).catch((e) => {
    throw new Error(`cannot listen on ${host}:${port} for the admin surface: ${errorMessage(e)} — set admin.port or WARMPOOL_ADMIN_PORT to a free port`);
  });
  const addr = server.address();
  const bound = typeof addr === 'object' && addr ? addr.port : port;
  const shown = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
  const url = `http://${shown}:${bound}/` + (admin.generatedToken ? `#token=${admin.generatedToken}` : '');
  return { server, url };
}
