// The classroom burst on the Docker runtime. N students (one address: 127.0.0.1, as a class behind
// one NAT) arrive either spread evenly over one second or all at the same instant; each is timed from
// its first request to the full notebook state, going through the waiting page as a browser does when
// no instance is free for it (bench/student.ts). Measured in the same run:
// - the floor: the same burst sent straight to N already-assigned instances (port per student, no
//   proxy), for each arrival;
// - the same, each student through a bare Node pipe to its instance (bench/tcp-pipe.ts, a port per
//   instance): what one more Node process and two more loopback hops cost this machine in that burst,
//   the least any relay written in Node adds;
// - warmpool with a warm pool of N (floor and warmpool bursts alternate over rounds; between bursts
//   every session is ended and the pool refills, timed);
// - an empty pool (warm 0): each student waits for an instance to be created and to execute; its
//   reference is the time the pool itself needs to make N instances ready from cold (warm N, started
//   from nothing, timed in the same round);
// - optionally, a burst while the refill's instances burn CPU as they warm (the stand-in's
//   BURN_CPU_MS), with and without the Docker runtime's warming CPU weight.
// Queue settings are the defaults except where a class of N needs an operator setting (queueFor()).

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { freemem } from 'node:os';
import { join } from 'node:path';
import { DIST } from './backends.js';
import { cpuSeconds, nextJson, sleep, startChild, type Child } from './procs.js';
import { median, percentile } from './stats.js';
import type { Student, StudentResult } from './student.js';
import { control, startWarmpoolServer, waitPoolReady, WORK } from './variants.js';

const STUDENT_PROCESSES = 2;
const APP = 'burst';
const PHASES = ['entry', 'line', 'collect', 'deepLink', 'editor', 'wsOpen', 'state'] as const;
export const ARRIVALS = ['spread', 'instant'] as const;
export type Arrival = (typeof ARRIVALS)[number];
export const BURST_PARTS = ['warm', 'empty', 'burn'] as const;
export type BurstPart = (typeof BURST_PARTS)[number];
/** The default claim rate (core/config.ts queue.claimRate). */
const DEFAULT_CLAIM_RATE = { perSecond: 5, burst: 60 };
/** CPU each refilled stand-in spends executing before READY in the burn part, ms. */
export const DEFAULT_BURN_MS = 1500;

export interface BurstStats {
  n: number;
  ok: number;
  errors: number;
  errorMessages: string[];
  p50ms: number;
  p99ms: number;
  maxms: number;
  /** Students who met the waiting page (median over rounds in summaries). */
  inLine: number;
  /** Median time per phase (see StudentResult.phases), ms, over the students that had the phase. */
  phases: Record<string, number>;
  /** 99th percentile per phase, ms. */
  phasesP99?: Record<string, number>;
  /** CPU seconds spent during the burst (median over rounds in summaries): the whole machine, the proxy, dockerd + containerd. */
  cpu?: { machine: number; proxy: number; engine: number };
}

export type Summary = BurstStats & { rounds: BurstStats[] };

export interface BurstSizeResult {
  n: number;
  /** Queue settings beyond the defaults this class size needed (an operator's setting), or {}. */
  queue: Record<string, unknown>;
  floor: Partial<Record<Arrival, Summary>>;
  /** The floor's students through a bare Node pipe (a port per instance). */
  pipe?: Partial<Record<Arrival, Summary>>;
  warmpool: Partial<Record<Arrival, Summary>>;
  /** Empty pool (warm 0, max N). */
  empty?: Partial<Record<Arrival, Summary>>;
  /** The pool's own time to N ready from cold (warm N), one per round of the empty-pool part, ms. */
  poolFillMs?: number[];
  /** A warm-pool burst (spread) while refills burn CPU as they warm, with and without the warming CPU weight. */
  burn?: { burnCpuMs: number; cpuShares: number; weighted: Summary; unweighted: Summary };
  /** Time for the pool to be back to N ready after all N sessions ended (Docker), per burst, ms. */
  refillMs: number[];
  /** Time from warmpool's start to N ready instances, ms. */
  initialFillMs: number;
  skipped?: string;
}

export interface BurstOptions {
  sizes: number[];
  rounds: number;
  log: (m: string) => void;
  /** Which parts run (default all): the warm pool with its floor, the empty pool, the CPU burn while warming. */
  parts?: BurstPart[];
  /** Queue settings over the defaults for every warmpool of the burst (reported with the figures). */
  queue?: Record<string, unknown>;
  /** BURN_CPU_MS of the burn part; it runs for the sizes in burnSizes (default [50]). */
  burnCpuMs?: number;
  burnSizes?: number[];
}

