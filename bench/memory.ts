// Memory: the proxy's RSS at rest (warmpool with a process-runtime config and with a Docker one, which
// loads the Docker runtime and its engine client; configurable-http-proxy with one route; nginx for reference), and with 1,000 open
// idle Pluto WebSocket sessions (separate client processes, Pluto's own idle timers) — total and per
// session, for warmpool (each session a claimed instance) and for configurable-http-proxy.

import { join } from 'node:path';
import { DIST, startRelayBackend, startStandinProcess, type Backend } from './backends.js';
import { rssBytes, sleep, startChild, type Child } from './procs.js';
import { median } from './stats.js';
import { control, missing, startVariant, startWarmpoolServer, waitPoolReady, WORK } from './variants.js';

export interface RestResult {
  proxy: string;
  rssBytes: number;
  heapUsedBytes?: number;
}

export interface SessionsResult {
  proxy: string;
  sessions: number;
  failed: number;
  rssBeforeBytes: number;
  rssWithBytes: number;
  /** Highest RSS seen while the sessions connected and loaded the state. */
  rssPeakBytes: number;
  perSessionBytes: number;
  /** Lowest RSS sampled while idle with all sessions open. */
  rssIdleMinBytes: number;
  heapUsedBeforeBytes?: number;
  heapUsedWithBytes?: number;
  /** process.memoryUsage() of the proxy before and with the sessions (warmpool only). */
  usageBefore?: NodeJS.MemoryUsage;
  usageWith?: NodeJS.MemoryUsage;
}

export interface MemoryResults {
  rest: RestResult[];
  sessions: SessionsResult[];
}

const SETTLE_MS = 3000;
const IDLE_WINDOW_MS = 60_000;
const CLIENT_PROCESSES = 2;

/** An app on the static runtime (bench/static-runtime.ts) with `warm` ready instances: also the claims benchmark's. */
export function memApp(name: string, warm: number): Record<string, unknown> {
  return {
    name,
    runtime: 'process',
    command: ['static'],
    deepLink: '/open?path=webapp.jl',
    prefix: 'strip',
    readiness: { http: { path: '/ping', status: 200 }, timeout: '60s', interval: '50ms' },
    pool: { warm, max: Math.max(warm, 1), parallel: 50 },
    classifier: 'pluto',
    secret: { env: 'PLUTO_SECRET', inject: { query: 'secret' } },
    idleTimeout: '1h',
    maxLifetime: '10h',
    grace: '1h',
  };
}

async function settledRss(pids: () => number[]): Promise<number> {
  await sleep(SETTLE_MS);
  const xs: number[] = [];
  for (let i = 0; i < 3; i++) {
    xs.push(rssBytes(pids()));
    await sleep(300);
  }
  return median(xs);
}

async function heapUsed(ctl: number): Promise<number> {
  return (await usage(ctl)).heapUsed;
}

function usage(ctl: number): Promise<NodeJS.MemoryUsage> {
  return control<NodeJS.MemoryUsage>(ctl, '/memory');
}

async function atRest(backend: Backend, withChp: boolean, log: (m: string) => void): Promise<RestResult[]> {
  const out: RestResult[] = [];
  {
    const wp = await startWarmpoolServer(
      'rest',
      { deployment: 'bench-rest', stateDir: join(WORK, 'state-rest'), listen: { port: 0 }, apps: [memApp('app', 1)] },
      [backend],
    );
    await waitPoolReady(wp.control, 1);
    out.push({ proxy: 'warmpool (process runtime)', rssBytes: await settledRss(() => [wp.child.pid]), heapUsedBytes: await heapUsed(wp.control) });
    await wp.child.stop();
  }
  {
    // A Docker app with warm 0: the Docker runtime loaded, no container created.
    const wp = await startWarmpoolServer('rest-docker', {
      deployment: 'bench-rest-docker',
      stateDir: join(WORK, 'state-rest-docker'),
      listen: { port: 0 },
      apps: [
        { name: 'app', runtime: 'docker', image: 'warmpool/standin:latest', pool: { warm: 0, max: 1 }, readiness: { log: '^READY$' }, classifier: 'pluto' },
      ],
    }).catch(() => undefined);
    if (wp) {
      out.push({ proxy: 'warmpool (docker runtime)', rssBytes: await settledRss(() => [wp.child.pid]), heapUsedBytes: await heapUsed(wp.control) });
      await wp.child.stop();
    }
  }
  if (withChp) {
    const v = await startVariant('chp', backend, log);
    out.push({ proxy: 'configurable-http-proxy', rssBytes: await settledRss(() => v.pids()) });
    await v.stop();
  }
  if (!missing('nginx')) {
    const v = await startVariant('nginx', backend, log);
    out.push({ proxy: 'nginx (master + 1 worker)', rssBytes: await settledRss(() => v.pids()) });
    await v.stop();
  }
  for (const r of out) log(`memory at rest: ${r.proxy} ${(r.rssBytes / 2 ** 20).toFixed(1)} MiB`);
  return out;
}

