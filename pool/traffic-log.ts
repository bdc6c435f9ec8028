// Where the fleet writes each session's lifecycle: a sink interface and the JSON-lines file
// implementation, rotated by day or size. `warmpool sessions` reads these files back.

import { mkdirSync, statSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { systemClock, type Clock, type TimerHandle } from '../core/clock.js';

const DAY_MS = 86_400_000;

export interface TrafficLogSink {
  write(entry: Record<string, unknown> & { t: number }): void;
  close(): Promise<void>;
}

/** Keeps entries in memory: for tests and embedding. */
export class MemoryTrafficLog implements TrafficLogSink {
  readonly entries: (Record<string, unknown> & { t: number })[] = [];
  write(entry: Record<string, unknown> & { t: number }): void {
    this.entries.push(entry);
  }
  async close(): Promise<void> {}
}

/**
 * Files `sessions-YYYY-MM-DD.jsonl` (UTC day of the entry), and `sessions-YYYY-MM-DD.N.jsonl`
 * once a file passes rotateBytes. One line per entry.
 *
 * Lines are gathered and written together every flushMs (default 100 ms) or once 64 KiB wait: a
 * class arriving at once writes a few lines per student, and one file write per line was ~10 % of
 * the proxy's CPU in the classroom burst profile. A crash loses at most the last flushMs of lines;
 * close() writes everything. The batches are appended in one queue, in the order they were written,
 * whichever file each goes to: a line stamped before midnight and written after it goes back to the
 * day before's file, and a stream per file, opened again while the last one still wrote, could land
 * it out of order. A failed append (disk full) is reported through onError once per failure and its
 * lines are lost; the proxy goes on (a stream's unhandled error would have ended the process).
 */
export class JsonlTrafficLog implements TrafficLogSink {
  /** The file the gathered lines go to. */
  private path?: string;
  /** The appends handed over so far, one after another. */
  private appends: Promise<void> = Promise.resolve();
  private day = '';
  /** The UTC day (ms since the epoch / 86,400,000) that `day` names: no date formatting per entry. */
  private dayNumber = Number.NaN;
  private part = 0;
  private bytes = 0;
  private pending = '';
  private timer?: TimerHandle;
  private readonly flushMs: number;
  private readonly clock: Clock;
  private readonly onError?: (e: Error) => void;

  constructor(
    private readonly dir: string,
    private readonly rotateBytes = 64 * 1024 * 1024,
    o: { flushMs?: number; clock?: Clock; onError?: (e: Error) => void } = {},
  ) {
    this.onError = o.onError;
    this.flushMs = o.flushMs ?? 100;
    this.clock = o.clock ?? systemClock;
    mkdirSync(dir, { recursive: true, mode: 0o700 }); // session ids and visitor addresses: warmpool's alone
  }

  write(entry: Record<string, unknown> & { t: number }): void {
    const line = JSON.stringify(entry) + '\n';
    const dayNumber = Math.floor(entry.t / DAY_MS);
    if (dayNumber !== this.dayNumber) {
      const day = new Date(dayNumber * DAY_MS).toISOString().slice(0, 10);
      if (day !== this.day) this.open(day, 0);
      this.dayNumber = dayNumber;
    } else if (this.bytes + line.length > this.rotateBytes) this.open(this.day, this.part + 1);
    this.bytes += Buffer.byteLength(line);
    this.pending += line;
    if (this.pending.length >= 64 * 1024) this.flush();
    else if (!this.timer)
      this.timer = this.clock.setTimer(this.flushMs, () => {
        this.timer = undefined;
        this.flush();
      });
  }

  /** Hands the gathered lines to the file now. */
  flush(): void {
    if (this.timer) {
      this.timer.cancel();
      this.timer = undefined;
    }
    if (this.pending.length === 0 || this.path === undefined) return;
    const path = this.path;
    const lines = this.pending;
    this.pending = '';
    this.appends = this.appends.then(() =>
      appendFile(path, lines, { mode: 0o600 }).catch((e: Error) =>
        this.onError?.(new Error(`traffic log: could not append ${lines.length} bytes to ${path}: ${e.message}`)),
      ),
    );
  }

  async close(): Promise<void> {
    this.flush();
    this.path = undefined;
    this.day = '';
    this.dayNumber = Number.NaN;
    await this.appends;
  }

  private open(day: string, part: number): void {
    this.flush(); // lines gathered so far belong to the file being left
    this.day = day;
    for (this.part = part; ; this.part++) {
      const path = this.file(day, this.part);
      let size = 0;
      try {
        size = statSync(path).size;
      } catch {
        /* new file */
      }
      if (size < this.rotateBytes) {
        this.bytes = size;
        this.path = path;
        return;
      }
    }
  }

  private file(day: string, part: number): string {
    return join(this.dir, part === 0 ? `sessions-${day}.jsonl` : `sessions-${day}.${part}.jsonl`);
  }
}
