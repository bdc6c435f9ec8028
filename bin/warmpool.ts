#!/usr/bin/env -S node --max-semi-space-size=4 --initial-old-space-size=64
// The warmpool command: a thin wrapper around createWarmpool() (start), config validation
// (validate, schema) and the traffic-log reader (sessions).
//
// The shebang's node flags are warmpool's deployment flags, listed here only (bin/node-flags.ts says
// who else uses them) (README, "Node flags"): --max-semi-space-size=4 keeps V8's young generation at
// 2 × 4 MiB, so a burst of connecting students does not leave ~30 MiB of it resident for the rest of the
// day; --initial-old-space-size=64 keeps V8's old-generation limit at 64 MiB or more, so relaying large
// data (each socket read is a fresh 64 KiB buffer, counted as external memory) does not start a full
// collection after nearly every young one, as it did with the limit V8 derived from warmpool's small heap.

import type { Server } from 'node:http';
import { createWarmpool, listenAdmin, type Warmpool } from '../index.js';
import { missingFlagsNote, warmpoolNodeFlags } from './node-flags.js';
import { errorMessage, isWarmpoolError } from '../core/errors.js';
import { systemClock } from '../core/clock.js';
import { Coalesced } from '../core/coalesce.js';
import type { PoolStatus } from '../pool/warm-pool.js';

const USAGE = `usage:
  warmpool start [--config FILE] [--keep]   start the proxy and warm the pools
  warmpool validate FILE                    check a config file without starting anything
  warmpool schema                           print the config file's JSON Schema (for editors)
  warmpool sessions [options]               read the per-session traffic log (warmpool sessions --help)

The config path comes from --config or WARMPOOL_CONFIG. WARMPOOL_HOST and WARMPOOL_PORT override
listen.host and listen.port. Secrets come from the environment: WARMPOOL_COOKIE_KEY or
WARMPOOL_COOKIE_KEY_FILE (previous keys: WARMPOOL_COOKIE_KEY_PREVIOUS[_FILE]); the admin dashboard's
token from WARMPOOL_ADMIN_TOKEN or WARMPOOL_ADMIN_TOKEN_FILE (WARMPOOL_ADMIN_HOST, WARMPOOL_ADMIN_PORT
override admin.host and admin.port).`;

