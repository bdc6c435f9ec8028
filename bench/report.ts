// Turns bench/results.json into the tables of bench/RESULTS.md. Only the part between the markers
// is generated; the hand-written analysis after it is kept as it is on every run.

import { availableParallelism } from 'node:os';
import { ARRIVALS, type Arrival, type BurstSizeResult, type Summary } from './burst.js';
import type { ClaimsResults } from './claims.js';
import type { HttpResults } from './http.js';
import type { MemoryResults } from './memory.js';
import type { PoolResults } from './pool.js';
import type { WsResults } from './ws.js';
import { median, ratio } from './stats.js';
import type { VariantName } from './variants.js';

export interface Section<T> {
  at: string;
  rounds?: number;
  durationS?: number;
  data: T;
}
export interface Results {
  meta: Record<string, unknown>;
  sections: {
    http?: Section<HttpResults>;
    ws?: Section<WsResults>;
    burst?: Section<BurstData>;
    claims?: Section<ClaimsResults>;
    pool?: Section<PoolResults>;
    memory?: Section<MemoryResults>;
  };
  /** Runs with extra node flags for warmpool (--warmpool-node-args), keyed by the flags. */
  experiments?: Record<string, Results['sections']>;
}

const BEGIN = '<!-- BEGIN GENERATED (npm run bench rewrites this part; edit below the END marker) -->';
const END = '<!-- END GENERATED -->';
const NAMES: Record<VariantName, string> = {
  direct: 'direct',
  nginx: 'nginx',
  chp: 'configurable-http-proxy',
  'node-pipe': '_Node TCP pipe (reference: no HTTP)_',
  warmpool: 'warmpool',
};

const n0 = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');
const n1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '–');
const x2 = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(2)}×` : '–');
const us = (x: number): string => (!Number.isFinite(x) ? '–' : x >= 1000 ? `${(x / 1000).toFixed(2)} ms` : `${Math.round(x)} µs`);
const ms = (x: number): string => (Number.isFinite(x) ? `${Math.round(x).toLocaleString('en-US')} ms` : '–');
const mib = (b: number): string => (Number.isFinite(b) ? `${(b / 2 ** 20).toFixed(1)} MiB` : '–');
const kib = (b: number): string => (Number.isFinite(b) ? `${(b / 1024).toFixed(1)} KiB` : '–');
const when = (s?: Section<unknown>): string =>
  s
    ? ` _(measured ${s.at.replace('T', ' ').slice(0, 16)} UTC${s.rounds ? `, ${s.rounds} rounds` : ''}${s.durationS ? ` of ${s.durationS} s` : ''}; medians)_`
    : '';

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map((h, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

type Goal = [string, string, boolean | undefined];

function httpPart(s: Section<HttpResults>, goals: Goal[]): string {
  const d = s.data;
  const out: string[] = [
    `## 1. HTTP relay${when(s)}`,
    '',
    "wrk on the same machine; Node backend answering 1 KiB or 256 KiB. Proxy CPU is user+system time of the proxy's processes per request (from /proc).",
    '',
  ];
  const variants = Object.keys(d.small64) as VariantName[];
  const direct = d.small64.direct;
  for (const [id, title] of [
    ['small64', '1 KiB responses, wrk -t2 -c64'],
    ['large64', '256 KiB responses, wrk -t2 -c64'],
    ['small1', '1 KiB responses, one connection (wrk -t1 -c1)'],
  ] as const) {
    const t = d[id];
    const dir = t.direct!;
    out.push(`**${title}**`, '');
    out.push(
      table(
        ['variant', 'requests/s', '× direct', 'p50', 'p99', id === 'small1' ? 'added p50' : 'p50 × direct', 'proxy CPU / request', 'errors'],
        variants.map((v) => {
          const r = t[v]!;
          return [
            NAMES[v],
            n0(r.rps),
            x2(ratio(r.rps, dir.rps)),
            us(r.p50us),
            us(r.p99us),
            id === 'small1' ? (v === 'direct' ? '–' : `+${us(r.p50us - dir.p50us)}`) : x2(ratio(r.p50us, dir.p50us)),
            v === 'direct' ? '–' : us(r.cpuUsPerReq),
            String(r.errors),
          ];
        }),
      ),
    );
    out.push('');
  }
  const w = d.small64.warmpool,
    c = d.small64.chp,
    g = d.small64.nginx;
  if (w && c)
    goals.push(['HTTP small requests/s ≥ 2.5× configurable-http-proxy', `${x2(w.rps / c.rps)} (${n0(w.rps)} vs ${n0(c.rps)}/s)`, w.rps >= 2.5 * c.rps]);
  if (w && g) goals.push(['HTTP small requests/s ≥ 0.5× nginx', `${x2(w.rps / g.rps)} (${n0(w.rps)} vs ${n0(g.rps)}/s)`, w.rps >= 0.5 * g.rps]);
  const w1 = d.small1.warmpool,
    d1 = d.small1.direct;
  if (w1 && d1) goals.push(['HTTP added p50 at one connection < 100 µs', `+${us(w1.p50us - d1.p50us)}`, w1.p50us - d1.p50us < 100]);
  const wl = d.large64.warmpool,
    cl = d.large64.chp;
  if (wl && cl)
    goals.push(['HTTP large requests/s ≥ 2.5× configurable-http-proxy', `${x2(wl.rps / cl.rps)} (${n0(wl.rps)} vs ${n0(cl.rps)}/s)`, wl.rps >= 2.5 * cl.rps]);
  void direct;
  return out.join('\n');
}

