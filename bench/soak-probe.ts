// Loaded into the soak benchmark's warmpool process with `node --import` (no proxy code changed): counts
// the process's live resources so the benchmark can tell whether sessions leave timers or sockets behind.
// On SIGUSR2 it writes `soak-probe-<pid>.json` into $SOAK_PROBE_DIR (synchronously: no handle of its own):
//   active  process.getActiveResourcesInfo() by type: what keeps the loop alive (ref'd handles and timers)
//   live    resources created and not yet destroyed, by async_hooks type, unref'd timers included
//           (warmpool unrefs its clock and handshake timers, which `active` does not show)
//   timers  the live timers by callback name, delay, repeat and ref
// Promises, nextTicks and write requests are not tracked: they come and go with every message.
// SOAK_PROBE_HOOKS=0 leaves async_hooks off (then `live` and `timers` stay empty): to check that the hooks
// themselves change nothing. If the file `gc-<pid>` exists in the directory when the signal comes, the
// probe removes it and runs a full garbage collection first (`gcMemory`: what is still referenced).

import { createHook } from 'node:async_hooks';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const dir = process.env.SOAK_PROBE_DIR ?? '';
const hooks = process.env.SOAK_PROBE_HOOKS !== '0';
const SKIP = new Set(['PROMISE', 'TickObject', 'WRITEWRAP', 'SHUTDOWNWRAP']);
const live = new Map<number, string>();
/** True while the probe creates its own timer: that one is not counted. */
let own = false;
/** Live timers themselves, so a snapshot can say which ones they are (callback name, delay, repeat, ref). */
const timers = new Map<number, TimerLike>();

interface TimerLike {
  _idleTimeout?: number;
  _repeat?: number | null;
  _onTimeout?: { name?: string };
  hasRef?: () => boolean;
}

function describe(t: TimerLike): string {
  const fn = t._onTimeout?.name || 'anonymous';
  return `${fn} ${t._idleTimeout ?? '?'} ms${t._repeat ? ' repeat' : ''}${t.hasRef?.() === false ? ' unref' : ''}`;
}

/** global.gc without starting node with --expose-gc (which would apply from the start, to everything). */
let gc: (() => void) | undefined;
function fullGc(): void {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
}

if (dir && hooks) {
  createHook({
    init(asyncId, type, _trigger, resource) {
      if (own || SKIP.has(type)) return;
      live.set(asyncId, type);
      if (type === 'Timeout') timers.set(asyncId, resource as TimerLike);
    },
    destroy(asyncId) {
      live.delete(asyncId);
      timers.delete(asyncId);
    },
  }).enable();
}

if (dir) {
  // Node reports a fired or cleared resource destroyed a little later, when the loop goes round; the snapshot
  // waits 50 ms so that what ended before the signal is not counted as live.
  process.on('SIGUSR2', () => {
    own = true;
    setTimeout(write, 50).unref(); // unref'd: not in getActiveResourcesInfo() either
    own = false;
  });

  // Never throws: at EMFILE even process.memoryUsage() fails (it reads /proc/self), and an exception here
  // would end the warmpool process; the benchmark then reports a failed sample instead.
  function write(): void {
    try {
      const count = (xs: Iterable<string>): Record<string, number> => {
        const r: Record<string, number> = {};
        for (const x of xs) r[x] = (r[x] ?? 0) + 1;
        return r;
      };
      const memory = process.memoryUsage();
      const gcFile = join(dir, `gc-${process.pid}`);
      let gcMemory: NodeJS.MemoryUsage | undefined;
      if (existsSync(gcFile)) {
        rmSync(gcFile);
        fullGc();
        gcMemory = process.memoryUsage();
      }
      const snapshot = {
        at: Date.now(),
        gcMemory,
        active: count(process.getActiveResourcesInfo()),
        live: count(live.values()),
        timers: count([...timers.values()].map(describe)),
        memory,
      };
      writeFileSync(join(dir, `soak-probe-${process.pid}.json`), JSON.stringify(snapshot));
    } catch {
      // no snapshot this time
    }
  }
}
