// Runtime `process`: instances are local child processes on allocated 127.0.0.1 ports — the
// embedded default, no Docker needed. Each child is detached into its own process group and
// described by a state file, so a restarted warmpool finds (and adopts) what an earlier run left.
// As root, each child runs as a user of its own (process-users.ts); state files and output are
// warmpool's alone (folders 0700, files 0600).

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { AppConfig } from '../../core/config.js';
import { WarmpoolError, errorMessage } from '../../core/errors.js';
import type { PortAllocator } from '../ports.js';
import { privateDir } from '../private-dir.js';
import type { ClaimMark, InstanceRecord, InstanceSpec, Runtime } from '../runtime.js';
import { endUser, unreachableForOthers, userEnv, withUmask, type InstanceUser, type ProcessUsers } from './process-users.js';

interface StateFile {
  instanceId: string;
  app: string;
  deployment: string;
  pid: number;
  port: number;
  createdAt: number;
  env: Record<string, string>;
  claim?: ClaimMark;
  /** The instance's own user (warmpool as root with processUsers); absent: warmpool's user. */
  user?: InstanceUser;
}

export interface ProcessRuntimeOptions {
  deployment: string;
  ports: PortAllocator;
  /** Where state files and output logs live (one folder per deployment below it). */
  stateDir: string;
  /** How often adopted (not spawned by us) processes are checked for exit, ms. */
  pollMs?: number;
  /** A user of its own per instance (needs root); absent: instances run as warmpool's user. */
  users?: ProcessUsers;
}

export class ProcessRuntime implements Runtime {
  readonly kind = 'process' as const;
  private readonly dir: string;
  private readonly children = new Map<string, ChildProcess>();
  private readonly exitListeners = new Set<(id: string, detail: string) => void>();
  private readonly removing = new Set<string>();
  /** Instances whose create() is between writing their state file and knowing their pid. */
  private readonly creating = new Set<string>();
  private poller?: NodeJS.Timeout;
  private known = new Set<string>();

  constructor(private readonly opts: ProcessRuntimeOptions) {
    this.dir = resolve(opts.stateDir, 'process', opts.deployment);
    privateDir(resolve(opts.stateDir));
    privateDir(resolve(opts.stateDir, 'process'));
    privateDir(this.dir);
  }

  async create(app: AppConfig, spec: InstanceSpec): Promise<InstanceRecord> {
    if (!app.command) throw new WarmpoolError('SPAWN_FAILED', `app ${app.name} has no command`, { hint: 'set apps[].command for runtime process' });
    if (this.opts.users) checkReachable(app, app.command);
    const port = app.port || (await this.opts.ports.allocate());
    let user: InstanceUser | undefined;
    try {
      user = await this.opts.users?.allocate(spec.instanceId);
    } catch (e) {
      if (!app.port) this.opts.ports.release(port);
      throw e;
    }
    const env: Record<string, string> = {
      ...(user ? userEnv(user) : {}),
      ...app.env,
      ...spec.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      WARMPOOL_INSTANCE: spec.instanceId,
    };
    const argv = app.command.map((a) => a.replaceAll('{port}', String(port)));
    const logPath = this.path(spec.instanceId, 'log');
    // The state file comes before the process (pid 0: not known yet). The child is detached and
    // outlives us: if warmpool is killed between the spawn and the pid being written, the next start
    // still finds it (list(): by WARMPOOL_INSTANCE in its environment) instead of leaving it orphaned.
    const state: StateFile = { instanceId: spec.instanceId, app: app.name, deployment: this.opts.deployment, pid: 0, port, createdAt: Date.now(), env, user };
    this.creating.add(spec.instanceId);
    let child: ChildProcess;
    try {
      this.writeState(state);
      const out = openSync(logPath, 'a', 0o600);
      try {
        const start = () =>
          spawn(argv[0]!, argv.slice(1), {
            cwd: app.cwd,
            env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
            detached: true,
            stdio: ['ignore', out, out],
            ...(user ? { uid: user.uid, gid: user.gid } : {}),
          });
        // Its own user also gets umask 077: what it writes outside its home (/tmp) is its alone.
        child = user ? withUmask(0o077, start) : start();
      } finally {
        closeSync(out);
      }
      // The pid is known as soon as spawn() returns (undefined when it failed): record it before any await.
      if (child.pid !== undefined) {
        state.pid = child.pid;
        this.writeState(state);
      }
      const spawned = await new Promise<boolean | Error>((res) => {
        child.once('spawn', () => res(true));
        child.once('error', (e) => res(e));
      });
      if (spawned !== true) {
        this.opts.ports.release(port);
        rmSync(this.path(spec.instanceId, 'json'), { force: true });
        rmSync(logPath, { force: true });
        if (user) await this.endUser(user);
        throw new WarmpoolError('SPAWN_FAILED', `cannot start ${argv[0]} for app ${app.name}: ${errorMessage(spawned)}`, {
          hint: user
            ? `check apps[].command and apps[].cwd; the instance runs as uid ${user.uid}, so both must be readable by other users`
            : 'check apps[].command and apps[].cwd',
        });
      }
    } finally {
      this.creating.delete(spec.instanceId);
    }
    child.unref();
    this.children.set(spec.instanceId, child);
    this.known.add(spec.instanceId);
    child.once('exit', (code, signal) => {
      this.children.delete(spec.instanceId);
      if (!this.removing.has(spec.instanceId)) this.emitExit(spec.instanceId, `process exited (${signal ?? `code ${code}`})`);
    });
    return toRecord(state, true);
  }