function wsPart(s: Section<WsResults>, goals: Goal[]): string {
  const d = s.data;
  const variants = Object.keys(d.small) as VariantName[];
  const out: string[] = [
    `## 2. WebSocket relay${when(s)}`,
    '',
    "Echo through each variant from two generator processes. Small: 200-byte Pluto `update_notebook` messages (a slider move, so warmpool's `pluto` classifier parses every one), 64 connections, one message in flight each. Large: 64 KiB binary messages, 8 connections, 4 in flight each. A message is one round trip (client → backend → client); proxy CPU per round trip.",
    '',
  ];
  const ds = d.small.direct!,
    dl = d.large.direct!;
  out.push(
    table(
      ['variant', 'small msgs/s', '× direct', 'RTT p50', 'RTT p99', 'proxy CPU / msg', '64 KiB MB/s', '× direct', 'errors'],
      variants.map((v) => {
        const a = d.small[v]!,
          b = d.large[v]!;
        return [
          NAMES[v],
          n0(a.msgsPerSec),
          x2(ratio(a.msgsPerSec, ds.msgsPerSec)),
          us(a.p50us),
          us(a.p99us),
          v === 'direct' ? '–' : us(a.cpuUsPerMsg),
          n1(b.mbPerSec),
          x2(ratio(b.mbPerSec, dl.mbPerSec)),
          String(a.errors + b.errors),
        ];
      }),
    ),
  );
  const w = d.small.warmpool,
    g = d.small.nginx,
    c = d.small.chp;
  if (w && g)
    goals.push([
      'WebSocket msgs/s ≥ 0.9× nginx (classifier on)',
      `${x2(w.msgsPerSec / g.msgsPerSec)} (${n0(w.msgsPerSec)} vs ${n0(g.msgsPerSec)}/s)`,
      w.msgsPerSec >= 0.9 * g.msgsPerSec,
    ]);
  if (w && c)
    goals.push([
      'WebSocket msgs/s never below configurable-http-proxy',
      `${x2(w.msgsPerSec / c.msgsPerSec)} (${n0(w.msgsPerSec)} vs ${n0(c.msgsPerSec)}/s)`,
      w.msgsPerSec >= c.msgsPerSec,
    ]);
  return out.join('\n') + '\n';
}

