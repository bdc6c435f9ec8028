// Reads the per-session traffic log back (the files JsonlTrafficLog writes) and turns its entries
// into one record per session: lifecycle, end summary, active time; then filters and totals them.
// Only readEntries/readSessions touch the disk; the rest is pure. Used by `warmpool sessions`.

import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { TrafficLogEntryType } from './traffic-log-schema.js';

/**
 * One line of the log read back: `{t, type, session, app, ...}`. What the fleet writes is typed in
 * pool/traffic-log-schema.ts; a line read back is not trusted to match it (other versions, torn files).
 */
export interface TrafficEntry {
  t: number;
  type: TrafficLogEntryType | (string & {});
  session: string;
  app: string;
  [key: string]: unknown;
}

/** What reading skipped. A torn line is the unfinished last line of a file (a crash, or a write in progress). */
export interface ReadStats {
  files: string[];
  lines: number;
  entries: number;
  /** Lines that are not JSON, or not an entry of this log. */
  garbage: number;
  torn: number;
  /** Torn lines with a whole entry appended after them by the next run: the entry was kept. */
  recovered: number;
  /** JSON objects with t and type but no session (not per-session entries): ignored silently. */
  ignored: number;
  /** Files listed but gone before they could be read (removed by log retention). */
  vanished: number;
  /** Where the first few skipped lines are, for the warning. */
  examples: { file: string; line: number; kind: 'garbage' | 'torn' }[];
}

export function newReadStats(): ReadStats {
  return { files: [], lines: 0, entries: 0, garbage: 0, torn: 0, recovered: 0, ignored: 0, vanished: 0, examples: [] };
}

const FILE_RE = /^sessions-(\d{4}-\d{2}-\d{2})(?:\.(\d+))?\.jsonl$/;

/** `sessions-2024-05-01.jsonl` -> {day, part 0}; `sessions-2024-05-01.3.jsonl` -> part 3; else undefined. */
export function parseLogFileName(name: string): { day: string; part: number } | undefined {
  const m = FILE_RE.exec(name);
  return m ? { day: m[1]!, part: m[2] === undefined ? 0 : Number(m[2]) } : undefined;
}

/** The log's file names in write order: by day, then by part as a number (.10 after .9). */
export function sortLogFiles(names: readonly string[]): string[] {
  return names
    .map((name) => ({ name, key: parseLogFileName(name) }))
    .filter((x): x is { name: string; key: { day: string; part: number } } => x.key !== undefined)
    .sort((a, b) => (a.key.day < b.key.day ? -1 : a.key.day > b.key.day ? 1 : a.key.part - b.key.part))
    .map((x) => x.name);
}

export async function listLogFiles(dir: string): Promise<string[]> {
  return sortLogFiles(await readdir(dir));
}

/** One line -> an entry, or undefined for anything that is not one. */
export function parseEntry(line: string): TrafficEntry | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  return isEntry(v) ? v : undefined;
}

