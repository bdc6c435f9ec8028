// The classroom burst on the Docker runtime: a warm pool of N stand-in containers, N students arriving
// evenly within one second, each timed from its first request to the full notebook state. Measured in
// the same run, with the same student processes, against the floor: the same burst sent straight to N
// already-assigned instances (the port-per-student model, no proxy at all). Floor and warmpool bursts
// alternate over rounds; between bursts every session is ended and the pool refills (timed). Finally
// the same burst against an empty pool (warm 0), to show what the pool buys.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { freemem } from 'node:os';
import { join } from 'node:path';
import { DIST } from './backends.js';
import { cpuSeconds, nextJson, startChild, type Child } from './procs.js';
import { median, percentile } from './stats.js';
import type { Student, StudentResult } from './student.js';
import { control, startWarmpoolServer, waitPoolReady, WORK } from './variants.js';

const STUDENT_PROCESSES = 2;
const APP = 'burst';

export interface BurstStats {
  n: number;
  ok: number;
  errors: number;
  errorMessages: string[];
  p50ms: number;
  p99ms: number;
  maxms: number;
  /** Median time per phase (entry, deepLink, editor, wsOpen, state), ms. */
  phases: Record<string, number>;
  /** 99th percentile per phase, ms. */
  phasesP99?: Record<string, number>;
  /** CPU seconds spent during the burst (median over rounds in summaries): the whole machine, the proxy, dockerd + containerd. */
  cpu?: { machine: number; proxy: number; engine: number };
}

export interface BurstSizeResult {
  n: number;
  floor: BurstStats & { rounds: BurstStats[] };
  warmpool: BurstStats & { rounds: BurstStats[] };
  empty?: BurstStats;
  /** Time for the pool to be back to N ready after all N sessions ended (Docker), per round, ms. */
  refillMs: number[];
  /** Time from warmpool's start to N ready instances, ms. */
  initialFillMs: number;
  skipped?: string;
}

function appConfig(n: number, warm: number): Record<string, unknown> {
  return {
    name: APP,
    runtime: 'docker',
    image: 'warmpool/standin:latest',
    network: 'host',
    env: { STATE_BYTES: 200000 },
    deepLink: '/open?path=webapp.jl',
    prefix: 'strip',
    readiness: { log: '^READY$', timeout: '120s' },
    pool: { warm, max: n, parallel: 8 },
    classifier: 'pluto',
    secret: { env: 'PLUTO_SECRET', inject: { query: 'secret' } },
    idleTimeout: '1h',
    maxLifetime: '10h',
    grace: '1h',
  };
}

function stats(n: number, rs: StudentResult[]): BurstStats {
  const ok = rs.filter((r) => r.ok);
  const times = rs.map((r) => r.totalMs);
  const phases: Record<string, number> = {};
  const phasesP99: Record<string, number> = {};
  for (const k of ['entry', 'deepLink', 'editor', 'wsOpen', 'state']) {
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
    phases,
    phasesP99,
  };
}

