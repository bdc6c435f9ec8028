// An instance's output as lines, for the Docker and Swarm runtimes alike: find the engine object, open
// its followed log stream (everything printed so far, then what comes), split stdout and stderr into
// lines apart (so their lines never mix mid-line), and stop cleanly when asked or when the runtime closes.

import { WarmpoolError } from '../../core/errors.js';
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
  /** The stream could not be opened or broke (not called after stop). */
  failed: (e: unknown, opening: boolean) => void;
}

/** Follows the instance's output; returns the function that stops it. */
export function followOutput(o: FollowOutput): () => void {
  const abort = new AbortController();
  let stopped = false;
  const emit = (line: string) => {
    if (!stopped) o.onLine(line);
  };
  const stop = () => {
    if (stopped) return;
    stopped = true;
    abort.abort();
    o.stoppers.delete(stop);
  };
  o.stoppers.add(stop);
  void (async () => {
    const id = await o.locate();
    if (!id) throw new WarmpoolError('INSTANCE_GONE', `no ${o.kind} for instance ${o.instanceId}`);
    if (stopped) return;
    const out = new LineSplitter(emit);
    const err = new LineSplitter(emit);
    const stream = await o.open(id, abort.signal, (fd, data) => (fd === 2 ? err : out).push(data));
    await stream.done.then(
      () => {
        if (!stopped) {
          out.flush();
          err.flush();
        }
      },
      (e: unknown) => {
        if (!stopped) o.failed(e, false);
      },
    );
    o.stoppers.delete(stop);
  })().catch((e) => {
    if (!stopped) o.failed(e, true);
  });
  return stop;
}
