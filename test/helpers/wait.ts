// Waits on events, not on sleeps: resolves when a fleet's state satisfies a predicate, checked on
// every change the fleet reports; rejects with what it saw after a generous real-time limit.

import type { Fleet } from '../../pool/fleet.js';
import type { PoolStatus } from '../../pool/warm-pool.js';

export function waitForStatus(fleet: Fleet, app: string, pred: (s: PoolStatus) => boolean, limitMs = 30_000): Promise<PoolStatus> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const s = fleet.status().find((x) => x.app === app)!;
      if (pred(s)) {
        done();
        resolve(s);
        return true;
      }
      return false;
    };
    const off = fleet.onChange(() => {
      check();
    });
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out waiting; last status ${JSON.stringify(fleet.status())}`));
    }, limitMs);
    function done() {
      off();
      clearTimeout(timer);
    }
    check();
  });
}

/** Polls a condition that no event announces (a process gone, a file removed). */
export async function eventually<T>(fn: () => T | Promise<T>, what: string, limitMs = 10_000, everyMs = 25): Promise<T> {
  const end = Date.now() + limitMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Polls fn until it returns something other than undefined (a value to keep), or fails after ms. */
export async function until<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, ms = 20_000, everyMs = 25): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
