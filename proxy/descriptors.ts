// File descriptors: the one resource a whole class shares that the kernel caps per process
// (`ulimit -n`, systemd's LimitNOFILE). Running out must read as what it is — warmpool at capacity,
// said once in the log with the limit and what to do — not as "your instance is not answering".

import { readFileSync } from 'node:fs';
import type { Log } from '../core/log.js';

/** Whether an error code means the process (or the system) has no descriptor left. */
export function isOutOfDescriptors(code: string | undefined): boolean {
  return code === 'EMFILE' || code === 'ENFILE';
}

/** The open-files limit of this process (Linux /proc), or undefined where it cannot be read. */
export function openFilesLimit(limitsText?: string): { soft: number; hard: number } | undefined {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return undefined;
    }
  }
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(text);
  if (!m) return undefined;
  const n = (s: string): number => (s === 'unlimited' ? Number.POSITIVE_INFINITY : Number(s));
  return { soft: n(m[1]!), hard: n(m[2]!) };
}

/** Descriptors a student holds at the peak of arriving (browser connections, WebSocket, its upstream side), measured by the soak benchmark. */
export const DESCRIPTORS_PER_STUDENT = 3.5;

/** A start-up warning when the limit is low for a class, or undefined. */
export function descriptorLimitNote(limit: { soft: number; hard: number } | undefined, students: number): string | undefined {
  if (!limit || !Number.isFinite(limit.soft)) return undefined;
  const need = Math.ceil(students * DESCRIPTORS_PER_STUDENT) + 256;
  if (limit.soft >= need) return undefined;
  const fits = Math.max(0, Math.floor((limit.soft - 256) / DESCRIPTORS_PER_STUDENT));
  return `the open-files limit is ${limit.soft} (hard ${limit.hard}): about ${fits} students can arrive at once, the apps' max allows ${students}; raise it (ulimit -n ${need}, systemd LimitNOFILE=${need}, docker --ulimit nofile=${need})`;
}

/** Says once per interval that descriptors ran out, with the limit. */
export class DescriptorAlarm {
  private last = Number.NEGATIVE_INFINITY;
  private missed = 0;

  constructor(
    private readonly log: Log | undefined,
    private readonly now: () => number,
    private readonly everyMs = 10_000,
  ) {}

  exhausted(): void {
    const t = this.now();
    if (t - this.last < this.everyMs) {
      this.missed++;
      return;
    }
    const limit = openFilesLimit();
    const more = this.missed ? ` (${this.missed} more since the last line)` : '';
    this.log?.(
      `out of file descriptors${limit ? ` (limit ${limit.soft})` : ''}: visitors get the at-capacity page${more}; raise the open-files limit (ulimit -n, LimitNOFILE, docker --ulimit nofile)`,
      undefined,
      'error',
    );
    this.last = t;
    this.missed = 0;
  }
}
