// `warmpool sessions` against a scripted traffic log written by the real JsonlTrafficLog (rotated
// parts, a day boundary, garbage and a torn last line), run as a child process; and the reader's
// parts (file order, torn lines, active time, records, filters, totals) as unit tests.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JsonlTrafficLog } from '../pool/traffic-log.js';
import {
  activeTime,
  buildRecord,
  buildSessions,
  filterSessions,
  findSession,
  newReadStats,
  readEntries,
  readSessions,
  sortLogFiles,
  totals,
  uniquePrefixLength,
  type TrafficEntry,
} from '../pool/traffic-log-reader.js';
import { parseTimeArg, toCsv } from '../bin/sessions.js';

const MIN = 60_000;
const T = Date.UTC(2024, 4, 1, 10, 0, 0); // 2024-05-01T10:00Z

const S1 = 'AAAA1111aaaaaaaaaaaaaa';
const S2 = 'BBBB2222bbbbbbbbbbbbbb';
const S3 = 'BBBB3333cccccccccccccc'; // shares "BBBB" with S2
const S4 = 'CCCC4444dddddddddddddd';
const S5 = '-DDD5555eeeeeeeeeeeeee'; // base64url ids may begin with '-'
const S6 = 'EEEE6666ffffffffffffff';

type Entry = Record<string, unknown> & { t: number };
const summary = (o: Record<string, unknown>) => ({
  requests: {},
  bytesIn: 0,
  bytesOut: 0,
  framesIn: { control: 0, data: 0 },
  framesOut: { control: 0, data: 0 },
  messagesIn: {},
  messagesOut: 0,
  ...o,
});

// What the fleet would have written for six sessions over two UTC days (idle notice after 60 s).
const T4 = Date.UTC(2024, 4, 1, 23, 50);
const T6 = Date.UTC(2024, 4, 2, 8, 0);
const T5 = Date.UTC(2024, 4, 2, 9, 0);
const script: Entry[] = [
  // S1 vdma: two active stretches (10m, 5m), then the tab closed: grace.
  { t: T, type: 'claimed', session: S1, app: 'vdma', instance: 'i-vdma-1', visitor: '203.0.113.7', waitedInLine: false },
  { t: T + 500, type: 'first-request', session: S1, app: 'vdma' },
  { t: T + 1000, type: 'ws-open', session: S1, app: 'vdma' },
  { t: T + 11 * MIN, type: 'idle', session: S1, app: 'vdma', since: T + 10 * MIN },
  { t: T + 20 * MIN, type: 'active-again', session: S1, app: 'vdma' },
  { t: T + 26 * MIN, type: 'idle', session: S1, app: 'vdma', since: T + 25 * MIN },
  { t: T + 30 * MIN, type: 'ws-close', session: S1, app: 'vdma', code: 1001, durationMs: 30 * MIN - 1000 },
  {
    t: T + 32 * MIN,
    type: 'ended',
    session: S1,
    app: 'vdma',
    instance: 'i-vdma-1',
    reason: 'grace',
    deadline: T + 32 * MIN,
    late: 0,
    summary: summary({
      claimedAt: T,
      durationMs: 32 * MIN,
      lastActive: T + 25 * MIN,
      requests: { 'GET 2xx': 10, 'GET 3xx': 1, 'POST 2xx': 2 },
      bytesIn: 12_000,
      bytesOut: 340_000,
      framesIn: { control: 30, data: 120 },
      framesOut: { control: 30, data: 200 },
      messagesIn: { ping: 30, update_notebook: 50, run_multiple_cells: 40 },
      messagesOut: 200,
    }),
  },
  // S2 vdma: waited in line, active to the end of its lifetime (75 m), reaped 120 ms late.
  { t: T + 5 * MIN, type: 'claimed', session: S2, app: 'vdma', instance: 'i-vdma-2', waitedInLine: true },
  { t: T + 5 * MIN + 300, type: 'first-request', session: S2, app: 'vdma' },
  { t: T + 5 * MIN + 800, type: 'ws-open', session: S2, app: 'vdma' },
  {
    t: T + 80 * MIN + 120,
    type: 'ended',
    session: S2,
    app: 'vdma',
    instance: 'i-vdma-2',
    reason: 'lifetime',
    deadline: T + 80 * MIN,
    late: 120,
    summary: summary({
      claimedAt: T + 5 * MIN,
      durationMs: 75 * MIN + 120,
      lastActive: T + 79 * MIN,
      requests: { 'GET 2xx': 20, 'GET 4xx': 1 },
      bytesIn: 50_000,
      bytesOut: 1_500_000,
      framesIn: { control: 150, data: 462 },
      framesOut: { control: 150, data: 900 },
      messagesIn: { update_notebook: 300, ping: 150, run_multiple_cells: 12 },
      messagesOut: 900,
    }),
  },
  // S3 lab: the instance died.
  { t: T + 10 * MIN, type: 'claimed', session: S3, app: 'lab', instance: 'i-lab-1', visitor: '198.51.100.4', waitedInLine: false },
  { t: T + 10 * MIN + 200, type: 'first-request', session: S3, app: 'lab' },
  { t: T + 10 * MIN + 2000, type: 'ws-open', session: S3, app: 'lab' },
  { t: T + 40 * MIN, type: 'instance-exited', session: S3, app: 'lab', detail: 'exit code 137' },
  {
    t: T + 40 * MIN,
    type: 'ended',
    session: S3,
    app: 'lab',
    instance: 'i-lab-1',
    reason: 'instance-exited',
    summary: summary({
      claimedAt: T + 10 * MIN,
      durationMs: 30 * MIN,
      lastActive: T + 30 * MIN,
      requests: { 'GET 2xx': 40, 'PUT 2xx': 3 },
      bytesIn: 80_000,
      bytesOut: 200_000,
      framesIn: { control: 10, data: 45 },
      framesOut: { control: 10, data: 300 },
      messagesIn: { execute_request: 40, comm_msg: 5 },
      messagesOut: 300,
    }),
  },
  // S4 vdma: claimed before midnight, reaped idle after it (the next day's file).
  { t: T4, type: 'claimed', session: S4, app: 'vdma', instance: 'i-vdma-3', waitedInLine: false },
  { t: T4 + 1000, type: 'first-request', session: S4, app: 'vdma' },
  { t: T4 + 6 * MIN, type: 'idle', session: S4, app: 'vdma', since: T4 + 5 * MIN },
  {
    t: T4 + 25 * MIN + 250,
    type: 'ended',
    session: S4,
    app: 'vdma',
    instance: 'i-vdma-3',
    reason: 'idle',
    deadline: T4 + 25 * MIN,
    late: 250,
    summary: summary({ claimedAt: T4, durationMs: 25 * MIN + 250, lastActive: T4 + 5 * MIN, requests: { 'GET 2xx': 3 }, bytesIn: 1500, bytesOut: 90_000 }),
  },
  // S6 vdma: warmpool restarted under it (restored), then shut down.
  { t: T6, type: 'claimed', session: S6, app: 'vdma', instance: 'i-vdma-4', waitedInLine: false },
  { t: T6 + 1000, type: 'first-request', session: S6, app: 'vdma' },
  { t: T6 + 30 * MIN, type: 'restored', session: S6, app: 'vdma', instance: 'i-vdma-4', claimedAt: T6 },
  {
    t: T6 + 45 * MIN,
    type: 'ended',
    session: S6,
    app: 'vdma',
    instance: 'i-vdma-4',
    reason: 'shutdown',
    summary: summary({
      claimedAt: T6,
      durationMs: 45 * MIN,
      lastActive: T6 + 40 * MIN,
      requests: { 'GET 2xx': 5 },
      bytesIn: 2000,
      bytesOut: 3000,
      framesIn: { control: 2, data: 8 },
      framesOut: { control: 2, data: 10 },
      messagesIn: { update_notebook: 8 },
      messagesOut: 10,
    }),
  },
  // S5 lab: still live.
  { t: T5, type: 'claimed', session: S5, app: 'lab', instance: 'i-lab-2', visitor: '198.51.100.9', waitedInLine: false },
  { t: T5 + 400, type: 'first-request', session: S5, app: 'lab' },
  { t: T5 + 2000, type: 'ws-open', session: S5, app: 'lab' },
];

