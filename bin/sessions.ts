// `warmpool sessions`: lists, filters, shows and totals the per-session traffic log
// as text, JSON or CSV. Reading, filtering and totals live in pool/traffic-log-reader.ts.

import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { loadConfig } from '../core/config.js';
import { END_REASON_NAMES } from '../core/end-reasons.js';
import { errorMessage } from '../core/errors.js';
import {
  filterSessions,
  findSession,
  emptyTotals,
  readSessions,
  sumValues,
  totals,
  uniquePrefixLength,
  type Period,
  type ReadStats,
  type SessionFilter,
  type SessionRecord,
  type TotalsRow,
  type TrafficEntry,
} from '../pool/traffic-log-reader.js';

/** Text in lines of at most 100 columns, the ones after the first indented by `indent` spaces. */
function wrap(text: string, indent: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && indent + line.length + 1 + word.length > 100) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

export const HELP = `usage:
  warmpool sessions [list] [filters] [--json | --csv]   one line per session
  warmpool sessions show ID [--json]                    one session's timeline and summary
  warmpool sessions totals [filters] [--by hour|day] [--json | --csv]
                                                        per app and hour (or day) of the claim

where the log is:
  --dir DIR         the traffic log directory (files sessions-YYYY-MM-DD[.N].jsonl)
  --config FILE     else log.dir of this config (or of WARMPOOL_CONFIG), relative to the
                    current directory as for warmpool start; else .state/log

filters (list and totals):
  --app NAME        only this app (repeat or comma-separate for several)
  --reason R        ${wrap(`only sessions that ended for R: ${END_REASON_NAMES.join(', ')}; "live" for those not ended (repeat or comma-separate)`, 20)}
  --live            only sessions not ended
  --since TIME      claimed at or after TIME
  --until TIME      claimed before TIME; a bare date includes that whole day
                    TIME: an ISO date or time (2024-05-01, 2024-05-01T10:30, UTC unless it names a
                    zone) or a time ago (90m, 2h, 3d, 1w, 1h30m)

output:
  --json            JSON (list: an array of sessions; show: the session with its entries)
  --csv             CSV with a header row (RFC 4180), for list and totals
  -h, --help        this help

ID is a session id or a unique prefix of one (list shows the shortest unique prefix).
Times are UTC. Active time is estimated from the log: the time from each claim, or each return
from idleness, to the last user activity before the fleet noted the session idle (after a minute
without activity) or ended it. For live sessions, duration and active time run to the last logged
entry (shown with a trailing +); traffic counts are only logged when a session ends.
Exit status: 0 done, 1 failed (no log, no such session), 2 bad usage.`;

const KNOWN_REASONS: readonly string[] = END_REASON_NAMES;

type Sub = 'list' | 'show' | 'totals';
const SUBS: readonly Sub[] = ['list', 'show', 'totals'];

interface Options {
  sub: Sub;
  id?: string;
  dir?: string;
  config?: string;
  json: boolean;
  csv: boolean;
  apps: string[];
  reasons: string[];
  since?: string;
  until?: string;
  live: boolean;
  by?: string;
  help: boolean;
}

/** Each option: whether it takes a value, and which subcommands accept it. */
const OPTIONS: Record<string, { value: boolean; subs: readonly Sub[] }> = {
  '--dir': { value: true, subs: SUBS },
  '--config': { value: true, subs: SUBS },
  '--json': { value: false, subs: SUBS },
  '--csv': { value: false, subs: ['list', 'totals'] },
  '--app': { value: true, subs: ['list', 'totals'] },
  '--reason': { value: true, subs: ['list', 'totals'] },
  '--live': { value: false, subs: ['list', 'totals'] },
  '--since': { value: true, subs: ['list', 'totals'] },
  '--until': { value: true, subs: ['list', 'totals'] },
  '--by': { value: true, subs: ['totals'] },
  '--help': { value: false, subs: SUBS },
};

/** Bad usage: exit 2. */
class UsageError extends Error {}
/** Could not do it: exit 1. */
class CliError extends Error {}

export interface SessionsIo {
  out: (text: string) => void;
  err: (text: string) => void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  now: number;
}