type BurstData = Record<string, BurstSizeResult | { n: number; skipped: string }>;
const ARRIVAL_NAME: Record<Arrival, string> = { spread: 'spread over 1 s', instant: 'all at one instant' };
/** p99 ≤ this × the floor, by class size (issue 10). */
const FLOOR_GOAL = (n: number): number => (n <= 50 ? 1.3 : 2);
const EMPTY_GOAL = 1.2;

function burstPart(s: Section<BurstData>, goals: Goal[]): string {
  const out: string[] = [
    `## 3. Classroom burst (Docker runtime)${when(s)}`,
    '',
    "N students from one address (127.0.0.1: a class behind one NAT) arrive spread evenly over 1 s, or all at the same instant; each: entry → deep link → editor page → WebSocket → `connect` + empty `update_notebook` → full state (200 kB) received. A student who meets the waiting page does what its script does: opens the page's event stream, and on `ready` follows the one-time collect URL (phases *line* and *collect*). Two student processes, warmed up. **Floor**: the same students sent straight to N already-assigned instances (port per student, no proxy, no entry step), same arrival, same run. **Floor through a bare Node pipe**: the floor's students, each through a Node process that only pipes bytes to its instance (\`bench/tcp-pipe.ts\`, a port per instance): one more process and two more loopback hops, the least any relay written in Node adds. **warmpool**: through the proxy, claiming from a warm pool of N (max N: no refill during the burst). **Empty pool**: warm 0, max N; its reference is **the pool's own time**: warmpool started with warm N from nothing until N are ready, measured in the same round. **Burn**: warm N, max 2N, each refilled stand-in spends `BURN_CPU_MS` of CPU executing before it is ready, with and without `warming.cpuShares`. Queue settings are the defaults (a browser's entry held for `queue.pageHold`, 2 s, before the waiting page) unless the heading names one: a class larger than the default `claimRate.burst` (60) needs it raised to the class size. Percentiles are over the students of one burst, then the median over rounds.",
    '',
  ];
  const summary: string[][] = [];
  for (const r of Object.values(s.data)) {
    if ('skipped' in r && r.skipped) {
      out.push(`**N = ${r.n}**: skipped (${r.skipped})`, '');
      continue;
    }
    const b = r as BurstSizeResult;
    if (!b.warmpool || !('queue' in b)) {
      out.push(`**N = ${b.n}**: measured by an older benchmark; run \`npm run bench -- --only burst\` again`, '');
      continue;
    }
    const fill = b.poolFillMs?.length ? median(b.poolFillMs) : NaN;
    const ph = (rec: Record<string, number> | undefined): string =>
      rec
        ? ['entry', 'line', 'collect', 'deepLink', 'editor', 'wsOpen', 'state'].map((k) => (rec[k] === undefined ? '–' : Math.round(rec[k]!))).join(' / ')
        : '–';
    const row = (name: string, x: Summary | undefined, ref: number, refName: string): string[] =>
      x
        ? [
            name,
            ms(x.p50ms),
            ms(x.p99ms),
            ms(x.maxms),
            `${x2(ratio(x.p99ms, ref))} ${refName}`.trim(),
            n0(x.inLine),
            `${x.errors}${x.errors ? ` (${x.errorMessages.join('; ')})` : ''}`,
            ph(x.phases),
            ph(x.phasesP99),
            x.cpu ? `${x.cpu.machine.toFixed(2)} / ${x.cpu.proxy.toFixed(2)} / ${x.cpu.engine.toFixed(2)}` : '–',
          ]
        : [name, '–', '–', '–', '–', '–', '–', '–', '–', '–'];
    const rows: string[][] = [];
    for (const a of ARRIVALS) {
      const f = b.floor[a];
      if (!f && !b.warmpool[a]) continue;
      rows.push(row(`floor, ${ARRIVAL_NAME[a]}`, f, f?.p99ms ?? NaN, ''));
      if (b.pipe?.[a]) rows.push(row(`floor through a bare Node pipe, ${ARRIVAL_NAME[a]}`, b.pipe[a], f?.p99ms ?? NaN, 'floor'));
      rows.push(row(`**warmpool**, ${ARRIVAL_NAME[a]}`, b.warmpool[a], f?.p99ms ?? NaN, 'floor'));
    }
    for (const a of ARRIVALS) if (b.empty?.[a]) rows.push(row(`empty pool, ${ARRIVAL_NAME[a]}`, b.empty[a], fill, "pool's own"));
    if (b.burn) {
      const ref = b.floor.spread?.p99ms ?? NaN;
      rows.push(row(`burn ${b.burn.burnCpuMs} ms, one CPU weight`, b.burn.unweighted, ref, 'floor'));
      rows.push(row(`burn ${b.burn.burnCpuMs} ms, warming.cpuShares ${b.burn.cpuShares}`, b.burn.weighted, ref, 'floor'));
    }
    const queue = Object.keys(b.queue).length ? `operator settings beyond the defaults: queue ${JSON.stringify(b.queue)}` : 'queue: defaults';
    out.push(
      `**N = ${b.n}** (${queue}; pool filled in ${ms(b.initialFillMs)}; the pool's own time to ${b.n} ready from cold ${b.poolFillMs?.length ? b.poolFillMs.map((x) => (x / 1000).toFixed(1)).join(', ') + ' s' : '–'}; back to ${b.n} ready after a burst in ${b.refillMs.length ? `${b.refillMs.map((x) => (x / 1000).toFixed(1)).join(', ')} s` : '–'})`,
      '',
    );
    out.push(
      table(
        [
          '',
          'p50',
          'p99',
          'max',
          'p99 ×',
          'in line',
          'errors',
          'phases, median ms: entry / line / collect / deep link / editor / ws open / state',
          'phases, p99 ms',
          'CPU s during the burst: machine / proxy (or pipe) / dockerd+containerd',
        ],
        rows,
      ),
    );
    out.push('');
    const goal = FLOOR_GOAL(b.n);
    const cell = (x: Summary | undefined, ref: number): string => (x ? `${ms(x.p99ms)} (${x2(ratio(x.p99ms, ref))})` : '–');
    if (Object.keys(b.floor).length || Object.keys(b.warmpool).length || b.empty)
      summary.push([
        String(b.n),
        ms(b.floor.spread?.p99ms ?? NaN),
        cell(b.warmpool.spread, b.floor.spread?.p99ms ?? NaN),
        ms(b.floor.instant?.p99ms ?? NaN),
        cell(b.warmpool.instant, b.floor.instant?.p99ms ?? NaN),
        ms(fill),
        cell(b.empty?.instant, fill),
        cell(b.empty?.spread, fill),
      ]);
    const errors = [...Object.values(b.warmpool), ...Object.values(b.empty ?? {})].reduce((n, x) => n + x.errors, 0);
    goals.push([`Burst of ${b.n}: zero errors`, `${errors} errors`, errors === 0]);
    for (const a of ARRIVALS) {
      const w = b.warmpool[a],
        f = b.floor[a];
      if (!w || !f) continue;
      goals.push([
        `Burst of ${b.n}, ${ARRIVAL_NAME[a]}: p99 ≤ ${goal}× floor`,
        `${x2(w.p99ms / f.p99ms)} (${ms(w.p99ms)} vs ${ms(f.p99ms)})`,
        w.p99ms <= goal * f.p99ms,
      ]);
    }
    if (b.n === 50 && b.warmpool.spread) goals.push(['Burst of 50: p99 < 1 s', ms(b.warmpool.spread.p99ms), b.warmpool.spread.p99ms < 1000]);
    for (const a of ARRIVALS) {
      const e = b.empty?.[a];
      if (!e || !Number.isFinite(fill)) continue;
      goals.push([
        `Empty pool of ${b.n}, ${ARRIVAL_NAME[a]}: p99 ≤ ${EMPTY_GOAL}× the pool's own time to ${b.n} ready`,
        `${x2(e.p99ms / fill)} (${ms(e.p99ms)} vs ${ms(fill)})`,
        e.p99ms <= EMPTY_GOAL * fill,
      ]);
    }
  }
  if (summary.length) {
    out.splice(
      4,
      0,
      '**The three burst figures beside the floor** (p99, and × its reference):',
      '',
      table(
        [
          'N',
          'floor, spread',
          'warmpool, spread',
          'floor, one instant',
          'warmpool, one instant',
          "pool's own time to N ready",
          'empty pool, one instant',
          'empty pool, spread',
        ],
        summary,
      ),
      '',
    );
  }
  return out.join('\n');
}

