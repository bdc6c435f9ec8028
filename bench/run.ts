// `npm run bench`: the orchestrator. Installs what it needs (configurable-http-proxy under
// bench/.work, the stand-in image offline), starts everything on 127.0.0.1, runs the selected
// sections with variants interleaved over several rounds, writes bench/results.json and the tables
// of bench/RESULTS.md (keeping its hand-written analysis), and stops everything it started.
//
//   npm run bench                                   every section, 3 rounds
//   npm run bench -- --only http,ws --rounds 3      a subset (other sections keep their last results)
//   npm run bench -- --only burst --burst-n 50      one burst size
//   npm run bench -- --only claims --rounds 3       claims per second at the entry (no Docker)
//   npm run bench -- --only http --profile          warmpool runs with --cpu-prof; a summary is printed

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { DIST, startRelayBackend } from './backends.js';
import { BURST_PARTS, DEFAULT_BURN_MS, runBurst, type BurstPart } from './burst.js';
import { runClaims } from './claims.js';
import { runHttp, wrkMissing } from './http.js';
import { runMemory } from './memory.js';
import { runPool } from './pool.js';
import { killAllNow, stopAll } from './procs.js';
import { summarizeProfiles } from './profile.js';
import { renderResults, type Results } from './report.js';
import { ALL_VARIANTS, chpVersion, ensureChp, missing, nginxVersion, startVariant, WORK, type Variant, type VariantName } from './variants.js';
import { runWs } from './ws.js';

const SECTIONS = ['http', 'ws', 'burst', 'claims', 'pool', 'memory'] as const;
type Section = (typeof SECTIONS)[number];

interface Options {
  only: Section[];
  rounds: number;
  durationS: number;
  burstN: number[];
  burstRounds: number;
  burstParts: BurstPart[];
  burstBurnMs: number;
  burstQueue: Record<string, unknown>;
  variants: VariantName[];
  profile: boolean;
  sessions: number;
  /** Extra node flags for the warmpool processes (an experiment: recorded in results.json and RESULTS.md). */
  warmpoolNodeArgs: string;
}

const USAGE = `usage: npm run bench -- [--only ${SECTIONS.join(',')}] [--rounds N] [--duration S] [--burst-n 50,100] [--burst-rounds N]
                        [--burst-parts ${BURST_PARTS.join(',')}] [--burst-burn-ms ${DEFAULT_BURN_MS}]
                        [--burst-queue '{"pageHold":0}']
                        [--variants ${ALL_VARIANTS.join(',')}] [--sessions 1000] [--profile]
                        [--warmpool-node-args '--max-semi-space-size=2']`;

function parseArgs(argv: string[]): Options {
  const o: Options = {
    only: [...SECTIONS],
    rounds: 3,
    durationS: 5,
    burstN: [50, 100],
    burstRounds: 3,
    burstParts: [...BURST_PARTS],
    burstBurnMs: DEFAULT_BURN_MS,
    burstQueue: {},
    variants: [...ALL_VARIANTS],
    profile: false,
    sessions: 1000,
    warmpoolNodeArgs: '',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    const int = (s: string, min: number): number => {
      if (!/^\d+$/.test(s) || Number(s) < min) throw new Error(`${a} ${s}: expected an integer of at least ${min}\n${USAGE}`);
      return Number(s);
    };
    switch (a) {
      case '--only': {
        const list = val()
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        for (const s of list) if (!(SECTIONS as readonly string[]).includes(s)) throw new Error(`--only ${s}: expected some of ${SECTIONS.join(', ')}`);
        o.only = list as Section[];
        break;
      }
      case '--rounds':
        o.rounds = int(val(), 1);
        break;
      case '--duration':
        o.durationS = int(val(), 1);
        break;
      case '--burst-n':
        o.burstN = val()
          .split(',')
          .map((s) => int(s, 1));
        break;
      case '--burst-rounds':
        o.burstRounds = int(val(), 1);
        break;
      case '--burst-parts': {
        const list = val()
          .split(',')
          .map((s) => s.trim());
        for (const s of list)
          if (!(BURST_PARTS as readonly string[]).includes(s)) throw new Error(`--burst-parts ${s}: expected some of ${BURST_PARTS.join(', ')}`);
        o.burstParts = list as BurstPart[];
        break;
      }
      case '--burst-queue':
        o.burstQueue = JSON.parse(val()) as Record<string, unknown>;
        break;
      case '--burst-burn-ms':
        o.burstBurnMs = int(val(), 1);
        break;
      case '--sessions':
        o.sessions = int(val(), 1);
        break;
      case '--variants': {
        const list = val()
          .split(',')
          .map((s) => s.trim());
        for (const s of list) if (!(ALL_VARIANTS as string[]).includes(s)) throw new Error(`--variants ${s}: expected some of ${ALL_VARIANTS.join(', ')}`);
        if (!list.includes('direct')) list.unshift('direct'); // every figure is also a ratio to direct
        o.variants = list as VariantName[];
        break;
      }
      case '--profile':
        o.profile = true;
        break;
      case '--warmpool-node-args':
        o.warmpoolNodeArgs = val();
        break;
      case '-h':
      case '--help':
        console.log(USAGE);
        return process.exit(0);
      default:
        throw new Error(`unknown option ${a}\n${USAGE}`);
    }
  }
  return o;
}

