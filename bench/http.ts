// HTTP relay overhead: wrk (Debian's) against each variant, small (1 KiB) and large (256 KiB)
// responses at 64 connections, and small ones at one connection for the added latency. The proxy's
// CPU time per request is read from /proc around each run. Variants are interleaved per round.

import { execFile, spawnSync } from 'node:child_process';
import { cpuSeconds } from './procs.js';
import { median } from './stats.js';
import type { Variant, VariantName } from './variants.js';

export interface WrkResult {
  rps: number;
  requests: number;
  p50us: number;
  p99us: number;
  errors: number;
  bytesPerSec: number;
}

export function wrkMissing(): string | undefined {
  return spawnSync('which', ['wrk']).status === 0 ? undefined : 'wrk is not installed: apt-get install -y wrk; the HTTP benchmarks are skipped';
}

const UNIT: Record<string, number> = { us: 1, ms: 1000, s: 1e6, m: 60e6, h: 3600e6 };
const SIZE: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };

/** Parses `wrk --latency` output. */
export function parseWrk(out: string): WrkResult {
  const dur = (s: string): number => {
    const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(s.trim());
    return m ? Number(m[1]) * UNIT[m[2]!]! : NaN;
  };
  const pct = (p: string): number => {
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out);
    return m ? dur(m[1]!) : NaN;
  };
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const tr = /Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB)/.exec(out);
  return {
    rps,
    requests,
    p50us: pct('50'),
    p99us: pct('99'),
    errors: non2xx + (sock ? sock.slice(1).reduce((s, x) => s + Number(x), 0) : 0),
    bytesPerSec: tr ? Number(tr[1]) * SIZE[tr[2]!]! : NaN,
  };
}

export function runWrk(url: string, headers: Record<string, string>, threads: number, conns: number, durationS: number): Promise<WrkResult> {
  const args = [`-t${threads}`, `-c${conns}`, `-d${durationS}s`, '--latency', '--timeout', '10s'];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  args.push(url);
  return new Promise((resolve, reject) => {
    execFile('wrk', args, { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`wrk failed: ${err.message} ${stderr}`));
      const r = parseWrk(stdout);
      if (!Number.isFinite(r.rps)) return reject(new Error(`cannot read wrk's output:\n${stdout}`));
      resolve(r);
    });
  });
}

export interface HttpTest {
  id: 'small64' | 'large64' | 'small1';
  path: string;
  threads: number;
  conns: number;
}

export const HTTP_TESTS: HttpTest[] = [
  { id: 'small64', path: '/small', threads: 2, conns: 64 },
  { id: 'large64', path: '/large', threads: 2, conns: 64 },
  { id: 'small1', path: '/small', threads: 1, conns: 1 },
];

export interface HttpRun extends WrkResult {
  /** Proxy CPU time per request (µs); NaN for direct. */
  cpuUsPerReq: number;
}

/** Medians over rounds, per test and variant. */
export type HttpResults = Record<HttpTest['id'], Partial<Record<VariantName, HttpRun & { rounds: HttpRun[] }>>>;

async function measure(v: Variant, t: HttpTest, durationS: number): Promise<HttpRun> {
  const url = `http://${v.host}:${v.port}${v.prefix}${t.path}`;
  const pids = v.pids();
  const c0 = cpuSeconds(pids);
  const r = await runWrk(url, v.headers, t.threads, t.conns, durationS);
  const c1 = cpuSeconds(pids);
  return { ...r, cpuUsPerReq: pids.length ? ((c1 - c0) * 1e6) / r.requests : NaN };
}

export async function runHttp(variants: Variant[], rounds: number, durationS: number, log: (m: string) => void): Promise<HttpResults> {
  // Warm-up: JIT and connection pools, not recorded.
  for (const v of variants) {
    await measure(v, HTTP_TESTS[0]!, 2);
    await measure(v, HTTP_TESTS[2]!, 1);
  }
  const runs = new Map<string, HttpRun[]>();
  for (let r = 0; r < rounds; r++) {
    // Rotate the order each round, so no variant always runs right after the same neighbour.
    const order = variants.map((_, i) => variants[(i + r) % variants.length]!);
    for (const t of HTTP_TESTS) {
      for (const v of order) {
        const m = await measure(v, t, durationS);
        const key = `${t.id}/${v.name}`;
        runs.set(key, [...(runs.get(key) ?? []), m]);
        log(
          `http round ${r + 1}/${rounds} ${t.id.padEnd(8)} ${v.name.padEnd(9)} ${m.rps.toFixed(0).padStart(7)} req/s  p50 ${fmtUs(m.p50us)}  p99 ${fmtUs(m.p99us)}${Number.isFinite(m.cpuUsPerReq) ? `  cpu ${m.cpuUsPerReq.toFixed(0)} µs/req` : ''}${m.errors ? `  errors ${m.errors}` : ''}`,
        );
      }
    }
  }
  const out = {} as HttpResults;
  for (const t of HTTP_TESTS) {
    out[t.id] = {};
    for (const v of variants) {
      const rs = runs.get(`${t.id}/${v.name}`) ?? [];
      out[t.id][v.name] = {
        rps: median(rs.map((x) => x.rps)),
        requests: median(rs.map((x) => x.requests)),
        p50us: median(rs.map((x) => x.p50us)),
        p99us: median(rs.map((x) => x.p99us)),
        errors: rs.reduce((s, x) => s + x.errors, 0),
        bytesPerSec: median(rs.map((x) => x.bytesPerSec)),
        cpuUsPerReq: median(rs.map((x) => x.cpuUsPerReq)),
        rounds: rs,
      };
    }
  }
  return out;
}

export function fmtUs(us: number): string {
  if (!Number.isFinite(us)) return '–';
  return us >= 10_000 ? `${(us / 1000).toFixed(1)} ms` : us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(0)} µs`;
}