/** CPUs of this machine (the bound on claims/s with the load generated on it). */
function cpus(): number {
  return availableParallelism();
}

function claimsPart(s: Section<ClaimsResults>, goals: Goal[]): string {
  const d = s.data;
  const floor = d.variants.find((v) => v.floor);
  const out: string[] = [
    `## 3b. Claims per second at the entry${when(s)}`,
    '',
    `\`GET /<app>/\` as a browser's first visit (no cookie) against ready pools of the static runtime (no containers), from ${n0(d.connections)} keep-alive connections in ${d.clients} load processes (closed loop: each connection sends its next visit when the last is answered), each claim then used once (its deep link relayed to the backend) as a student's browser does. Visitors come through a trusted front proxy (\`trustedProxies: [127.0.0.1]\`, X-Forwarded-For), ${n0(d.addresses)} addresses a round, ${d.perAddress} claims each (\`queue.unusedClaimsPerAddress\`, the default)${d.lifted.length ? `; lifted for this benchmark: ${d.lifted.join(', ')}` : ''}. ${d.apps} apps of ${n0(d.warm)} ready instances (\`pool.warm\` is at most 1,000), requests dealt round robin over them; a round claims every ready instance once, then all sessions end and the pools refill. **slow engine write**: the runtime's \`markClaimed\` (the claim recorded on the engine) takes ${n0(d.slowMarkMs)} ms; it must not show in the visitor's latency. **admin surface on**: as a deployment with a dashboard runs (\`admin.generateToken\`): the fleet monitor follows every change of the pools. **floor**: a bare Node program (\`bench/bare-claims-server.ts\`, one node:http listener) doing the same wire work in the same rounds with none of warmpool's decisions: a 302 with an HMAC-signed cookie, then the first use checked and relayed on a fresh connection to its instance. Claims/s = claims answered / wall time from the first request to the last answer; CPU from /proc. The load processes run on the same cores as the proxy: the last CPU column is the machine's own bound, cores ÷ (proxy + load + backend CPU per claim).`,
    '',
  ];
  out.push(
    table(
      [
        'runtime',
        'claims/s',
        '× floor',
        'entry p50',
        'entry p99',
        'first use p50',
        'first use p99',
        'proxy CPU / claim (both requests)',
        'load processes + backend CPU / claim',
        'claims/s the cores could carry at that CPU',
        'not claimed',
      ],
      d.variants.map((v) => [
        v.floor ? v.name : `**warmpool**, ${v.name}`,
        n0(v.claimsPerSec),
        floor ? `${(v.claimsPerSec / floor.claimsPerSec).toFixed(2)}×` : '–',
        us(v.entryP50us),
        us(v.entryP99us),
        us(v.useP50us),
        us(v.useP99us),
        us(v.cpuUsPerClaim),
        v.loadCpuUsPerClaim === undefined ? '–' : `${us(v.loadCpuUsPerClaim)} + ${us(v.backendCpuUsPerClaim)}`,
        v.loadCpuUsPerClaim === undefined ? '–' : n0((cpus() * 1e6) / (v.cpuUsPerClaim + v.loadCpuUsPerClaim + v.backendCpuUsPerClaim)),
        `${v.notClaimed}${v.statuses ? ` ${JSON.stringify(v.statuses)}` : ''}`,
      ]),
    ),
  );
  for (const v of d.variants.filter((x) => !x.floor))
    goals.push([
      `Claims at the entry ≥ 5,000/s with p99 < 5 ms (${v.name})`,
      `${n0(v.claimsPerSec)}/s, p99 ${us(v.entryP99us)}`,
      v.claimsPerSec >= 5000 && v.entryP99us < 5000,
    ]);
  return out.join('\n') + '\n';
}

