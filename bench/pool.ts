// Pool mechanics, measured on the real runtimes in this process (nothing is relayed here): how many
// instances are created and ready per second (process and docker), how long a pool of 50 takes to
// refill after all 50 are claimed at once, and how late sessions are reaped (actual minus deadline)
// over 100 sessions on real timers, both when the session ends and when its instance is removed.

import { join } from 'node:path';
import { buildRuntimes } from '../index.js';
import { validateConfig, type WarmpoolConfig } from '../core/config.js';
import { systemClock } from '../core/clock.js';
import { Fleet } from '../pool/fleet.js';
import type { Runtime } from '../pool/runtime.js';
import type { TrafficLogSink } from '../pool/traffic-log.js';
import { DIST } from './backends.js';
import { sleep } from './procs.js';
import { median, percentile } from './stats.js';
import { WORK } from './variants.js';

export interface FillResult {
  runtime: 'process' | 'docker';
  n: number;
  parallel: number;
  /** Start to n ready, ms. */
  fillMs: number;
  readyPerSec: number;
  /** All n claimed at once to n ready again, ms. */
  refillMs: number;
}

export interface ReapResult {
  sessions: number;
  idleTimeoutMs: number;
  /** Session ended minus its deadline, ms. */
  endLate: { p50: number; p99: number; max: number };
  /** Instance removed (runtime.remove resolved) minus the deadline, ms. */
  removedLate: { p50: number; p99: number; max: number };
}

export interface PoolResults {
  fill: FillResult[];
  reap?: ReapResult;
  skipped?: string[];
}

const N = 50;
const PARALLEL = 8;

function app(runtime: 'process' | 'docker', warm: number, max: number, parallel: number, idle = '1h'): Record<string, unknown> {
  const common = {
    name: 'pool',
    deepLink: '/open?path=webapp.jl',
    env: { STATE_BYTES: 200000 },
    readiness: { log: '^READY$', timeout: '120s' },
    pool: { warm, max, parallel },
    classifier: 'pluto',
    secret: { env: 'PLUTO_SECRET', inject: { query: 'secret' } },
    idleTimeout: idle,
    maxLifetime: '10h',
    grace: '10h',
  };
  return runtime === 'docker'
    ? { ...common, runtime, image: 'warmpool/standin:latest', network: 'host' }
    : { ...common, runtime, command: [process.execPath, join(DIST, 'examples/standin/server.js')] };
}

function config(runtime: 'process' | 'docker', a: Record<string, unknown>, tag: string): WarmpoolConfig {
  return validateConfig(
    {
      deployment: `bench-pool-${tag}`,
      stateDir: join(WORK, `state-pool-${tag}`),
      ports: { from: 50000, to: 59999 },
      apps: [a],
    },
    'bench pool config',
  );
}

/** Resolves when fn() holds, checking on every pool change (and every 50 ms). */
function until(fleet: Fleet, fn: () => boolean, timeoutMs = 900_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!fn()) return;
      off();
      clearInterval(iv);
      clearTimeout(to);
      resolve();
    };
    const off = fleet.onChange(check);
    const iv = setInterval(check, 50);
    const to = setTimeout(() => {
      off();
      clearInterval(iv);
      reject(new Error(`pool did not get there within ${timeoutMs} ms: ${JSON.stringify(fleet.status())}`));
    }, timeoutMs);
    check();
  });
}

async function fill(runtime: 'process' | 'docker', log: (m: string) => void): Promise<FillResult> {
  const cfg = config(runtime, app(runtime, N, 2 * N, PARALLEL), `fill-${runtime}`);
  const runtimes = await buildRuntimes(cfg, () => undefined);
  const fleet = new Fleet({ config: cfg, runtimes, clock: systemClock, log: () => undefined });
  const ready = (): number => fleet.status()[0]!.ready;
  try {
    const t0 = Date.now();
    await fleet.start();
    await until(fleet, () => ready() >= N);
    const fillMs = Date.now() - t0;
    log(`pool ${runtime}: ${N} ready in ${(fillMs / 1000).toFixed(1)} s (${((N * 1000) / fillMs).toFixed(1)}/s, parallel ${PARALLEL})`);
    // The burst: all 50 claimed at once; the pool refills behind them (max 100 leaves room).
    const t1 = Date.now();
    const claims = await Promise.all(Array.from({ length: N }, () => fleet.claim('pool')));
    if (claims.some((c) => c.kind !== 'session')) throw new Error('a claim was queued');
    await until(fleet, () => ready() >= N);
    const refillMs = Date.now() - t1;
    log(`pool ${runtime}: refilled ${N} in ${(refillMs / 1000).toFixed(1)} s`);
    return { runtime, n: N, parallel: PARALLEL, fillMs, readyPerSec: (N * 1000) / fillMs, refillMs };
  } finally {
    await fleet.stop(false);
  }
}

async function reap(log: (m: string) => void): Promise<ReapResult> {
  const sessions = 100;
  const idleMs = 3000;
  const cfg = config('process', app('process', sessions, sessions, 16, `${idleMs / 1000}s`), 'reap');
  const runtimes = await buildRuntimes(cfg, () => undefined);
  // When each instance's removal finished.
  const removedAt = new Map<string, number>();
  const rt = runtimes.process! as Runtime;
  const remove = rt.remove.bind(rt);
  rt.remove = async (id: string) => {
    await remove(id);
    removedAt.set(id, Date.now());
  };
  const ended: { instance: string; deadline: number; t: number }[] = [];
  const sink: TrafficLogSink = {
    write(e: Record<string, unknown>) {
      if (e.type === 'ended' && typeof e.deadline === 'number') ended.push({ instance: e.instance as string, deadline: e.deadline, t: e.t as number });
    },
    async close() {},
  } as TrafficLogSink;
  const fleet = new Fleet({ config: cfg, runtimes, clock: systemClock, log: () => undefined, trafficLog: sink });
  try {
    await fleet.start();
    await until(fleet, () => fleet.status()[0]!.ready >= sessions);
    log(`reap: ${sessions} process instances ready; claiming them 20 ms apart, idle timeout ${idleMs} ms`);
    for (let i = 0; i < sessions; i++) {
      const c = await fleet.claim('pool');
      if (c.kind !== 'session') throw new Error('a claim was queued');
      await sleep(20);
    }
    const t0 = Date.now();
    while ((ended.length < sessions || ended.some((e) => !removedAt.has(e.instance))) && Date.now() - t0 < 120_000) await sleep(50);
    const endLate = ended.map((e) => e.t - e.deadline);
    const removedLate = ended.filter((e) => removedAt.has(e.instance)).map((e) => removedAt.get(e.instance)! - e.deadline);
    const pct = (xs: number[]) => ({ p50: median(xs), p99: percentile(xs, 99), max: Math.max(...xs) });
    const r: ReapResult = { sessions: ended.length, idleTimeoutMs: idleMs, endLate: pct(endLate), removedLate: pct(removedLate) };
    log(`reap: ended late p50 ${r.endLate.p50} ms, max ${r.endLate.max} ms; removed late p50 ${r.removedLate.p50} ms, max ${r.removedLate.max} ms`);
    return r;
  } finally {
    await fleet.stop(false);
  }
}

export async function runPool(o: { docker: boolean; log: (m: string) => void }): Promise<PoolResults> {
  const out: PoolResults = { fill: [], skipped: [] };
  out.fill.push(await fill('process', o.log));
  if (o.docker) out.fill.push(await fill('docker', o.log));
  else out.skipped!.push('docker runtime: Docker Engine unreachable');
  out.reap = await reap(o.log);
  return out;
}
