// An instance's output as lines, for the Docker and Swarm runtimes alike: find the engine object, open
// its followed log stream (everything printed so far, then what comes), split stdout and stderr into
// lines apart (so their lines never mix mid-line), and stop cleanly when asked or when the runtime closes.
// A stream the engine broke (dockerd restarted) is opened again once the engine answers, and the lines
// already delivered are skipped in the replay: a notebook that prints READY while dockerd is down is
// still seen ready, rather than replaced at its readiness timeout.

import type { Clock, TimerHandle } from '../../core/clock.js';
import { WarmpoolError, isWarmpoolError } from '../../core/errors.js';
import { Backoff } from '../../core/retry.js';
import type { EngineStream } from './engine.js';
import { LineSplitter } from './engine-streams.js';

export interface FollowOutput {
  instanceId: string;
  /** The runtime's stop functions, all called when it closes; this one removes itself when done. */
  stoppers: Set<() => void>;
  /** The engine object's id (container or service), or undefined when the instance is gone. */
  locate: () => Promise<string | undefined>;
  /** What the engine object is, for the error when it is gone: "container", "service". */
  kind: string;
  /** Opens the followed, multiplexed log stream of that object. */
  open: (id: string, signal: AbortSignal, onData: (fd: number, data: Buffer) => void) => Promise<EngineStream>;
  onLine: (line: string) => void;
  /** The stream could not be opened or broke (not called after stop; once per outage while it is retried). */
  failed: (e: unknown, opening: boolean) => void;
  /** Waits between attempts to open it again. */
  clock: Clock;
}

/** Waits before opening a broken stream again: 250 ms, doubling up to 5 s. */
const REOPEN = { firstMs: 250, maxMs: 5000 };

/** Follows the instance's output; returns the function that stops it. */
export function followOutput(o: FollowOutput): () => void {
  const abort = new AbortController();
  let stopped = false;
  let timer: TimerHandle | undefined;
  const backoff = new Backoff(REOPEN);
  /** Lines delivered so far per stream (1 stdout, 2 stderr): a replay after a reconnect skips them. */
  const delivered = [0, 0, 0];
  const stop = () => {
    if (stopped) return;
    stopped = true;
    abort.abort();
    timer?.cancel();
    o.stoppers.delete(stop);
  };
  o.stoppers.add(stop);

  const splitter = (fd: 1 | 2) => {
    let seen = 0;
    return new LineSplitter((line) => {
      if (++seen <= delivered[fd]!) return;
      delivered[fd] = seen;
      if (!stopped) o.onLine(line);
    });
  };

  /** Once per outage: the first failure is told, the retries are not. */
  const again = (e: unknown, opening: boolean) => {
    if (stopped) return;
    const wait = backoff.next();
    if (backoff.failures === 1) o.failed(e, opening);
    timer = o.clock.setTimer(wait, () => {
      timer = undefined;
      void follow();
    });
  };

  const follow = async (): Promise<void> => {
    let opening = true;
    try {
      const id = await o.locate();
      if (!id) throw new WarmpoolError('INSTANCE_GONE', `no ${o.kind} for instance ${o.instanceId}`);
      if (stopped) return;
      // Partial lines of a broken stream are dropped with its splitters: the replay brings them whole.
      const out = splitter(1);
      const err = splitter(2);
      const stream = await o.open(id, abort.signal, (fd, data) => (fd === 2 ? err : out).push(data));
      backoff.reset();
      opening = false;
      await stream.done;
      if (!stopped) {
        out.flush();
        err.flush();
      }
      stop();
    } catch (e) {
      if (stopped) return;
      // The engine went away (or broke the stream): open it again once it answers. Anything else is final.
      if (!opening || isWarmpoolError(e, 'ENGINE_UNREACHABLE')) again(e, opening);
      else {
        o.failed(e, opening);
        stop();
      }
    }
  };
  void follow();
  return stop;
}