  async remove(instanceId: string): Promise<void> {
    this.removing.add(instanceId);
    try {
      const state = this.readState(instanceId);
      const child = this.children.get(instanceId);
      const pid = child?.pid ?? (state && isOurs(state) ? state.pid : undefined);
      if (pid !== undefined) {
        killGroup(pid, 'SIGTERM');
        if (!(await this.gone(pid, child, 3000))) {
          killGroup(pid, 'SIGKILL');
          await this.gone(pid, child, 2000);
        }
      }
      if (state) this.opts.ports.release(state.port);
      // Its user's every process (one that left the group too) and its home.
      if (state?.user) await this.endUser(state.user);
      rmSync(this.path(instanceId, 'json'), { force: true });
      rmSync(this.path(instanceId, 'log'), { force: true });
      this.children.delete(instanceId);
      this.known.delete(instanceId);
    } finally {
      this.removing.delete(instanceId);
    }
  }

  async list(): Promise<InstanceRecord[]> {
    const out: InstanceRecord[] = [];
    for (const name of readdirSync(this.dir)) {
      if (!name.endsWith('.json')) continue;
      const id = name.slice(0, -5);
      if (this.creating.has(id)) continue; // ours, not an instance yet
      const state = this.readState(id);
      if (!state || state.deployment !== this.opts.deployment) continue;
      if (!(state.pid > 0)) {
        // A create cut short (warmpool killed) before the pid was written: look for the process itself.
        const pid = pidOfInstance(state.instanceId);
        if (pid !== undefined) {
          state.pid = pid;
          this.writeState(state);
        }
      }
      this.opts.ports.hold(state.port);
      if (state.user && !this.removing.has(state.instanceId)) this.opts.users?.hold(state.user);
      this.known.add(state.instanceId);
      out.push(toRecord(state, isOurs(state)));
    }
    this.startPolling();
    return out;
  }

  /**
   * Writes the claim into the instance's state file, off the event loop (a class's claims are recorded
   * together once it has arrived: pool/claim-recording.ts). An instance being removed meanwhile keeps
   * no state file: INSTANCE_GONE.
   */
  async markClaimed(instanceId: string, claim: ClaimMark): Promise<void> {
    const file = this.path(instanceId, 'json');
    const gone = () => new WarmpoolError('INSTANCE_GONE', `instance ${instanceId} has no state file in ${this.dir}`);
    let state: StateFile;
    try {
      state = JSON.parse(await readFile(file, 'utf8')) as StateFile;
    } catch {
      throw gone();
    }
    state.claim = claim;
    const tmp = `${file}.claim.tmp`; // not writeState's: a synchronous write may come while this one waits
    await writeFile(tmp, JSON.stringify(state), { mode: 0o600 });
    if (this.removing.has(instanceId) || !existsSync(file)) {
      await rm(tmp, { force: true });
      throw gone();
    }
    await rename(tmp, file);
  }

  output(instanceId: string, onLine: (line: string) => void): () => void {
    const file = this.path(instanceId, 'log');
    let offset = 0;
    let partial = '';
    let stopped = false;
    const buf = Buffer.alloc(64 * 1024);
    const pump = () => {
      if (stopped || !existsSync(file)) return;
      let fd: number;
      try {
        fd = openSync(file, 'r');
      } catch {
        return;
      }
      try {
        for (;;) {
          const n = readSync(fd, buf, 0, buf.length, offset);
          if (n <= 0) break;
          offset += n;
          const lines = (partial + buf.toString('utf8', 0, n)).split('\n');
          partial = lines.pop()!;
          for (const l of lines) if (!stopped) onLine(l.replace(/\r$/, ''));
        }
      } finally {
        closeSync(fd);
      }
    };
    pump();
    // Ref'd: whoever listens is waiting for these lines (readiness), and an adopted instance is no
    // child of ours, so nothing else keeps the process alive meanwhile. Stopped by the returned function.
    const t = setInterval(pump, 50);
    return () => {
      stopped = true;
      clearInterval(t);
    };
  }

