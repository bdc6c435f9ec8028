// Diagnostic (not part of `npm run bench`): the WebSocket echo of bench/ws.ts (with --http: the wrk runs of
// bench/http.ts) with warmpool started under several node flag sets in the SAME interleaved rounds beside
// nginx and configurable-http-proxy, so the cost of a flag is a ratio measured side by side rather than
// across runs on a noisy 2-core machine.
//
//   node dist/bench/flags-compare.js [--http] [--rounds 3] [--duration 5] [--flags '' --flags '--max-semi-space-size=4' ...]
//   (each --flags comes after the deployment flags and wins over them; '' = as deployed; --http: bench/http.ts's wrk runs instead)

import { startRelayBackend } from './backends.js';
import { stopAll } from './procs.js';
import { ensureChp, startVariant, type Variant, type VariantName } from './variants.js';
import { runHttp, wrkMissing } from './http.js';
import { runWs } from './ws.js';

const argv = process.argv.slice(2);
const sets: string[] = [];
let rounds = 3;
let duration = 5;
let http = false;
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--flags') sets.push(argv[++i] ?? '');
  else if (argv[i] === '--rounds') rounds = Number(argv[++i]);
  else if (argv[i] === '--duration') duration = Number(argv[++i]);
  else if (argv[i] === '--http') http = true;
}
if (sets.length === 0) sets.push('');
const log = (m: string): void => console.log(`[flags-compare] ${m}`);
const hold = setInterval(() => undefined, 1 << 30);
try {
  ensureChp(log);
  const backend = await startRelayBackend();
  const variants: Variant[] = [];
  for (const n of ['direct', 'nginx', 'chp'] as VariantName[]) variants.push(await startVariant(n, backend, log));
  for (const flags of sets) {
    // startVariant('warmpool') reads the experiment flags from the environment when it starts the process.
    process.env.BENCH_WARMPOOL_NODE_ARGS = flags;
    const v = await startVariant('warmpool', backend, log);
    variants.push({ ...v, name: `warmpool ${flags || '(deployed)'}` as VariantName });
  }
  delete process.env.BENCH_WARMPOOL_NODE_ARGS;
  if (http) {
    const why = wrkMissing();
    if (why) throw new Error(why);
    const r = await runHttp(variants, rounds, duration, log);
    for (const id of ['small64', 'large64', 'small1'] as const) {
      const nginx = r[id].nginx!.rps;
      const chp = r[id].chp!.rps;
      console.log(`\n${id}\n| variant | requests/s | × nginx | × CHP | p50 | proxy CPU / request | rounds (req/s) |\n|---|---:|---:|---:|---:|---:|---|`);
      for (const v of variants) {
        const x = r[id][v.name]!;
        console.log(
          `| ${v.name} | ${x.rps.toFixed(0)} | ${(x.rps / nginx).toFixed(2)}× | ${(x.rps / chp).toFixed(2)}× | ${x.p50us.toFixed(0)} µs | ${Number.isFinite(x.cpuUsPerReq) ? `${x.cpuUsPerReq.toFixed(0)} µs` : '–'} | ${x.rounds.map((y) => y.rps.toFixed(0)).join(', ')} |`,
        );
      }
    }
  } else {
    const r = await runWs(variants, rounds, duration, log);
    const nginx = r.small.nginx!.msgsPerSec;
    const chp = r.small.chp!.msgsPerSec;
    console.log('| variant | small msgs/s | × nginx | × CHP | proxy CPU / round trip | 64 KiB MB/s | rounds (msgs/s) |');
    console.log('|---|---:|---:|---:|---:|---:|---|');
    for (const v of variants) {
      const s = r.small[v.name]!;
      const l = r.large[v.name]!;
      console.log(
        `| ${v.name} | ${s.msgsPerSec.toFixed(0)} | ${(s.msgsPerSec / nginx).toFixed(2)}× | ${(s.msgsPerSec / chp).toFixed(2)}× | ${Number.isFinite(s.cpuUsPerMsg) ? `${s.cpuUsPerMsg.toFixed(1)} µs` : '–'} | ${l.mbPerSec.toFixed(1)} | ${s.rounds.map((x) => x.msgsPerSec.toFixed(0)).join(', ')} (cpu ${s.rounds.map((x) => x.cpuUsPerMsg.toFixed(1)).join(', ')}) |`,
      );
    }
  }
} finally {
  await stopAll();
  clearInterval(hold);
}