// Expected per session: [app, claimedAt, reason|null, durationMs, activeMs, requests, bytesIn, bytesOut, messagesIn]
const EXPECTED: Record<string, [string, number, string | null, number, number, number | null, number | null, number | null, number | null]> = {
  [S1]: ['vdma', T, 'grace', 32 * MIN, 15 * MIN, 13, 12_000, 340_000, 120],
  [S2]: ['vdma', T + 5 * MIN, 'lifetime', 75 * MIN + 120, 74 * MIN, 21, 50_000, 1_500_000, 462],
  [S3]: ['lab', T + 10 * MIN, 'instance-exited', 30 * MIN, 20 * MIN, 43, 80_000, 200_000, 45],
  [S4]: ['vdma', T4, 'idle', 25 * MIN + 250, 5 * MIN, 3, 1500, 90_000, 0],
  [S6]: ['vdma', T6, 'shutdown', 45 * MIN, 1000 + 10 * MIN, 5, 2000, 3000, 8],
  [S5]: ['lab', T5, null, 2000, 2000, null, null, null, null],
};
const ORDER = [S1, S2, S3, S4, S6, S5]; // by claim time

const root = mkdtempSync(join(tmpdir(), 'warmpool-sessions-'));
const logDir = join(root, 'logs');
after(() => rmSync(root, { recursive: true, force: true }));

let written = false;
async function writeLog(): Promise<void> {
  if (written) return;
  written = true;
  // Small rotation size: day one spreads over several parts.
  const log = new JsonlTrafficLog(logDir, 1500);
  for (const e of [...script].sort((a, b) => a.t - b.t)) log.write(e);
  await log.close();
  appendFileSync(
    join(logDir, 'sessions-2024-05-01.1.jsonl'),
    'not json at all\n' +
      '\n' +
      JSON.stringify({ t: 'yesterday', type: 'claimed', session: 'ZZZZ', app: 'vdma' }) +
      '\n' +
      JSON.stringify({ t: T, type: 'pool-started' }) +
      '\n',
  );
  // The writer died mid-line at the end of the newest file.
  appendFileSync(join(logDir, 'sessions-2024-05-02.jsonl'), '{"t":1714640400000,"type":"ws-cl');
  writeFileSync(join(logDir, 'README.txt'), 'not a log file\n');
}

// bin/warmpool.js loads the whole server (index.js, proxy/); while that does not load, run the
// same sessionsCommand through a two-line entry instead, and say so.
const WARMPOOL = fileURLToPath(new URL('../bin/warmpool.js', import.meta.url));
const SESSIONS = new URL('../bin/sessions.js', import.meta.url).href;
let entry: string[] | undefined;
function cliEntry(): string[] {
  if (entry) return entry;
  const probe = spawnSync(process.execPath, [WARMPOOL, 'sessions', '--help'], { encoding: 'utf8' });
  if (probe.status === 0) return (entry = [WARMPOOL, 'sessions']);
  console.error(
    `note: dist/bin/warmpool.js does not load (${probe.stderr.split('\n').find((l) => /Error/.test(l)) ?? probe.status}); running bin/sessions.js directly`,
  );
  const runner = join(root, 'run-sessions.mjs');
  writeFileSync(
    runner,
    `const { sessionsCommand } = await import(${JSON.stringify(SESSIONS)});\nprocess.exitCode = await sessionsCommand(process.argv.slice(2));\n`,
  );
  return (entry = [runner]);
}

