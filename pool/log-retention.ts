// Removes traffic log files once everything in them is older than config.log.retention: a file of
// UTC day D holds entries up to D+1 00:00, so it goes at D+1 + retention. Checked at start and then
// hourly on the injected Clock; the file being written (today's) is never old enough.

import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock, TimerHandle } from '../core/clock.js';
import { errorMessage } from '../core/errors.js';
import { listLogFiles, parseLogFileName } from './traffic-log-reader.js';
import type { Log } from '../core/log.js';

const DAY = 86_400_000;

/** The log file names (of those given) whose every entry is older than retentionMs at now. Pure. */
export function expiredLogFiles(names: readonly string[], now: number, retentionMs: number): string[] {
  return names.filter((n) => {
    const f = parseLogFileName(n);
    if (!f) return false;
    const dayStart = Date.parse(`${f.day}T00:00:00Z`);
    return Number.isFinite(dayStart) && dayStart + DAY + retentionMs <= now;
  });
}

export class LogRetention {
  private timer?: TimerHandle;
  private running?: Promise<string[]>;
  private stopped = false;

  constructor(private readonly o: { dir: string; retentionMs: number; clock: Clock; log?: Log; everyMs?: number }) {}

  /** Sweeps now, then every everyMs (default an hour). */
  start(): void {
    this.stopped = false;
    void this.sweep();
  }

  /** Removes expired files now; resolves with the names removed. Never rejects (reported through log). */
  sweep(): Promise<string[]> {
    this.running ??= this.remove().finally(() => {
      this.running = undefined;
      this.schedule();
    });
    return this.running;
  }

  /** Resolves once a sweep under way (if any) is done. */
  async idle(): Promise<void> {
    await this.running;
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  private schedule(): void {
    this.timer?.cancel();
    this.timer = undefined;
    if (this.stopped) return;
    this.timer = this.o.clock.setTimer(this.o.everyMs ?? 3_600_000, () => {
      this.timer = undefined;
      void this.sweep();
    });
  }

  private async remove(): Promise<string[]> {
    let names: string[];
    try {
      names = await listLogFiles(this.o.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        this.o.log?.(`traffic log retention: cannot list ${this.o.dir}: ${errorMessage(e)}`, undefined, 'warn');
      return [];
    }
    const gone: string[] = [];
    for (const n of expiredLogFiles(names, this.o.clock.now(), this.o.retentionMs)) {
      try {
        await unlink(join(this.o.dir, n));
        gone.push(n);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') this.o.log?.(`traffic log retention: cannot remove ${n}: ${errorMessage(e)}`, undefined, 'warn');
      }
    }
    if (gone.length)
      this.o.log?.(`traffic log retention: removed ${gone.length} file(s) older than ${Math.round(this.o.retentionMs / DAY)} day(s): ${gone.join(', ')}`);
    return gone;
  }
}
