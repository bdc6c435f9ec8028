// The JSON-lines traffic log's write batching, on a manual clock: lines are gathered and handed to
// the file together after flushMs (or at 64 KiB, or when a file is left or closed), in order.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../core/clock.js';
import { JsonlTrafficLog } from '../pool/traffic-log.js';
import { eventually } from './helpers/wait.js';

const DAY1 = Date.UTC(2026, 10, 25, 9, 0, 0);
const DAY2 = Date.UTC(2026, 10, 26, 0, 0, 1);

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'warmpool-tlog-'));
  test.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const lines = (file: string): number[] => {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { n: number }).n);
  } catch {
    return [];
  }
};

test('lines are written together after flushMs, not one file write each', async () => {
  const d = dir();
  const clock = new ManualClock(DAY1);
  const log = new JsonlTrafficLog(d, 1 << 20, { flushMs: 100, clock });
  const file = join(d, 'sessions-2026-11-25.jsonl');
  for (let n = 0; n < 5; n++) log.write({ t: DAY1, n });
  await clock.advance(99);
  assert.deepEqual(lines(file), [], 'nothing handed to the file before flushMs');
  assert.equal(clock.timers, 1, 'one flush timer for all five lines');
  await clock.advance(1);
  assert.equal(clock.timers, 0);
  await eventually(() => lines(file).length === 5, 'the five lines in the file');
  assert.deepEqual(lines(file), [0, 1, 2, 3, 4]);
  log.write({ t: DAY1, n: 5 });
  await log.close();
  assert.deepEqual(lines(file), [0, 1, 2, 3, 4, 5], 'close writes what is still gathered');
});

test('a day change or a rotation writes the gathered lines to the file being left', async () => {
  const d = dir();
  const clock = new ManualClock(DAY1);
  const log = new JsonlTrafficLog(d, 200, { flushMs: 60_000, clock });
  const pad = 'x'.repeat(60);
  for (let n = 0; n < 4; n++) log.write({ t: DAY1, n, pad });
  log.write({ t: DAY2, n: 4, pad });
  await log.close();
  const files = readdirSync(d).sort();
  assert.deepEqual(files, ['sessions-2026-11-25.1.jsonl', 'sessions-2026-11-25.jsonl', 'sessions-2026-11-26.jsonl']);
  assert.deepEqual(lines(join(d, 'sessions-2026-11-25.jsonl')), [0, 1], 'first part up to 200 bytes');
  assert.deepEqual(lines(join(d, 'sessions-2026-11-25.1.jsonl')), [2, 3]);
  assert.deepEqual(lines(join(d, 'sessions-2026-11-26.jsonl')), [4]);
});

test('each line goes to the file of its own UTC day: across midnight, back to the day before, and after close()', async () => {
  const d = dir();
  const midnight = Date.UTC(2026, 10, 26);
  const clock = new ManualClock(midnight - 1);
  const log = new JsonlTrafficLog(d, 1 << 20, { flushMs: 60_000, clock });
  log.write({ t: midnight - 1, n: 0 });
  log.write({ t: midnight, n: 1 });
  log.write({ t: midnight - 1, n: 2 }); // e.g. 'active-again', stamped at the activity before midnight
  await log.close();
  log.write({ t: midnight - 1, n: 3 });
  await log.close();
  assert.deepEqual(readdirSync(d).sort(), ['sessions-2026-11-25.jsonl', 'sessions-2026-11-26.jsonl']);
  assert.deepEqual(lines(join(d, 'sessions-2026-11-25.jsonl')), [0, 2, 3], 'a line after close() opens its day again');
  assert.deepEqual(lines(join(d, 'sessions-2026-11-26.jsonl')), [1]);
});

test('64 KiB of gathered lines are written at once, without waiting for the timer', async () => {
  const d = dir();
  const clock = new ManualClock(DAY1);
  const log = new JsonlTrafficLog(d, 1 << 30, { flushMs: 60_000, clock });
  const file = join(d, 'sessions-2026-11-25.jsonl');
  const pad = 'y'.repeat(1000);
  for (let n = 0; n < 70; n++) log.write({ t: DAY1, n, pad });
  await eventually(() => lines(file).length >= 60, 'a 64 KiB batch in the file');
  assert.deepEqual(
    lines(file),
    Array.from({ length: lines(file).length }, (_, i) => i),
    'in order',
  );
  await log.close();
  assert.equal(lines(file).length, 70);
});

test('a file that cannot be appended to (here a folder in its place) is reported, its lines lost, and the next day is written', async () => {
  const d = dir();
  mkdirSync(join(d, 'sessions-2026-11-25.jsonl'));
  const errors: string[] = [];
  const clock = new ManualClock(DAY1);
  const log = new JsonlTrafficLog(d, 1 << 20, { flushMs: 60_000, clock, onError: (e) => errors.push(e.message) });
  log.write({ t: DAY1, n: 0 });
  log.write({ t: DAY1 + 86_400_000, n: 1 });
  await log.close();
  assert.equal(errors.length, 1);
  assert.match(errors[0]!, /traffic log: could not append \d+ bytes to .*sessions-2026-11-25\.jsonl: EISDIR/);
  assert.deepEqual(lines(join(d, 'sessions-2026-11-26.jsonl')), [1]);
});