function poolPart(s: Section<PoolResults>, goals: Goal[]): string {
  const d = s.data;
  const out: string[] = [`## 4. Pool mechanics${when(s)}`, '', 'Stand-in instances (STATE_BYTES 200000, readiness: the READY line), `parallel: 8`.', ''];
  out.push(
    table(
      ['runtime', 'instances', 'start → all ready', 'ready per second', 'all claimed at once → refilled'],
      d.fill.map((f) => [f.runtime, String(f.n), ms(f.fillMs), n1(f.readyPerSec), ms(f.refillMs)]),
    ),
  );
  if (d.reap) {
    const r = d.reap;
    out.push('', `Reaping ${r.sessions} sessions (process runtime, idle timeout ${r.idleTimeoutMs / 1000} s, claimed 20 ms apart, real timers):`, '');
    out.push(
      table(
        ['lateness (actual − deadline)', 'p50', 'p99', 'max'],
        [
          ['session ended', ms(r.endLate.p50), ms(r.endLate.p99), ms(r.endLate.max)],
          ['instance removed', ms(r.removedLate.p50), ms(r.removedLate.p99), ms(r.removedLate.max)],
        ],
      ),
    );
    goals.push(['Reap lateness < 1 s', `max ${ms(r.endLate.max)} (ended), ${ms(r.removedLate.max)} (removed)`, r.removedLate.max < 1000]);
  }
  if (d.skipped?.length) out.push('', `Skipped: ${d.skipped.join('; ')}`);
  return out.join('\n') + '\n';
}