  watch(onExit: (instanceId: string, detail: string) => void): () => void {
    this.exitListeners.add(onExit);
    this.startPolling();
    return () => {
      this.exitListeners.delete(onExit);
      if (this.exitListeners.size === 0) this.stopPolling();
    };
  }

  async close(): Promise<void> {
    this.stopPolling();
    this.exitListeners.clear();
  }

  /** Resolves true once the process has exited (within ms). Ref'd timers keep Node alive meanwhile. */
  private async gone(pid: number, child: ChildProcess | undefined, ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (child ? child.exitCode !== null || child.signalCode !== null : !alive(pid)) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return false;
  }

  /** Ends every process of an instance's user and removes its home; the uid goes back to the range (if this run has one). */
  private async endUser(user: InstanceUser): Promise<void> {
    await (this.opts.users ? this.opts.users.release(user) : endUser(user));
  }

  /** Adopted processes are not our children: poll them for exit (ref'd while watched: close() stops it). */
  private startPolling(): void {
    if (this.poller || this.exitListeners.size === 0) return;
    this.poller = setInterval(() => {
      for (const id of this.known) {
        if (this.children.has(id) || this.removing.has(id)) continue;
        const state = this.readState(id);
        if (state && !isOurs(state)) {
          this.known.delete(id);
          this.emitExit(id, 'process is gone');
        }
      }
    }, this.opts.pollMs ?? 1000);
  }

  private stopPolling(): void {
    if (this.poller) clearInterval(this.poller);
    this.poller = undefined;
  }

  private emitExit(id: string, detail: string): void {
    for (const l of this.exitListeners) l(id, detail);
  }

  private path(id: string, ext: 'json' | 'log'): string {
    if (!/^[A-Za-z0-9_-]+$/.test(id)) throw new Error(`bad instance id ${JSON.stringify(id)}`);
    return join(this.dir, `${id}.${ext}`);
  }

  private readState(id: string): StateFile | undefined {
    try {
      return JSON.parse(readFileSync(this.path(id, 'json'), 'utf8')) as StateFile;
    } catch {
      return undefined;
    }
  }

  private writeState(s: StateFile): void {
    const tmp = this.path(s.instanceId, 'json') + '.tmp';
    writeFileSync(tmp, JSON.stringify(s), { mode: 0o600 });
    renameSync(tmp, this.path(s.instanceId, 'json'));
  }
}

/** Refuses, before anything starts, an app its own user could not read: the working directory and the files its command names. */
function checkReachable(app: AppConfig, argv: readonly string[]): void {
  const cwd = app.cwd ?? process.cwd();
  const files = argv
    .slice(1)
    .map((a) => resolve(cwd, a))
    .filter((p) => {
      try {
        return statSync(p).isFile();
      } catch {
        return false;
      }
    });
  const bad = unreachableForOthers([{ path: cwd, dir: true }, ...files.map((path) => ({ path, dir: false }))]);
  if (bad) {
    throw new WarmpoolError(
      'SPAWN_FAILED',
      `app ${app.name} runs as a user of its own, which cannot reach ${bad.path} (mode ${bad.mode.toString(8).padStart(4, '0')})`,
      {
        hint: "make the app's folders searchable (o+x) and its files readable (o+r) by other users, or move it (apps[].cwd)",
      },
    );
  }
}

function toRecord(s: StateFile, running: boolean): InstanceRecord {
  return {
    instanceId: s.instanceId,
    app: s.app,
    deployment: s.deployment,
    runtimeId: String(s.pid),
    host: '127.0.0.1',
    port: s.port,
    running,
    createdAt: s.createdAt,
    env: s.env,
    claim: s.claim,
  };
}

/** The pid is alive and is still our instance (pids get reused): /proc/<pid>/environ names it. */
function isOurs(s: StateFile): boolean {
  if (!Number.isInteger(s.pid) || s.pid <= 0) return false; // kill(0) and kill(-1) signal groups, not a process
  try {
    process.kill(s.pid, 0);
  } catch {
    return false;
  }
  const environ = `/proc/${s.pid}/environ`;
  if (!existsSync('/proc/self/environ')) return true;
  try {
    if (statSync(`/proc/${s.pid}`).isDirectory() && readFileSync(`/proc/${s.pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z')) return false;
    return readFileSync(environ, 'latin1').split('\0').includes(`WARMPOOL_INSTANCE=${s.instanceId}`);
  } catch {
    return false;
  }
}

/** The live process whose environment names this instance (Linux /proc), if any. */
function pidOfInstance(instanceId: string): number | undefined {
  const want = `WARMPOOL_INSTANCE=${instanceId}`;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  for (const d of entries) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/environ`, 'latin1').split('\0').includes(want)) return Number(d);
    } catch {
      /* gone, or not ours to read */
    }
  }
  return undefined;
}

function killGroup(pid: number, sig: NodeJS.Signals): void {
  if (!(pid > 0)) return;
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      /* gone */
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
