// The traffic log's privacy options: visitor addresses truncated (/24, /48) or keyed-hashed before
// they are written, and log files removed once older than the retention period, on a ManualClock.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../core/clock.js';
import { LogRetention, expiredLogFiles } from '../pool/log-retention.js';
import { AddressPolicyLog, hashAddress, loadLogHashKey, truncateAddress, withAddressPolicy } from '../pool/traffic-log-privacy.js';
import { MemoryTrafficLog } from '../pool/traffic-log.js';

const DAY = 86_400_000;

test('truncateAddress: IPv4 to /24, IPv6 to /48, mapped IPv4 as IPv4, anything else unknown', () => {
  const cases: [string, string][] = [
    ['192.0.2.77', '192.0.2.0/24'],
    ['10.1.2.3', '10.1.2.0/24'],
    ['::ffff:198.51.100.9', '198.51.100.0/24'],
    ['2001:db8:1:2::5', '2001:db8:1::/48'],
    ['2001:0db8:00aa:ffff:1:2:3:4', '2001:db8:aa::/48'],
    ['::1', '0:0:0::/48'],
    ['fe80::1%eth0', 'fe80:0:0::/48'],
    ['64:ff9b::192.0.2.1', '64:ff9b:0::/48'],
    ['', 'unknown'],
    ['not an address', 'unknown'],
    ['999.1.1.1', 'unknown'],
  ];
  for (const [ip, want] of cases) assert.equal(truncateAddress(ip), want, ip);
});

test('hashAddress: keyed, stable, not the address; another key gives another value', () => {
  const k1 = Buffer.alloc(32, 1);
  const k2 = Buffer.alloc(32, 2);
  const h = hashAddress('192.0.2.77', k1);
  assert.match(h, /^h:[0-9a-f]{16}$/);
  assert.equal(hashAddress('192.0.2.77', k1), h);
  assert.notEqual(hashAddress('192.0.2.78', k1), h);
  assert.notEqual(hashAddress('192.0.2.77', k2), h);
});

test("the log gets the policy's form of the visitor address; other fields and entries untouched", () => {
  const mem = new MemoryTrafficLog();
  const log = new AddressPolicyLog(mem, 'truncate');
  const entry = { t: 1, type: 'claimed', session: 's', app: 'a', visitor: '203.0.113.200' };
  log.write(entry);
  log.write({ t: 2, type: 'ended', session: 's', app: 'a' });
  assert.deepEqual(mem.entries, [
    { t: 1, type: 'claimed', session: 's', app: 'a', visitor: '203.0.113.0/24' },
    { t: 2, type: 'ended', session: 's', app: 'a' },
  ]);
  assert.equal(entry.visitor, '203.0.113.200', "the caller's object is not changed");

  const dir = mkdtempSync(join(tmpdir(), 'wp-privacy-'));
  try {
    const hashed = new MemoryTrafficLog();
    withAddressPolicy(hashed, 'hash', dir).write({ t: 1, type: 'claimed', session: 's', app: 'a', visitor: '203.0.113.200' });
    const key = loadLogHashKey(dir);
    assert.equal(statSync(join(dir, 'log-hash-key')).mode & 0o777, 0o600, "the key is warmpool's alone");
    assert.equal(hashed.entries[0]!.visitor, hashAddress('203.0.113.200', key), 'the same key on the next start');
    const plain = new MemoryTrafficLog();
    assert.equal(withAddressPolicy(plain, 'full', dir), plain);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("expiredLogFiles: a day's file goes once its last possible entry is older than the retention", () => {
  const now = Date.UTC(2025, 0, 31, 12, 0, 0);
  const names = [
    'sessions-2025-01-01.jsonl',
    'sessions-2025-01-01.2.jsonl',
    'sessions-2025-01-29.jsonl',
    'sessions-2025-01-30.jsonl',
    'sessions-2025-01-31.jsonl',
    'other.txt',
    'log-hash-key',
  ];
  assert.deepEqual(expiredLogFiles(names, now, 2 * DAY), ['sessions-2025-01-01.jsonl', 'sessions-2025-01-01.2.jsonl']);
  assert.deepEqual(
    expiredLogFiles(names, Date.UTC(2025, 1, 1, 0, 0, 0), 2 * DAY),
    ['sessions-2025-01-01.jsonl', 'sessions-2025-01-01.2.jsonl', 'sessions-2025-01-29.jsonl'],
    'Jan 29 ends Jan 30 00:00: two days later',
  );
  assert.deepEqual(expiredLogFiles(names, now, 365 * DAY), []);
});

test("LogRetention removes old files at start and then hourly on the clock, never today's or others'", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wp-retention-'));
  const clock = new ManualClock(Date.UTC(2025, 0, 10, 23, 30, 0));
  const lines: string[] = [];
  for (const n of [
    'sessions-2025-01-01.jsonl',
    'sessions-2025-01-02.jsonl',
    'sessions-2025-01-08.jsonl',
    'sessions-2025-01-09.jsonl',
    'sessions-2025-01-10.jsonl',
    'notes.txt',
  ])
    writeFileSync(join(dir, n), '{}\n');
  const r = new LogRetention({ dir, retentionMs: 7 * DAY, clock, log: (m) => lines.push(m) });
  try {
    r.start();
    await r.idle();
    assert.deepEqual(
      readdirSync(dir).sort(),
      ['notes.txt', 'sessions-2025-01-08.jsonl', 'sessions-2025-01-09.jsonl', 'sessions-2025-01-10.jsonl'],
      'Jan 1 and 2 are over 7 days old',
    );
    assert.match(lines[0]!, /removed 2 file\(s\) older than 7 day\(s\)/);

    await clock.advance(59 * 60_000);
    await r.idle();
    assert.equal(readdirSync(dir).length, 4, 'nothing more is old at 00:29');
    // 2025-01-17 00:30: Jan 9 ended at Jan 10 00:00, seven days before.
    await clock.advance(6 * DAY + 61 * 60_000);
    await r.idle();
    assert.deepEqual(readdirSync(dir).sort(), ['notes.txt', 'sessions-2025-01-10.jsonl']);
    r.stop();
    assert.equal(clock.timers, 0, 'stop leaves no timer');
  } finally {
    r.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('LogRetention: a missing folder is not an error', async () => {
  const clock = new ManualClock();
  const lines: string[] = [];
  const r = new LogRetention({ dir: join(tmpdir(), 'wp-retention-none-' + process.pid), retentionMs: DAY, clock, log: (m) => lines.push(m) });
  assert.deepEqual(await r.sweep(), []);
  r.stop();
  assert.deepEqual(lines, []);
});