/** Queue settings given on the command line (--burst-queue), over queueFor()'s. */
let extraQueue: Record<string, unknown> = {};

/** Queue settings a class of n from one address needs beyond the defaults: a claim burst of n. */
export function queueFor(n: number): Record<string, unknown> {
  return { ...(n > DEFAULT_CLAIM_RATE.burst ? { claimRate: { burst: n } } : {}), ...extraQueue };
}

function appConfig(
  n: number,
  pool: { warm: number; max: number },
  extra: { env?: Record<string, unknown>; warming?: { cpuShares: number } } = {},
): Record<string, unknown> {
  return {
    name: APP,
    runtime: 'docker',
    image: 'warmpool/standin:latest',
    network: 'host',
    env: { STATE_BYTES: 200000, ...extra.env },
    deepLink: '/open?path=webapp.jl',
    prefix: 'strip',
    readiness: { log: '^READY$', timeout: '300s' },
    pool: { ...pool, parallel: 8 },
    classifier: 'pluto',
    secret: { env: 'PLUTO_SECRET', inject: { query: 'secret' } },
    idleTimeout: '1h',
    maxLifetime: '10h',
    grace: '1h',
    ...(extra.warming ? { warming: extra.warming } : {}),
  };
}

function serverConfig(tag: string, n: number, app: Record<string, unknown>, ports: number): Record<string, unknown> {
  const queue = queueFor(n);
  return {
    listen: { host: '127.0.0.1', port: 0 },
    deployment: `bench-${tag}`,
    stateDir: join(WORK, `state-${tag}`),
    ports: { from: ports, to: ports + 9999 },
    ...(Object.keys(queue).length ? { queue } : {}),
    apps: [app],
  };
}

function stats(n: number, rs: StudentResult[]): BurstStats {
  const ok = rs.filter((r) => r.ok);
  const times = rs.map((r) => r.totalMs);
  const phases: Record<string, number> = {};
  const phasesP99: Record<string, number> = {};
  for (const k of PHASES) {
    const xs = ok.map((r) => r.phases[k]).filter((x): x is number => x !== undefined);
    if (xs.length) {
      phases[k] = median(xs);
      phasesP99[k] = percentile(xs, 99);
    }
  }
  return {
    n,
    ok: ok.length,
    errors: rs.length - ok.length,
    errorMessages: [...new Set(rs.filter((r) => !r.ok).map((r) => r.error ?? '?'))].slice(0, 5),
    p50ms: percentile(times, 50),
    p99ms: percentile(times, 99),
    maxms: Math.max(...times),
    inLine: rs.filter((r) => r.waited > 0).length,
    phases,
    phasesP99,
  };
}

function summarize(n: number, rounds: BurstStats[]): Summary {
  const med = (f: (r: BurstStats) => number): number => median(rounds.map(f));
  const keys = (f: (r: BurstStats) => Record<string, number> | undefined): string[] => [...new Set(rounds.flatMap((r) => Object.keys(f(r) ?? {})))];
  return {
    n,
    ok: Math.min(...rounds.map((r) => r.ok)),
    errors: rounds.reduce((s, r) => s + r.errors, 0),
    errorMessages: [...new Set(rounds.flatMap((r) => r.errorMessages))].slice(0, 5),
    p50ms: med((r) => r.p50ms),
    p99ms: med((r) => r.p99ms),
    maxms: med((r) => r.maxms),
    inLine: med((r) => r.inLine),
    phases: Object.fromEntries(keys((r) => r.phases).map((k) => [k, med((r) => r.phases[k] ?? NaN)])),
    phasesP99: Object.fromEntries(keys((r) => r.phasesP99).map((k) => [k, med((r) => r.phasesP99?.[k] ?? NaN)])),
    cpu: rounds[0]?.cpu ? { machine: med((r) => r.cpu!.machine), proxy: med((r) => r.cpu!.proxy), engine: med((r) => r.cpu!.engine) } : undefined,
    rounds,
  };
}

/** Busy CPU seconds of the whole machine so far (/proc/stat: all but idle and iowait). */
function machineBusy(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (f.reduce((a, b) => a + b, 0) - f[3]! - f[4]!) / 100;
}

function enginePids(): number[] {
  try {
    return execFileSync('pidof', ['dockerd', 'containerd']).toString().trim().split(/\s+/).map(Number);
  } catch {
    return [];
  }
}