function cli(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [...cliEntry(), ...args], {
    encoding: 'utf8',
    cwd: opts.cwd ?? root,
    env: { ...process.env, WARMPOOL_CONFIG: '', ...opts.env },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

async function list(args: string[] = []): Promise<Record<string, unknown>[]> {
  await writeLog();
  const r = cli(['--dir', logDir, '--json', ...args]);
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out) as Record<string, unknown>[];
}

/** RFC 4180 parser: quoted fields, doubled quotes, CRLF records. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [],
    field = '',
    i = 0,
    quoted = false;
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 2;
        continue;
      }
      if (c === '"') {
        quoted = false;
        i++;
        continue;
      }
      field += c;
      i++;
      continue;
    }
    if (c === '"' && field === '') {
      quoted = true;
      i++;
      continue;
    }
    if (c === ',') {
      row.push(field);
      field = '';
      i++;
      continue;
    }
    if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i += 2;
      continue;
    }
    assert.notEqual(c, '\n', 'records end with CRLF');
    field += c;
    i++;
  }
  assert.equal(field, '', 'the last record ends with CRLF');
  assert.equal(row.length, 0);
  return rows;
}

function csvObjects(text: string): Record<string, string>[] {
  const [header, ...rows] = parseCsv(text);
  return rows.map((r) => {
    assert.equal(r.length, header!.length, 'every row has as many fields as the header');
    return Object.fromEntries(header!.map((h, i) => [h, r[i]!]));
  });
}

// ---------------------------------------------------------------------------------------------
// The CLI against the scripted log

test('the scripted log is rotated into parts and spans two days', async () => {
  await writeLog();
  const files = readdirSync(logDir)
    .filter((f) => f.endsWith('.jsonl'))
    .sort();
  assert.ok(files.includes('sessions-2024-05-01.jsonl'));
  assert.ok(files.includes('sessions-2024-05-01.1.jsonl'), `a rotated part: ${files.join(', ')}`);
  assert.ok(files.includes('sessions-2024-05-02.jsonl'));
});

test('list --json: every session with exact values, garbage and the torn line skipped and reported', async () => {
  await writeLog();
  const r = cli(['--dir', logDir, '--json']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /skipped 2 unreadable lines and 1 torn line in /);
  assert.match(r.err, /sessions-2024-05-01\.1\.jsonl:\d+/);
  assert.match(r.err, /sessions-2024-05-02\.jsonl:\d+/);
  const rows = JSON.parse(r.out) as Record<string, unknown>[];
  assert.deepEqual(
    rows.map((x) => x.session),
    ORDER,
  );
  for (const x of rows) {
    const [app, claimedAt, reason, durationMs, activeMs, requests, bytesIn, bytesOut, messagesIn] = EXPECTED[x.session as string]!;
    assert.deepEqual(
      [x.app, x.claimedAt, x.reason, x.durationMs, x.activeMs, x.requests, x.bytesIn, x.bytesOut, x.messagesIn],
      [app, new Date(claimedAt).toISOString(), reason, durationMs, activeMs, requests, bytesIn, bytesOut, messagesIn],
      `session ${x.session}`,
    );
    assert.equal(x.live, reason === null);
    assert.equal(x.partial, false);
  }
  const s2 = rows[1]!;
  assert.equal(s2.waitedInLine, true);
  assert.equal(s2.lateMs, 120);
  assert.deepEqual(s2.messagesInByType, { update_notebook: 300, ping: 150, run_multiple_cells: 12 });
  assert.equal(rows[4]!.restarts, 1);
  assert.equal(rows[0]!.idleNotices, 2);
});

test('list as text: one line per session, short ids, durations, live marked', async () => {
  await writeLog();
  const r = cli(['--dir', logDir]);
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trimEnd().split('\n');
  assert.equal(lines.length, 1 + 6 + 1, r.out);
  assert.match(lines[0]!, /^SESSION\s+APP\s+CLAIMED \(UTC\)\s+DURATION\s+ACTIVE\s+END\s+IN\s+OUT\s+REQUESTS\s+MSGS IN$/);
  assert.deepEqual(lines[1]!.split(/\s+/), ['AAAA1111', 'vdma', '2024-05-01T10:00:00Z', '32m00s', '15m00s', 'grace', '12.0', 'kB', '340.0', 'kB', '13', '120']);
  assert.deepEqual(lines[2]!.split(/\s+/), [
    'BBBB2222',
    'vdma',
    '2024-05-01T10:05:00Z',
    '1h15m00s',
    '1h14m00s',
    'lifetime',
    '50.0',
    'kB',
    '1.5',
    'MB',
    '21',
    '462',
  ]);
  assert.deepEqual(lines[6]!.split(/\s+/), ['-DDD5555', 'lab', '2024-05-02T09:00:00Z', '2s+', '2s+', 'live', '-', '-', '-', '-']);
  assert.equal(lines[7], '6 sessions: 1 live, 5 ended (grace 1, idle 1, instance-exited 1, lifetime 1, shutdown 1)');
});

test('filters: app, reason, live, since/until (ISO, zoned, bare dates, relative)', async () => {
  const ids = async (args: string[]) => (await list(args)).map((x) => x.session);
  assert.deepEqual(await ids(['--app', 'lab']), [S3, S5]);
  assert.deepEqual(await ids(['--app', 'lab,vdma']), ORDER);
  assert.deepEqual(await ids(['--app', 'nope']), []);
  assert.deepEqual(await ids(['--reason', 'idle']), [S4]);
  assert.deepEqual(await ids(['--reason', 'grace', '--reason=lifetime']), [S1, S2]);
  assert.deepEqual(await ids(['--reason', 'live']), [S5]);
  assert.deepEqual(await ids(['--live']), [S5]);
  assert.deepEqual(await ids(['--live', '--app', 'vdma']), []);
  assert.deepEqual(await ids(['--since', '2024-05-02']), [S6, S5]);
  assert.deepEqual(await ids(['--until', '2024-05-01']), [S1, S2, S3, S4], 'a bare --until date includes that day');
  assert.deepEqual(await ids(['--since', '2024-05-01T10:05', '--until', '2024-05-01T10:10']), [S2], 'since inclusive, until exclusive');
  assert.deepEqual(await ids(['--since', '2024-05-01T12:05+02:00', '--app', 'vdma']), [S2, S4, S6]);
  assert.deepEqual(await ids(['--since', '1d']), [], 'the log is from 2024');
  assert.deepEqual(await ids(['--until', '1d']), ORDER);
  const text = cli(['--dir', logDir, '--app', 'nope']);
  assert.equal(text.code, 0);
  assert.equal(text.out, 'no sessions match\n');
});

test('list --csv: header, RFC 4180 quoting, values parse back', async () => {
  await writeLog();
  const r = cli(['--dir', logDir, '--csv']);
  assert.equal(r.code, 0, r.err);
  assert.ok(r.out.includes('"{""GET 2xx"":10,""GET 3xx"":1,""POST 2xx"":2}"'), 'quotes doubled inside a quoted field');
  const rows = csvObjects(r.out);
  assert.equal(rows.length, 6);
  assert.deepEqual(
    rows.map((x) => x.session),
    ORDER,
  );
  for (const x of rows) {
    const [app, claimedAt, reason, durationMs, activeMs, requests, bytesIn, bytesOut, messagesIn] = EXPECTED[x.session!]!;
    const n = (v: number | null) => (v === null ? '' : String(v));
    assert.deepEqual(
      [x.app, x.claimed_at, x.end_reason, x.duration_ms, x.active_ms, x.requests, x.bytes_in, x.bytes_out, x.messages_in],
      [app, new Date(claimedAt).toISOString(), reason ?? 'live', String(durationMs), String(activeMs), n(requests), n(bytesIn), n(bytesOut), n(messagesIn)],
    );
  }
  assert.deepEqual(JSON.parse(rows[0]!.messages_in_by_type!), { ping: 30, update_notebook: 50, run_multiple_cells: 40 });
  assert.deepEqual(JSON.parse(rows[2]!.requests_by_kind!), { 'GET 2xx': 40, 'PUT 2xx': 3 });
  assert.equal(rows[0]!.visitor, '203.0.113.7');
  assert.equal(rows[0]!.ended_at, new Date(T + 32 * MIN).toISOString());
  assert.equal(rows[5]!.ended_at, '');
  assert.equal(rows[4]!.restarts, '1');
  const filtered = csvObjects(cli(['--dir', logDir, '--csv', '--reason', 'idle']).out);
  assert.deepEqual(
    filtered.map((x) => x.session),
    [S4],
  );
});

test('show: the timeline with offsets from the claim, then the summary with messages by type', async () => {
  await writeLog();
  const r = cli(['--dir', logDir, 'show', 'AAAA']);
  assert.equal(r.code, 0, r.err);
  const lines = r.out.split('\n');
  assert.equal(lines[0], `session ${S1} (app vdma, instance i-vdma-1, visitor 203.0.113.7)`);
  assert.equal(lines[1], 'claimed 2024-05-01T10:00:00.000Z, ended 2024-05-01T10:32:00.000Z (grace)');
  assert.equal(lines[2], 'duration 32m00s, active 15m00s (estimated from the log)');
  const timeline = lines.slice(4, lines.indexOf('summary') - 1);
  assert.equal(timeline.length, 1 + 8, 'header and eight entries');
  const cells = timeline.slice(1).map((l) => l.split(/\s{2,}/));
  assert.deepEqual(
    cells.map((c) => c[2]),
    ['claimed', 'first-request', 'ws-open', 'idle', 'active-again', 'idle', 'ws-close', 'ended'],
  );
  assert.deepEqual(
    cells.map((c) => c[1]),
    ['+0.000s', '+0.500s', '+1.000s', '+11m00s', '+20m00s', '+26m00s', '+30m00s', '+32m00s'],
  );
  assert.equal(cells[0]![0], '2024-05-01T10:00:00.000Z');
  assert.equal(cells[3]![3], 'since=+10m00s');
  assert.equal(cells[6]![3], 'code=1001 durationMs=29m59s');
  assert.equal(cells[7]![3], 'instance=i-vdma-1 reason=grace deadline=+32m00s late=0ms');
  const sum = lines.slice(lines.indexOf('summary'));
  assert.deepEqual(sum.slice(0, 10), [
    'summary',
    '  requests      13 (GET 2xx 10, POST 2xx 2, GET 3xx 1)',
    '  bytes         in 12.0 kB (12000), out 340.0 kB (340000)',
    '  frames in     control 30, data 120',
    '  frames out    control 30, data 200',
    '  messages in   120, by type:',
    '    update_notebook           50',
    '    run_multiple_cells        40',
    '    ping                      30',
    '  messages out  200',
  ]);
});

test('show: a restored session, a live session whose id starts with "-", --json, and ids that do not resolve', async () => {
  await writeLog();
  const restored = cli(['--dir', logDir, 'show', 'EEEE6666ffffffffffffff']);
  assert.equal(restored.code, 0, restored.err);
  assert.match(restored.out, /duration 45m00s, active 10m01s \(estimated from the log\), restored 1 time after a warmpool restart/);
  assert.match(restored.out, /\+30m00s {2}restored {7}instance=i-vdma-4 claimedAt=\+0\.000s\n/);

  const live = cli(['--dir', logDir, 'show', '-DDD']);
  assert.equal(live.code, 0, live.err);
  assert.match(live.out, /^session -DDD5555e+ \(app lab, instance i-lab-2, visitor 198\.51\.100\.9\)\n/);
  assert.match(live.out, /live \(last entry 2024-05-02T09:00:02\.000Z\)/);
  assert.match(live.out, /duration 2s\+, active 2s\+/);
  assert.match(live.out, /no summary yet/);

  const json = cli(['--dir', logDir, 'show', 'CCCC', '--json']);
  assert.equal(json.code, 0, json.err);
  const rec = JSON.parse(json.out) as { session: string; reason: string; entries: TrafficEntry[]; lateMs: number; activeMs: number };
  assert.equal(rec.session, S4);
  assert.equal(rec.reason, 'idle');
  assert.equal(rec.lateMs, 250);
  assert.equal(rec.activeMs, 5 * MIN);
  assert.deepEqual(
    rec.entries.map((e) => e.type),
    ['claimed', 'first-request', 'idle', 'ended'],
  );

  const ambiguous = cli(['--dir', logDir, 'show', 'BBBB']);
  assert.equal(ambiguous.code, 1);
  assert.match(ambiguous.err, /"BBBB" matches 2 sessions/);
  assert.ok(ambiguous.err.includes(S2) && ambiguous.err.includes(S3));
  const none = cli(['--dir', logDir, 'show', 'QQQQ']);
  assert.equal(none.code, 1);
  assert.match(none.err, /no session "QQQQ" in the log/);
});

test('totals --json per app and claim hour, and by day', async () => {
  await writeLog();
  const r = cli(['--dir', logDir, 'totals', '--json']);
  assert.equal(r.code, 0, r.err);
  const rows = JSON.parse(r.out) as Record<string, unknown>[];
  const pick = (x: Record<string, unknown>) => [
    x.app,
    x.hour ?? x.day,
    x.started,
    x.live,
    x.ended,
    x.endedBy,
    x.durationTotalMs,
    x.durationMeanMs,
    x.activeTotalMs,
    x.activeMeanMs,
    x.requests,
    x.bytesIn,
    x.bytesOut,
    x.messagesIn,
    x.messagesOut,
  ];
  assert.deepEqual(rows.map(pick), [
    ['lab', '2024-05-01T10:00Z', 1, 0, 1, { 'instance-exited': 1 }, 30 * MIN, 30 * MIN, 20 * MIN, 20 * MIN, 43, 80_000, 200_000, 45, 300],
    ['vdma', '2024-05-01T10:00Z', 2, 0, 2, { grace: 1, lifetime: 1 }, 107 * MIN + 120, 53.5 * MIN + 60, 89 * MIN, 44.5 * MIN, 34, 62_000, 1_840_000, 582, 1100],
    ['vdma', '2024-05-01T23:00Z', 1, 0, 1, { idle: 1 }, 25 * MIN + 250, 25 * MIN + 250, 5 * MIN, 5 * MIN, 3, 1500, 90_000, 0, 0],
    ['vdma', '2024-05-02T08:00Z', 1, 0, 1, { shutdown: 1 }, 45 * MIN, 45 * MIN, 10 * MIN + 1000, 10 * MIN + 1000, 5, 2000, 3000, 8, 10],
    ['lab', '2024-05-02T09:00Z', 1, 1, 0, {}, 0, null, 0, null, 0, 0, 0, 0, 0],
  ]);
  assert.deepEqual(rows[1]!.messagesInByType, { ping: 180, update_notebook: 350, run_multiple_cells: 52 });

  const days = JSON.parse(cli(['--dir', logDir, 'totals', '--json', '--by', 'day']).out) as Record<string, unknown>[];
  assert.deepEqual(
    days.map((x) => [x.app, x.day, x.started, x.live, x.endedBy, x.durationTotalMs, x.durationMeanMs]),
    [
      ['lab', '2024-05-01', 1, 0, { 'instance-exited': 1 }, 30 * MIN, 30 * MIN],
      ['vdma', '2024-05-01', 3, 0, { grace: 1, lifetime: 1, idle: 1 }, 132 * MIN + 370, Math.round((132 * MIN + 370) / 3)],
      ['lab', '2024-05-02', 1, 1, {}, 0, null],
      ['vdma', '2024-05-02', 1, 0, { shutdown: 1 }, 45 * MIN, 45 * MIN],
    ],
  );

  const filtered = JSON.parse(cli(['--dir', logDir, 'totals', '--json', '--app', 'vdma', '--until', '2024-05-01T12:00']).out) as Record<string, unknown>[];
  assert.deepEqual(
    filtered.map((x) => [x.app, x.hour, x.started]),
    [['vdma', '2024-05-01T10:00Z', 2]],
  );
});

test('totals --csv has a fixed column per end reason and parses back; text has an "all" row', async () => {
  await writeLog();
  const r = cli(['--dir', logDir, 'totals', '--csv']);
  assert.equal(r.code, 0, r.err);
  const [header] = parseCsv(r.out);
  assert.deepEqual(header, [
    'app',
    'hour',
    'started',
    'live',
    'ended',
    'ended_idle',
    'ended_lifetime',
    'ended_grace',
    'ended_instance-exited',
    'ended_admin',
    'ended_shutdown',
    'ended_fresh-requested',
    'ended_lost',
    'ended_unused',
    'duration_total_ms',
    'duration_mean_ms',
    'active_total_ms',
    'active_mean_ms',
    'requests',
    'bytes_in',
    'bytes_out',
    'messages_in',
    'messages_out',
  ]);
  const rows = csvObjects(r.out);
  assert.equal(rows.length, 5);
  assert.deepEqual(rows[1], {
    app: 'vdma',
    hour: '2024-05-01T10:00Z',
    started: '2',
    live: '0',
    ended: '2',
    ended_idle: '0',
    ended_lifetime: '1',
    ended_grace: '1',
    'ended_instance-exited': '0',
    ended_admin: '0',
    ended_shutdown: '0',
    'ended_fresh-requested': '0',
    ended_lost: '0',
    ended_unused: '0',
    duration_total_ms: String(107 * MIN + 120),
    duration_mean_ms: String(53.5 * MIN + 60),
    active_total_ms: String(89 * MIN),
    active_mean_ms: String(44.5 * MIN),
    requests: '34',
    bytes_in: '62000',
    bytes_out: '1840000',
    messages_in: '582',
    messages_out: '1100',
  });
  assert.equal(rows[4]!.live, '1');
  assert.equal(rows[4]!.duration_mean_ms, '', 'no mean without an ended session');
  assert.equal(
    rows.reduce((n, x) => n + Number(x.started), 0),
    6,
  );

  const text = cli(['--dir', logDir, 'totals', '--by', 'day']);
  assert.equal(text.code, 0, text.err);
  const lines = text.out.trimEnd().split('\n');
  assert.equal(lines.length, 1 + 4 + 1);
  assert.match(lines[0]!, /^APP\s+DAY \(UTC\)\s+STARTED\s+LIVE\s+ENDED BY REASON/);
  assert.match(lines[2]!, /^vdma\s+2024-05-01\s+3\s+0\s+grace 1, idle 1, lifetime 1\s+2h12m00s\s+44m00s\s+/);
  assert.match(lines[5]!, /^all\s+6\s+1\s+grace 1, idle 1, instance-exited 1, lifetime 1, shutdown 1\s+3h27m00s\s+41m24s\s+/);
});

test('where the log is: --config and WARMPOOL_CONFIG (log.dir relative to the cwd), and the default', async () => {
  await writeLog();
  const cfg = join(root, 'warmpool.yaml');
  writeFileSync(cfg, 'log: { dir: logs }\napps:\n  - name: vdma\n    command: [node, server.js]\n');
  const byFlag = cli(['--config', 'warmpool.yaml', '--json'], { cwd: root });
  assert.equal(byFlag.code, 0, byFlag.err);
  assert.equal((JSON.parse(byFlag.out) as unknown[]).length, 6);
  const byEnv = cli(['--json', '--live'], { cwd: root, env: { WARMPOOL_CONFIG: cfg, WARMPOOL_PORT: 'not-a-port' } });
  assert.equal(byEnv.code, 0, byEnv.err);
  assert.deepEqual(
    (JSON.parse(byEnv.out) as { session: string }[]).map((x) => x.session),
    [S5],
  );

  const bare = join(root, 'bare');
  mkdirSync(bare, { recursive: true });
  const dflt = cli([], { cwd: bare });
  assert.equal(dflt.code, 1);
  assert.ok(dflt.err.includes(join(bare, '.state', 'log')), dflt.err);
  assert.match(dflt.err, /no --dir, --config or WARMPOOL_CONFIG given.*pass --dir DIR, or --config FILE or WARMPOOL_CONFIG/);

  writeFileSync(join(bare, 'nolog.yaml'), 'apps:\n  - name: vdma\n    command: [node, server.js]\n');
  const noLog = cli(['--config', 'nolog.yaml'], { cwd: bare });
  assert.equal(noLog.code, 1);
  assert.ok(noLog.err.includes(`no traffic log directory at ${join(bare, '.state', 'log')} (log.dir of nolog.yaml (--config))`), noLog.err);

  const missing = cli(['--dir', join(root, 'nope')]);
  assert.equal(missing.code, 1);
  assert.ok(missing.err.includes(`no traffic log directory at ${join(root, 'nope')} (given with --dir)`), missing.err);

  const badCfg = cli(['--config', 'missing.yaml'], { cwd: bare });
  assert.equal(badCfg.code, 1);
  assert.match(badCfg.err, /cannot read config file/);

  mkdirSync(join(root, 'empty'), { recursive: true });
  const empty = cli(['--dir', join(root, 'empty')]);
  assert.equal(empty.code, 0);
  assert.equal(empty.out, 'no sessions match\n');
  assert.match(empty.err, /no log files \(sessions-\*\.jsonl\) in /);
});

test('usage errors exit 2 and name the problem; --help exits 0', async () => {
  await writeLog();
  const cases: [string[], RegExp][] = [
    [['--bogus'], /unknown option --bogus/],
    [['totals', '--frob=1'], /unknown option --frob/],
    [['frob'], /unknown subcommand "frob"/],
    [['show'], /show needs a session id/],
    [['show', 'AAAA', 'extra'], /unexpected argument "extra"/],
    [['show', 'AAAA', '--csv'], /option --csv does not apply to show/],
    [['--by', 'day'], /option --by does not apply to list/],
    [['totals', '--by', 'week'], /--by "week": expected hour or day/],
    [['--json', '--csv'], /choose one of --json and --csv/],
    [['--app'], /option --app needs a value/],
    [['--live=yes'], /option --live takes no value/],
    [['--since', 'yesterday'], /--since "yesterday" is not a time/],
    [['--until', '2024-02-31'], /--until "2024-02-31" is not a time/],
    [['--since', '2024-05-02', '--until', '2024-05-01T12:00'], /--since 2024-05-02 is not before --until/],
    [['--reason', 'idel'], /--reason "idel": expected one of idle, lifetime, grace, instance-exited, admin, shutdown, fresh-requested, lost, unused, live/],
  ];
  for (const [args, re] of cases) {
    const r = cli(['--dir', logDir, ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re, args.join(' '));
    assert.equal(r.out, '', 'nothing on stdout');
  }
  const help = cli(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.out, /^usage:\n {2}warmpool sessions \[list\]/);
  assert.match(help.out, /--csv/);
  assert.equal(cli(['totals', '-h']).code, 0);
});

// ---------------------------------------------------------------------------------------------
// The reader, in process

const e = (t: number, type: string, extra: Record<string, unknown> = {}, session = 's1', app = 'a'): TrafficEntry => ({ t, type, session, app, ...extra });

test('log files are read by day, then by part as a number; other files are ignored', () => {
  assert.deepEqual(
    sortLogFiles([
      'sessions-2024-05-02.jsonl',
      'sessions-2024-05-01.10.jsonl',
      'notes.txt',
      'sessions-2024-05-01.2.jsonl',
      'sessions-2024-05-01.jsonl',
      'sessions-2024-05-01.jsonl.gz',
      'sessions-2024-5-1.jsonl',
    ]),
    ['sessions-2024-05-01.jsonl', 'sessions-2024-05-01.2.jsonl', 'sessions-2024-05-01.10.jsonl', 'sessions-2024-05-02.jsonl'],
  );
});

test('readEntries: garbage, blank, CRLF, non-session lines, a torn line with an entry appended, a torn last line, UTF-8 across chunks', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warmpool-reader-'));
  try {
    const line = (x: TrafficEntry) => JSON.stringify(x);
    writeFileSync(
      join(dir, 'sessions-2024-05-01.jsonl'),
      [
        line(e(1, 'claimed')),
        'garbage',
        '',
        line(e(2, 'first-request')) + '\r',
        JSON.stringify({ t: 3, type: 'pool-started' }),
        '[1,2,3]',
        JSON.stringify({ t: 4, type: 'x', session: 's1' }) /* no app */,
      ].join('\n') + '\n',
    );
    // A run died mid-line; the next run appended a whole entry to the same line.
    writeFileSync(
      join(dir, 'sessions-2024-05-01.1.jsonl'),
      `{"t":5,"type":"ws-o${line(e(6, 'ws-open'))}\n${line(e(7, 'idle', { since: 2 }))}\n{"t":8,"type":"en`,
    );
    // Long lines of multi-byte characters: chunk boundaries fall inside characters.
    const many = Array.from({ length: 3000 }, (_, i) => line(e(100 + i, 'ws-close', { detail: 'é漢🙂'.repeat(20) }, `u${i}`)));
    writeFileSync(join(dir, 'sessions-2024-05-02.jsonl'), many.join('\n') + '\n');
    const stats = newReadStats();
    const got: TrafficEntry[] = [];
    for await (const x of readEntries(dir, stats)) got.push(x);
    assert.deepEqual(
      got.slice(0, 4).map((x) => [x.t, x.type]),
      [
        [1, 'claimed'],
        [2, 'first-request'],
        [6, 'ws-open'],
        [7, 'idle'],
      ],
    );
    assert.equal(got.length, 4 + 3000);
    assert.ok(got.slice(4).every((x) => x.detail === 'é漢🙂'.repeat(20)));
    assert.deepEqual(
      { entries: stats.entries, garbage: stats.garbage, torn: stats.torn, recovered: stats.recovered, ignored: stats.ignored },
      { entries: 3004, garbage: 3, torn: 2, recovered: 1, ignored: 1 },
    );
    assert.deepEqual(stats.examples, [
      { file: 'sessions-2024-05-01.jsonl', line: 2, kind: 'garbage' },
      { file: 'sessions-2024-05-01.jsonl', line: 6, kind: 'garbage' },
      { file: 'sessions-2024-05-01.jsonl', line: 7, kind: 'garbage' },
      { file: 'sessions-2024-05-01.1.jsonl', line: 1, kind: 'torn' },
      { file: 'sessions-2024-05-01.1.jsonl', line: 3, kind: 'torn' },
    ]);
    const { sessions } = await readSessions(dir);
    assert.equal(sessions.length, 3001);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('active time: stretches from claim/active-again/restore to the last activity before idle or the end', () => {
  const ended = (t: number, lastActive: number, extra: Record<string, unknown> = {}) => e(t, 'ended', { reason: 'idle', summary: { lastActive, ...extra } });
  const cases: [string, TrafficEntry[], { ms: number; open: boolean; from: 'fleet' | 'log' }][] = [
    ['claim to the end', [e(0, 'claimed'), e(5, 'first-request'), ended(100, 40)], { ms: 40, open: false, from: 'log' }],
    ['never used', [e(0, 'claimed'), e(60, 'idle', { since: 0 }), ended(1200, 0)], { ms: 0, open: false, from: 'log' }],
    [
      'idle and back twice',
      [e(0, 'claimed'), e(70, 'idle', { since: 10 }), e(100, 'active-again'), e(190, 'idle', { since: 130 }), e(300, 'active-again'), ended(500, 350)],
      { ms: 10 + 30 + 50, open: false, from: 'log' },
    ],
    ['ended while idle', [e(0, 'claimed'), e(80, 'idle', { since: 20 }), ended(1000, 20)], { ms: 20, open: false, from: 'log' }],
    [
      'restart closes the open stretch at the last entry before it',
      [e(0, 'claimed'), e(7, 'ws-open'), e(50, 'restored', { claimedAt: 0 }), ended(200, 90)],
      { ms: 7 + 40, open: false, from: 'log' },
    ],
    ['live: to the last entry, still open', [e(0, 'claimed'), e(3, 'first-request'), e(9, 'ws-open')], { ms: 9, open: true, from: 'log' }],
    ['live and idle', [e(0, 'claimed'), e(70, 'idle', { since: 10 })], { ms: 10, open: false, from: 'log' }],
    ['the fleet counted it', [e(0, 'claimed'), ended(100, 40, { activeMs: 33 })], { ms: 33, open: false, from: 'fleet' }],
    ['the claim is in a removed file', [e(500, 'ws-close'), e(560, 'idle', { since: 520 }), ended(900, 520)], { ms: 20, open: false, from: 'log' }],
    ['entries after the end are ignored', [e(0, 'claimed'), ended(100, 40), e(150, 'active-again'), e(200, 'ws-close')], { ms: 40, open: false, from: 'log' }],
  ];
  for (const [name, events, want] of cases) assert.deepEqual(activeTime(events), want, name);
});

