// Reads the .cpuprofile files `--profile` made (node --cpu-prof) and prints where warmpool's time
// went: self time per function (top N) and total time per file, so RESULTS.md can cite evidence.
//   node dist/bench/profile.js [dir-or-file]

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  idleMs: number;
  top: { fn: string; where: string; selfMs: number; pct: number }[];
  byFile: { where: string; selfMs: number; pct: number }[];
  /** Self plus callees, per function (a function on the stack twice counts once). */
  inclusive: { fn: string; where: string; totalMs: number; pct: number }[];
}

/** windowMs: only the busiest stretch of that length (e.g. the one second of a burst). */
export function summarize(file: string, topN = 25, windowMs?: number): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  let from = 0,
    to = samples.length;
  let total = (p.endTime - p.startTime) / 1000;
  if (windowMs !== undefined) {
    // Sliding window over sample times: the stretch with the most non-idle time.
    const idleId = p.nodes.find((n) => n.callFrame.functionName === '(idle)')?.id;
    const at: number[] = [];
    let t = 0;
    for (let i = 0; i < samples.length; i++) at.push((t += (deltas[i] ?? 0) / 1000));
    let best = -1,
      busy = 0,
      lo = 0;
    for (let hi = 0; hi < samples.length; hi++) {
      if (samples[hi] !== idleId) busy += (deltas[hi] ?? 0) / 1000;
      while (at[hi]! - at[lo]! > windowMs) {
        if (samples[lo] !== idleId) busy -= (deltas[lo] ?? 0) / 1000;
        lo++;
      }
      if (busy > best) {
        best = busy;
        from = lo;
        to = hi + 1;
      }
    }
    total = windowMs;
  }
  for (let i = from; i < to; i++) self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + (deltas[i] ?? 0) / 1000);
  const fn = new Map<string, { fn: string; where: string; selfMs: number }>();
  const files = new Map<string, number>();
  let idle = 0;
  for (const [id, ms] of self) {
    const n = byId.get(id)!;
    const name = n.callFrame.functionName || '(anonymous)';
    if (name === '(idle)' || (name === '(program)' && false)) idle += ms;
    if (name === '(idle)') continue;
    const url = n.callFrame.url;
    const short = url ? url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/').replace(/^node:/, 'node:') : '(native)';
    const where = `${short}:${n.callFrame.lineNumber + 1}`;
    const key = `${name}@${where}`;
    const e = fn.get(key) ?? { fn: name, where, selfMs: 0 };
    e.selfMs += ms;
    fn.set(key, e);
    const fileKey = url
      ? short.startsWith('node_modules/')
        ? short.split('/').slice(0, 2).join('/')
        : short.startsWith('node:')
          ? short.split('/')[0]! + '/' + (short.split('/')[1] ?? '')
          : short
      : name.startsWith('(')
        ? name
        : '(native)';
    files.set(fileKey, (files.get(fileKey) ?? 0) + ms);
  }
  const busy = total - idle;
  // Inclusive time: walk each sampled node's ancestors once per distinct function.
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const incl = new Map<string, { fn: string; where: string; totalMs: number }>();
  for (const [id, ms] of self) {
    if (byId.get(id)!.callFrame.functionName === '(idle)') continue;
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      const name = f.functionName || '(anonymous)';
      const where = `${f.url ? f.url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/') : '(native)'}:${f.lineNumber + 1}`;
      const key = `${name}@${where}`;
      if (seen.has(key) || name === '(root)') continue;
      seen.add(key);
      const e = incl.get(key) ?? { fn: name, where, totalMs: 0 };
      e.totalMs += ms;
      incl.set(key, e);
    }
  }
  return {
    inclusive: [...incl.values()]
      .sort((a, b) => b.totalMs - a.totalMs)
      .slice(0, 60)
      .map((e) => ({ ...e, pct: (100 * e.totalMs) / busy })),
    file: basename(file),
    totalMs: total,
    idleMs: idle,
    top: [...fn.values()]
      .sort((a, b) => b.selfMs - a.selfMs)
      .slice(0, topN)
      .map((e) => ({ ...e, pct: (100 * e.selfMs) / busy })),
    byFile: [...files.entries()]
      .map(([where, selfMs]) => ({ where, selfMs, pct: (100 * selfMs) / busy }))
      .sort((a, b) => b.selfMs - a.selfMs)
      .slice(0, topN),
  };
}

export function summarizeProfiles(dirOrFile: string, windowMs?: number): string {
  let files: string[];
  try {
    files = statSync(dirOrFile).isDirectory()
      ? readdirSync(dirOrFile)
          .filter((f) => f.endsWith('.cpuprofile'))
          .map((f) => join(dirOrFile, f))
          .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)
          .slice(0, 1)
      : [dirOrFile];
  } catch {
    return `no profiles in ${dirOrFile}`;
  }
  const out: string[] = [];
  for (const f of files) {
    const s = summarize(f, 25, windowMs);
    out.push(`profile ${s.file}: ${(s.totalMs / 1000).toFixed(1)} s, busy ${((s.totalMs - s.idleMs) / 1000).toFixed(1)} s`);
    out.push('  self time by function (% of busy):');
    for (const t of s.top) out.push(`    ${t.pct.toFixed(1).padStart(5)}%  ${t.selfMs.toFixed(0).padStart(7)} ms  ${t.fn}  ${t.where}`);
    out.push('  inclusive time by function (% of busy):');
    for (const t of s.inclusive.slice(0, 45)) out.push(`    ${t.pct.toFixed(1).padStart(5)}%  ${t.fn}  ${t.where}`);
    out.push('  self time by file:');
    for (const t of s.byFile.slice(0, 15)) out.push(`    ${t.pct.toFixed(1).padStart(5)}%  ${t.where}`);
  }
  return out.join('\n');
}

// node dist/bench/profile.js [dir-or-file] [busiest-window-ms]
if (process.argv[1] && basename(process.argv[1]) === 'profile.js') {
  console.log(summarizeProfiles(process.argv[2] ?? 'bench/.work/prof', process.argv[3] ? Number(process.argv[3]) : undefined));
}