/** Runs a burst and records where the machine's CPU went meanwhile. */
async function measuredBurst(procs: Child[], students: Omit<Student, 'offsetMs'>[], arrival: Arrival, proxyPid: number): Promise<BurstStats> {
  const engine = enginePids();
  const m0 = machineBusy(),
    p0 = cpuSeconds([proxyPid]),
    e0 = cpuSeconds(engine);
  const rs = await burst(procs, students, arrival);
  return { ...stats(students.length, rs), cpu: { machine: machineBusy() - m0, proxy: cpuSeconds([proxyPid]) - p0, engine: cpuSeconds(engine) - e0 } };
}

/** Runs one burst: students spread evenly over 1 s or all at one instant, dealt round robin to the student processes. */
async function burst(procs: Child[], students: Omit<Student, 'offsetMs'>[], arrival: Arrival): Promise<StudentResult[]> {
  const n = students.length;
  const all: Student[] = students.map((s, i) => ({ ...s, offsetMs: arrival === 'spread' ? (i * 1000) / n : 0 }));
  const startAt = Date.now() + 500;
  const outs = procs.map((p, k) => {
    const mine = all.filter((_, i) => i % procs.length === k);
    const r = nextJson<StudentResult[]>(p, 'RESULT ', 600_000);
    p.proc.stdin!.write(`RUN ${JSON.stringify({ startAt, students: mine })}\n`);
    return r;
  });
  return (await Promise.all(outs)).flat();
}

async function endAllAndRefill(ctl: number, n: number, deployment: string): Promise<number> {
  await control(ctl, '/end-all', 'POST');
  const t0 = Date.now();
  await waitPoolReady(ctl, n, 900_000);
  const ms = Date.now() - t0;
  await settle(deployment, n);
  return ms;
}

/** Containers of a deployment, removed ones still going included. */
function containers(deployment: string): number {
  try {
    return execFileSync('docker', ['ps', '-aq', '--filter', `label=warmpool.deployment=${deployment}`], { encoding: 'utf8', timeout: 30_000 })
      .split('\n')
      .filter(Boolean).length;
  } catch {
    return -1;
  }
}

/**
 * Before the next burst: the ended sessions' containers are gone (their removal keeps dockerd and
 * containerd busy after the pool is ready again), and the machine has been calm (under half a core
 * busy) for a second, or 20 s have passed. Otherwise whichever burst follows a refill pays for it.
 */
async function settle(deployment: string, n: number): Promise<void> {
  const until = Date.now() + 20_000;
  while (Date.now() < until && containers(deployment) > n) await sleep(200);
  while (Date.now() < until) {
    const b0 = machineBusy();
    await sleep(1000);
    if (machineBusy() - b0 < 0.5) return;
  }
}

const line = (label: string, s: BurstStats): string =>
  `${label} p50 ${s.p50ms.toFixed(0)} ms  p99 ${s.p99ms.toFixed(0)} ms  max ${s.maxms.toFixed(0)} ms  in line ${s.inLine}  errors ${s.errors}${s.errors ? ` (${s.errorMessages.join('; ')})` : ''}  cpu s: machine ${s.cpu!.machine.toFixed(2)} proxy ${s.cpu!.proxy.toFixed(2)} engine ${s.cpu!.engine.toFixed(2)}`;

