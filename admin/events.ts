// Server-sent events for the dashboard: each stream gets the whole state as one `state` event at
// once, again soon after every fleet change (at most every minGapMs), and every pushMs while
// nothing changes (last-active times and traffic move without a change event). One JSON string per
// push, written to every stream; a stream that is not reading is skipped until it drains.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock, TimerHandle } from '../core/clock.js';
import type { Log } from '../core/log.js';

export interface EventStreamsOptions {
  clock: Clock;
  /** The state to send (JSON-serializable). */
  snapshot: () => unknown;
  pushMs?: number;
  minGapMs?: number;
  log?: Log;
}

interface Stream {
  res: ServerResponse;
  blocked: boolean;
}

export class EventStreams {
  private readonly streams = new Set<Stream>();
  private timer?: TimerHandle;
  private timerAt = Infinity;
  private lastPush = -Infinity;

  constructor(private readonly o: EventStreamsOptions) {}

  get size(): number {
    return this.streams.size;
  }

  open(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no', // an nginx front must not hold the stream back
    });
    const s: Stream = { res, blocked: false };
    this.streams.add(s);
    res.on('drain', () => {
      s.blocked = false;
    });
    const gone = () => {
      this.streams.delete(s);
      if (this.streams.size === 0) this.cancel();
    };
    res.on('close', gone);
    req.socket.setNoDelay(true);
    res.write('retry: 2000\n\n');
    this.write(s, this.frame());
    this.arm(this.o.pushMs ?? 2000);
  }

  /** The fleet changed: push soon. */
  changed(): void {
    if (this.streams.size === 0) return;
    const gap = this.o.minGapMs ?? 250;
    this.arm(Math.max(0, this.lastPush + gap - this.o.clock.now()));
  }

  close(): void {
    this.cancel();
    for (const s of this.streams) s.res.end();
    this.streams.clear();
  }

  private push(): void {
    if (this.streams.size === 0) return;
    this.arm(this.o.pushMs ?? 2000);
    let f: string;
    try {
      f = this.frame();
    } catch (e) {
      this.o.log?.(`admin: could not build the dashboard state: ${(e as Error)?.stack ?? String(e)}`, undefined, 'error');
      return; // runs in a timer callback: report, never throw
    }
    for (const s of this.streams) if (!s.blocked) this.write(s, f);
  }

  private frame(): string {
    this.lastPush = this.o.clock.now();
    return `event: state\ndata: ${JSON.stringify(this.o.snapshot())}\n\n`;
  }

  private write(s: Stream, frame: string): void {
    if (!s.res.write(frame)) s.blocked = true;
  }

  /** One timer: the earliest of the periodic push and a change push. */
  private arm(inMs: number): void {
    const at = this.o.clock.now() + inMs;
    if (at >= this.timerAt) return;
    this.timer?.cancel();
    this.timerAt = at;
    this.timer = this.o.clock.setTimer(inMs, () => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.push();
    });
  }

  private cancel(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.timerAt = Infinity;
  }
}
