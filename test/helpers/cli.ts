// Runs the real `warmpool start` command (dist/bin/warmpool.js) as a child process, the way systemd
// or `restart: always` does: its output lines, the port it prints, its progress counts, its exit, and
// a SIGKILL. Also finds instance processes by an environment marker (/proc), to count orphans.

import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { WARMPOOL_BIN, warmpoolNodeFlags } from '../../bin/node-flags.js';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Progress {
  ready: number;
  starting: number;
  target: number;
  claimed: number;
}

export interface CliOptions {
  env?: Record<string, string>;
  /** Extra node flags, after warmpool's own (e.g. --import of a test preload). */
  nodeArgs?: string[];
  /** 'closed': the read end of stdout is closed as soon as it starts (a log reader that went away). */
  stdout?: 'pipe' | 'closed';
  stderr?: 'pipe' | 'closed';
}

export class Cli {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly startedAt = Date.now();
  /** Every line, prefixed "out: " or "err: ". */
  readonly lines: string[] = [];
  readonly exited: Promise<Exit>;
  exit?: Exit;
  /** When the "listening" line came, ms after start. */
  listenedAfterMs?: number;
  private readonly events = new EventEmitter();

  constructor(configFile: string, o: CliOptions = {}) {
    this.child = spawn(process.execPath, [...warmpoolNodeFlags(), ...(o.nodeArgs ?? []), WARMPOOL_BIN, 'start', '--config', configFile], {
      env: { ...process.env, WARMPOOL_PORT: '0', ...o.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.pid = this.child.pid!;
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        this.events.emit('change');
        resolve(this.exit);
      }),
    );
    this.read(this.child.stdout!, 'out', o.stdout === 'closed');
    this.read(this.child.stderr!, 'err', o.stderr === 'closed');
  }

  private read(stream: NodeJS.ReadableStream & { destroy(): void }, tag: string, close: boolean): void {
    if (close) {
      stream.destroy();
      return;
    }
    let rest = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (rest + chunk).split('\n');
      rest = parts.pop()!;
      for (const line of parts) {
        this.lines.push(`${tag}: ${line}`);
        if (this.listenedAfterMs === undefined && /^out: warmpool listening on /.test(`${tag}: ${line}`)) this.listenedAfterMs = Date.now() - this.startedAt;
      }
      if (parts.length) this.events.emit('change');
    });
  }

  /** Closes our end of its stdout now (a reader that exits mid-run). */
  closeStdout(): void {
    this.child.stdout!.destroy();
  }

  output(): string {
    return this.lines.join('\n');
  }

  /** Resolves with fn's first defined answer, checked on every new line or exit; rejects after ms, or when it exits first. */
  when<T>(what: string, fn: () => T | undefined, ms = 20_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const v = fn();
        if (v !== undefined) {
          done();
          resolve(v);
          return;
        }
        if (this.exit) {
          done();
          reject(new Error(`warmpool exited (${JSON.stringify(this.exit)}) while waiting for ${what}; its output:\n${this.output()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${ms} ms waiting for ${what}; its output:\n${this.output()}`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        this.events.off('change', check);
      };
      this.events.on('change', check);
      check();
    });
  }

  /** The port from "warmpool listening on http://host:PORT/". */
  port(ms = 20_000): Promise<number> {
    return this.when(
      'the listening line',
      () => {
        for (const l of this.lines) {
          const m = /^out: warmpool listening on http:\/\/[^/]+:(\d+)\//.exec(l);
          if (m) return Number(m[1]);
        }
        return undefined;
      },
      ms,
    );
  }

  /** The latest progress counts of an app ("demo: 2 ready / 1 starting / target 2, 1 in use"). */
  progress(app: string): Progress | undefined {
    const re = new RegExp(`(?:^out: |\\|  )${app}: (\\d+) ready / (\\d+) starting / target (\\d+), (\\d+) in use`);
    for (let i = this.lines.length - 1; i >= 0; i--) {
      const m = re.exec(this.lines[i]!);
      if (m) return { ready: Number(m[1]), starting: Number(m[2]), target: Number(m[3]), claimed: Number(m[4]) };
    }
    return undefined;
  }

  waitProgress(app: string, pred: (p: Progress) => boolean, ms = 30_000): Promise<Progress> {
    return this.when(
      `progress of ${app} to match ${pred}`,
      () => {
        const p = this.progress(app);
        return p && pred(p) ? p : undefined;
      },
      ms,
    );
  }

  /** Sends a signal and resolves with the exit. */
  async kill(signal: NodeJS.Signals): Promise<Exit> {
    if (!this.exit) this.child.kill(signal);
    return this.exited;
  }
}

/** Pids of live processes whose environment holds `name=value` (Linux /proc; zombies excluded). */
export function pidsWithEnv(name: string, value: string): number[] {
  const want = `${name}=${value}`;
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${d}/stat`, 'utf8'))) continue;
      if (readFileSync(`/proc/${d}/environ`, 'latin1').split('\0').includes(want)) out.push(Number(d));
    } catch {
      /* gone, or not ours to read */
    }
  }
  return out.sort((a, b) => a - b);
}

/** Session and instance named in a warmpool cookie (format v1.<kid>.<session>.<instance>.<app>.<issued>.<mac>, proxy/cookie.ts). */
export function cookieFacts(value: string): { session: string; instance: string; app: string } {
  const p = value.split('.');
  if (p.length !== 7 || p[0] !== 'v1') throw new Error(`not a warmpool cookie: ${value}`);
  const dec = (s: string) => Buffer.from(s, 'base64url').toString('utf8');
  return { session: dec(p[2]!), instance: dec(p[3]!), app: dec(p[4]!) };
}

/** TCP ports a process listens on (Linux: its socket fds matched against /proc/net/tcp{,6} in state LISTEN). */
export function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      /* closed meanwhile */
    }
  }
  const ports: number[] = [];
  for (const table of ['tcp', 'tcp6']) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A' || !inodes.has(f[9]!)) continue;
      ports.push(parseInt(f[1]!.split(':')[1]!, 16));
    }
  }
  return ports.sort((a, b) => a - b);
}