/** The warm pool of N: floor and warmpool bursts, both arrivals, alternating over rounds. */
async function warmPart(
  n: number,
  rounds: number,
  procs: Child[],
  log: (m: string) => void,
): Promise<Pick<BurstSizeResult, 'floor' | 'pipe' | 'warmpool' | 'refillMs' | 'initialFillMs'>> {
  const t0 = Date.now();
  // max N: no refill competes with the students during a burst (the burn part measures that).
  const wp = await startWarmpoolServer(`burst-${n}`, serverConfig(`burst-${n}`, n, appConfig(n, { warm: n, max: n }), 30000));
  const deployment = `bench-burst-${n}`;
  const floors: Record<Arrival, BurstStats[]> = { spread: [], instant: [] };
  const piped: Record<Arrival, BurstStats[]> = { spread: [], instant: [] };
  const proxied: Record<Arrival, BurstStats[]> = { spread: [], instant: [] };
  const refillMs: number[] = [];
  // The claim rate's bucket refills at perSecond: a warmpool burst waits until it could hold N again.
  const perSecond = DEFAULT_CLAIM_RATE.perSecond;
  let lastWarmpoolAt = 0;
  try {
    await waitPoolReady(wp.control, n, 900_000);
    const initialFillMs = Date.now() - t0;
    log(`burst ${n}: ${n} containers ready ${(initialFillMs / 1000).toFixed(1)} s after start`);
    await settle(deployment, n);
    const base = `http://127.0.0.1:${wp.port}/${APP}/`;
    for (let r = 0; r < rounds; r++) {
      const kinds: ['floor' | 'pipe' | 'warmpool', Arrival][] = [];
      for (const a of r % 2 === 0 ? ARRIVALS : [...ARRIVALS].reverse()) {
        for (const w of r % 2 === 0 ? (['floor', 'pipe', 'warmpool'] as const) : (['warmpool', 'pipe', 'floor'] as const)) kinds.push([w, a]);
      }
      for (const [which, arrival] of kinds) {
        let s: BurstStats;
        if (which === 'floor' || which === 'pipe') {
          // The floor's students go straight to instances claimed for them, or each through the bare pipe.
          const targets = await control<{ host: string; port: number; secret?: string }[]>(wp.control, `/claim?n=${n}`, 'POST');
          const pipe =
            which === 'pipe'
              ? await startChild('burst-pipe', process.execPath, [join(DIST, 'bench/tcp-pipe.js'), '127.0.0.1', targets.map((t) => t.port).join(',')])
              : undefined;
          const via = pipe?.info.ports as number[] | undefined;
          try {
            s = await measuredBurst(
              procs,
              targets.map((t, i) => ({ mode: 'direct', base: via ? `http://127.0.0.1:${via[i]}/` : `http://${t.host}:${t.port}/`, secret: t.secret })),
              arrival,
              pipe?.pid ?? wp.child.pid,
            );
          } finally {
            await pipe?.stop();
          }
          (pipe ? piped : floors)[arrival].push(s);
        } else {
          const due = lastWarmpoolAt + (n / perSecond) * 1000;
          if (Date.now() < due) await sleep(due - Date.now());
          s = await measuredBurst(
            procs,
            Array.from({ length: n }, () => ({ mode: 'proxy', base })),
            arrival,
            wp.child.pid,
          );
          lastWarmpoolAt = Date.now();
          proxied[arrival].push(s);
        }
        log(line(`burst ${n} round ${r + 1}/${rounds} ${which.padEnd(8)} ${arrival.padEnd(7)}`, s));
        const ms = await endAllAndRefill(wp.control, n, deployment);
        refillMs.push(ms);
        log(`burst ${n}: pool back to ${n} ready in ${(ms / 1000).toFixed(1)} s`);
      }
    }
    const sum = (x: Record<Arrival, BurstStats[]>): Partial<Record<Arrival, Summary>> =>
      Object.fromEntries(ARRIVALS.filter((a) => x[a].length).map((a) => [a, summarize(n, x[a])]));
    return { floor: sum(floors), pipe: sum(piped), warmpool: sum(proxied), refillMs, initialFillMs };
  } finally {
    await wp.child.stop('SIGTERM');
  }
}

/** Starts warmpool with a pool of N from nothing; resolves with the ms until N are ready. */
async function coldFill(n: number, tag: string, app: Record<string, unknown>): Promise<number> {
  const t0 = Date.now();
  const wp = await startWarmpoolServer(tag, serverConfig(tag, n, app, 40000));
  try {
    await waitPoolReady(wp.control, n, 900_000);
    return Date.now() - t0;
  } finally {
    await wp.child.stop('SIGTERM');
  }
}

/** Empty pool: per round, the pool's own cold fill of N, then a burst of each arrival at warm 0. */
async function emptyPart(n: number, rounds: number, procs: Child[], log: (m: string) => void): Promise<Pick<BurstSizeResult, 'empty' | 'poolFillMs'>> {
  const poolFillMs: number[] = [];
  const runs: Record<Arrival, BurstStats[]> = { spread: [], instant: [] };
  for (let r = 0; r < rounds; r++) {
    const fill = await coldFill(n, `burst-fill-${n}`, appConfig(n, { warm: n, max: n }));
    poolFillMs.push(fill);
    log(`burst ${n} round ${r + 1}/${rounds}: the pool alone, ${n} ready from cold in ${(fill / 1000).toFixed(1)} s`);
    for (const arrival of r % 2 === 0 ? [...ARRIVALS].reverse() : ARRIVALS) {
      const tag = `burst-empty-${n}`;
      const wp = await startWarmpoolServer(tag, serverConfig(tag, n, appConfig(n, { warm: 0, max: n }), 40000));
      try {
        const s = await measuredBurst(
          procs,
          Array.from({ length: n }, () => ({ mode: 'proxy', base: `http://127.0.0.1:${wp.port}/${APP}/` })),
          arrival,
          wp.child.pid,
        );
        runs[arrival].push(s);
        log(line(`burst ${n} round ${r + 1}/${rounds} empty    ${arrival.padEnd(7)}`, s) + `  (p99 ${(s.p99ms / fill).toFixed(2)}× the pool's own ${fill} ms)`);
      } finally {
        await wp.child.stop('SIGTERM');
      }
    }
  }
  return { poolFillMs, empty: Object.fromEntries(ARRIVALS.map((a) => [a, summarize(n, runs[a])])) };
}