const log = (m: string): void => console.log(`[bench] ${m}`);
const RESULTS_JSON = join(DIST, '..', 'bench', 'results.json');
const RESULTS_MD = join(DIST, '..', 'bench', 'RESULTS.md');

// The bench talks to the engine through the docker CLI (which build-images.sh needs anyway), not
// through warmpool's Engine client: its checks and clean-up stay independent of the code measured.

async function dockerOk(): Promise<string | undefined> {
  const ok = spawnSync('docker', ['version', '--format', '{{.Server.Version}}'], { stdio: 'ignore', timeout: 5000 }).status === 0;
  if (!ok) return 'Docker Engine unreachable (or no docker CLI): start dockerd; the Docker parts are skipped';
  const r = spawnSync('bash', [join(DIST, '..', 'scripts', 'build-images.sh')], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) return `the stand-in image could not be built (scripts/build-images.sh): ${r.stderr.toString().trim().split('\n').pop()}`;
  return undefined;
}

/** Removes every container this benchmark's warmpools created (label warmpool.deployment=bench…). */
export async function removeBenchContainers(): Promise<number> {
  try {
    const lines = execFileSync(
      'docker',
      ['ps', '-a', '--no-trunc', '--filter', 'label=warmpool.deployment', '--format', '{{.ID}} {{.Label "warmpool.deployment"}}'],
      { encoding: 'utf8', timeout: 30_000 },
    );
    const ours = lines
      .split('\n')
      .map((l) => l.split(' '))
      .filter(([id, dep]) => id && (dep ?? '').startsWith('bench'))
      .map(([id]) => id!);
    if (ours.length > 0) spawnSync('docker', ['rm', '-f', ...ours], { stdio: 'ignore', timeout: 120_000 });
    return ours.length;
  } catch {
    return 0;
  }
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  // warmpool's clock timers and runtime children are unref'd (a server keeps its own loop alive);
  // this process has no server, so it holds the loop open itself until main() is done.
  const hold = setInterval(() => undefined, 1 << 30);
  mkdirSync(WORK, { recursive: true });
  if (o.profile) process.env.BENCH_PROFILE = '1';
  if (o.warmpoolNodeArgs) process.env.BENCH_WARMPOOL_NODE_ARGS = o.warmpoolNodeArgs;
  const prev: Results = existsSync(RESULTS_JSON) ? (JSON.parse(readFileSync(RESULTS_JSON, 'utf8')) as Results) : { meta: {}, sections: {} };
  const results: Results = {
    meta: {
      ...prev.meta,
      machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`,
      node: process.version,
    },
    sections: { ...prev.sections },
    experiments: { ...(prev.experiments ?? {}) },
  };
  // With --warmpool-node-args the run is an experiment: its sections are kept apart from the main ones.
  const out: Results['sections'] = o.warmpoolNodeArgs
    ? (results.experiments![o.warmpoolNodeArgs] = { ...(results.experiments![o.warmpoolNodeArgs] ?? {}) })
    : results.sections;
  const save = (): void => {
    writeFileSync(RESULTS_JSON, JSON.stringify(results, null, 1) + '\n');
    writeFileSync(RESULTS_MD, renderResults(results, existsSync(RESULTS_MD) ? readFileSync(RESULTS_MD, 'utf8') : undefined));
  };

  const notices: string[] = [];
  const notice = (m: string): void => {
    notices.push(m);
    console.log(`NOTICE: ${m}`);
  };

  // ---- relay sections: one backend, every variant up for the whole time, interleaved ----
  const relay = o.only.filter((s) => s === 'http' || s === 'ws');
  if (relay.length) {
    const names = o.variants.filter((n) => {
      const why = missing(n);
      if (why) notice(why);
      return !why;
    });
    if (names.includes('chp')) ensureChp(log);
    results.meta.nginx = nginxVersion();
    results.meta.chp = chpVersion();
    const backend = await startRelayBackend();
    const variants: Variant[] = [];
    for (const n of names) variants.push(await startVariant(n, backend, log));
    log(`variants up: ${variants.map((v) => `${v.name} :${v.port}`).join(', ')}; backend :${backend.port}`);
    if (relay.includes('http')) {
      const why = wrkMissing();
      if (why) notice(why);
      else {
        const data = await runHttp(variants, o.rounds, o.durationS, log);
        out.http = { at: new Date().toISOString(), rounds: o.rounds, durationS: o.durationS, data };
        save();
      }
    }
    if (relay.includes('ws')) {
      const data = await runWs(variants, o.rounds, o.durationS, log);
      out.ws = { at: new Date().toISOString(), rounds: o.rounds, durationS: o.durationS, data };
      save();
    }
    for (const v of variants) await v.stop();
    await backend.child.stop();
  }

  if (o.only.includes('claims')) {
    const data = await runClaims({ rounds: o.rounds, log });
    out.claims = { at: new Date().toISOString(), rounds: o.rounds, data };
    save();
  }

  if (o.only.includes('memory')) {
    if (o.variants.includes('chp')) ensureChp(log);
    const data = await runMemory({ sessions: o.sessions, log, withChp: o.variants.includes('chp') });
    out.memory = { at: new Date().toISOString(), data };
    save();
  }

  const needDocker = o.only.includes('burst') || o.only.includes('pool');
  const dockerWhy = needDocker ? await dockerOk() : undefined;
  if (dockerWhy) notice(dockerWhy);

  if (o.only.includes('pool')) {
    const data = await runPool({ docker: !dockerWhy, log });
    out.pool = { at: new Date().toISOString(), data };
    save();
  }

  if (o.only.includes('burst')) {
    if (dockerWhy) notice('classroom burst skipped: it needs the Docker runtime');
    else {
      const data = await runBurst({ sizes: o.burstN, rounds: o.burstRounds, parts: o.burstParts, burnCpuMs: o.burstBurnMs, queue: o.burstQueue, log });
      out.burst = { at: new Date().toISOString(), rounds: o.burstRounds, data };
      save();
    }
  }

  results.meta.notices = notices;
  save();
  log(`wrote ${RESULTS_MD} and ${RESULTS_JSON}`);
  if (o.profile) console.log(summarizeProfiles(join(WORK, 'prof')));
  clearInterval(hold);
}

let cleaning = false;
async function cleanup(): Promise<void> {
  if (cleaning) return;
  cleaning = true;
  await stopAll();
  const n = await removeBenchContainers();
  if (n) log(`removed ${n} leftover bench container(s)`);
}

process.on('SIGINT', () => {
  void cleanup().finally(() => process.exit(130));
});
process.on('SIGTERM', () => {
  void cleanup().finally(() => process.exit(143));
});
process.on('exit', () => killAllNow());

main().then(
  () => cleanup(),
  async (e: unknown) => {
    console.error(`bench failed: ${(e as Error)?.stack ?? String(e)}`);
    await cleanup();
    process.exitCode = 1;
  },
);
