// One Docker Engine events stream kept open for a runtime's watch(): reconnected with backoff when it
// breaks or cannot be opened (the engine restarted, its socket went), and each (re)connection announced,
// since a reconnect is when a runtime must look at what it missed. The Docker and Swarm runtimes use it.

import type { Clock, TimerHandle } from '../../core/clock.js';
import { errorMessage } from '../../core/errors.js';
import { Backoff, type BackoffPolicy } from '../../core/retry.js';
import type { Engine, EngineEvent, EngineStream, Filters } from './engine.js';

/** 250 ms after a break, doubling to 10 s; a stream that stayed up 10 s starts the count again. */
export const EVENTS_BACKOFF: BackoffPolicy & { healthyMs: number } = { firstMs: 250, maxMs: 10_000, healthyMs: 10_000 };

export interface EventStreamOptions {
  engine: Engine;
  clock: Clock;
  /** What each connection asks for; `reconnect` is false for the first one. */
  query(reconnect: boolean): { filters: Filters; since?: number };
  onEvent(ev: EngineEvent): void;
  /**
   * The stream is open: the first time (`reconnect` false) and after each break. `signal` aborts when
   * this connection is given up (stopped, or broken again).
   */
  onConnected?(reconnect: boolean, signal: AbortSignal): void;
  /** A line that is not JSON, a break, a failed connect: for the log. */
  warn(message: string): void;
  /** Turns a failed connect into the runtime's error (names the engine call and what to do). */
  connectError(e: unknown): Error;
  /** The runtime was closed: stop reconnecting. */
  closed(): boolean;
}

/** Opens the stream at once and keeps it open until the returned stop() (or o.closed()). */
export function followEvents(o: EventStreamOptions): () => void {
  let stopped = false;
  let first = true;
  let abort: AbortController | undefined;
  let timer: TimerHandle | undefined;
  const backoff = new Backoff(EVENTS_BACKOFF);
  const onInvalid = (line: string) => o.warn(`docker events: not JSON: ${line.slice(0, 200)}`);

  const retry = (why: string) => {
    if (stopped || o.closed()) return;
    const delay = backoff.next();
    o.warn(`docker events stream ${why}; reconnecting in ${delay} ms`);
    timer = o.clock.setTimer(delay, () => {
      timer = undefined;
      void connect();
    });
  };

  const connect = async () => {
    if (stopped || o.closed()) return;
    abort = new AbortController();
    const signal = abort.signal;
    const reconnect = !first;
    first = false;
    let stream: EngineStream;
    try {
      stream = await o.engine.events({ ...o.query(reconnect), signal }, o.onEvent, onInvalid);
    } catch (e) {
      if (!signal.aborted) retry(`failed: ${errorMessage(o.connectError(e))}`);
      return;
    }
    const connectedAt = o.clock.now();
    try {
      o.onConnected?.(reconnect, signal);
    } catch (e) {
      o.warn(`events stream callback failed after it ${reconnect ? 're' : ''}connected: ${errorMessage(e)}`);
    }
    const end = (why: string) => {
      if (signal.aborted) return;
      if (o.clock.now() - connectedAt >= EVENTS_BACKOFF.healthyMs) backoff.reset();
      retry(why);
    };
    stream.done.then(
      () => end('ended'),
      (e: unknown) => end(`failed: ${errorMessage(e)}`),
    );
  };

  void connect();
  return () => {
    if (stopped) return;
    stopped = true;
    abort?.abort();
    timer?.cancel();
  };
}