function summarize(n: number, rounds: BurstStats[]): BurstStats & { rounds: BurstStats[] } {
  return {
    n,
    ok: Math.min(...rounds.map((r) => r.ok)),
    errors: rounds.reduce((s, r) => s + r.errors, 0),
    errorMessages: [...new Set(rounds.flatMap((r) => r.errorMessages))].slice(0, 5),
    p50ms: median(rounds.map((r) => r.p50ms)),
    p99ms: median(rounds.map((r) => r.p99ms)),
    maxms: median(rounds.map((r) => r.maxms)),
    phases: Object.fromEntries(Object.keys(rounds[0]?.phases ?? {}).map((k) => [k, median(rounds.map((r) => r.phases[k] ?? NaN))])),
    phasesP99: Object.fromEntries(Object.keys(rounds[0]?.phasesP99 ?? {}).map((k) => [k, median(rounds.map((r) => r.phasesP99?.[k] ?? NaN))])),
    cpu: rounds[0]?.cpu
      ? { machine: median(rounds.map((r) => r.cpu!.machine)), proxy: median(rounds.map((r) => r.cpu!.proxy)), engine: median(rounds.map((r) => r.cpu!.engine)) }
      : undefined,
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
async function measuredBurst(
  procs: Child[],
  students: Omit<Student, 'offsetMs'>[],
  proxyPid: number,
): Promise<{ rs: StudentResult[]; cpu: NonNullable<BurstStats['cpu']> }> {
  const engine = enginePids();
  const m0 = machineBusy(),
    p0 = cpuSeconds([proxyPid]),
    e0 = cpuSeconds(engine);
  const rs = await burst(procs, students);
  return { rs, cpu: { machine: machineBusy() - m0, proxy: cpuSeconds([proxyPid]) - p0, engine: cpuSeconds(engine) - e0 } };
}

/** Runs one burst: students spread evenly over 1 s, dealt round robin to the student processes. */
async function burst(procs: Child[], students: Omit<Student, 'offsetMs'>[]): Promise<StudentResult[]> {
  const n = students.length;
  const all: Student[] = students.map((s, i) => ({ ...s, offsetMs: (i * 1000) / n }));
  const startAt = Date.now() + 500;
  const outs = procs.map((p, k) => {
    const mine = all.filter((_, i) => i % procs.length === k);
    const r = nextJson<StudentResult[]>(p, 'RESULT ', 300_000);
    p.proc.stdin!.write(`RUN ${JSON.stringify({ startAt, students: mine })}\n`);
    return r;
  });
  return (await Promise.all(outs)).flat();
}

async function endAllAndRefill(ctl: number, n: number): Promise<number> {
  await control(ctl, '/end-all', 'POST');
  const t0 = Date.now();
  await waitPoolReady(ctl, n, 600_000);
  return Date.now() - t0;
}

export async function runBurstSize(n: number, rounds: number, log: (m: string) => void): Promise<BurstSizeResult> {
  const procs = await Promise.all(
    Array.from({ length: STUDENT_PROCESSES }, (_, i) =>
      startChild(`students-${i}`, process.execPath, [join(DIST, 'bench/student.js')], { readyMarker: 'WARM', timeoutMs: 120_000 }),
    ),
  );
  try {
    const t0 = Date.now();
    const wp = await startWarmpoolServer(`burst-${n}`, {
      listen: { host: '127.0.0.1', port: 0 },
      deployment: `bench-burst-${n}`,
      stateDir: join(WORK, `state-burst-${n}`),
      ports: { from: 30000, to: 39999 },
      apps: [appConfig(n, n)],
    });
    let initialFillMs = 0;
    const refillMs: number[] = [];
    const floors: BurstStats[] = [];
    const proxied: BurstStats[] = [];
    try {
      await waitPoolReady(wp.control, n, 900_000);
      initialFillMs = Date.now() - t0;
      log(`burst ${n}: ${n} containers ready ${(initialFillMs / 1000).toFixed(1)} s after start`);
      const base = `http://127.0.0.1:${wp.port}/${APP}/`;
      for (let r = 0; r < rounds; r++) {
        const order = r % 2 === 0 ? ['floor', 'warmpool'] : ['warmpool', 'floor'];
        for (const which of order) {
          if (which === 'floor') {
            const targets = await control<{ host: string; port: number; secret?: string }[]>(wp.control, `/claim?n=${n}`, 'POST');
            const { rs, cpu } = await measuredBurst(
              procs,
              targets.map((t) => ({ mode: 'direct', base: `http://${t.host}:${t.port}/`, secret: t.secret })),
              wp.child.pid,
            );
            floors.push({ ...stats(n, rs), cpu });
          } else {
            const { rs, cpu } = await measuredBurst(
              procs,
              Array.from({ length: n }, () => ({ mode: 'proxy', base })),
              wp.child.pid,
            );
            proxied.push({ ...stats(n, rs), cpu });
          }
          const s = which === 'floor' ? floors.at(-1)! : proxied.at(-1)!;
          log(
            `burst ${n} round ${r + 1}/${rounds} ${which.padEnd(8)} p50 ${s.p50ms.toFixed(0)} ms  p99 ${s.p99ms.toFixed(0)} ms  max ${s.maxms.toFixed(0)} ms  errors ${s.errors}${s.errors ? ` (${s.errorMessages.join('; ')})` : ''}  cpu s: machine ${s.cpu!.machine.toFixed(2)} proxy ${s.cpu!.proxy.toFixed(2)} engine ${s.cpu!.engine.toFixed(2)}`,
          );
          const ms = await endAllAndRefill(wp.control, n);
          refillMs.push(ms);
          log(`burst ${n}: pool back to ${n} ready in ${(ms / 1000).toFixed(1)} s`);
        }
      }
    } finally {
      await wp.child.stop('SIGTERM');
    }

    // Empty pool: every student waits for a container to be created and to execute.
    let empty: BurstStats | undefined;
    const we = await startWarmpoolServer(`burst-empty-${n}`, {
      listen: { host: '127.0.0.1', port: 0 },
      deployment: `bench-burst-empty-${n}`,
      stateDir: join(WORK, `state-burst-empty-${n}`),
      ports: { from: 40000, to: 49999 },
      apps: [appConfig(n, 0)],
    });
    try {
      const { rs, cpu } = await measuredBurst(
        procs,
        Array.from({ length: n }, () => ({ mode: 'proxy', base: `http://127.0.0.1:${we.port}/${APP}/` })),
        we.child.pid,
      );
      empty = { ...stats(n, rs), cpu };
      log(
        `burst ${n} empty pool: p50 ${empty.p50ms.toFixed(0)} ms  p99 ${empty.p99ms.toFixed(0)} ms  max ${empty.maxms.toFixed(0)} ms  errors ${empty.errors}`,
      );
    } finally {
      await we.child.stop('SIGTERM');
    }
    return { n, floor: summarize(n, floors), warmpool: summarize(n, proxied), empty, refillMs, initialFillMs };
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
}

export async function runBurst(o: {
  sizes: number[];
  rounds: number;
  log: (m: string) => void;
}): Promise<Record<string, BurstSizeResult | { n: number; skipped: string }>> {
  const out: Record<string, BurstSizeResult | { n: number; skipped: string }> = {};
  for (const n of o.sizes) {
    // A stand-in container takes about 50 MB; keep 2 GiB spare for everything else.
    const need = n * 80 * 2 ** 20 + 2 * 2 ** 30;
    if (freemem() < need) {
      const why = `${(freemem() / 2 ** 30).toFixed(1)} GiB free, about ${(need / 2 ** 30).toFixed(1)} GiB needed for ${n} containers`;
      o.log(`NOTICE: burst of ${n} skipped: ${why}`);
      out[String(n)] = { n, skipped: why };
      continue;
    }
    out[String(n)] = await runBurstSize(n, o.rounds, o.log);
  }
  return out;
}
