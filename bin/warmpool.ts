#!/usr/bin/env -S node --max-semi-space-size=4
// The warmpool command: a thin wrapper around createWarmpool() (start), config validation
// (validate) and the traffic-log reader (sessions).
//
// The shebang's node flags are warmpool's deployment flags, listed here only (bin/node-flags.ts says
// who else uses them): --max-semi-space-size=4 keeps V8's young generation at 2 × 4 MiB, so a burst of
// connecting students does not leave ~30 MiB of it resident for the rest of the day (README, "Node flags").

import { createWarmpool, listenAdmin } from '../index.js';
import { missingFlagsNote, warmpoolNodeFlags } from './node-flags.js';
import { loadConfig } from '../pool/config.js';
import { errorMessage, isWarmpoolError } from '../pool/errors.js';
import type { PoolStatus } from '../pool/warm-pool.js';

const USAGE = `usage:
  warmpool start [--config FILE] [--keep]   start the proxy and warm the pools
  warmpool validate FILE                    check a config file without starting anything
  warmpool sessions [options]               read the per-session traffic log (warmpool sessions --help)

The config path comes from --config or WARMPOOL_CONFIG. WARMPOOL_HOST and WARMPOOL_PORT override
listen.host and listen.port. Secrets come from the environment: WARMPOOL_COOKIE_KEY or
WARMPOOL_COOKIE_KEY_FILE (previous keys: WARMPOOL_COOKIE_KEY_PREVIOUS[_FILE]); the admin dashboard's
token from WARMPOOL_ADMIN_TOKEN or WARMPOOL_ADMIN_TOKEN_FILE (WARMPOOL_ADMIN_HOST, WARMPOOL_ADMIN_PORT
override admin.host and admin.port).`;

async function main(argv: string[]): Promise<number> {
  const [cmd = 'start', ...rest] = argv;
  switch (cmd) {
    case 'start': return start(rest);
    case 'validate': return validate(rest);
    case 'sessions': {
      const { sessionsCommand } = await import('./sessions.js');
      return sessionsCommand(rest);
    }
    case '-h': case '--help': case 'help':
      console.log(USAGE);
      return 0;
    default:
      console.error(`warmpool: unknown command ${JSON.stringify(cmd)}\n${USAGE}`);
      return 2;
  }
}

function configPath(args: string[]): string | undefined {
  const i = args.indexOf('--config');
  if (i >= 0) return args[i + 1];
  const eq = args.find((a) => a.startsWith('--config='));
  return eq ? eq.slice('--config='.length) : process.env.WARMPOOL_CONFIG;
}

function validate(args: string[]): number {
  const file = args.find((a) => !a.startsWith('-')) ?? configPath(args);
  if (!file) { console.error('warmpool validate: name a config file'); return 2; }
  try {
    const c = loadConfig(file);
    console.log(`${file}: ok — ${c.apps.length} app(s): ${c.apps.map((a) => `${a.name} (${a.runtime}, warm ${a.pool.warm}, max ${a.pool.max})`).join(', ')}; listening on ${c.host}:${c.port}`);
    return 0;
  } catch (e) {
    console.error(errorMessage(e));
    return 1;
  }
}

async function start(args: string[]): Promise<number> {
  const note = missingFlagsNote(warmpoolNodeFlags(), process.execArgv, process.env.NODE_OPTIONS);
  if (note) console.error(note);
  const file = configPath(args);
  if (!file) { console.error(`warmpool start: no config file: pass --config FILE or set WARMPOOL_CONFIG\n${USAGE}`); return 2; }
  const wp = await createWarmpool(file).catch((e) => {
    console.error(errorMessage(e));
    return undefined;
  });
  if (!wp) return 1;
  const cfg = wp.config;
  // Head size and timeout, connections per address: config.relay (proxy/listener.ts).
  const server = wp.createServer();
  await new Promise<void>((res, rej) => { server.once('error', rej); server.listen(cfg.port, cfg.host, () => res()); }).catch((e) => {
    console.error(`warmpool: cannot listen on ${cfg.host}:${cfg.port}: ${errorMessage(e)} — set listen.port or WARMPOOL_PORT to a free port`);
    void wp.close();
    throw e;
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : cfg.port;
  const shown = cfg.host === '0.0.0.0' || cfg.host === '::' ? 'localhost' : cfg.host;
  console.log(`warmpool listening on http://${shown}:${port}/`);
  for (const a of cfg.apps) console.log(`  ${a.name}: http://${shown}:${port}/${a.name}/  (${a.runtime}, warm ${a.pool.warm}, max ${a.pool.max})`);
  // The admin surface on its own listener (admin/index.ts); a made-up token is in the URL's fragment.
  const admin = wp.admin && await listenAdmin(wp.admin).catch((e) => { console.error(`warmpool: ${errorMessage(e)}`); return undefined; });
  if (admin) console.log(`  admin dashboard: ${admin.url}${wp.admin?.generatedToken ? '  (token made up for this run; set WARMPOOL_ADMIN_TOKEN to choose one)' : '  (sign in with WARMPOOL_ADMIN_TOKEN)'}`);

  // Progress per app while pools warm, then on every change of counts.
  let last = '';
  const show = () => {
    const line = wp.fleet.status().map(progress).join('  |  ');
    if (line !== last) { last = line; console.log(line); }
  };
  const stopShow = wp.fleet.onChange(show);
  show();

  const keep = args.includes('--keep') || cfg.keepOnExit;
  let stopping = false;
  const stop = async (sig: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`warmpool: ${sig}: ${keep ? 'leaving instances running (adopted on the next start)' : 'removing instances'}...`);
    stopShow();
    server.close();
    server.closeAllConnections();
    admin?.server.close();
    admin?.server.closeAllConnections();
    await wp.close(keep);
    console.log('warmpool: stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  return -1; // keep running
}

function progress(s: PoolStatus): string {
  const err = s.lastError ? ` (failing: ${s.lastError.slice(0, 120)})` : '';
  return `${s.app}: ${s.ready} ready / ${s.starting} starting / target ${s.warm}, ${s.claimed} in use${s.queued ? `, ${s.queued} waiting` : ''}${err}`;
}

main(process.argv.slice(2)).then((code) => { if (code >= 0) process.exitCode = code; }, (e) => {
  console.error(isWarmpoolError(e) ? e.message : e);
  process.exitCode = 1;
});
