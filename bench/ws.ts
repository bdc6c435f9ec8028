// WebSocket relay overhead: echo of small Pluto messages (messages/s, round trip p50/p99) and of
// 64 KiB binary messages (MB/s), through each variant. The load comes from separate generator
// processes (bench/ws-client.ts); the proxy's CPU per message is read from /proc.

import { join } from 'node:path';
import { DIST } from './backends.js';
import { cpuSeconds, nextJson, sleep, startChild, type Child } from './procs.js';
import { Histogram, median } from './stats.js';
import type { Variant, VariantName } from './variants.js';

export interface WsTest {
  id: 'small' | 'large';
  size: number;
  payload: 'pluto' | 'random';
  /** Connections per generator process. */
  conns: number;
  window: number;
}

export const WS_TESTS: WsTest[] = [
  { id: 'small', size: 200, payload: 'pluto', conns: 32, window: 1 },
  { id: 'large', size: 64 * 1024, payload: 'random', conns: 4, window: 4 },
];

const PROCESSES = 2;

export interface WsRun {
  msgsPerSec: number;
  mbPerSec: number;
  p50us: number;
  p99us: number;
  errors: number;
  cpuUsPerMsg: number;
}

export type WsResults = Record<WsTest['id'], Partial<Record<VariantName, WsRun & { rounds: WsRun[] }>>>;

async function measure(v: Variant, t: WsTest, warmupS: number, durationS: number): Promise<WsRun> {
  const args = {
    host: v.host,
    port: v.port,
    path: `${v.prefix}/`,
    headers: v.headers,
    conns: t.conns,
    size: t.size,
    window: t.window,
    warmupS,
    durationS,
    payload: t.payload,
  };
  const gens: Child[] = await Promise.all(
    Array.from({ length: PROCESSES }, (_, i) =>
      startChild(`ws-client-${i}`, process.execPath, [join(DIST, 'bench/ws-client.js'), JSON.stringify(args)], { readyMarker: 'CONNECTED', timeoutMs: 30_000 }),
    ),
  );
  const results = gens.map((g) =>
    nextJson<{ msgs: number; bytes: number; hist: [number, number][]; errors: number }>(g, 'RESULT ', (warmupS + durationS) * 1000 + 30_000),
  );
  for (const g of gens) g.proc.stdin!.write('GO\n');
  const pids = v.pids();
  await sleep(warmupS * 1000);
  const c0 = cpuSeconds(pids);
  await sleep(durationS * 1000);
  const c1 = cpuSeconds(pids);
  const rs = await Promise.all(results);
  await Promise.all(gens.map((g) => g.stop()));
  const hist = new Histogram();
  let msgs = 0,
    bytes = 0,
    errors = 0;
  for (const r of rs) {
    hist.merge(r.hist);
    msgs += r.msgs;
    bytes += r.bytes;
    errors += r.errors;
  }
  return {
    msgsPerSec: msgs / durationS,
    mbPerSec: bytes / durationS / 1e6,
    p50us: hist.percentile(50),
    p99us: hist.percentile(99),
    errors,
    cpuUsPerMsg: pids.length ? ((c1 - c0) * 1e6) / msgs : NaN,
  };
}

export async function runWs(variants: Variant[], rounds: number, durationS: number, log: (m: string) => void): Promise<WsResults> {
  for (const v of variants) for (const t of WS_TESTS) await measure(v, t, 1, 1); // warm-up
  const runs = new Map<string, WsRun[]>();
  for (let r = 0; r < rounds; r++) {
    const order = variants.map((_, i) => variants[(i + r) % variants.length]!);
    for (const t of WS_TESTS) {
      for (const v of order) {
        const m = await measure(v, t, 1, durationS);
        const key = `${t.id}/${v.name}`;
        runs.set(key, [...(runs.get(key) ?? []), m]);
        log(
          `ws   round ${r + 1}/${rounds} ${t.id.padEnd(8)} ${v.name.padEnd(9)} ${m.msgsPerSec.toFixed(0).padStart(7)} msg/s ${m.mbPerSec.toFixed(1).padStart(7)} MB/s  p50 ${m.p50us} µs  p99 ${m.p99us} µs${Number.isFinite(m.cpuUsPerMsg) ? `  cpu ${m.cpuUsPerMsg.toFixed(1)} µs/msg` : ''}${m.errors ? `  errors ${m.errors}` : ''}`,
        );
      }
    }
  }
  const out = {} as WsResults;
  for (const t of WS_TESTS) {
    out[t.id] = {};
    for (const v of variants) {
      const rs = runs.get(`${t.id}/${v.name}`) ?? [];
      out[t.id][v.name] = {
        msgsPerSec: median(rs.map((x) => x.msgsPerSec)),
        mbPerSec: median(rs.map((x) => x.mbPerSec)),
        p50us: median(rs.map((x) => x.p50us)),
        p99us: median(rs.map((x) => x.p99us)),
        errors: rs.reduce((s, x) => s + x.errors, 0),
        cpuUsPerMsg: median(rs.map((x) => x.cpuUsPerMsg)),
        rounds: rs,
      };
    }
  }
  return out;
}
