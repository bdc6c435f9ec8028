// Claims per second at the entry: browsers' first visits (`GET /<app>/`, no cookie) against ready
// pools of the static runtime (no containers: the entry itself is what is measured), each claim then
// used once as a browser does (its deep link, relayed to the benchmark's backend), from two load
// processes (bench/claims-client.ts). Visitors arrive through a trusted front proxy (X-Forwarded-For)
// from many addresses, each within queue.unusedClaimsPerAddress, so the per-address bookkeeping runs as
// it does for real visitors; the app's claim rate is lifted (its default, 5/s, is a class's pace, not
// the entry's). Two runtimes, alternating over rounds: markClaimed instant, and slow (the engine write
// of a claim must stay off the visitor's path). Beside them, in the same rounds, the floor: a bare Node
// program doing the same wire work with none of warmpool's decisions (bench/bare-claims-server.ts), so
// the table says what a Node process on this machine can do at all.

import { join } from 'node:path';
import { DIST, startRelayBackend } from './backends.js';
import type { ClaimsRun, ClaimsWork } from './claims-client.js';
import { memApp } from './memory.js';
import { cpuSeconds, nextJson, startChild, type Child } from './procs.js';
import { median, percentile } from './stats.js';
import { control, startWarmpoolServer, waitPoolReady, WORK, type WarmpoolServer } from './variants.js';

const CLIENT_PROCESSES = 2;
const CONNECTIONS = 32;
/** Ready instances per app: pool.warm's largest value. */
const WARM = 1000;
const APPS = 4;
const PER_ADDRESS = 10;
const SLOW_MARK_MS = 200;
/**
 * Ports the backend listens on, instances spread over them round robin: a port of its own for every
 * instance in use at once, as real instances have. On one shared port, each claim's instance took the
 * port from the previous one, and the proxy closed that one's kept-alive connections (it never reuses a
 * connection across instances): a connect and a close per claim that no real pool makes.
 */
const BACKEND_PORTS = 256;

export interface ClaimsVariant {
  name: string;
  /** The bare Node floor (bench/bare-claims-server.ts), not warmpool. */
  floor?: boolean;
  markClaimedMs: number;
  /** warmpool with its admin surface on (the fleet monitor follows every change). */
  admin?: boolean;
  claimsPerSec: number;
  entryP50us: number;
  entryP99us: number;
  useP50us: number;
  useP99us: number;
  cpuUsPerClaim: number;
  /** CPU of the load processes and of the backend per claim: with the proxy's, what one claim costs this machine. */
  loadCpuUsPerClaim: number;
  backendCpuUsPerClaim: number;
  /** Entries not answered with a claim (all rounds), and their statuses. */
  notClaimed: number;
  statuses?: Record<string, number>;
  errors: string[];
  rounds: { claimsPerSec: number; entryP99us: number; cpuUsPerClaim: number }[];
}

export interface ClaimsResults {
  apps: number;
  warm: number;
  connections: number;
  clients: number;
  addresses: number;
  perAddress: number;
  slowMarkMs: number;
  /** What this benchmark sets beyond the defaults, in words. */
  lifted: string[];
  variants: ClaimsVariant[];
}

function config(tag: string, admin: boolean): Record<string, unknown> {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    // The admin surface as a deployment with a dashboard has it (made-up token, as examples/demo.yaml does).
    ...(admin ? { admin: { generateToken: true, port: 0 } } : {}),
    deployment: `bench-${tag}`,
    stateDir: join(WORK, `state-${tag}`),
    trustedProxies: ['127.0.0.1'],
    queue: { claimRate: { perSecond: 100_000, burst: 100_000 } },
    apps: Array.from({ length: APPS }, (_, i) => memApp(`c${i}`, WARM)),
  };
}

async function allReady(wp: WarmpoolServer): Promise<void> {
  for (let i = 0; i < APPS; i++) await waitPoolReady(wp.control, WARM, 300_000, `c${i}`);
}

/** What a round sends its visits to: a warmpool, or the bare floor. */
interface Target {
  pid: number;
  port: number;
  /** After a round: every session ended and every pool full again (nothing for the floor). */
  reset(): Promise<void>;
}

