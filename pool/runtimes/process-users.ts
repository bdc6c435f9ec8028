// Runtime `process` as root: each instance runs under a uid (and gid) of its own from
// config.processUsers, with a private home, so one instance can read neither another's
// /proc/<pid>/environ (the kernel's ptrace access check wants the same uid) nor its files.
// Whether to isolate, taking and giving back uids, homes, and ending every process of a uid.

import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import type { ProcessUsersConfig } from '../../core/config.js';
import { WarmpoolError } from '../../core/errors.js';

/** The user an instance runs as, kept in its state file so a restarted warmpool can end it. */
export interface InstanceUser {
  uid: number;
  gid: number;
  /** Private home (0700, owned by uid): HOME and TMPDIR, removed with the instance. */
  home: string;
}

export type IsolationPlan = { kind: 'isolate'; users: ProcessUsersConfig } | { kind: 'shared'; warning: string };

const SHARED_RISK =
  "every instance can read the others' environment (their secrets, through /proc/<pid>/environ), " +
  "their files and warmpool's state directory (cookie key, session ids); use runtime docker in production";

/** Whether instances get users of their own here. Pure: the caller logs the warning. */
export function isolationPlan(cfg: ProcessUsersConfig | false, euid: number | undefined, platform: string = process.platform): IsolationPlan {
  if (cfg === false) return { kind: 'shared', warning: `runtime process: processUsers is off, so instances run as warmpool's own user: ${SHARED_RISK}` };
  if (platform !== 'linux' || euid === undefined) {
    return {
      kind: 'shared',
      warning: `runtime process: per-instance users need Linux (this is ${platform}), so instances run as warmpool's own user: ${SHARED_RISK}`,
    };
  }
  if (euid !== 0) {
    return {
      kind: 'shared',
      warning: `runtime process: warmpool runs as uid ${euid}, not root, so instances run as uid ${euid} too: ${SHARED_RISK}, or start warmpool as root to give each instance a uid from processUsers`,
    };
  }
  return { kind: 'isolate', users: cfg };
}

/**
 * The uids of one range: taken, held (adopted after a restart) and given back. Next-fit, so a uid
 * given back is taken again as late as possible: files an instance left in shared places (/tmp)
 * belong to its uid, and the next instance with that uid could read them.
 */
export class UidRange {
  private readonly taken = new Set<number>();
  private next: number;

  constructor(
    readonly from: number,
    readonly count: number,
    private readonly reserved: ReadonlySet<number> = new Set(),
  ) {
    this.next = from;
  }

  has(uid: number): boolean {
    return uid >= this.from && uid < this.from + this.count;
  }
  get inUse(): number {
    return this.taken.size;
  }

  /** A free uid, not in `busy` (uids some process runs as), or undefined when the range is used up. */
  take(busy: ReadonlySet<number>): number | undefined {
    for (let i = 0; i < this.count; i++) {
      const uid = this.from + ((this.next - this.from + i) % this.count);
      if (this.taken.has(uid) || busy.has(uid) || this.reserved.has(uid)) continue;
      this.taken.add(uid);
      this.next = uid + 1 < this.from + this.count ? uid + 1 : this.from;
      return uid;
    }
    return undefined;
  }

  hold(uid: number): void {
    if (this.has(uid)) this.taken.add(uid);
  }
  release(uid: number): void {
    this.taken.delete(uid);
  }
}

/** Users for the instances of one process runtime. */
export class ProcessUsers {
  private readonly range: UidRange;
  private homes?: string;

  constructor(readonly config: ProcessUsersConfig) {
    // A uid or gid named in /etc/passwd or /etc/group belongs to someone: never handed out.
    this.range = new UidRange(config.uidFrom, config.count, new Set([...idsIn('/etc/passwd'), ...idsIn('/etc/group')]));
  }

  /** A uid no instance and no running process uses, with a fresh private home. */
  async allocate(instanceId: string): Promise<InstanceUser> {
    const busy = new Set((await processesByUid()).keys());
    const uid = this.range.take(busy); // synchronous after the scan: two creates never take one uid
    if (uid === undefined) {
      const last = this.config.uidFrom + this.config.count - 1;
      throw new WarmpoolError(
        'SPAWN_FAILED',
        `no free uid in processUsers ${this.config.uidFrom}-${last} (${this.range.inUse} held by instances, the rest by running processes or /etc/passwd)`,
        {
          hint: 'raise processUsers.count, or give this deployment a range of its own',
        },
      );
    }
    try {
      return { uid, gid: uid, home: this.makeHome(instanceId, uid) };
    } catch (e) {
      this.range.release(uid);
      throw e;
    }
  }

