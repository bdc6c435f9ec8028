// A second, throw-away Docker Engine for a test that stops and kills one: its own socket, data-root,
// exec-root and pidfile under a temporary folder, `--live-restore` (the machine's engine is a swarm
// member, which refuses it, and other suites share it), no iptables rules, and a default bridge of its
// own (its containers use host networking on 127.0.0.1). Cleaned up by PID, by its folder and its bridge.
//
// Not `--bridge=none`: a dockerd started so deletes the host's docker0 interface (moby 20.10
// daemon_unix.go, removeDefaultBridgeInterface), which is the machine engine's bridge: every bridge
// container of other suites loses its network. Its own bridge, an empty one with a link-local /30, it
// takes as given and leaves docker0 alone.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { accessSync, closeSync, constants, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { dockerCli, dockerSkipReason } from './docker.js';
import { until } from './wait.js';

const REQUIRE = 'WARMPOOL_REQUIRE_DOCKER';

/** A program on PATH, or undefined. */
function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/**
 * undefined when a second engine can be started (dockerd on PATH, root, the machine's engine reachable to
 * copy images from); otherwise the reason to skip, printed. With WARMPOOL_REQUIRE_DOCKER=1 it throws.
 */
export async function ownDockerdSkipReason(): Promise<string | undefined> {
  const main = await dockerSkipReason();
  if (main !== undefined) return main;
  let reason: string | undefined;
  if (!onPath('dockerd')) reason = 'no dockerd on PATH: the suite that restarts its own Docker Engine is skipped';
  else if (!onPath('ip')) reason = 'no ip (iproute2) on PATH, to give the second Docker Engine a bridge of its own: its suite is skipped';
  else if (process.getuid?.() !== 0) reason = 'not root: dockerd cannot be started for the suite that restarts its own Docker Engine';
  if (reason === undefined) return undefined;
  if (process.env[REQUIRE] === '1') throw new Error(`${reason}, and ${REQUIRE}=1: run the Docker suites as root on a machine with dockerd`);
  console.error(`NOTICE: ${reason} (set ${REQUIRE}=1 to make this a failure)`);
  return reason;
}

/** `ip args...`; rejects with its stderr. */
function ip(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, (err, _out, stderr) => (err ? reject(new Error(`ip ${args.join(' ')} failed: ${stderr.trim() || err.message}`)) : resolve()));
  });
}

export class OwnDockerd {
  /** The temporary folder holding everything of this engine. */
  readonly dir = mkdtempSync('/tmp/wp-dockerd-');
  readonly socket = join(this.dir, 'docker.sock');
  /** For DOCKER_HOST and `docker -H`. */
  readonly host = `unix://${this.socket}`;
  /** Its default bridge: an interface name (at most 15 characters) and address no one else uses. */
  readonly bridge = `wpe-${randomBytes(4).toString('hex')}`;
  private bridgeMade = false;
  private child?: ChildProcess;
  private exited?: Promise<void>;

