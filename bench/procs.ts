// Child processes of the benchmark: started with a "ready" line to wait for, tracked so that every
// one is stopped at the end (also on Ctrl-C), and read through /proc for CPU time and RSS.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

export interface Child {
  name: string;
  proc: ChildProcess;
  pid: number;
  /** The JSON that followed the ready marker, if any. */
  info: Record<string, unknown>;
  /** The whole ready line. */
  readyLine: string;
  /** Lines the child printed after its ready line (stdout), for result messages. */
  lines: AsyncIterableIterator<string>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const live = new Set<ChildProcess>();
const CLK_TCK = 100; // getconf CLK_TCK on Linux x86-64 and arm64

/**
 * Spawns a child and waits for a stdout line starting with `readyMarker` (JSON may follow it).
 * Rejects if the child exits first or the marker does not come within timeoutMs.
 */
export function startChild(
  name: string,
  cmd: string,
  args: string[],
  opts: SpawnOptions & { readyMarker?: string; timeoutMs?: number; quiet?: boolean } = {},
): Promise<Child> {
  const marker = opts.readyMarker ?? 'READY';
  const proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  let stderr = '';
  proc.stderr!.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-4000);
    if (!opts.quiet && process.env.BENCH_VERBOSE) process.stderr.write(`[${name}] ${c}`);
  });
  const rl = createInterface({ input: proc.stdout! });
  const lines = rl[Symbol.asyncIterator]();
  return new Promise<Child>((resolve, reject) => {
    const timer = setTimeout(
      () => fail(new Error(`${name}: no "${marker}" line within ${opts.timeoutMs ?? 60_000} ms; stderr: ${stderr}`)),
      opts.timeoutMs ?? 60_000,
    );
    const onExit = (code: number | null) => fail(new Error(`${name} exited (${code}) before it was ready; stderr: ${stderr}`));
    proc.once('exit', onExit);
    proc.once('error', (e) => fail(e));
    function fail(e: Error): void {
      clearTimeout(timer);
      proc.off('exit', onExit);
      proc.kill('SIGKILL');
      reject(e);
    }
    void (async () => {
      for (;;) {
        const r = await lines.next();
        if (r.done) return;
        const line = r.value;
        if (process.env.BENCH_VERBOSE) process.stderr.write(`[${name}] ${line}\n`);
        if (!line.startsWith(marker)) continue;
        clearTimeout(timer);
        proc.off('exit', onExit);
        const rest = line.slice(marker.length).trim();
        const info = rest.startsWith('{') ? (JSON.parse(rest) as Record<string, unknown>) : {};
        resolve({ name, proc, pid: proc.pid!, info, readyLine: line, lines, stop: (sig) => stopProc(proc, sig) });
        return;
      }
    })();
  });
}

/** The next stdout line of a child that starts with prefix, parsed as JSON after it. */
export async function nextJson<T>(c: Child, prefix: string, timeoutMs = 600_000): Promise<T> {
  const timeout = new Promise<never>((_, rej) => {
    const t = setTimeout(() => rej(new Error(`${c.name}: no ${prefix} line within ${timeoutMs} ms`)), timeoutMs);
    t.unref();
  });
  const read = (async () => {
    for (;;) {
      const r = await c.lines.next();
      if (r.done) throw new Error(`${c.name} ended without a ${prefix} line`);
      if (r.value.startsWith(prefix)) return JSON.parse(r.value.slice(prefix.length)) as T;
    }
  })();
  return Promise.race([read, timeout]);
}

/** Tracks a process started elsewhere, so stopAll() stops it too. */
export function trackChild(proc: ChildProcess): void {
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
}

/** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. */
export function stopProc(proc: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    proc.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    proc.kill(signal);
  });
}

/** Stops every child still running. */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => stopProc(p)));
}

/** Kills every child synchronously (process exit path). */
export function killAllNow(): void {
  for (const p of live) p.kill('SIGKILL');
}

/** user+system CPU seconds of a process and its listed children pids. */
export function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
    } catch {
      // gone
    }
  }
  return ticks / CLK_TCK;
}

/** Resident set size in bytes, summed over pids. */
export function rssBytes(pids: number[]): number {
  let kb = 0;
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      // gone
    }
  }
  return kb * 1024;
}

/** Direct children pids of a process (nginx workers). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
