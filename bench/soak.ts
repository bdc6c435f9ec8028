// `npm run bench:soak`: a soak run, not a test (never in CI). Hundreds of Pluto-like WebSocket sessions
// live through warmpool for minutes: every message numbered and checked at its receiver in both
// directions, the proxy's RSS sampled for a trend, its sockets, handles and timers counted before, at the
// peak and after every session closed (from outside: /proc, a control port, and bench/soak-probe.ts
// preloaded into the warmpool process). Everything runs on 127.0.0.1: bench/soak-backend.ts (one port
// per instance), warmpool (bench/warmpool-server.ts, StaticRuntime over those ports, deployment node flags),
// and bench/soak-client.ts processes.
//
//   npm run bench:soak                                          500 sessions, 10 minutes, opened at 50/s
//   npm run bench:soak -- --soak-sessions 100 --soak-minutes 1   a short run while developing
//
// Prints the figures and PASS/FAIL per criterion; exit status 1 if any criterion fails.

import { readdirSync, readFileSync, readlinkSync, rmSync, mkdirSync, existsSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DIST } from './backends.js';
import { cpuSeconds, killAllNow, rssBytes, sleep, startChild, stopAll, type Child } from './procs.js';
import { Histogram } from './stats.js';
import { startWarmpoolServer, waitPoolReady, WORK } from './variants.js';

interface Options {
  sessions: number;
  minutes: number;
  /** Sessions opened per second (and closed per second at the end), over all client processes. */
  rate: number;
  clients: number;
  stateBytes: number;
  pushMeanS: number;
  bigPushShare: number;
  activeMeanS: number;
  sampleS: number;
  /** RSS slope over the second half above this fails the flatness criterion. */
  maxSlopeKiBPerMin: number;
  /** How long, after the last session closed, the counts may take to come back to the start. */
  settleS: number;
  /** Diagnostics: a full GC in the proxy before the start, each minute's and the end's sample (heap still referenced). */
  gc: boolean;
  /** Diagnostics: the probe without async_hooks (only getActiveResourcesInfo(), /proc and the proxy's count). */
  hooks: boolean;
  /** Diagnostics: after the settle, end every session (the pool replaces the instances) and sample again. */
  endAll: boolean;
}

const USAGE = `usage: npm run bench:soak -- [--soak-sessions 500] [--soak-minutes 10] [--soak-rate 50] [--soak-clients 2]
                             [--soak-state-bytes 200000] [--soak-push-s 30] [--soak-big-push-share 0.2] [--soak-active-s 30]
                             [--soak-sample-s 5] [--soak-max-slope 256] [--soak-settle-s 120] [--soak-gc] [--soak-no-hooks] [--soak-end-all]`;

function parseArgs(argv: string[]): Options {
  const o: Options = {
    sessions: 500,
    minutes: 10,
    rate: 50,
    clients: 2,
    stateBytes: 200_000,
    pushMeanS: 30,
    bigPushShare: 0.2,
    activeMeanS: 30,
    sampleS: 5,
    maxSlopeKiBPerMin: 256,
    settleS: 120,
    gc: false,
    hooks: true,
    endAll: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    const num = (min: number, max = Infinity, int = false): number => {
      const s = val();
      const n = Number(s);
      if (s.trim() === '' || !Number.isFinite(n) || n < min || n > max || (int && !Number.isInteger(n))) {
        throw new Error(`${a} ${s}: expected ${int ? 'an integer' : 'a number'} from ${min}${max < Infinity ? ` to ${max}` : ''}\n${USAGE}`);
      }
      return n;
    };
    switch (a) {
      case '--soak-sessions':
        o.sessions = num(1, 5000, true);
        break;
      case '--soak-minutes':
        o.minutes = num(0.1, 24 * 60);
        break;
      case '--soak-rate':
        o.rate = num(1, 1000);
        break;
      case '--soak-clients':
        o.clients = num(1, 16, true);
        break;
      case '--soak-state-bytes':
        o.stateBytes = num(0, 256 * 1024, true);
        break;
      case '--soak-push-s':
        o.pushMeanS = num(0);
        break;
      case '--soak-big-push-share':
        o.bigPushShare = num(0, 1);
        break;
      case '--soak-active-s':
        o.activeMeanS = num(0);
        break;
      case '--soak-sample-s':
        o.sampleS = num(1, 60);
        break;
      case '--soak-max-slope':
        o.maxSlopeKiBPerMin = num(0);
        break;
      case '--soak-settle-s':
        o.settleS = num(0, 3600);
        break;
      case '--soak-gc':
        o.gc = true;
        break;
      case '--soak-no-hooks':
        o.hooks = false;
        break;
      case '--soak-end-all':
        o.endAll = true;
        break;
      case '-h':
      case '--help':
        console.log(USAGE);
        return process.exit(0);
      default:
        throw new Error(`unknown option ${a}\n${USAGE}`);
    }
  }
  o.clients = Math.min(o.clients, o.sessions);
  return o;
}