  /** Starts dockerd (again, on the same folders) and resolves once it answers. */
  async start(): Promise<void> {
    if (this.child) throw new Error('OwnDockerd.start: already running');
    if (!this.bridgeMade) {
      const net = `169.254.${1 + randomInt(254)}.${4 * randomInt(64) + 1}/30`;
      await ip(['link', 'add', this.bridge, 'type', 'bridge']);
      this.bridgeMade = true;
      await ip(['addr', 'add', net, 'dev', this.bridge]);
    }
    const out = openSync(join(this.dir, 'dockerd.log'), 'a');
    const child = spawn(
      onPath('dockerd')!,
      [
        `--host=${this.host}`,
        `--data-root=${join(this.dir, 'data')}`,
        `--exec-root=${join(this.dir, 'exec')}`,
        `--pidfile=${join(this.dir, 'dockerd.pid')}`,
        '--live-restore',
        `--bridge=${this.bridge}`,
        '--iptables=false',
        '--ip6tables=false',
        '--ip-masq=false',
      ],
      { stdio: ['ignore', out, out] },
    );
    closeSync(out);
    const hostBridge = existsSync('/sys/class/net/docker0');
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    void this.exited.then(() => {
      if (this.child === child) this.child = undefined;
    });
    await until(
      'the second dockerd to answer',
      async () => {
        if (this.child !== child) throw new Error(`dockerd exited at start; its log:\n${this.log()}`);
        return (await this.reachable()) ? true : undefined;
      },
      30_000,
      100,
    );
    if (hostBridge && !existsSync('/sys/class/net/docker0'))
      throw new Error(
        "the second dockerd deleted the host's docker0 (the machine engine's bridge): restore it (ip link add docker0 type bridge; ip addr add <its gateway>/16 dev docker0; ip link set docker0 up)",
      );
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  /** SIGTERM (with live-restore its containers keep running) or SIGKILL; resolves once dockerd exited. */
  async stop(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill(signal);
    await this.exited;
    if (signal === 'SIGKILL') await this.containerdGone();
  }

  /**
   * dockerd's own containerd dies with it (parent-death signal), a moment later. A dockerd started before
   * then, or while it is an unreaped zombie, takes it for a live containerd (its pidfile, kill -0) and
   * waits for its socket in vain: wait for it to die, as an init system would, and drop a zombie's pidfile.
   */
  private async containerdGone(): Promise<void> {
    const pidfile = join(this.dir, 'exec', 'containerd', 'containerd.pid');
    let pid: number;
    try {
      pid = Number(readFileSync(pidfile, 'utf8').trim());
    } catch {
      return;
    }
    const state = (): string | undefined => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
      } catch {
        return undefined;
      }
    };
    const last = await until(
      'the killed dockerd’s containerd to die',
      () => {
        const st = state();
        return st === undefined || st === 'Z' ? (st ?? 'gone') : undefined;
      },
      10_000,
      20,
    );
    if (last === 'Z') rmSync(pidfile, { force: true });
  }

  /** `docker -H <this engine> args...`. */
  cli(args: string[]): Promise<string> {
    return dockerCli(['-H', this.host, ...args]);
  }

  reachable(): Promise<boolean> {
    return this.cli(['version', '--format', '{{.Server.Version}}']).then(
      () => true,
      () => false,
    );
  }

  /** Copies an image from the machine's engine into this one. */
  async loadImage(image: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const save = spawn('docker', ['save', image], { stdio: ['ignore', 'pipe', 'inherit'] });
      const load = spawn('docker', ['-H', this.host, 'load', '-q'], { stdio: ['pipe', 'ignore', 'inherit'] });
      save.stdout.pipe(load.stdin);
      let left = 2;
      const done = (what: string) => (code: number | null) => {
        if (code !== 0) reject(new Error(`${what} exited with ${code} while copying ${image} into the second engine`));
        else if (--left === 0) resolve();
      };
      save.once('exit', done('docker save'));
      load.once('exit', done('docker load'));
    });
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, 'dockerd.log'), 'utf8').split('\n').slice(-30).join('\n');
    } catch {
      return '';
    }
  }

  /**
   * Removes its containers, stops dockerd, kills by PID whatever still runs from its folders (its
   * containerd, container shims and their processes), unmounts what dockerd mounted there and removes it.
   */
  async cleanup(): Promise<void> {
    if (!this.running) await this.start().catch(() => undefined);
    if (this.running) {
      const ids = (await this.cli(['ps', '-aq']).catch(() => '')).split('\n').filter(Boolean);
      if (ids.length > 0) await this.cli(['rm', '-f', '-v', ...ids]).catch(() => undefined);
      await this.stop('SIGTERM');
    }
    for (const pid of this.processes()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await until('the second engine’s processes to exit', () => (this.processes().length === 0 ? true : undefined), 10_000, 50);
    // Deepest first: dockerd bind-mounts its data-root onto itself and mounts namespaces under exec-root.
    const mounts = readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
      .filter((m): m is string => m !== undefined && (m === this.dir || m.startsWith(`${this.dir}/`)))
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) await new Promise((resolve) => spawn('umount', ['-l', m], { stdio: 'ignore' }).once('exit', resolve));
    rmSync(this.dir, { recursive: true, force: true });
    if (this.bridgeMade) await ip(['link', 'del', this.bridge]);
    this.bridgeMade = false;
  }

  /** PIDs of live processes whose command line names this engine's folder (its containerd, shims), and their descendants. */
  processes(): number[] {
    const parent = new Map<number, number>();
    const mine = new Set<number>();
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
      try {
        // "pid (comm) state ppid ...": comm may hold spaces, so read after its closing parenthesis.
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
        const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        if (state === 'Z') continue; // already dead, waiting for its parent
        parent.set(Number(name), Number(ppid));
        if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(this.dir)) mine.add(Number(name));
      } catch {
        /* exited meanwhile */
      }
    }
    const isMine = (pid: number, depth = 0): boolean => mine.has(pid) || (depth < 32 && parent.has(pid) && isMine(parent.get(pid)!, depth + 1));
    // Descendants first: a container's processes before their shim.
    return [...parent.keys()].filter((pid) => isMine(pid)).sort((a, b) => b - a);
  }
}