/** A warm-pool burst (spread) whose refills burn CPU while warming: warming CPU weight on and off, alternating. */
async function burnPart(n: number, rounds: number, burnCpuMs: number, procs: Child[], log: (m: string) => void): Promise<NonNullable<BurstSizeResult['burn']>> {
  const cpuShares = 2;
  const runs: Record<'weighted' | 'unweighted', BurstStats[]> = { weighted: [], unweighted: [] };
  for (let r = 0; r < rounds; r++) {
    for (const which of r % 2 === 0 ? (['weighted', 'unweighted'] as const) : (['unweighted', 'weighted'] as const)) {
      const tag = `burst-burn-${n}`;
      // max 2N: each claim starts a refill, which burns burnCpuMs of CPU before it is ready.
      const app = appConfig(n, { warm: n, max: 2 * n }, { env: { BURN_CPU_MS: burnCpuMs }, ...(which === 'weighted' ? { warming: { cpuShares } } : {}) });
      const wp = await startWarmpoolServer(tag, serverConfig(tag, n, app, 40000));
      try {
        await waitPoolReady(wp.control, n, 900_000);
        await settle(`bench-${tag}`, n);
        const s = await measuredBurst(
          procs,
          Array.from({ length: n }, () => ({ mode: 'proxy', base: `http://127.0.0.1:${wp.port}/${APP}/` })),
          'spread',
          wp.child.pid,
        );
        runs[which].push(s);
        log(line(`burst ${n} round ${r + 1}/${rounds} burn ${burnCpuMs} ms ${which.padEnd(10)}`, s));
      } finally {
        await wp.child.stop('SIGTERM');
      }
    }
  }
  return { burnCpuMs, cpuShares, weighted: summarize(n, runs.weighted), unweighted: summarize(n, runs.unweighted) };
}

export async function runBurstSize(n: number, o: BurstOptions): Promise<BurstSizeResult> {
  const procs = await Promise.all(
    Array.from({ length: STUDENT_PROCESSES }, (_, i) =>
      startChild(`students-${i}`, process.execPath, [join(DIST, 'bench/student.js')], { readyMarker: 'WARM', timeoutMs: 120_000 }),
    ),
  );
  try {
    const parts = o.parts ?? BURST_PARTS;
    const warm = parts.includes('warm') ? await warmPart(n, o.rounds, procs, o.log) : { floor: {}, warmpool: {}, refillMs: [], initialFillMs: NaN };
    const empty = parts.includes('empty') ? await emptyPart(n, o.rounds, procs, o.log) : {};
    const burn =
      parts.includes('burn') && (o.burnSizes ?? [50]).includes(n) ? await burnPart(n, o.rounds, o.burnCpuMs ?? DEFAULT_BURN_MS, procs, o.log) : undefined;
    return { n, queue: queueFor(n), ...warm, ...empty, ...(burn ? { burn } : {}) };
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
}

export async function runBurst(o: BurstOptions): Promise<Record<string, BurstSizeResult | { n: number; skipped: string }>> {
  const out: Record<string, BurstSizeResult | { n: number; skipped: string }> = {};
  extraQueue = o.queue ?? {};
  for (const n of o.sizes) {
    // A stand-in container takes about 50 MB (the burn part runs up to 2N); keep 2 GiB spare for everything else.
    const need = 2 * n * 80 * 2 ** 20 + 2 * 2 ** 30;
    if (freemem() < need) {
      const why = `${(freemem() / 2 ** 30).toFixed(1)} GiB free, about ${(need / 2 ** 30).toFixed(1)} GiB needed for ${2 * n} containers`;
      o.log(`NOTICE: burst of ${n} skipped: ${why}`);
      out[String(n)] = { n, skipped: why };
      continue;
    }
    out[String(n)] = await runBurstSize(n, o);
  }
  return out;
}