test('records: claim time from the claim, the restore or the summary; malformed summaries read as zero', () => {
  const r = buildRecord([
    e(900, 'ended', { reason: 'admin', summary: { claimedAt: 100, durationMs: 800, lastActive: 700, bytesIn: 'x', requests: { 'GET 2xx': 2, bad: 'y' } } }),
  ]);
  assert.equal(r.claimedAt, 100);
  assert.equal(r.partial, true);
  assert.equal(r.durationMs, 800);
  assert.equal(r.reason, 'admin');
  assert.deepEqual(r.summary!.requests, { 'GET 2xx': 2 });
  assert.equal(r.summary!.bytesIn, 0);
  assert.deepEqual(r.summary!.framesIn, { control: 0, data: 0 });

  const restored = buildRecord([e(5000, 'restored', { claimedAt: 1000, instance: 'i9' }), e(6000, 'ended', { reason: 'grace' })]);
  assert.deepEqual([restored.claimedAt, restored.partial, restored.instance, restored.durationMs, restored.restarts], [1000, false, 'i9', 5000, 1]);

  const bare = buildRecord([e(300, 'ws-open'), e(100, 'first-request')]);
  assert.deepEqual([bare.claimedAt, bare.partial, bare.endedAt, bare.durationMs, bare.events[0]!.type], [100, true, undefined, 200, 'first-request']);
});