  /** An adopted instance keeps its uid. */
  hold(user: InstanceUser): void {
    this.range.hold(user.uid);
  }

  /** endUser(), then the uid goes back to the range unless a process of it survived. */
  async release(user: InstanceUser): Promise<number[]> {
    const left = await endUser(user);
    if (left.length === 0) this.range.release(user.uid);
    return left;
  }

  /** Homes live in a root-owned 0711 folder from mkdtemp: an instance can enter its own home, list none, and rename nothing. */
  private makeHome(instanceId: string, uid: number): string {
    if (!this.homes || !existsSync(this.homes)) {
      this.homes = mkdtempSync(join(tmpdir(), 'warmpool-homes-'));
      chmodSync(this.homes, 0o711);
    }
    const home = join(this.homes, instanceId);
    mkdirSync(home, { mode: 0o700 });
    chownSync(home, uid, uid);
    return home;
  }
}

/** The environment that points an instance at its home (an app's own env may still override it). */
export function userEnv(user: InstanceUser): Record<string, string> {
  return { HOME: user.home, TMPDIR: user.home };
}

/**
 * Ends every process running as the instance's uid (a child that left the process group with
 * setsid escapes the group kill), then removes its home. Returns the pids still alive (home then
 * kept). Never touches root or warmpool's own uid.
 */
export async function endUser(user: InstanceUser): Promise<number[]> {
  if (user.uid === 0 || user.uid === process.getuid?.()) return [];
  let left: number[] = [];
  for (let round = 0; round < 6; round++) {
    left = (await processesByUid()).get(user.uid) ?? [];
    if (left.length === 0) break;
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await new Promise((r) => setTimeout(r, 25 * (round + 1)));
  }
  if (left.length === 0) removeHome(user.home);
  return left;
}

/** Removes a home made by makeHome (and its folder once empty); any other path is left alone. */
function removeHome(home: string): void {
  const parent = dirname(resolve(home));
  if (!/^warmpool-homes-/.test(basename(parent)) || !/^[A-Za-z0-9_-]+$/.test(basename(home))) return;
  rmSync(home, { recursive: true, force: true }); // lstat-based: a symlink inside is unlinked, not followed
  try {
    rmdirSync(parent);
  } catch {
    /* other homes still in it */
  }
}

/** Live processes by every uid they run as (real, effective, saved, filesystem); zombies left out. Empty without /proc. */
export async function processesByUid(): Promise<Map<number, number[]>> {
  const out = new Map<number, number[]>();
  let names: string[];
  try {
    names = await readdir('/proc');
  } catch {
    return out;
  }
  await Promise.all(
    names
      .filter((n) => /^\d+$/.test(n))
      .map(async (n) => {
        let status: string;
        try {
          status = await readFile(`/proc/${n}/status`, 'latin1');
        } catch {
          return;
        } // exited meanwhile
        if (/^State:\s+Z/m.test(status)) return;
        const m = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status);
        if (!m) return;
        for (const uid of new Set(m.slice(1).map(Number))) {
          const list = out.get(uid);
          if (list) list.push(Number(n));
          else out.set(uid, [Number(n)]);
        }
      }),
  );
  return out;
}

/**
 * The first of `paths` (an instance's working directory and the files its command names) that a
 * user of its own cannot reach: such a user is "other" to every file, so only the o+x bits of the
 * folders above and o+r of the file count. ACLs are not read.
 */
export function unreachableForOthers(paths: readonly { path: string; dir: boolean }[]): { path: string; mode: number } | undefined {
  for (const p of paths) {
    const full = resolve(p.path);
    const chain: string[] = [];
    for (let d = dirname(full); ; d = dirname(d)) {
      chain.unshift(d);
      if (d === dirname(d)) break;
    }
    for (const d of chain) {
      const mode = statSync(d).mode;
      if ((mode & 0o001) === 0) return { path: d, mode: mode & 0o7777 };
    }
    const mode = statSync(full).mode;
    if ((mode & (p.dir ? 0o001 : 0o004)) === 0) return { path: full, mode: mode & 0o7777 };
  }
  return undefined;
}

/** Runs fn (a synchronous spawn) with the process umask set, so the child starts with it. */
export function withUmask<T>(mask: number, fn: () => T): T {
  const before = process.umask(mask);
  try {
    return fn();
  } finally {
    process.umask(before);
  }
}

function idsIn(file: string): number[] {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .map((l) => Number(l.split(':')[2]))
      .filter((n) => Number.isInteger(n));
  } catch {
    return [];
  }
}