const log = (m: string): void => console.log(`[soak ${new Date().toISOString().slice(11, 19)}] ${m}`);
const PROBE_DIR = join(WORK, 'soak-probe');
const STATE_DIR = join(WORK, 'state-soak');
const APP = 'soak';

// ---- reading the warmpool process from outside ----

interface Sample {
  /** Seconds since the clients started. */
  t: number;
  phase: 'start' | 'ramp' | 'soak' | 'close' | 'settle';
  rssKiB: number;
  heapUsedKiB: number;
  heapTotalKiB: number;
  externalKiB: number;
  arrayBuffersKiB: number;
  /** With --soak-gc, on the samples that forced a full GC: heapUsed and external right after it. */
  gcHeapUsedKiB?: number;
  gcExternalKiB?: number;
  fds: number;
  fdSockets: number;
  threads: number;
  /** The proxy's own count (warmpool.openSockets(): relayed WebSocket sockets, HTTP exchanges, upstream connections). */
  openSockets: number;
  sessions: number;
  /** getActiveResourcesInfo(): ref'd handles and timers. */
  active: Record<string, number>;
  /** async_hooks: created and not destroyed, unref'd timers included. */
  live: Record<string, number>;
  /** The live timers by callback name, delay, repeat and ref. */
  timers: Record<string, number>;
  /** What the process's fds point to: 'socket' or the path (pipes, files, anon inodes), counted. */
  fdTargets: Record<string, number>;
}

function fdCounts(pid: number): { fds: number; sockets: number; targets: Record<string, number> } {
  let fds = 0,
    sockets = 0;
  const targets: Record<string, number> = {};
  for (const f of readdirSync(`/proc/${pid}/fd`)) {
    fds++;
    try {
      let to = readlinkSync(`/proc/${pid}/fd/${f}`);
      if (to.startsWith('socket:')) {
        sockets++;
        to = 'socket';
      } else if (to.startsWith('pipe:')) {
        to = 'pipe';
      }
      targets[to] = (targets[to] ?? 0) + 1;
    } catch {
      // closed meanwhile
    }
  }
  return { fds, sockets, targets };
}

function threads(pid: number): number {
  return Number(/Threads:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
}

interface ProbeSnapshot {
  at: number;
  gcMemory?: NodeJS.MemoryUsage;
  active: Record<string, number>;
  live: Record<string, number>;
  timers: Record<string, number>;
  memory: NodeJS.MemoryUsage;
}

async function probe(pid: number, gc: boolean): Promise<ProbeSnapshot> {
  const file = join(PROBE_DIR, `soak-probe-${pid}.json`);
  if (gc) writeFileSync(join(PROBE_DIR, `gc-${pid}`), '');
  const asked = Date.now();
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 200; i++) {
    await sleep(10);
    try {
      const s = JSON.parse(readFileSync(file, 'utf8')) as ProbeSnapshot;
      if (s.at >= asked) return s;
    } catch {
      // not written yet (or half written)
    }
  }
  throw new Error(`the warmpool process wrote no probe file (${file}) within 2 s of SIGUSR2`);
}