async function main(argv: string[]): Promise<number> {
  const [cmd = 'start', ...rest] = argv;
  switch (cmd) {
    case 'start':
      return start(rest);
    case 'validate':
      return validate(rest);
    case 'schema': {
      // The schema library is loaded by the short commands only (start validates in a worker thread).
      const { configJsonSchema } = await import('../core/config.js');
      console.log(JSON.stringify(configJsonSchema(), null, 2));
      return 0;
    }
    case 'sessions': {
      const { sessionsCommand } = await import('./sessions.js');
      return sessionsCommand(rest);
    }
    case '-h':
    case '--help':
    case 'help':
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

async function validate(args: string[]): Promise<number> {
  const file = args.find((a) => !a.startsWith('-')) ?? configPath(args);
  if (!file) {
    console.error('warmpool validate: name a config file');
    return 2;
  }
  try {
    const { loadConfig } = await import('../core/config.js');
    const c = loadConfig(file);
    console.log(
      `${file}: ok — ${c.apps.length} app(s): ${c.apps.map((a) => `${a.name} (${a.runtime}, warm ${a.pool.warm}, max ${a.pool.max})`).join(', ')}; listening on ${c.host}:${c.port}`,
    );
    return 0;
  } catch (e) {
    console.error(errorMessage(e));
    return 1;
  }
}

async function start(args: string[]): Promise<number> {
  guardOutput();
  const note = missingFlagsNote(warmpoolNodeFlags(), process.execArgv, process.env.NODE_OPTIONS);
  if (note) console.error(note);
  const file = configPath(args);
  if (!file) {
    console.error(`warmpool start: no config file: pass --config FILE or set WARMPOOL_CONFIG\n${USAGE}`);
    return 2;
  }
  const phase = guardStartup();

  // Signals are handled from the first moment: a stop that arrives while warmpool adopts and warms
  // (or between listening and the next line) must still remove (or keep) its instances, not leave
  // them to Node's default action. Before the fleet exists, the stop waits for it.
  let wp: Warmpool | undefined;
  let server: Server | undefined;
  let admin: Awaited<ReturnType<typeof listenAdmin>> | undefined;
  let stopShow = () => {};
  let early: string | undefined;
  let stopping = false;
  // A start-up that waits for an engine that does not answer gives up on a signal (there is nothing to clean up yet).
  const starting = new AbortController();
  const stop = async (sig: string) => {
    if (!wp) {
      if (!early) console.error(`warmpool: ${sig} while starting: stopping as soon as start-up is done`);
      early ??= sig;
      starting.abort();
      return;
    }
    if (stopping) return;
    stopping = true;
    const keep = args.includes('--keep') || wp.config.keepOnExit;
    phase.now = `stopping (${sig})`;
    say(`warmpool: ${sig}: ${keep ? 'leaving instances running (adopted on the next start)' : 'removing instances'}...`);
    stopShow();
    server?.close();
    server?.closeAllConnections();
    admin?.server.close();
    admin?.server.closeAllConnections();
    await wp.close(keep);
    say('warmpool: stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  // The terminal that started it closed (an SSH session dropped under `npm start`): Node's default
  // would end the process on the spot and leave every instance running. Stop as for SIGTERM instead.
  process.on('SIGHUP', () => void stop('SIGHUP'));

  phase.now = `adopting what an earlier run left and starting the pools (${file})`;
  let gaveUp = false;
  wp = await createWarmpool(file, { signal: starting.signal }).catch((e) => {
    gaveUp = early !== undefined && isWarmpoolError(e, 'POOL_STOPPED');
    console.error(gaveUp ? `warmpool: ${early}: ${errorMessage(e)}` : errorMessage(e));
    return undefined;
  });
  if (!wp) return gaveUp ? 0 : 1;
  const pools = wp;
  if (early) {
    await stop(early);
    return -1;
  }
  const cfg = pools.config;
  // Head size and timeout, connections per address: config.relay (proxy/listener.ts).
  const listening = (server = pools.createServer());
  phase.now = `opening the listener on ${cfg.host}:${cfg.port}`;
  const listenError = await new Promise<void>((res, rej) => {
    listening.once('error', rej);
    listening.listen(cfg.port, cfg.host, () => res());
  }).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (listenError !== undefined) {
    console.error(`warmpool: cannot listen on ${cfg.host}:${cfg.port}: ${errorMessage(listenError)} — set listen.port or WARMPOOL_PORT to a free port`);
    phase.now = 'stopping after the listener failed';
    await pools.close();
    return 1;
  }
  if (stopping) return -1; // a signal came while the listener opened: stop() is under way
  phase.now = 'serving';
  const addr = listening.address();
  const port = typeof addr === 'object' && addr ? addr.port : cfg.port;
  const shown = cfg.host === '0.0.0.0' || cfg.host === '::' ? 'localhost' : cfg.host;
  say(`warmpool listening on http://${shown}:${port}/`);
  for (const a of cfg.apps) say(`  ${a.name}: http://${shown}:${port}/${a.name}/  (${a.runtime}, warm ${a.pool.warm}, max ${a.pool.max})`);
  // The admin surface on its own listener (admin/index.ts); a made-up token is in the URL's fragment.
  admin =
    pools.admin &&
    (await listenAdmin(pools.admin).catch((e) => {
      console.error(`warmpool: ${errorMessage(e)}`);
      return undefined;
    }));
  if (admin)
    say(
      `  admin dashboard: ${admin.url}${pools.admin?.generatedToken ? '  (token made up for this run; set WARMPOOL_ADMIN_TOKEN to choose one)' : '  (sign in with WARMPOOL_ADMIN_TOKEN)'}`,
    );
  if (stopping) {
    admin?.server.close();
    return -1;
  } // a signal came while the admin listener opened

  // Progress per app while pools warm, then when counts change: at most one line per PROGRESS_GAP_MS
  // (a class claiming 60 instances in a second changed them 60 times: a line each, and every pool's
  // status built each time, on the claims' own path).
  let last = '';
  const show = () => {
    const line = pools.fleet.status().map(progress).join('  |  ');
    if (line !== last) {
      last = line;
      say(line);
    }
  };
  const lines = new Coalesced(systemClock, PROGRESS_GAP_MS, show, (e) =>
    console.error(`warmpool: the progress line failed (${errorMessage(e)}); warmpool goes on`),
  );
  const offChange = pools.fleet.onChange(() => lines.changed());
  stopShow = () => {
    offChange();
    lines.stop();
  };
  lines.changed();
  return -1; // keep running
}

/**
 * Output is for people: a reader that went away (EPIPE on a closed pipe), a closed terminal or a full
 * disk must never end warmpool, least of all with its instances neither removed nor handed over.
 * Without a listener, a failed write to stdout is an uncaught 'error' event: status 1, instances left
 * running. After a failure, progress lines (say) are dropped and the failure is noted once on stderr;
 * a failing stderr is ignored.
 */
function guardOutput(): void {
  process.stdout.on('error', (e: Error) => {
    if (!output.stdout) return;
    output.stdout = false;
    console.error(`warmpool: standard output failed (${errorMessage(e)}); progress lines are no longer written`);
  });
  process.stderr.on('error', () => undefined);
}
const output = { stdout: true };

/** A progress line on stdout, unless stdout has failed. */
function say(line: string): void {
  if (output.stdout) console.log(line);
}

/**
 * `warmpool start` runs until a signal ends it (process.exit). If Node's event loop empties before
 * that, something warmpool awaited was held by nothing (the silent exit of issue "Class-day
 * resilience": unref'd timers under adoption): say what it was doing and fail, never exit 0 in
 * silence, so a supervisor's restart loop leaves a reason behind.
 */
function guardStartup(): { now: string } {
  const phase = { now: 'starting' };
  process.once('beforeExit', () => {
    if (process.exitCode !== undefined) return; // start() returned or threw: its status is decided, and said
    console.error(
      `warmpool: stopped while ${phase.now}: nothing was left to wait for, so Node would have exited with status 0. This is a bug in warmpool; please report it with this output. Instances it started are adopted by the next start.`,
    );
    process.exitCode = 1;
  });
  return phase;
}

/** Progress lines come at most this often, the last change always shown (core/coalesce.ts). */
const PROGRESS_GAP_MS = 100;

function progress(s: PoolStatus): string {
  const err = s.lastError ? ` (failing: ${s.lastError.slice(0, 120)})` : '';
  return `${s.app}: ${s.ready} ready / ${s.starting} starting / target ${s.warm}, ${s.claimed} in use${s.queued ? `, ${s.queued} waiting` : ''}${err}`;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (e) => {
    console.error(isWarmpoolError(e) ? e.message : e);
    process.exitCode = 1;
  },
);