function memoryPart(s: Section<MemoryResults>, goals: Goal[]): string {
  const d = s.data;
  const chp = d.rest.find((r) => r.proxy === 'configurable-http-proxy');
  const out: string[] = [`## 5. Memory${when(s)}`, '', 'RSS from /proc after a few seconds of settling.', ''];
  out.push(
    table(
      ['proxy at rest', 'RSS', '× configurable-http-proxy', 'V8 heap used'],
      d.rest.map((r) => [r.proxy, mib(r.rssBytes), chp ? x2(r.rssBytes / chp.rssBytes) : '–', r.heapUsedBytes ? mib(r.heapUsedBytes) : '–']),
    ),
  );
  out.push(
    '',
    "Idle Pluto tabs (separate processes; each loads the 200 kB state, then Pluto's own idle timers: ping 28 s after each pong, 18 `current_time` a minute), RSS sampled every second over the last 30 s of a 60 s idle window (median; the lowest sample beside it). For warmpool every tab is its own session on its own claimed instance (the instances are one stand-in process behind a static runtime), so the per-session figure includes the session's pool state. Per session = (RSS with sessions − RSS before) / sessions.",
    '',
  );
  out.push(
    table(
      ['proxy', 'sessions', 'RSS before', 'RSS with sessions (median)', 'lowest', 'peak while connecting', 'per session', 'V8 heap per session'],
      d.sessions.map((r) => [
        r.proxy,
        `${r.sessions}${r.failed ? ` (${r.failed} failed)` : ''}`,
        mib(r.rssBeforeBytes),
        mib(r.rssWithBytes),
        mib(r.rssIdleMinBytes),
        mib(r.rssPeakBytes),
        kib(r.perSessionBytes),
        r.heapUsedWithBytes !== undefined && r.heapUsedBeforeBytes !== undefined ? kib((r.heapUsedWithBytes - r.heapUsedBeforeBytes) / r.sessions) : '–',
      ]),
    ),
  );
  const w = d.sessions.find((r) => r.proxy === 'warmpool');
  if (w) goals.push(['< 20 KiB proxy RSS per idle WebSocket session', kib(w.perSessionBytes), w.perSessionBytes < 20 * 1024]);
  const wr = d.rest.find((r) => r.proxy.startsWith('warmpool (process'));
  const wd = d.rest.find((r) => r.proxy.startsWith('warmpool (docker'));
  if (wr && chp)
    goals.push([
      "Proxy RSS at rest below configurable-http-proxy's (process-runtime config)",
      `${mib(wr.rssBytes)} vs ${mib(chp.rssBytes)}`,
      wr.rssBytes < chp.rssBytes,
    ]);
  if (wd && chp) goals.push(['… and with a Docker app configured', `${mib(wd.rssBytes)} vs ${mib(chp.rssBytes)}`, wd.rssBytes < chp.rssBytes]);
  return out.join('\n') + '\n';
}