/** GET on the control port with its own connection, closed after the answer (no kept-alive socket in the proxy process). */
function controlGet<T>(port: number, path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { Connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => {
        try {
          resolve(JSON.parse(body) as T);
        } catch (e) {
          reject(e as Error);
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}

async function sample(pid: number, ctl: number, t: number, phase: Sample['phase'], gc = false): Promise<Sample> {
  // RSS before the probe (which may collect garbage), the probe and /proc before the control request (which
  // adds a socket of its own to the process for a moment).
  const rss = rssBytes([pid]);
  const p = await probe(pid, gc);
  const f = fdCounts(pid);
  const th = threads(pid);
  const st = await controlGet<{ openSockets: number; sessions: number }>(ctl, '/status');
  return {
    t,
    phase,
    rssKiB: Math.round(rss / 1024),
    heapUsedKiB: Math.round(p.memory.heapUsed / 1024),
    heapTotalKiB: Math.round(p.memory.heapTotal / 1024),
    externalKiB: Math.round(p.memory.external / 1024),
    arrayBuffersKiB: Math.round(p.memory.arrayBuffers / 1024),
    ...(p.gcMemory ? { gcHeapUsedKiB: Math.round(p.gcMemory.heapUsed / 1024), gcExternalKiB: Math.round(p.gcMemory.external / 1024) } : {}),
    fds: f.fds,
    fdSockets: f.sockets,
    threads: th,
    openSockets: st.openSockets,
    sessions: st.sessions,
    active: p.active,
    live: p.live,
    timers: p.timers,
    fdTargets: f.targets,
  };
}

const sum = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);

/** The counts that must come back to where they started once every session has closed. */
function leakCounts(s: Sample): Record<string, number> {
  return {
    'fds (/proc)': s.fds,
    'sockets (/proc fds)': s.fdSockets,
    'proxy openSockets()': s.openSockets,
    "active handles+timers (ref'd)": sum(s.active),
    "live timers (incl. unref'd)": s.live.Timeout ?? 0,
    'live TCP handles': (s.live.TCPWRAP ?? 0) + (s.live.TCPSERVERWRAP ?? 0),
    'live immediates': s.live.Immediate ?? 0,
    threads: s.threads,
  };
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return NaN;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0,
    den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

// ---- the run ----

interface ClientResult {
  open: number;
  failed: number;
  sent: number;
  received: number;
  bytesSent: number;
  bytesReceived: number;
  sentByType: Record<string, number>;
  receivedByType: Record<string, number>;
  pushes: number;
  pushBytes: number;
  replies: number;
  lost: number;
  back: number;
  serverLost: number;
  serverBack: number;
  verified: number;
  cleanClose: number;
  errors: Record<string, number>;
  errorCount: number;
  firstErrors: string[];
  openHist: [number, number][];
  rttHist: [number, number][];
  rampMs?: number;
  closeMs?: number;
}

interface BackendStats {
  opened: number;
  closed: number;
  closedWith1000: number;
  ended: number;
  msgsIn: number;
  msgsOut: number;
  bytesIn: number;
  bytesOut: number;
  pushes: number;
  bigPushes: number;
  lost: number;
  back: number;
  undecodable: number;
  unknown: number;
  afterEnd: number;
  httpRequests: number;
  open: number;
}

/** Dispatches a child's stdout lines by prefix (PROGRESS, RAMPED, RESULT, STATS) to whoever waits for them. */
class Lines {
  private readonly waiters = new Map<string, ((v: unknown) => void)[]>();
  latest = new Map<string, unknown>();

  constructor(c: Child) {
    void (async () => {
      for (;;) {
        const r = await c.lines.next();
        if (r.done) return;
        const m = /^([A-Z]+) (.*)$/.exec(r.value);
        if (!m) continue;
        let v: unknown;
        try {
          v = JSON.parse(m[2]!);
        } catch {
          continue;
        }
        this.latest.set(m[1]!, v);
        const ws = this.waiters.get(m[1]!) ?? [];
        this.waiters.delete(m[1]!);
        for (const w of ws) w(v);
      }
    })();
  }

  next<T>(prefix: string, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${prefix} line from ${what} within ${timeoutMs} ms`)), timeoutMs);
      const list = this.waiters.get(prefix) ?? [];
      list.push((v) => {
        clearTimeout(t);
        resolve(v as T);
      });
      this.waiters.set(prefix, list);
    });
  }
}

/** Relayed frames as warmpool itself recorded them: the `ws-close` entries of its traffic log. */
function trafficLogFrames(): { closes: number; framesIn: number; framesOut: number; closeFrames: number } {
  const r = { closes: 0, framesIn: 0, framesOut: 0, closeFrames: 0 };
  const walk = (dir: string): void => {
    for (const f of readdirSync(dir)) {
      const p = join(dir, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (f.endsWith('.jsonl')) {
        for (const line of readFileSync(p, 'utf8').split('\n')) {
          if (!line.includes('"ws-close"')) continue;
          const e = JSON.parse(line) as {
            type?: string;
            detail?: { framesIn?: number; framesOut?: number; closeFrame?: boolean };
            framesIn?: number;
            framesOut?: number;
            closeFrame?: boolean;
          };
          const d = e.detail ?? e;
          r.closes++;
          r.framesIn += d.framesIn ?? 0;
          r.framesOut += d.framesOut ?? 0;
          if (d.closeFrame) r.closeFrames++;
        }
      }
    }
  };
  if (existsSync(STATE_DIR)) walk(STATE_DIR);
  return r;
}

const kib = (n: number): string => `${(n / 1024).toFixed(1)} MiB`;
const fmt = (n: number): string => n.toLocaleString('en-US');
const ms = (us: number): string => (Number.isFinite(us) ? `${(us / 1000).toFixed(us < 10_000 ? 1 : 0)} ms` : '–');

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const hold = setInterval(() => undefined, 1 << 30);
  mkdirSync(WORK, { recursive: true });
  rmSync(PROBE_DIR, { recursive: true, force: true });
  rmSync(STATE_DIR, { recursive: true, force: true });
  mkdirSync(PROBE_DIR, { recursive: true });
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
  log(`${o.sessions} sessions, ${o.minutes} min at full count, opened and closed at ${o.rate}/s by ${o.clients} client process(es); ${machine}`);

  const backend = await startChild(
    'soak-backend',
    process.execPath,
    [
      join(DIST, 'bench/soak-backend.js'),
      JSON.stringify({
        ports: o.sessions,
        stateBytes: o.stateBytes,
        pushMeanMs: o.pushMeanS * 1000,
        bigPushShare: o.bigPushShare,
      }),
    ],
    { timeoutMs: 60_000 },
  );
  const ports = backend.info.ports as number[];
  const backendLines = new Lines(backend);

  // Inherited by the warmpool process, read by soak-probe.js.
  process.env.SOAK_PROBE_DIR = PROBE_DIR;
  process.env.SOAK_PROBE_HOOKS = o.hooks ? '1' : '0';
  const wp = await startWarmpoolServer(
    'soak',
    {
      listen: { host: '127.0.0.1', port: 0 },
      deployment: 'bench-soak',
      stateDir: STATE_DIR,
      apps: [
        {
          name: APP,
          runtime: 'process',
          command: ['static'],
          deepLink: '/open?path=webapp.jl',
          prefix: 'strip',
          readiness: { http: { path: '/ping', status: 200 }, timeout: '60s', interval: '100ms' },
          // One more than the sessions: the canary's.
          pool: { warm: o.sessions + 1, max: o.sessions + 1, parallel: 50 },
          classifier: 'pluto',
          secret: { env: 'PLUTO_SECRET', inject: { query: 'secret' } },
          // Nobody is reaped during the run: the soak is about the relay, not the reaper.
          idleTimeout: '10h',
          maxLifetime: '20h',
          grace: '1h',
        },
      ],
    },
    ports.map((port) => ({ host: '127.0.0.1', port })),
    ['--import', pathToFileURL(join(DIST, 'bench/soak-probe.js')).href],
  );
  const pid = wp.child.pid;
  // warmpool's log: the first lines (reported) and the last ones (shown if the process dies).
  const wpLog: string[] = [];
  const wpTail: string[] = [];
  let wpLogLines = 0;
  wp.child.proc.stderr!.on('data', (c: Buffer) => {
    for (const l of c.toString().split('\n')) {
      if (!l.trim()) continue;
      wpLogLines++;
      if (wpLog.length < 50) wpLog.push(l);
      wpTail.push(l);
      if (wpTail.length > 40) wpTail.shift();
    }
  });
  let stoppingWp = false;
  wp.child.proc.once('exit', (code, signal) => {
    if (stoppingWp) return;
    log(`the warmpool process exited during the run (code ${code}, signal ${signal}); its last log lines:`);
    for (const l of wpTail) console.log(`  ${l}`);
    void cleanup().finally(() => process.exit(1));
  });
  const readyMs = await waitPoolReady(wp.control, o.sessions + 1);
  log(`warmpool pid ${pid} on :${wp.port}, ${o.sessions + 1} instances ready in ${(readyMs / 1000).toFixed(1)} s (backend on ${ports.length} ports)`);

  // ---- canary: one session through the whole path first, so what warmpool creates once, lazily, for its
  // whole life (the traffic log file, the HTTP relay's idle-socket sweeper, the reaper's timer once a
  // session is claimed) is there at the start count, and only what the soak's sessions leave behind differs ----
  const canary = await startChild(
    'soak-canary',
    process.execPath,
    [
      join(DIST, 'bench/soak-client.js'),
      JSON.stringify({
        port: wp.port,
        app: APP,
        first: o.sessions,
        count: 1,
        rate: 1,
        activeMeanMs: 1000,
        pingMs: 28_000,
        burstMs: 60_000,
        burstN: 18,
        replyTimeoutMs: 60_000,
      }),
    ],
    { readyMarker: 'STARTED', timeoutMs: 30_000 },
  );
  const canaryLines = new Lines(canary);
  const canaryUp = await canaryLines.next<ClientResult>('RAMPED', 60_000, 'the canary');
  await sleep(3000);
  const canaryDone = canaryLines.next<ClientResult>('RESULT', 60_000, 'the canary');
  canary.proc.stdin!.write('STOP\n');
  const canaryRes = await canaryDone;
  await canary.stop();
  if (canaryUp.open !== 1 || canaryRes.errorCount !== 0 || canaryRes.verified !== 1) {
    throw new Error(`the canary session failed: ${JSON.stringify({ open: canaryUp.open, errors: canaryRes.errors, firstErrors: canaryRes.firstErrors })}`);
  }
  log(`canary: one session entered, exchanged ${canaryRes.sent + canaryRes.received} messages (all balanced) and closed`);

  // ---- start: the pool full and quiet (waitPoolReady's kept-alive control connection closes after 5 s,
  // the canary's idle upstream HTTP connection after the backend's keep-alive of 5 s) ----
  await sleep(8000);
  const samples: Sample[] = [];
  let t0 = Date.now();
  const at = (): number => (Date.now() - t0) / 1000;
  let start = await sample(pid, wp.control, 0, 'start', o.gc);
  for (let i = 0; i < 10; i++) {
    await sleep(2000);
    const s = await sample(pid, wp.control, 0, 'start', o.gc);
    const same = JSON.stringify(leakCounts(s)) === JSON.stringify(leakCounts(start));
    start = s;
    if (same) break;
  }
  samples.push(start);
  const logLinesAtStart = wpLogLines;
  // The backend's totals so far are the canary's: subtracted from the end's.
  const b0P = backendLines.next<BackendStats>('STATS', 10_000, 'soak-backend');
  backend.proc.stdin!.write('STATS\n');
  const b0 = await b0P;
  log(
    `start: RSS ${kib(start.rssKiB)}, ${start.fds} fds (${start.fdSockets} sockets), openSockets ${start.openSockets}, active ${JSON.stringify(start.active)}, live ${JSON.stringify(start.live)}`,
  );

  // ---- ramp ----
  t0 = Date.now();
  let phase: Sample['phase'] = 'ramp';
  let sampling = true;
  let lastGc = -Infinity;
  const sampler = (async () => {
    while (sampling) {
      const next = Date.now() + o.sampleS * 1000;
      // With --soak-gc: a full GC on the first sample of each minute of the soak.
      const gc = o.gc && (phase as Sample['phase']) === 'soak' && at() - lastGc >= 60 - o.sampleS / 2;
      if (gc) lastGc = at();
      try {
        samples.push(await sample(pid, wp.control, at(), phase, gc));
      } catch (e) {
        log(`sample failed: ${(e as Error).message}`);
      }
      await sleep(Math.max(0, next - Date.now()));
    }
  })();
  const per = Math.ceil(o.sessions / o.clients);
  const clients: { child: Child; lines: Lines }[] = [];
  for (let i = 0; i < o.clients; i++) {
    const first = i * per;
    const count = Math.min(per, o.sessions - first);
    const child = await startChild(
      `soak-client-${i}`,
      process.execPath,
      [
        join(DIST, 'bench/soak-client.js'),
        JSON.stringify({
          port: wp.port,
          app: APP,
          first,
          count,
          rate: o.rate / o.clients,
          activeMeanMs: o.activeMeanS * 1000,
          pingMs: 28_000,
          burstMs: 60_000,
          burstN: 18,
          replyTimeoutMs: 60_000,
        }),
      ],
      { readyMarker: 'STARTED', timeoutMs: 30_000 },
    );
    clients.push({ child, lines: new Lines(child) });
  }
  const rampLimit = (o.sessions / o.rate) * 1000 + 180_000;
  const ramped = await Promise.all(clients.map((c, i) => c.lines.next<ClientResult>('RAMPED', rampLimit, `soak-client-${i}`)));
  const rampS = at();
  const opened = ramped.reduce((s, r) => s + r.open, 0);
  const failedAtStart = ramped.reduce((s, r) => s + r.failed, 0);
  const openH = new Histogram();
  for (const r of ramped) openH.merge(r.openHist);
  log(
    `ramp: ${opened}/${o.sessions} sessions open in ${rampS.toFixed(1)} s (${(opened / rampS).toFixed(1)}/s), ${failedAtStart} failed; enter → state loaded p50 ${ms(openH.percentile(50))}, p99 ${ms(openH.percentile(99))}`,
  );
  for (const r of ramped) for (const e of r.firstErrors.slice(0, 5)) log(`  ${e}`);

  // ---- soak: full count for o.minutes, a line a minute ----
  phase = 'soak';
  const soakFrom = at();
  const cpu0 = cpuSeconds([pid]);
  const soakMs = o.minutes * 60_000;
  const progress = (): { sent: number; received: number; errors: number; open: number } => {
    const r = { sent: 0, received: 0, errors: 0, open: 0 };
    for (const c of clients) {
      const p = c.lines.latest.get('PROGRESS') as (ClientResult & { open: number }) | undefined;
      if (!p) continue;
      r.sent += p.sent;
      r.received += p.received;
      r.errors += p.errorCount;
      r.open += p.open;
    }
    return r;
  };
  for (let m = 1; m * 60_000 <= soakMs; m++) {
    await sleep(soakFrom * 1000 + m * 60_000 - (Date.now() - t0));
    const s = samples[samples.length - 1]!;
    const p = progress();
    log(
      `minute ${m}: RSS ${kib(s.rssKiB)} heap ${kib(s.heapUsedKiB)}, ${s.fds} fds, openSockets ${s.openSockets}, active ${sum(s.active)}, live timers ${s.live.Timeout ?? 0}; ${p.open} open, ${fmt(p.sent)} sent, ${fmt(p.received)} received, ${p.errors} errors`,
    );
  }
  await sleep(Math.max(0, soakFrom * 1000 + soakMs - (Date.now() - t0)));
  const soakTo = at();
  const cpuPct = ((cpuSeconds([pid]) - cpu0) / (soakTo - soakFrom)) * 100;

  // ---- close ----
  phase = 'close';
  const results = clients.map((c, i) => c.lines.next<ClientResult>('RESULT', (o.sessions / o.rate) * 1000 + 180_000, `soak-client-${i}`));
  for (const c of clients) c.child.proc.stdin!.write('STOP\n');
  const res = await Promise.all(results);
  const closedAt = at();
  log(`close: every session closed in ${(closedAt - soakTo).toFixed(1)} s`);
  await Promise.all(clients.map((c) => c.child.stop()));

  // ---- settle: until the counts are back where they started ----
  phase = 'settle';
  sampling = false;
  await sampler;
  const want = leakCounts(start);
  let end = await sample(pid, wp.control, at(), 'settle', o.gc);
  samples.push(end);
  const settleUntil = Date.now() + o.settleS * 1000;
  while (JSON.stringify(leakCounts(end)) !== JSON.stringify(want) && Date.now() < settleUntil) {
    await sleep(2000);
    end = await sample(pid, wp.control, at(), 'settle', o.gc);
    samples.push(end);
  }
  const settleS = at() - closedAt;
  const bStatsP = backendLines.next<BackendStats>('STATS', 10_000, 'soak-backend');
  backend.proc.stdin!.write('STATS\n');
  const bEnd = await bStatsP;
  const b = Object.fromEntries(Object.entries(bEnd).map(([k, v]) => [k, v - ((b0 as unknown as Record<string, number>)[k] ?? 0)])) as unknown as BackendStats;
  const logLinesDuringRun = wpLogLines - logLinesAtStart;

  // ---- diagnostics: every session ended (claimed sessions outlive their sockets until the grace period) ----
  let afterEndAll: Sample | undefined;
  if (o.endAll) {
    await controlGet(wp.control, '/end-all');
    await waitPoolReady(wp.control, o.sessions + 1);
    await sleep(8000); // the readiness probes' and waitPoolReady's connections close
    afterEndAll = await sample(pid, wp.control, at(), 'settle', o.gc);
    samples.push(afterEndAll);
  }

  // ---- figures ----
  const c = res.reduce(
    (acc, r) => {
      for (const k of [
        'open',
        'failed',
        'sent',
        'received',
        'bytesSent',
        'bytesReceived',
        'pushes',
        'pushBytes',
        'replies',
        'lost',
        'back',
        'serverLost',
        'serverBack',
        'verified',
        'cleanClose',
        'errorCount',
      ] as const)
        (acc as any)[k] += r[k];
      for (const [k, v] of Object.entries(r.errors)) acc.errors[k] = (acc.errors[k] ?? 0) + v;
      acc.firstErrors.push(...r.firstErrors);
      return acc;
    },
    {
      open: 0,
      failed: 0,
      sent: 0,
      received: 0,
      bytesSent: 0,
      bytesReceived: 0,
      pushes: 0,
      pushBytes: 0,
      replies: 0,
      lost: 0,
      back: 0,
      serverLost: 0,
      serverBack: 0,
      verified: 0,
      cleanClose: 0,
      errorCount: 0,
      errors: {} as Record<string, number>,
      firstErrors: [] as string[],
    },
  );
  const rtt = new Histogram();
  for (const r of res) rtt.merge(r.rttHist);
  const frames = trafficLogFrames();
  const started = o.sessions - failedAtStart;

  const soakSamples = samples.filter((s) => s.phase === 'soak');
  const half = soakFrom + (soakTo - soakFrom) / 2;
  const second = soakSamples.filter((s) => s.t >= half);
  const firstHalf = soakSamples.filter((s) => s.t < half);
  const perMin = (xs: Sample[], key: 'rssKiB' | 'heapUsedKiB'): number =>
    slope(
      xs.map((s) => s.t / 60),
      xs.map((s) => s[key]),
    );
  const rssSlope = perMin(second, 'rssKiB');
  const rssSlopeFirst = perMin(firstHalf, 'rssKiB');
  const heapSlope = perMin(second, 'heapUsedKiB');
  const peakOf = (f: (s: Sample) => number): number => Math.max(...samples.map(f));
  const startCounts = leakCounts(start);
  const endCounts = leakCounts(end);
  const peakCounts: Record<string, number> = {};
  for (const k of Object.keys(startCounts)) peakCounts[k] = peakOf((s) => leakCounts(s)[k]!);

  console.log('\n==== soak results ====');
  console.log(`machine: ${machine}`);
  console.log(
    `sessions: ${o.sessions} requested, ${opened} opened in ${rampS.toFixed(1)} s (${(opened / rampS).toFixed(1)}/s), ${failedAtStart} failed; ${o.minutes} min at full count; closed in ${(closedAt - soakTo).toFixed(1)} s`,
  );
  console.log(
    `enter → state loaded: p50 ${ms(openH.percentile(50))}, p99 ${ms(openH.percentile(99))}; reply round trip: p50 ${ms(rtt.percentile(50))}, p99 ${ms(rtt.percentile(99))}, max ${ms(rtt.percentile(100))}`,
  );
  console.log(
    `messages client → server: ${fmt(c.sent)} sent, ${fmt(b.msgsIn)} received by the server (${(c.bytesSent / 2 ** 20).toFixed(1)} MiB); lost ${c.serverLost}, reordered ${c.serverBack}`,
  );
  console.log(
    `messages server → client: ${fmt(b.msgsOut)} sent, ${fmt(c.received)} received by the clients (${(c.bytesReceived / 2 ** 20).toFixed(1)} MiB, ${fmt(c.pushes)} pushes of which ${fmt(b.bigPushes)} large); lost ${c.lost}, reordered ${c.back}`,
  );
  console.log(
    `total relayed: ${fmt(c.sent + c.received)} messages, ${((c.bytesSent + c.bytesReceived) / 2 ** 20).toFixed(1)} MiB; proxy CPU at full count ${cpuPct.toFixed(1)} % of one core; warmpool's traffic log: ${fmt(frames.framesIn)} frames in, ${fmt(frames.framesOut)} out over ${frames.closes} closed sockets (${frames.closeFrames} with a close frame)`,
  );
  console.log(
    `sessions balanced at soak_end: ${c.verified}/${started}; clean closes (1000 both ways): ${c.cleanClose}/${started} (server saw ${b.closedWith1000} of ${b.closed})`,
  );
  console.log(`errors: ${c.errorCount} ${JSON.stringify(c.errors)}; server: undecodable ${b.undecodable}, unknown ${b.unknown}, after end ${b.afterEnd}`);
  for (const e of c.firstErrors.slice(0, 10)) console.log(`  ${e}`);
  console.log(`warmpool log lines during the run: ${logLinesDuringRun}`);
  for (const l of wpLog.slice(0, 10)) console.log(`  ${l}`);
  console.log('\nproxy RSS (KiB) and heapUsed over time:');
  const marks = [
    start,
    ...soakSamples.filter((s, i, xs) => i === 0 || Math.floor((s.t - soakFrom) / 60) !== Math.floor((xs[i - 1]!.t - soakFrom) / 60)),
    soakSamples[soakSamples.length - 1],
    end,
  ].filter((s): s is Sample => !!s);
  for (const s of marks)
    console.log(
      `  ${s.phase.padEnd(6)} t=${s.t.toFixed(0).padStart(5)} s  RSS ${fmt(s.rssKiB).padStart(8)} KiB  heapUsed ${fmt(s.heapUsedKiB).padStart(8)} KiB  fds ${String(s.fds).padStart(5)}  openSockets ${String(s.openSockets).padStart(5)}`,
    );
  console.log(
    `RSS: start ${kib(start.rssKiB)}, peak ${kib(peakOf((s) => s.rssKiB))}, end of soak ${kib(soakSamples[soakSamples.length - 1]?.rssKiB ?? NaN)}, after close ${kib(end.rssKiB)}`,
  );
  console.log(
    `RSS slope over the second half (${second.length} samples): ${rssSlope.toFixed(1)} KiB/min (first half ${rssSlopeFirst.toFixed(1)} KiB/min); heapUsed slope over the second half ${heapSlope.toFixed(1)} KiB/min`,
  );
  let gcSlope = NaN;
  if (o.gc) {
    const gcs = soakSamples.filter((s) => s.gcHeapUsedKiB !== undefined);
    const gcSecond = gcs.filter((s) => s.t >= half);
    gcSlope = slope(
      gcSecond.map((s) => s.t / 60),
      gcSecond.map((s) => s.gcHeapUsedKiB!),
    );
    console.log(
      `heapUsed right after a full GC (KiB): start ${fmt(start.gcHeapUsedKiB ?? NaN)}; soak ${gcs.map((s) => `t=${s.t.toFixed(0)} ${fmt(s.gcHeapUsedKiB!)}`).join(', ')}; after close ${fmt(end.gcHeapUsedKiB ?? NaN)}`,
    );
    console.log(
      `post-GC heapUsed slope over the second half (${gcSecond.length} samples): ${gcSlope.toFixed(1)} KiB/min; external after GC: start ${fmt(start.gcExternalKiB ?? NaN)}, after close ${fmt(end.gcExternalKiB ?? NaN)} KiB`,
    );
  }
  if (afterEndAll) {
    const e = leakCounts(afterEndAll);
    console.log(
      `after ending every session (${o.sessions + 1} instances replaced): RSS ${kib(afterEndAll.rssKiB)}, heapUsed ${fmt(afterEndAll.gcHeapUsedKiB ?? afterEndAll.heapUsedKiB)} KiB${afterEndAll.gcHeapUsedKiB !== undefined ? ' after a full GC' : ''}; counts ${
        Object.keys(e)
          .filter((k) => e[k] !== startCounts[k])
          .map((k) => `${k} ${startCounts[k]} → ${e[k]}`)
          .join(', ') || 'as at start'
      }`,
    );
  }
  console.log('\ncounts of the warmpool process     start     peak      end');
  for (const k of Object.keys(startCounts))
    console.log(
      `  ${k.padEnd(32)} ${String(startCounts[k]).padStart(6)} ${String(peakCounts[k]).padStart(8)} ${String(endCounts[k]).padStart(8)}${startCounts[k] === endCounts[k] ? '' : '   ≠ start'}`,
    );
  console.log(`  active by type: start ${JSON.stringify(start.active)}, end ${JSON.stringify(end.active)}`);
  console.log(`  live by type:   start ${JSON.stringify(start.live)}, end ${JSON.stringify(end.live)}`);
  const diff = (a: Record<string, number>, b: Record<string, number>): string =>
    [...new Set([...Object.keys(a), ...Object.keys(b)])]
      .filter((k) => (a[k] ?? 0) !== (b[k] ?? 0))
      .map((k) => `${k}: ${a[k] ?? 0} → ${b[k] ?? 0}`)
      .join('; ') || 'none';
  console.log(`  timers that differ (start → end): ${diff(start.timers, end.timers)}`);
  console.log(`  fd targets that differ (start → end): ${diff(start.fdTargets, end.fdTargets)}`);
  console.log(`  settled ${settleS.toFixed(0)} s after the last close`);

  const crit: [string, boolean, string][] = [
    ['sessions opened at the ramp', failedAtStart === 0 && opened === o.sessions, `${opened}/${o.sessions}, ${(opened / rampS).toFixed(1)}/s`],
    [
      'no message lost or reordered (both directions)',
      c.lost === 0 &&
        c.back === 0 &&
        c.serverLost === 0 &&
        c.serverBack === 0 &&
        (c.errors.payload ?? 0) === 0 &&
        (c.errors['no-reply'] ?? 0) === 0 &&
        c.verified === started &&
        b.msgsIn === c.sent &&
        b.msgsOut === c.received,
      `lost ${c.lost + c.serverLost}, reordered ${c.back + c.serverBack}, balanced ${c.verified}/${started}`,
    ],
    [
      'proxy RSS flat (second-half slope)',
      Number.isFinite(rssSlope) && rssSlope <= o.maxSlopeKiBPerMin,
      Number.isFinite(rssSlope) ? `${rssSlope.toFixed(1)} KiB/min (limit ${o.maxSlopeKiBPerMin})` : 'too few samples in the second half',
    ],
    [
      'sockets/handles/timers back to start',
      JSON.stringify(endCounts) === JSON.stringify(startCounts),
      Object.keys(startCounts)
        .filter((k) => startCounts[k] !== endCounts[k])
        .map((k) => `${k} ${startCounts[k]} → ${endCounts[k]}`)
        .join(', ') || 'all equal',
    ],
    [
      'no errors, every close clean',
      c.errorCount === 0 && c.cleanClose === started && b.undecodable === 0 && b.afterEnd === 0,
      `${c.errorCount} errors, ${c.cleanClose}/${started} clean`,
    ],
  ];
  console.log('\ncriteria:');
  for (const [name, ok, detail] of crit) console.log(`  ${ok ? 'PASS' : 'FAIL'}  ${name}: ${detail}`);

  const out = join(WORK, `soak-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    out,
    JSON.stringify(
      {
        options: o,
        machine,
        started,
        opened,
        rampS,
        soakFrom,
        soakTo,
        closedAt,
        settleS,
        client: c,
        backend: b,
        frames,
        rssSlope,
        rssSlopeFirst,
        heapSlope,
        gcSlope,
        cpuPct,
        afterEndAll,
        startCounts,
        peakCounts,
        endCounts,
        start,
        end,
        samples,
        warmpoolLog: wpLog,
        criteria: crit,
      },
      null,
      1,
    ),
  );
  console.log(`\nall samples: ${out}`);
  stoppingWp = true;
  await wp.child.stop();
  await backend.stop();
  clearInterval(hold);
  if (crit.some(([, ok]) => !ok)) process.exitCode = 1;
}

let cleaning = false;
async function cleanup(): Promise<void> {
  if (cleaning) return;
  cleaning = true;
  await stopAll();
}

process.on('SIGINT', () => {
  void cleanup().finally(() => process.exit(130));
});
process.on('SIGTERM', () => {
  void cleanup().finally(() => process.exit(143));
});
process.on('exit', () => killAllNow());

// Exits explicitly: a child's line reader or a timer still waiting must not keep a finished run alive.
main().then(
  async () => {
    await cleanup();
    process.exit();
  },
  async (e: unknown) => {
    console.error(`soak failed: ${(e as Error)?.stack ?? String(e)}`);
    await cleanup();
    process.exit(1);
  },
);