/** One round: every ready instance of every app claimed once, from addresses offset by `round` (fresh visitors). */
async function round(target: Target, clients: Child[], backend: Child, r: number): Promise<{ run: ClaimsRun; cpuS: number; loadS: number; backendS: number }> {
  const total = APPS * WARM;
  const visits = Array.from({ length: total }, (_, i) => {
    const a = r * (total / PER_ADDRESS) + Math.floor(i / PER_ADDRESS);
    return { app: `c${i % APPS}`, address: `127.${10 + (a >> 16)}.${(a >> 8) & 255}.${a & 255}` };
  });
  const cpu0 = cpuSeconds([target.pid]);
  const load0 = cpuSeconds(clients.map((c) => c.pid));
  const backend0 = cpuSeconds([backend.pid]);
  const outs = clients.map((c, k) => {
    const w: ClaimsWork = { port: target.port, connections: CONNECTIONS / clients.length, visits: visits.filter((_, i) => i % clients.length === k) };
    const res = nextJson<ClaimsRun>(c, 'RESULT ', 300_000);
    c.proc.stdin!.write(`RUN ${JSON.stringify(w)}\n`);
    return res;
  });
  const runs = await Promise.all(outs);
  const cpuS = cpuSeconds([target.pid]) - cpu0;
  const loadS = cpuSeconds(clients.map((c) => c.pid)) - load0;
  const backendS = cpuSeconds([backend.pid]) - backend0;
  const statuses: Record<string, number> = {};
  for (const x of runs) for (const [k, v] of Object.entries(x.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
  return {
    run: {
      startMs: Math.min(...runs.map((x) => x.startMs)),
      endMs: Math.max(...runs.map((x) => x.endMs)),
      claimed: runs.reduce((s, x) => s + x.claimed, 0),
      statuses,
      errors: [...new Set(runs.flatMap((x) => x.errors))],
      entryUs: runs.flatMap((x) => x.entryUs),
      useUs: runs.flatMap((x) => x.useUs),
    },
    cpuS,
    loadS,
    backendS,
  };
}

export async function runClaims(o: { rounds: number; log: (m: string) => void }): Promise<ClaimsResults> {
  const backend = await startRelayBackend(BACKEND_PORTS);
  const clients = await Promise.all(
    Array.from({ length: CLIENT_PROCESSES }, (_, i) => startChild(`claims-client-${i}`, process.execPath, [join(DIST, 'bench/claims-client.js')])),
  );
  const defs = [
    { name: 'static runtime', markClaimedMs: 0 },
    { name: `static runtime, engine write ${SLOW_MARK_MS} ms`, markClaimedMs: SLOW_MARK_MS },
    { name: 'static runtime, admin surface on', markClaimedMs: 0, admin: true },
    { name: 'floor: bare Node, same wire work', markClaimedMs: 0, floor: true },
  ];
  const servers: WarmpoolServer[] = [];
  let bare: Child | undefined;
  try {
    for (const [i, d] of defs.entries())
      if (!d.floor)
        servers.push(
          await startWarmpoolServer(
            `claims-${i}`,
            config(`claims-${i}`, d.admin === true),
            backend.ports.map((port) => ({ host: backend.host, port })),
            [],
            d.markClaimedMs,
          ),
        );
    const apps = Array.from({ length: APPS }, (_, i) => `c${i}`);
    bare = await startChild('bare-claims', process.execPath, [
      join(DIST, 'bench/bare-claims-server.js'),
      JSON.stringify({ host: backend.host, ports: backend.ports, apps, deepLink: '/open?path=webapp.jl' }),
    ]);
    const targets: Target[] = [
      ...servers.map((wp) => ({
        pid: wp.child.pid,
        port: wp.port,
        reset: async () => {
          await control(wp.control, '/end-all', 'POST');
          await allReady(wp);
        },
      })),
      { pid: bare.pid, port: bare.info.port as number, reset: async () => undefined },
    ];
    for (const wp of servers) await allReady(wp);
    o.log(`claims: ${APPS} apps × ${WARM} ready in each of ${servers.length} warmpools, and the bare Node floor`);
    const acc = defs.map(() => ({ runs: [] as ClaimsRun[], cpu: [] as number[], load: [] as number[], backend: [] as number[] }));
    // Round 0 warms the JIT of every server and of the clients; it is not counted. Rounds rotate the order.
    for (let r = 0; r <= o.rounds; r++) {
      const order = defs.map((_, i) => (i + r) % defs.length);
      for (const k of order) {
        const target = targets[k]!;
        const { run, cpuS, loadS, backendS } = await round(target, clients, backend.child, r);
        const secs = (run.endMs - run.startMs) / 1000;
        o.log(
          `claims ${r === 0 ? 'warm-up' : `round ${r}/${o.rounds}`} ${defs[k]!.name}: ${run.claimed} claimed in ${secs.toFixed(2)} s = ${Math.round(run.claimed / secs)}/s; entry p50 ${(percentile(run.entryUs, 50) / 1000).toFixed(2)} ms p99 ${(percentile(run.entryUs, 99) / 1000).toFixed(2)} ms; first use p99 ${(percentile(run.useUs, 99) / 1000).toFixed(2)} ms; proxy CPU ${((cpuS * 1e6) / Math.max(1, run.claimed)).toFixed(0)} µs/claim${Object.keys(run.statuses).length ? `; not claimed ${JSON.stringify(run.statuses)}` : ''}${run.errors.length ? `; errors ${run.errors.join('; ')}` : ''}`,
        );
        if (r > 0) {
          acc[k]!.runs.push(run);
          acc[k]!.cpu.push(cpuS);
          acc[k]!.load.push(loadS);
          acc[k]!.backend.push(backendS);
        }
        await target.reset();
      }
    }
    const variants = defs.map((d, k): ClaimsVariant => {
      const { runs, cpu, load, backend: back } = acc[k]!;
      const rounds = runs.map((run, i) => ({
        claimsPerSec: run.claimed / ((run.endMs - run.startMs) / 1000),
        entryP99us: percentile(run.entryUs, 99),
        cpuUsPerClaim: (cpu[i]! * 1e6) / Math.max(1, run.claimed),
      }));
      const statuses: Record<string, number> = {};
      for (const x of runs) for (const [s, v] of Object.entries(x.statuses)) statuses[s] = (statuses[s] ?? 0) + v;
      const notClaimed = Object.values(statuses).reduce((a, b) => a + b, 0);
      return {
        ...d,
        claimsPerSec: median(rounds.map((x) => x.claimsPerSec)),
        entryP50us: median(runs.map((x) => percentile(x.entryUs, 50))),
        entryP99us: median(rounds.map((x) => x.entryP99us)),
        useP50us: median(runs.map((x) => percentile(x.useUs, 50))),
        useP99us: median(runs.map((x) => percentile(x.useUs, 99))),
        cpuUsPerClaim: median(rounds.map((x) => x.cpuUsPerClaim)),
        loadCpuUsPerClaim: median(runs.map((run, i) => (load[i]! * 1e6) / Math.max(1, run.claimed))),
        backendCpuUsPerClaim: median(runs.map((run, i) => (back[i]! * 1e6) / Math.max(1, run.claimed))),
        notClaimed,
        ...(notClaimed ? { statuses } : {}),
        errors: [...new Set(runs.flatMap((x) => x.errors))].slice(0, 5),
        rounds,
      };
    });
    return {
      apps: APPS,
      warm: WARM,
      connections: CONNECTIONS,
      clients: CLIENT_PROCESSES,
      addresses: (APPS * WARM) / PER_ADDRESS,
      perAddress: PER_ADDRESS,
      slowMarkMs: SLOW_MARK_MS,
      lifted: ['queue.claimRate (100,000/s, burst 100,000: the default 5/s paces one class, not the entry)'],
      variants,
    };
  } finally {
    for (const wp of servers) await wp.child.stop('SIGTERM');
    await bare?.stop();
    await Promise.all(clients.map((c) => c.stop()));
    await backend.child.stop();
  }
}