export async function sessionsCommand(args: string[], io?: Partial<SessionsIo>): Promise<number> {
  if (!io?.out)
    process.stdout.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(0);
    });
  const o: SessionsIo = {
    out: (s) => {
      process.stdout.write(s);
    },
    err: (s) => {
      process.stderr.write(s);
    },
    env: process.env,
    cwd: process.cwd(),
    now: Date.now(),
    ...io,
  };
  try {
    return await run(args, o);
  } catch (e) {
    if (e instanceof UsageError) {
      o.err(`warmpool sessions: ${e.message}\n(warmpool sessions --help shows the options)\n`);
      return 2;
    }
    o.err(`warmpool sessions: ${errorMessage(e)}\n`);
    return 1;
  }
}

async function run(args: string[], io: SessionsIo): Promise<number> {
  const opts = parseArgs(args);
  if (opts.help) {
    io.out(HELP + '\n');
    return 0;
  }
  const filter = parseFilter(opts, io.now);
  const by = opts.by === undefined ? 'hour' : opts.by;
  if (by !== 'hour' && by !== 'day') throw new UsageError(`--by ${JSON.stringify(opts.by)}: expected hour or day`);

  const where = await logDir(opts, io);
  const { sessions, stats } = await readSessions(where.dir);
  warnSkipped(stats, where.dir, io);
  if (stats.files.length === 0) io.err(`warmpool sessions: no log files (sessions-*.jsonl) in ${where.dir}\n`);

  if (filter.reasons?.length) {
    const allowed = new Set([...KNOWN_REASONS, 'live', ...sessions.map((s) => s.reason ?? 'live')]);
    const bad = filter.reasons.find((r) => !allowed.has(r));
    if (bad !== undefined) throw new UsageError(`--reason ${JSON.stringify(bad)}: expected one of ${[...allowed].join(', ')}`);
  }

  switch (opts.sub) {
    case 'show':
      return show(sessions, opts.id!, opts.json, io);
    case 'totals': {
      const rows = totals(filterSessions(sessions, filter), by);
      io.out(opts.json ? JSON.stringify(rows.map(totalsJson(by)), null, 2) + '\n' : opts.csv ? totalsCsv(rows, by) : totalsText(rows, by));
      return 0;
    }
    case 'list': {
      const picked = filterSessions(sessions, filter);
      const idLen = uniquePrefixLength(sessions.map((s) => s.session));
      io.out(opts.json ? JSON.stringify(picked.map(sessionJson), null, 2) + '\n' : opts.csv ? listCsv(picked) : listText(picked, idLen));
      return 0;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Arguments

export function parseArgs(args: readonly string[]): Options {
  const given = new Map<string, string[]>();
  const positional: string[] = [];
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      positional.push(...args.slice(i + 1));
      break;
    }
    if (a === '-h' || a === '--help') {
      help = true;
      continue;
    }
    // Only --long options: a session id may begin with '-' (base64url).
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq < 0 ? a : a.slice(0, eq);
    const spec = OPTIONS[name];
    if (!spec) throw new UsageError(`unknown option ${name}`);
    let value = 'true';
    if (spec.value) {
      if (eq >= 0) value = a.slice(eq + 1);
      else if (i + 1 < args.length && !args[i + 1]!.startsWith('--')) value = args[++i]!;
      else throw new UsageError(`option ${name} needs a value`);
      if (value === '') throw new UsageError(`option ${name} needs a value`);
    } else if (eq >= 0) {
      throw new UsageError(`option ${name} takes no value`);
    }
    given.set(name, [...(given.get(name) ?? []), value]);
  }
  if (help) return { sub: 'list', json: false, csv: false, apps: [], reasons: [], live: false, help: true };

  let sub: Sub = 'list';
  if (positional.length > 0) {
    const p = positional.shift()!;
    if (!(SUBS as readonly string[]).includes(p)) {
      throw new UsageError(`unknown subcommand ${JSON.stringify(p)}; expected list, show or totals (to see one session: warmpool sessions show ${p})`);
    }
    sub = p as Sub;
  }
  let id: string | undefined;
  if (sub === 'show') {
    id = positional.shift();
    if (id === undefined) throw new UsageError('show needs a session id or a unique prefix of one');
  }
  if (positional.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positional[0])}`);
  for (const name of given.keys()) {
    if (!OPTIONS[name]!.subs.includes(sub)) throw new UsageError(`option ${name} does not apply to ${sub}; it is for ${OPTIONS[name]!.subs.join(', ')}`);
  }
  const last = (n: string) => given.get(n)?.at(-1);
  const list = (n: string) =>
    (given.get(n) ?? [])
      .flatMap((v) => v.split(','))
      .map((v) => v.trim())
      .filter((v) => v !== '');
  const o: Options = {
    sub,
    id,
    dir: last('--dir'),
    config: last('--config'),
    json: given.has('--json'),
    csv: given.has('--csv'),
    apps: list('--app'),
    reasons: list('--reason'),
    since: last('--since'),
    until: last('--until'),
    live: given.has('--live'),
    by: last('--by'),
    help: false,
  };
  if (o.json && o.csv) throw new UsageError('choose one of --json and --csv');
  return o;
}

const DAY_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
const LOCAL_RE = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?)$/;
const ZONED_RE = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}:?\d{2})$/i;
const AGO_RE = /^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

/**
 * A --since/--until value: an ISO date (UTC midnight; with end, the next midnight, so the day is
 * included), an ISO date-time (UTC unless zoned), or a time ago like 2h, 90m, 3d, 1w, 1h30m.
 */
export function parseTimeArg(s: string, now: number, end = false): number | undefined {
  const day = DAY_RE.exec(s);
  if (day) {
    const t = Date.parse(`${s}T00:00:00Z`);
    if (!validDay(t, s)) return undefined;
    return end ? t + 86_400_000 : t;
  }
  const local = LOCAL_RE.exec(s);
  const zoned = ZONED_RE.exec(s);
  if (local || zoned) {
    const m = (local ?? zoned)!;
    const t = Date.parse(local ? `${m[1]}T${m[2]}Z` : `${m[1]}T${m[2]}${m[3]!.toUpperCase()}`);
    return validDay(Date.parse(`${m[1]}T00:00:00Z`), m[1]!) && Number.isFinite(t) ? t : undefined;
  }
  const ago = AGO_RE.exec(s);
  if (ago && s !== '') {
    const [, w, d, h, mi, sec] = ago.map((x) => Number(x ?? 0));
    return now - ((((w! * 7 + d!) * 24 + h!) * 60 + mi!) * 60 + sec!) * 1000;
  }
  return undefined;
}

// Date.parse rolls 2024-02-31 over into March; refuse it instead.
function validDay(t: number, day: string): boolean {
  return Number.isFinite(t) && new Date(t).toISOString().slice(0, 10) === day;
}

function parseFilter(o: Options, now: number): SessionFilter {
  const time = (name: string, v: string | undefined, end: boolean) => {
    if (v === undefined) return undefined;
    const t = parseTimeArg(v, now, end);
    if (t === undefined)
      throw new UsageError(
        `${name} ${JSON.stringify(v)} is not a time; use an ISO date or time (2024-05-01, 2024-05-01T10:30, UTC unless zoned) or a time ago (90m, 2h, 3d)`,
      );
    return t;
  };
  const since = time('--since', o.since, false);
  const until = time('--until', o.until, true);
  if (since !== undefined && until !== undefined && since >= until) throw new UsageError(`--since ${o.since} is not before --until ${o.until}`);
  return { apps: o.apps, reasons: o.reasons, since, until, live: o.live };
}

async function logDir(o: Options, io: SessionsIo): Promise<{ dir: string; from: string }> {
  let where: { dir: string; from: string };
  if (o.dir !== undefined) {
    where = { dir: resolve(io.cwd, o.dir), from: 'given with --dir' };
  } else {
    const file = o.config ?? (io.env.WARMPOOL_CONFIG || undefined);
    if (file !== undefined) {
      const via = o.config !== undefined ? '--config' : 'WARMPOOL_CONFIG';
      // Env overrides of listen.* do not matter here; a bad WARMPOOL_PORT should not stop a log read.
      const cfg = loadConfig(resolve(io.cwd, file), {});
      where = { dir: resolve(io.cwd, cfg.log.dir), from: `log.dir of ${file} (${via})` };
    } else {
      where = { dir: resolve(io.cwd, '.state/log'), from: 'the default; no --dir, --config or WARMPOOL_CONFIG given' };
    }
  }
  const st = await stat(where.dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw new CliError(`cannot read the traffic log directory ${where.dir} (${where.from}): ${e.message}`);
  });
  if (!st?.isDirectory()) {
    throw new CliError(
      `no traffic log directory at ${where.dir} (${where.from}) — pass --dir DIR, or --config FILE or WARMPOOL_CONFIG to use log.dir of that config`,
    );
  }
  return where;
}

function warnSkipped(stats: ReadStats, dir: string, io: SessionsIo): void {
  const parts: string[] = [];
  if (stats.garbage) parts.push(`${stats.garbage} unreadable line${stats.garbage === 1 ? '' : 's'}`);
  if (stats.torn)
    parts.push(`${stats.torn} torn line${stats.torn === 1 ? '' : 's'}${stats.recovered ? ` (${stats.recovered} with a whole entry after it, kept)` : ''}`);
  if (stats.vanished) parts.push(`${stats.vanished} file${stats.vanished === 1 ? '' : 's'} removed while reading`);
  if (parts.length === 0) return;
  const at = stats.examples.map((x) => `${x.file}:${x.line}`).join(', ');
  io.err(`warmpool sessions: skipped ${parts.join(' and ')} in ${dir}${at ? ` (at ${at})` : ''}\n`);
}

// ---------------------------------------------------------------------------------------------
// Formatting

const iso = (t: number | undefined) => (t === undefined ? '' : new Date(t).toISOString());
const isoSeconds = (t: number) => new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
const pad2 = (n: number) => String(n).padStart(2, '0');

/** 45s, 12m05s, 1h15m00s (rounded to the second). */
export function fmtDuration(ms: number): string {
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600),
    m = Math.floor((total % 3600) / 60),
    s = total % 60;
  if (h > 0) return `${h}h${pad2(m)}m${pad2(s)}s`;
  if (m > 0) return `${m}m${pad2(s)}s`;
  return `${s}s`;
}

/** Offset from the claim: +1.500s under a minute, else +12m05s. */
export function fmtOffset(ms: number): string {
  const sign = ms < 0 ? '-' : '+';
  const a = Math.abs(ms);
  return sign + (a < 60_000 ? `${(a / 1000).toFixed(3)}s` : fmtDuration(a));
}

/** Decimal units, as network tools count: 999 B, 12.3 kB, 4.5 MB. */
export function fmtBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1000,
    u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

function table(header: string[], rows: string[][], right: ReadonlySet<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** RFC 4180: fields with a comma, quote, CR or LF are quoted, quotes doubled; CRLF line ends. */
export function csvField(v: unknown): string {
  const s = v === undefined || v === null ? '' : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(header: readonly string[], rows: readonly (readonly unknown[])[]): string {
  return [header, ...rows].map((r) => r.map(csvField).join(',') + '\r\n').join('');
}

const byCount = (o: Record<string, number>) => Object.entries(o).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
const reasonsText = (o: Record<string, number>) =>
  byCount(o)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');

// --- list

function listText(rows: readonly SessionRecord[], idLen: number): string {
  if (rows.length === 0) return 'no sessions match\n';
  const cells = rows.map((r) => {
    const live = r.endedAt === undefined;
    const s = r.summary;
    return [
      r.session.slice(0, idLen),
      r.app,
      isoSeconds(r.claimedAt),
      fmtDuration(r.durationMs) + (live ? '+' : ''),
      fmtDuration(r.activeMs) + (live ? '+' : ''),
      r.reason ?? 'live',
      s ? fmtBytes(s.bytesIn) : '-',
      s ? fmtBytes(s.bytesOut) : '-',
      s ? String(sumValues(s.requests)) : '-',
      s ? String(sumValues(s.messagesIn)) : '-',
    ];
  });
  const live = rows.filter((r) => r.endedAt === undefined).length;
  const ended: Record<string, number> = {};
  for (const r of rows) if (r.reason !== undefined) ended[r.reason] = (ended[r.reason] ?? 0) + 1;
  const foot = `${rows.length} session${rows.length === 1 ? '' : 's'}: ${live} live, ${rows.length - live} ended${rows.length > live ? ` (${reasonsText(ended)})` : ''}\n`;
  return table(['SESSION', 'APP', 'CLAIMED (UTC)', 'DURATION', 'ACTIVE', 'END', 'IN', 'OUT', 'REQUESTS', 'MSGS IN'], cells, new Set([3, 4, 6, 7, 8, 9])) + foot;
}

export const LIST_CSV_HEADER = [
  'session',
  'app',
  'instance',
  'visitor',
  'claimed_at',
  'ended_at',
  'end_reason',
  'duration_ms',
  'active_ms',
  'requests',
  'bytes_in',
  'bytes_out',
  'messages_in',
  'messages_out',
  'frames_in_control',
  'frames_in_data',
  'frames_out_control',
  'frames_out_data',
  'restarts',
  'requests_by_kind',
  'messages_in_by_type',
];

function listCsv(rows: readonly SessionRecord[]): string {
  return toCsv(
    LIST_CSV_HEADER,
    rows.map((r) => {
      const s = r.summary;
      return [
        r.session,
        r.app,
        r.instance,
        r.visitor,
        iso(r.claimedAt),
        iso(r.endedAt),
        r.reason ?? 'live',
        r.durationMs,
        r.activeMs,
        s && sumValues(s.requests),
        s?.bytesIn,
        s?.bytesOut,
        s && sumValues(s.messagesIn),
        s?.messagesOut,
        s?.framesIn.control,
        s?.framesIn.data,
        s?.framesOut.control,
        s?.framesOut.data,
        r.restarts,
        s && JSON.stringify(s.requests),
        s && JSON.stringify(s.messagesIn),
      ];
    }),
  );
}

function sessionJson(r: SessionRecord): Record<string, unknown> {
  const s = r.summary;
  return {
    session: r.session,
    app: r.app,
    instance: r.instance ?? null,
    visitor: r.visitor ?? null,
    waitedInLine: r.waitedInLine,
    claimedAt: iso(r.claimedAt),
    partial: r.partial,
    live: r.endedAt === undefined,
    endedAt: r.endedAt === undefined ? null : iso(r.endedAt),
    reason: r.reason ?? null,
    lateMs: r.lateMs ?? null,
    durationMs: r.durationMs,
    activeMs: r.activeMs,
    activeFrom: r.activeFrom,
    lastActive: r.lastActive === undefined ? null : iso(r.lastActive),
    lastEntryAt: iso(r.lastEntryAt),
    restarts: r.restarts,
    idleNotices: r.idleNotices,
    wsOpened: r.wsOpened,
    requests: s ? sumValues(s.requests) : null,
    requestsByKind: s?.requests ?? null,
    bytesIn: s?.bytesIn ?? null,
    bytesOut: s?.bytesOut ?? null,
    framesIn: s?.framesIn ?? null,
    framesOut: s?.framesOut ?? null,
    messagesIn: s ? sumValues(s.messagesIn) : null,
    messagesInByType: s?.messagesIn ?? null,
    messagesOut: s?.messagesOut ?? null,
  };
}

// --- show

function show(sessions: readonly SessionRecord[], id: string, json: boolean, io: SessionsIo): number {
  const found = findSession(sessions, id);
  if (found.kind === 'none') throw new CliError(`no session ${JSON.stringify(id)} in the log (warmpool sessions lists them)`);
  if (found.kind === 'ambiguous') {
    const shown = found.matches
      .slice(0, 10)
      .map((r) => `  ${r.session}  ${r.app}  ${isoSeconds(r.claimedAt)}`)
      .join('\n');
    throw new CliError(`${JSON.stringify(id)} matches ${found.matches.length} sessions; give more of the id:\n${shown}`);
  }
  const r = found.record;
  io.out(json ? JSON.stringify({ ...sessionJson(r), entries: r.events }, null, 2) + '\n' : showText(r));
  return 0;
}

const TIME_KEYS = new Set(['since', 'claimedAt', 'deadline', 'lastActive']);
const MS_KEYS = new Set(['durationMs', 'late', 'waitedMs']);
const SKIP_KEYS = new Set(['t', 'type', 'session', 'app', 'summary']);

function detail(e: TrafficEntry, claimedAt: number): string {
  return Object.entries(e)
    .filter(([k]) => !SKIP_KEYS.has(k))
    .map(([k, v]) => {
      if (typeof v === 'number' && TIME_KEYS.has(k)) return `${k}=${fmtOffset(v - claimedAt)}`;
      if (typeof v === 'number' && MS_KEYS.has(k)) return `${k}=${v < 60_000 ? `${v}ms` : fmtDuration(v)}`;
      if (typeof v === 'string' && /^[\w.:/@+-]+$/.test(v)) return `${k}=${v}`;
      return `${k}=${JSON.stringify(v)}`;
    })
    .join(' ');
}

function showText(r: SessionRecord): string {
  const live = r.endedAt === undefined;
  const who = [`app ${r.app}`, r.instance && `instance ${r.instance}`, r.visitor && `visitor ${r.visitor}`, r.waitedInLine && 'waited in line']
    .filter(Boolean)
    .join(', ');
  const lines = [
    `session ${r.session} (${who})`,
    `claimed ${iso(r.claimedAt)}${r.partial ? ' (its claim is not in the log; older files removed?)' : ''}, ` +
      (live ? `live (last entry ${iso(r.lastEntryAt)})` : `ended ${iso(r.endedAt)} (${r.reason}${r.lateMs ? `, ${r.lateMs} ms after its deadline` : ''})`),
    `duration ${fmtDuration(r.durationMs)}${live ? '+' : ''}, active ${fmtDuration(r.activeMs)}${live ? '+' : ''}` +
      (r.activeFrom === 'fleet' ? ' (from the fleet)' : ' (estimated from the log)') +
      (r.restarts ? `, restored ${r.restarts} time${r.restarts === 1 ? '' : 's'} after a warmpool restart (counters restart then)` : ''),
    '',
  ];
  lines.push(
    table(
      ['TIME (UTC)', 'OFFSET', 'EVENT', 'DETAIL'],
      r.events.map((e) => [iso(e.t), fmtOffset(e.t - r.claimedAt), e.type, detail(e, r.claimedAt)]),
      new Set([1]),
    ).trimEnd(),
  );
  const s = r.summary;
  if (!s) {
    lines.push('', 'no summary yet: traffic counts are logged when the session ends');
  } else {
    const kv = (o: Record<string, number>) =>
      byCount(o)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ');
    lines.push(
      '',
      'summary',
      `  requests      ${sumValues(s.requests)}${Object.keys(s.requests).length ? ` (${kv(s.requests)})` : ''}`,
      `  bytes         in ${fmtBytes(s.bytesIn)} (${s.bytesIn}), out ${fmtBytes(s.bytesOut)} (${s.bytesOut})`,
      `  frames in     control ${s.framesIn.control}, data ${s.framesIn.data}`,
      `  frames out    control ${s.framesOut.control}, data ${s.framesOut.data}`,
      `  messages in   ${sumValues(s.messagesIn)}${Object.keys(s.messagesIn).length ? ', by type:' : ''}`,
    );
    const types = byCount(s.messagesIn);
    const w = Math.max(0, ...types.map(([k]) => k.length));
    for (const [k, n] of types) lines.push(`    ${k.padEnd(w)}  ${String(n).padStart(8)}`);
    lines.push(`  messages out  ${s.messagesOut}`);
  }
  return lines.join('\n') + '\n';
}

// --- totals

const periodLabel = (t: number, by: Period) => (by === 'hour' ? new Date(t).toISOString().slice(0, 16) + 'Z' : new Date(t).toISOString().slice(0, 10));
const round = (n: number | undefined) => (n === undefined ? undefined : Math.round(n));

function totalsJson(by: Period) {
  return (r: TotalsRow): Record<string, unknown> => ({
    app: r.app,
    [by]: periodLabel(r.periodStart, by),
    started: r.started,
    live: r.live,
    ended: r.ended,
    endedBy: r.endedBy,
    durationTotalMs: r.durationTotalMs,
    durationMeanMs: round(r.durationMeanMs) ?? null,
    activeTotalMs: r.activeTotalMs,
    activeMeanMs: round(r.activeMeanMs) ?? null,
    requests: r.requests,
    bytesIn: r.bytesIn,
    bytesOut: r.bytesOut,
    messagesIn: r.messagesIn,
    messagesInByType: r.messagesInByType,
    messagesOut: r.messagesOut,
  });
}

function reasonColumns(rows: readonly TotalsRow[]): string[] {
  const extra = [...new Set(rows.flatMap((r) => Object.keys(r.endedBy)))].filter((k) => !KNOWN_REASONS.includes(k)).sort();
  return [...KNOWN_REASONS, ...extra];
}

function totalsCsv(rows: readonly TotalsRow[], by: Period): string {
  const reasons = reasonColumns(rows);
  const header = [
    'app',
    by,
    'started',
    'live',
    'ended',
    ...reasons.map((k) => `ended_${k}`),
    'duration_total_ms',
    'duration_mean_ms',
    'active_total_ms',
    'active_mean_ms',
    'requests',
    'bytes_in',
    'bytes_out',
    'messages_in',
    'messages_out',
  ];
  return toCsv(
    header,
    rows.map((r) => [
      r.app,
      periodLabel(r.periodStart, by),
      r.started,
      r.live,
      r.ended,
      ...reasons.map((k) => r.endedBy[k] ?? 0),
      r.durationTotalMs,
      round(r.durationMeanMs),
      r.activeTotalMs,
      round(r.activeMeanMs),
      r.requests,
      r.bytesIn,
      r.bytesOut,
      r.messagesIn,
      r.messagesOut,
    ]),
  );
}

function totalsText(rows: readonly TotalsRow[], by: Period): string {
  if (rows.length === 0) return 'no sessions match\n';
  const mean = (n: number | undefined) => (n === undefined ? '-' : fmtDuration(n));
  const cell = (app: string, period: string, r: Omit<TotalsRow, 'app' | 'periodStart'>) => [
    app,
    period,
    String(r.started),
    String(r.live),
    reasonsText(r.endedBy) || '-',
    r.ended ? fmtDuration(r.durationTotalMs) : '-',
    mean(r.durationMeanMs),
    r.ended ? fmtDuration(r.activeTotalMs) : '-',
    mean(r.activeMeanMs),
    fmtBytes(r.bytesIn),
    fmtBytes(r.bytesOut),
    String(r.requests),
    String(r.messagesIn),
  ];
  const cells = rows.map((r) => cell(r.app, periodLabel(r.periodStart, by), r));
  if (rows.length > 1) cells.push(cell('all', '', sumRows(rows)));
  return table(
    [
      'APP',
      by === 'hour' ? 'HOUR (UTC)' : 'DAY (UTC)',
      'STARTED',
      'LIVE',
      'ENDED BY REASON',
      'DURATION',
      'MEAN',
      'ACTIVE',
      'MEAN',
      'IN',
      'OUT',
      'REQUESTS',
      'MSGS IN',
    ],
    cells,
    new Set([2, 3, 5, 6, 7, 8, 9, 10, 11, 12]),
  );
}

function sumRows(rows: readonly TotalsRow[]): Omit<TotalsRow, 'app' | 'periodStart'> {
  const s = emptyTotals();
  for (const r of rows) {
    s.started += r.started;
    s.live += r.live;
    s.ended += r.ended;
    for (const [k, n] of Object.entries(r.endedBy)) s.endedBy[k] = (s.endedBy[k] ?? 0) + n;
    s.durationTotalMs += r.durationTotalMs;
    s.activeTotalMs += r.activeTotalMs;
    s.requests += r.requests;
    s.bytesIn += r.bytesIn;
    s.bytesOut += r.bytesOut;
    s.messagesIn += r.messagesIn;
    s.messagesOut += r.messagesOut;
  }
  if (s.ended > 0) {
    s.durationMeanMs = s.durationTotalMs / s.ended;
    s.activeMeanMs = s.activeTotalMs / s.ended;
  }
  return s;
}
