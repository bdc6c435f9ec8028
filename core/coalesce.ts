// Changes that come faster than anyone can read them, turned into at most one run per gap: the first
// change after a quiet gap runs at once, later ones within the gap run once at its end, with the state
// as it is then. The last change is never lost, and a state that lasts a whole gap is always shown.

import type { Clock, TimerHandle } from './clock.js';

export class Coalesced {
  private lastRun = Number.NEGATIVE_INFINITY;
  private timer?: TimerHandle;

  /**
   * fn runs inside changed() or on the clock's timer. What it throws goes to onError (default: dropped),
   * never out of a timer callback, where it would end the process.
   */
  constructor(
    private readonly clock: Clock,
    private readonly gapMs: number,
    private readonly fn: () => void,
    private readonly onError: (e: unknown) => void = () => undefined,
  ) {}

  /** Something changed: run now if the last run is a gap old, else once at the gap's end. */
  changed(): void {
    if (this.timer) return;
    const wait = this.lastRun + this.gapMs - this.clock.now();
    if (wait <= 0) {
      this.run();
      return;
    }
    this.timer = this.clock.setTimer(wait, () => {
      this.timer = undefined;
      this.run();
    });
  }

  /** No more runs; a pending one is dropped. */
  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  private run(): void {
    this.lastRun = this.clock.now();
    try {
      this.fn();
    } catch (e) {
      try {
        this.onError(e);
      } catch {
        /* the report is what failed */
      }
    }
  }
}