async function withSessions(
  proxy: string,
  port: number,
  app: string,
  mode: 'warmpool' | 'plain',
  sessions: number,
  pids: () => number[],
  ctl: number | undefined,
  log: (m: string) => void,
): Promise<SessionsResult> {
  const before = await settledRss(pids);
  const usageBefore = ctl ? await usage(ctl) : undefined;
  const heapBefore = usageBefore?.heapUsed;
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssBytes(pids()));
  }, 100);
  const per = Math.ceil(sessions / CLIENT_PROCESSES);
  const clients: Child[] = await Promise.all(
    Array.from({ length: CLIENT_PROCESSES }, (_, i) =>
      startChild(
        `mem-client-${i}`,
        process.execPath,
        [join(DIST, 'bench/mem-client.js'), JSON.stringify({ mode, port, app, count: Math.min(per, sessions - i * per), concurrency: 25 })],
        { readyMarker: 'CONNECTED', timeoutMs: 600_000 },
      ),
    ),
  );
  const open = clients.reduce((s, c) => s + (c.info.open as number), 0);
  const failed = clients.reduce((s, c) => s + (c.info.failed as number), 0);
  if (failed) log(`memory ${proxy}: ${failed} sessions failed (${clients.map((c) => c.info.firstError).filter(Boolean)[0]})`);
  // Idle: every tab sends its burst and its pings; the heap settles (V8 shrinks what the connect burst grew,
  // on its own schedule), so RSS is sampled over the second half of the window and the median taken.
  await sleep(IDLE_WINDOW_MS / 2);
  const xs: number[] = [];
  for (let t = 0; t < IDLE_WINDOW_MS / 2; t += 1000) {
    xs.push(rssBytes(pids()));
    await sleep(1000);
  }
  clearInterval(sampler);
  const withRss = median(xs);
  const usageWith = ctl ? await usage(ctl) : undefined;
  const heapWith = usageWith?.heapUsed;
  await Promise.all(clients.map((c) => c.stop()));
  const r: SessionsResult = {
    proxy,
    sessions: open,
    failed,
    rssBeforeBytes: before,
    rssWithBytes: withRss,
    rssPeakBytes: peak,
    perSessionBytes: (withRss - before) / Math.max(1, open),
    rssIdleMinBytes: Math.min(...xs),
    heapUsedBeforeBytes: heapBefore,
    heapUsedWithBytes: heapWith,
    usageBefore,
    usageWith,
  };
  log(
    `memory ${proxy}: ${open} idle sessions: RSS ${(before / 2 ** 20).toFixed(1)} → ${(withRss / 2 ** 20).toFixed(1)} MiB (peak ${(peak / 2 ** 20).toFixed(1)}), ${(r.perSessionBytes / 1024).toFixed(1)} KiB per session`,
  );
  return r;
}

export async function runMemory(o: { sessions: number; log: (m: string) => void; withChp: boolean }): Promise<MemoryResults> {
  const backend = await startRelayBackend();
  const standin = await startStandinProcess({ STATE_BYTES: '200000' });
  try {
    const rest = await atRest(backend, o.withChp, o.log);
    const sessions: SessionsResult[] = [];
    {
      const wp = await startWarmpoolServer(
        'mem',
        {
          deployment: 'bench-mem',
          stateDir: join(WORK, 'state-mem'),
          listen: { port: 0 },
          apps: [memApp('mem', o.sessions)],
          // A thousand sessions enter from one address in seconds: the per-address and rate limits meant for
          // a class (queue:) are lifted, so what is measured is memory per session, not the waiting line.
          queue: { unusedClaimsPerAddress: 100_000, waitingPerAddress: 100_000, claimRate: { perSecond: 100_000, burst: 100_000 } },
          relay: { connectionsPerAddress: 100_000 },
        },
        [standin],
      );
      await waitPoolReady(wp.control, o.sessions);
      sessions.push(await withSessions('warmpool', wp.port, 'mem', 'warmpool', o.sessions, () => [wp.child.pid], wp.control, o.log));
      await wp.child.stop();
    }
    if (o.withChp) {
      // The same tabs through configurable-http-proxy, one route to the same stand-in.
      const v = await startVariant('chp', standin, o.log);
      sessions.push(await withSessions('configurable-http-proxy', v.port, 'bench', 'plain', o.sessions, () => v.pids(), undefined, o.log));
      await v.stop();
    }
    return { rest, sessions };
  } finally {
    await standin.child.stop();
    await backend.child.stop();
  }
}
