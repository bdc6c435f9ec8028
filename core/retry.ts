// Backoff and retry on the Clock: one exponential backoff with a cap (optional jitter) for every loop
// that tries again after a failure, so a test advances a ManualClock and sees each attempt at its instant.

import type { Clock, TimerHandle } from './clock.js';

export interface BackoffPolicy {
  /** The wait after the first failure, ms. */
  firstMs: number;
  /** No wait is longer than this, ms. */
  maxMs: number;
  /** Each wait is this many times the one before (default 2). */
  factor?: number;
  /** From 0 to 1: each wait is drawn from [wait × (1 − jitter), wait], so many retriers spread out. Default 0: exact waits. */
  jitter?: number;
  /** The random source for jitter (default Math.random), from 0 (included) to 1. */
  random?: () => number;
}

/** The wait after the nth failure in a row (n from 1): firstMs, then × factor each time, at most maxMs. */
export function backoffDelay(p: BackoffPolicy, failures: number): number {
  const exact = Math.min(p.maxMs, p.firstMs * (p.factor ?? 2) ** Math.max(0, failures - 1));
  if (!p.jitter) return exact;
  const j = Math.min(1, Math.max(0, p.jitter));
  return Math.round(exact * (1 - j * (p.random ?? Math.random)()));
}

/**
 * Failures in a row, for loops driven by events rather than by one awaited call (a stream that is
 * reopened when it ends): next() is the wait after one more failure, reset() follows a success.
 */
export class Backoff {
  private count = 0;
  constructor(readonly policy: BackoffPolicy) {}
  /** Failures since the last reset(). */
  get failures(): number {
    return this.count;
  }
  /** Counts one more failure and returns the wait before the next try, ms. */
  next(): number {
    return backoffDelay(this.policy, ++this.count);
  }
  reset(): void {
    this.count = 0;
  }
}

/** One failed attempt that retryIf accepted: what the caller's log line needs. */
export interface RetryFailure {
  error: unknown;
  /** 1 for the first attempt. */
  attempt: number;
  /** The wait before the next attempt, ms (0: at once, the signal asked for a last try); undefined: none follows, retry() rejects with error. */
  retryInMs: number | undefined;
}

export interface RetryOptions extends BackoffPolicy {
  clock: Clock;
  /** Attempts in all, the first one included (default: no limit). */
  attempts?: number;
  /**
   * Ends the retrying: a wait under way ends at once and no attempt starts after it, and retry()
   * rejects with the signal's reason; with lastTryOnAbort, one last attempt is made instead, at once.
   */
  signal?: AbortSignal;
  /** When the signal aborts, try once more at once (a shutdown that wants the work done if it can be) rather than give up. */
  lastTryOnAbort?: boolean;
  /** Whether a failure is worth another attempt (default: every one). A failure it refuses is thrown at once, without onFailure. */
  retryIf?: (error: unknown, attempt: number) => boolean;
  /** Told of each failed attempt retryIf accepted, before the wait (for the log line). Must not throw. */
  onFailure?: (f: RetryFailure) => void;
}

/**
 * Calls fn until it resolves, waiting on the clock between attempts: firstMs after the first failure,
 * doubling up to maxMs. Rejects with the last failure once the attempts are used up, at once with a
 * failure retryIf refuses, or with the signal's reason when it aborts (see lastTryOnAbort).
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, o: RetryOptions): Promise<T> {
  const { signal } = o;
  if (signal?.aborted && !o.lastTryOnAbort) throw abortReason(signal);
  for (let attempt = 1; ; attempt++) {
    // The last attempt: the count is used up, or the signal asked for one last try before this one started.
    const last = attempt === o.attempts || (signal?.aborted === true && o.lastTryOnAbort === true);
    try {
      return await fn(attempt);
    } catch (error) {
      if (o.retryIf && !o.retryIf(error, attempt)) throw error;
      const abortedNow = signal?.aborted === true;
      if (abortedNow && !o.lastTryOnAbort) {
        o.onFailure?.({ error, attempt, retryInMs: undefined });
        throw abortReason(signal!);
      }
      // The signal aborted while this attempt was in flight: the last try is now, not after a wait.
      const retryInMs = last ? undefined : abortedNow ? 0 : backoffDelay(o, attempt);
      o.onFailure?.({ error, attempt, retryInMs });
      if (retryInMs === undefined) throw error;
      if (retryInMs > 0) await wait(o.clock, retryInMs, signal);
      if (signal?.aborted && !o.lastTryOnAbort) throw abortReason(signal);
    }
  }
}

/** Resolves after ms on the clock, or as soon as the signal aborts (never rejects). */
function wait(clock: Clock, ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    let timer: TimerHandle | undefined;
    const done = () => {
      timer?.cancel();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    signal?.addEventListener('abort', done, { once: true });
    timer = clock.setTimer(ms, done);
  });
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new Error('aborted');
}