test('filters, lookup by prefix, unique prefix length, totals by claim hour', () => {
  const H = 3_600_000;
  const sessions = buildSessions([
    e(0, 'claimed', {}, 'abc1', 'x'),
    e(H - 1, 'ended', { reason: 'idle', summary: { durationMs: H - 1, messagesIn: { a: 2 } } }, 'abc1', 'x'),
    e(H - 1, 'claimed', {}, 'abc2', 'x'),
    e(2 * H, 'ended', { reason: 'grace', summary: { durationMs: H + 1, messagesIn: { a: 1, b: 4 } } }, 'abc2', 'x'),
    e(H, 'claimed', {}, 'zz', 'y'),
  ]);
  assert.deepEqual(
    filterSessions(sessions, { since: H - 1 }).map((s) => s.session),
    ['abc2', 'zz'],
  );
  assert.deepEqual(
    filterSessions(sessions, { until: H - 1 }).map((s) => s.session),
    ['abc1'],
  );
  assert.deepEqual(
    filterSessions(sessions, { reasons: ['live', 'idle'] }).map((s) => s.session),
    ['abc1', 'zz'],
  );
  assert.equal(findSession(sessions, 'abc').kind, 'ambiguous');
  assert.equal(findSession(sessions, 'q').kind, 'none');
  assert.equal(findSession(sessions, '').kind, 'none');
  const f = findSession(sessions, 'abc2');
  assert.equal(f.kind === 'found' && f.record.session, 'abc2');
  assert.equal(uniquePrefixLength(['abc1', 'abc2', 'zz'], 2), 4);
  assert.equal(uniquePrefixLength(['aaaaaaaaaaX1', 'aaaaaaaaaaX2']), 12);
  const rows = totals(sessions, 'hour');
  assert.deepEqual(
    rows.map((r) => [r.app, r.periodStart, r.started, r.live, r.endedBy, r.durationTotalMs, r.durationMeanMs, r.messagesIn, r.messagesInByType]),
    [
      ['x', 0, 2, 0, { idle: 1, grace: 1 }, 2 * H, H, 7, { a: 3, b: 4 }],
      ['y', H, 1, 1, {}, 0, undefined, 0, {}],
    ],
  );
  assert.deepEqual(
    totals(sessions, 'day').map((r) => [r.app, r.started]),
    [
      ['x', 2],
      ['y', 1],
    ],
  );
});