export function renderResults(r: Results, previous?: string): string {
  const goals: Goal[] = [];
  const parts: string[] = [];
  const s = r.sections;
  if (s.http) parts.push(httpPart(s.http, goals));
  if (s.ws) parts.push(wsPart(s.ws, goals));
  if (s.burst) parts.push(burstPart(s.burst, goals));
  if (s.claims) parts.push(claimsPart(s.claims, goals));
  if (s.pool) parts.push(poolPart(s.pool, goals));
  if (s.memory) parts.push(memoryPart(s.memory, goals));
  const m = r.meta;
  const head = [
    '# warmpool benchmarks',
    '',
    BEGIN,
    '',
    `Machine: ${m.machine ?? '?'}; Node ${m.node ?? '?'}; nginx ${m.nginx ?? '?'} (one worker); configurable-http-proxy ${m.chp ?? '?'}. Everything on 127.0.0.1; load generators in their own processes. Absolute numbers drift on a shared 2-core machine: read the ratios.`,
    ...(Array.isArray(m.notices) && m.notices.length ? ['', ...m.notices.map((x) => `> NOTICE: ${x}`)] : []),
    '',
    '## Goals',
    '',
    table(
      ['goal', 'measured', 'met?'],
      goals.map(([g, v, ok]) => [g, v, ok === undefined ? '–' : ok ? '**met**' : '**missed**']),
    ),
    '',
  ];
  for (const [flags, ex] of Object.entries(r.experiments ?? {})) {
    const g: Goal[] = [];
    const sub: string[] = [];
    if (ex.http) sub.push(httpPart(ex.http, g));
    if (ex.ws) sub.push(wsPart(ex.ws, g));
    if (ex.memory) sub.push(memoryPart(ex.memory, g));
    parts.push(
      [
        `## Experiment: warmpool started with \`node ${flags}\``,
        '',
        'Not how warmpool is deployed today; the same measurements with this flag, to show what it would change.',
        '',
        table(
          ['goal', 'measured', 'met?'],
          g.map(([a, v, ok]) => [a, v, ok === undefined ? '–' : ok ? '**met**' : '**missed**']),
        ),
        '',
        ...sub.map((x) => x.replace(/^## /gm, '### ')),
      ].join('\n'),
    );
  }
  const generated = [...head, ...parts.flatMap((p) => [p, '']), END].join('\n');
  const tail =
    previous && previous.includes(END)
      ? previous.slice(previous.indexOf(END) + END.length)
      : '\n\n## Analysis\n\n(hand-written; `npm run bench` keeps this part)\n';
  return generated + tail;
}
