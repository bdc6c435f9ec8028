// Where the fleet writes each session's lifecycle: a sink interface and the JSON-lines file
// implementation, rotated by day or size. `warmpool sessions` reads these files back.

import { mkdirSync, createWriteStream, statSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';

export interface TrafficLogSink {
  write(entry: Record<string, unknown> & { t: number }): void;
  close(): Promise<void>;
}

/** Keeps entries in memory: for tests and embedding. */
export class MemoryTrafficLog implements TrafficLogSink {
  readonly entries: (Record<string, unknown> & { t: number })[] = [];
  write(entry: Record<string, unknown> & { t: number }): void { this.entries.push(entry); }
  async close(): Promise<void> {}
}

/**
 * Files `sessions-YYYY-MM-DD.jsonl` (UTC day of the entry), and `sessions-YYYY-MM-DD.N.jsonl`
 * once a file passes rotateBytes. One line per entry; writes are buffered by the stream.
 */
export class JsonlTrafficLog implements TrafficLogSink {
  private stream?: WriteStream;
  private day = '';
  private part = 0;
  private bytes = 0;

  constructor(private readonly dir: string, private readonly rotateBytes = 64 * 1024 * 1024) {
    mkdirSync(dir, { recursive: true });
  }

  write(entry: Record<string, unknown> & { t: number }): void {
    const line = JSON.stringify(entry) + '\n';
    const day = new Date(entry.t).toISOString().slice(0, 10);
    if (day !== this.day) this.open(day, 0);
    else if (this.bytes + line.length > this.rotateBytes) this.open(day, this.part + 1);
    this.bytes += Buffer.byteLength(line);
    this.stream!.write(line);
  }

  async close(): Promise<void> {
    const s = this.stream;
    this.stream = undefined;
    this.day = '';
    if (s) await new Promise<void>((r) => s.end(r));
  }

  private open(day: string, part: number): void {
    this.stream?.end();
    this.day = day;
    for (this.part = part; ; this.part++) {
      const path = this.file(day, this.part);
      let size = 0;
      try { size = statSync(path).size; } catch { /* new file */ }
      if (size < this.rotateBytes) {
        this.bytes = size;
        this.stream = createWriteStream(path, { flags: 'a' });
        return;
      }
    }
  }

  private file(day: string, part: number): string {
    return join(this.dir, part === 0 ? `sessions-${day}.jsonl` : `sessions-${day}.${part}.jsonl`);
  }
}