test('--since/--until values: ISO dates and times (UTC unless zoned), times ago', () => {
  const now = Date.UTC(2024, 4, 10, 12, 0, 0);
  const cases: [string, boolean, number | undefined][] = [
    ['2024-05-01', false, Date.UTC(2024, 4, 1)],
    ['2024-05-01', true, Date.UTC(2024, 4, 2)],
    ['2024-05-01T10:30', false, Date.UTC(2024, 4, 1, 10, 30)],
    ['2024-05-01 10:30:15.250', true, Date.UTC(2024, 4, 1, 10, 30, 15, 250)],
    ['2024-05-01T12:30+02:00', false, Date.UTC(2024, 4, 1, 10, 30)],
    ['2024-05-01T10:30:00Z', false, Date.UTC(2024, 4, 1, 10, 30)],
    ['2h', false, now - 2 * 3_600_000],
    ['90m', false, now - 90 * 60_000],
    ['1h30m', true, now - 90 * 60_000],
    ['3d', false, now - 3 * 86_400_000],
    ['1w', false, now - 7 * 86_400_000],
    ['45s', false, now - 45_000],
    ['', false, undefined],
    ['yesterday', false, undefined],
    ['2024-02-31', false, undefined],
    ['2024-13-01T00:00', false, undefined],
    ['2h ago', false, undefined],
  ];
  for (const [s, end, want] of cases) assert.equal(parseTimeArg(s, now, end), want, JSON.stringify(s));
});

test('CSV fields are quoted only when needed, quotes doubled, records end with CRLF', () => {
  const text = toCsv(
    ['a', 'b,c'],
    [
      ['plain', 'say "hi"'],
      ['line\nbreak', undefined],
      [1, null],
    ],
  );
  assert.equal(text, 'a,"b,c"\r\nplain,"say ""hi"""\r\n"line\nbreak",\r\n1,\r\n');
  assert.deepEqual(parseCsv(text), [
    ['a', 'b,c'],
    ['plain', 'say "hi"'],
    ['line\nbreak', ''],
    ['1', ''],
  ]);
});