function isEntry(v: unknown): v is TrafficEntry {
  if (!isObject(v)) return false;
  return (
    typeof v.t === 'number' &&
    Number.isFinite(v.t) &&
    typeof v.type === 'string' &&
    v.type !== '' &&
    typeof v.session === 'string' &&
    v.session !== '' &&
    typeof v.app === 'string'
  );
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// The writer starts every line with `{"t":` (the fleet spreads the entry after t).
const ENTRY_START = '{"t":';

function takeLine(raw: string, file: string, line: number, last: boolean, stats: ReadStats): TrafficEntry | undefined {
  const text = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
  if (text.trim() === '') return undefined;
  stats.lines++;
  const e = parseEntry(text);
  if (e) return e;
  // A run that died mid-line leaves a torn line with no newline; the next run appends to the same
  // file, so the torn head and a whole entry share one line. Keep that entry.
  const k = text.lastIndexOf(ENTRY_START);
  if (k > 0) {
    const tail = parseEntry(text.slice(k));
    if (tail) {
      stats.torn++;
      stats.recovered++;
      note(stats, file, line, 'torn');
      return tail;
    }
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  if (isObject(v) && typeof v.t === 'number' && typeof v.type === 'string' && v.session === undefined) {
    stats.ignored++;
    return undefined;
  }
  if (last) stats.torn++;
  else stats.garbage++;
  note(stats, file, line, last ? 'torn' : 'garbage');
  return undefined;
}

function note(stats: ReadStats, file: string, line: number, kind: 'garbage' | 'torn'): void {
  if (stats.examples.length < 5) stats.examples.push({ file, line, kind });
}

/**
 * Every entry of every log file in dir, file by file in write order (so in time order), streamed.
 * Skips and counts garbage lines and an unfinished last line; never throws for content.
 */
export async function* readEntries(dir: string, stats: ReadStats = newReadStats()): AsyncGenerator<TrafficEntry> {
  const files = await listLogFiles(dir);
  stats.files.push(...files);
  for (const name of files) {
    const decoder = new StringDecoder('utf8');
    let rest = '';
    let lineNo = 0;
    let stream: ReturnType<typeof createReadStream> | undefined;
    try {
      stream = createReadStream(join(dir, name));
      for await (const chunk of stream) {
        rest += decoder.write(chunk as Buffer);
        let from = 0;
        for (let nl = rest.indexOf('\n'); nl >= 0; nl = rest.indexOf('\n', from)) {
          const e = takeLine(rest.slice(from, nl), name, ++lineNo, false, stats);
          from = nl + 1;
          if (e) {
            stats.entries++;
            yield e;
          }
        }
        rest = rest.slice(from);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && lineNo === 0) {
        stats.vanished++;
        continue;
      }
      throw err;
    } finally {
      stream?.destroy();
    }
    rest += decoder.end();
    if (rest !== '') {
      const e = takeLine(rest, name, ++lineNo, true, stats);
      if (e) {
        stats.entries++;
        yield e;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Per-session records

export interface Frames {
  control: number;
  data: number;
}

/** The `summary` of an `ended` entry, with missing or malformed counters read as zero. */
export interface SessionSummary {
  claimedAt?: number;
  durationMs?: number;
  lastActive?: number;
  /** Not written by the fleet today; used instead of the estimate when present. */
  activeMs?: number;
  requests: Record<string, number>;
  bytesIn: number;
  bytesOut: number;
  framesIn: Frames;
  framesOut: Frames;
  messagesIn: Record<string, number>;
  messagesOut: number;
}

export interface SessionRecord {
  session: string;
  app: string;
  instance?: string;
  visitor?: string;
  waitedInLine: boolean;
  /** Claim time: from the `claimed` entry, else `restored.claimedAt`, else the summary, else the first entry. */
  claimedAt: number;
  /** Neither its claim nor a restore is in the log (older files removed): its start is missing. */
  partial: boolean;
  /** Undefined while live: no `ended` entry yet. */
  endedAt?: number;
  reason?: string;
  /** How long after its deadline the session was reaped, ms (deadline reasons only). */
  lateMs?: number;
  /** Ended: summary.durationMs. Live: from the claim to the last logged entry (a lower bound). */
  durationMs: number;
  /** See activeTime(). */
  activeMs: number;
  /** 'fleet': summary.activeMs; 'log': estimated from the entries by activeTime(). */
  activeFrom: 'fleet' | 'log';
  lastActive?: number;
  lastEntryAt: number;
  /** Times the session was re-adopted after a warmpool restart (its counters restart each time). */
  restarts: number;
  idleNotices: number;
  wsOpened: number;
  summary?: SessionSummary;
  /** The session's entries in time order. */
  events: TrafficEntry[];
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

function counts(v: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (isObject(v)) for (const [k, n] of Object.entries(v)) if (num(n) !== undefined) out[k] = n as number;
  return out;
}

function frames(v: unknown): Frames {
  const o = isObject(v) ? v : {};
  return { control: num(o.control) ?? 0, data: num(o.data) ?? 0 };
}

export function normalizeSummary(v: unknown): SessionSummary {
  const o = isObject(v) ? v : {};
  return {
    claimedAt: num(o.claimedAt),
    durationMs: num(o.durationMs),
    lastActive: num(o.lastActive),
    activeMs: num(o.activeMs),
    requests: counts(o.requests),
    bytesIn: num(o.bytesIn) ?? 0,
    bytesOut: num(o.bytesOut) ?? 0,
    framesIn: frames(o.framesIn),
    framesOut: frames(o.framesOut),
    messagesIn: counts(o.messagesIn),
    messagesOut: num(o.messagesOut) ?? 0,
  };
}

export function sumValues(o: Record<string, number>): number {
  let n = 0;
  for (const v of Object.values(o)) n += v;
  return n;
}

/**
 * Active time, estimated from what the log holds. A session is active in stretches. A stretch
 * opens at the claim, at `active-again` and at `restored` (the fleet restarts the idle clock
 * there), and closes at the last user activity before the fleet noticed idleness (`idle.since`)
 * or before the end (`summary.lastActive`). The fleet writes `idle` once no activity was seen
 * for its idle-notice interval (60 s by default), so pauses shorter than that count as active and
 * longer ones do not: a tab left open with only keepalives adds nothing after its last real
 * activity. A stretch still open at a restart closes at the last entry before it; one still open
 * in a live session closes at the last entry (both lower bounds). Ended sessions whose summary
 * carries activeMs use that instead.
 */
export function activeTime(events: readonly TrafficEntry[]): { ms: number; open: boolean; from: 'fleet' | 'log' } {
  const end = events.find((e) => e.type === 'ended');
  const fleetMs = end ? num(isObject(end.summary) ? end.summary.activeMs : undefined) : undefined;
  if (fleetMs !== undefined) return { ms: fleetMs, open: false, from: 'fleet' };
  let ms = 0;
  let openAt: number | undefined;
  let prev: number | undefined;
  const close = (at: number | undefined) => {
    if (openAt !== undefined && at !== undefined) ms += Math.max(0, at - openAt);
    openAt = undefined;
  };
  for (const e of events) {
    switch (e.type) {
      case 'claimed':
      case 'active-again':
        openAt ??= e.t;
        break;
      case 'restored':
        close(prev);
        openAt = e.t;
        break;
      case 'idle':
        close(num(e.since));
        break;
      case 'ended':
        close(num(isObject(e.summary) ? e.summary.lastActive : undefined));
        return { ms, open: false, from: 'log' };
      default:
        // A log that begins mid-session (its claim in a removed file): count from what is seen.
        if (prev === undefined) openAt = e.t;
    }
    prev = e.t;
  }
  const open = openAt !== undefined;
  close(prev);
  return { ms, open, from: 'log' };
}

/** One session's record from its entries (any order; sorted by time, stable). */
export function buildRecord(entries: readonly TrafficEntry[]): SessionRecord {
  if (entries.length === 0) throw new Error('buildRecord: no entries');
  const events = [...entries].sort((a, b) => a.t - b.t);
  const first = events[0]!;
  const claimed = events.find((e) => e.type === 'claimed');
  const restored = events.filter((e) => e.type === 'restored');
  const ended = events.find((e) => e.type === 'ended');
  const summary = ended ? normalizeSummary(ended.summary) : undefined;
  const knownClaim = claimed?.t ?? restored.map((e) => num(e.claimedAt)).find((x) => x !== undefined) ?? summary?.claimedAt;
  const claimedAt = knownClaim ?? first.t;
  const lastEntryAt = events[events.length - 1]!.t;
  const active = activeTime(events);
  const deadline = ended ? num(ended.deadline) : undefined;
  return {
    session: first.session,
    app: claimed?.app ?? first.app,
    instance: str(claimed?.instance) ?? str(restored[0]?.instance) ?? str(ended?.instance),
    visitor: str(claimed?.visitor),
    waitedInLine: claimed?.waitedInLine === true,
    claimedAt,
    partial: !claimed && restored.length === 0,
    endedAt: ended?.t,
    reason: ended ? (str(ended.reason) ?? 'unknown') : undefined,
    lateMs: ended ? (num(ended.late) ?? (deadline !== undefined ? ended.t - deadline : undefined)) : undefined,
    durationMs: ended ? (summary?.durationMs ?? ended.t - claimedAt) : lastEntryAt - claimedAt,
    activeMs: active.ms,
    activeFrom: active.from,
    lastActive: summary?.lastActive,
    lastEntryAt,
    restarts: restored.length,
    idleNotices: events.filter((e) => e.type === 'idle').length,
    wsOpened: events.filter((e) => e.type === 'ws-open').length,
    summary,
    events,
  };
}

/** Collects entries by session; records() builds them, ordered by claim time. */
export class SessionBuilder {
  private readonly bySession = new Map<string, TrafficEntry[]>();

  add(e: TrafficEntry): void {
    const list = this.bySession.get(e.session);
    if (list) list.push(e);
    else this.bySession.set(e.session, [e]);
  }

  records(): SessionRecord[] {
    return [...this.bySession.values()]
      .map(buildRecord)
      .sort((a, b) => a.claimedAt - b.claimedAt || (a.session < b.session ? -1 : a.session > b.session ? 1 : 0));
  }
}

export function buildSessions(entries: Iterable<TrafficEntry>): SessionRecord[] {
  const b = new SessionBuilder();
  for (const e of entries) b.add(e);
  return b.records();
}

/** Reads a log directory into session records. Throws only for I/O (missing dir, permissions). */
export async function readSessions(dir: string): Promise<{ sessions: SessionRecord[]; stats: ReadStats }> {
  const stats = newReadStats();
  const b = new SessionBuilder();
  for await (const e of readEntries(dir, stats)) b.add(e);
  return { sessions: b.records(), stats };
}

// ---------------------------------------------------------------------------------------------
// Selecting and totalling

export interface SessionFilter {
  apps?: readonly string[];
  /** End reasons; 'live' selects sessions not ended. */
  reasons?: readonly string[];
  /** Claimed at or after, ms. */
  since?: number;
  /** Claimed before, ms. */
  until?: number;
  live?: boolean;
}

export function matches(r: SessionRecord, f: SessionFilter): boolean {
  if (f.apps?.length && !f.apps.includes(r.app)) return false;
  if (f.reasons?.length && !f.reasons.includes(r.reason ?? 'live')) return false;
  if (f.since !== undefined && r.claimedAt < f.since) return false;
  if (f.until !== undefined && r.claimedAt >= f.until) return false;
  if (f.live && r.endedAt !== undefined) return false;
  return true;
}

export function filterSessions(records: readonly SessionRecord[], f: SessionFilter): SessionRecord[] {
  return records.filter((r) => matches(r, f));
}

export type FindSession = { kind: 'found'; record: SessionRecord } | { kind: 'none' } | { kind: 'ambiguous'; matches: SessionRecord[] };

/** By full id or unique prefix (case-sensitive: ids are base64url). */
export function findSession(records: readonly SessionRecord[], idOrPrefix: string): FindSession {
  const exact = records.find((r) => r.session === idOrPrefix);
  if (exact) return { kind: 'found', record: exact };
  const found = idOrPrefix === '' ? [] : records.filter((r) => r.session.startsWith(idOrPrefix));
  if (found.length === 1) return { kind: 'found', record: found[0]! };
  return found.length === 0 ? { kind: 'none' } : { kind: 'ambiguous', matches: found };
}

/** The shortest prefix length (at least min) that tells every id apart. */
export function uniquePrefixLength(ids: readonly string[], min = 8): number {
  const sorted = [...new Set(ids)].sort();
  let n = min;
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!,
      b = sorted[i]!;
    let k = 0;
    while (k < a.length && k < b.length && a[k] === b[k]) k++;
    n = Math.max(n, k + 1);
  }
  return n;
}

export type Period = 'hour' | 'day';

export interface TotalsRow {
  app: string;
  /** Start of the UTC hour or day the sessions were claimed in, ms. */
  periodStart: number;
  /** Sessions claimed in the period. */
  started: number;
  live: number;
  ended: number;
  endedBy: Record<string, number>;
  /** Durations, active time, bytes and messages count the ended sessions (live ones have no summary yet). */
  durationTotalMs: number;
  /** Undefined when none ended. */
  durationMeanMs?: number;
  activeTotalMs: number;
  activeMeanMs?: number;
  requests: number;
  bytesIn: number;
  bytesOut: number;
  messagesIn: number;
  messagesInByType: Record<string, number>;
  messagesOut: number;
}

export function periodStart(t: number, by: Period): number {
  const size = by === 'hour' ? 3_600_000 : 86_400_000;
  return Math.floor(t / size) * size;
}

/** Per app and claim period (UTC): each session counted once, in the period it was claimed. */
/** A totals row's counters, all zero (a new row, or the sum of several). */
export function emptyTotals(): Omit<TotalsRow, 'app' | 'periodStart'> {
  return {
    started: 0,
    live: 0,
    ended: 0,
    endedBy: {},
    durationTotalMs: 0,
    activeTotalMs: 0,
    requests: 0,
    bytesIn: 0,
    bytesOut: 0,
    messagesIn: 0,
    messagesInByType: {},
    messagesOut: 0,
  };
}

export function totals(records: readonly SessionRecord[], by: Period = 'hour'): TotalsRow[] {
  const rows = new Map<string, TotalsRow>();
  for (const r of records) {
    const start = periodStart(r.claimedAt, by);
    const key = `${start}\u0000${r.app}`;
    let row = rows.get(key);
    if (!row) {
      row = { app: r.app, periodStart: start, ...emptyTotals() };
      rows.set(key, row);
    }
    row.started++;
    if (r.endedAt === undefined) {
      row.live++;
      continue;
    }
    row.ended++;
    const reason = r.reason ?? 'unknown';
    row.endedBy[reason] = (row.endedBy[reason] ?? 0) + 1;
    row.durationTotalMs += r.durationMs;
    row.activeTotalMs += r.activeMs;
    const s = r.summary;
    if (s) {
      row.requests += sumValues(s.requests);
      row.bytesIn += s.bytesIn;
      row.bytesOut += s.bytesOut;
      row.messagesIn += sumValues(s.messagesIn);
      row.messagesOut += s.messagesOut;
      for (const [k, n] of Object.entries(s.messagesIn)) row.messagesInByType[k] = (row.messagesInByType[k] ?? 0) + n;
    }
  }
  const out = [...rows.values()].sort((a, b) => a.periodStart - b.periodStart || (a.app < b.app ? -1 : a.app > b.app ? 1 : 0));
  for (const row of out) {
    if (row.ended > 0) {
      row.durationMeanMs = row.durationTotalMs / row.ended;
      row.activeMeanMs = row.activeTotalMs / row.ended;
    }
  }
  return out;
}
