// File descriptors: the limit read from /proc, the start-up note, the rate-limited alarm on a manual
// clock, and a proxy process whose open-files limit is lowered: running out gives the at-capacity
// answer (or a reset), never "your instance is not answering", and the process keeps serving.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DescriptorAlarm, descriptorLimitNote, openFilesLimit } from '../proxy/descriptors.js';
import { ManualClock } from '../core/clock.js';
import { until } from './helpers/wait.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

test('openFilesLimit reads Max open files; the note says how many students fit and how to raise it', () => {
  assert.deepEqual(openFilesLimit(LIMITS), { soft: 1024, hard: 524288 });
  assert.equal(openFilesLimit('nothing here'), undefined);
  assert.deepEqual(openFilesLimit(LIMITS.replace('1024    ', 'unlimited')), { soft: Number.POSITIVE_INFINITY, hard: 524288 });
  const note = descriptorLimitNote({ soft: 1024, hard: 524288 }, 500);
  assert.match(note ?? '', /limit is 1024 .*about 219 students can arrive at once, the apps' max allows 500; raise it \(ulimit -n 2006/);
  assert.equal(descriptorLimitNote({ soft: 65536, hard: 65536 }, 500), undefined);
  assert.ok(openFilesLimit(), 'this machine has /proc/self/limits');
});

test('the alarm logs once per interval and counts what it left out', async () => {
  const clock = new ManualClock();
  const lines: string[] = [];
  const alarm = new DescriptorAlarm(
    (m) => lines.push(m),
    () => clock.now(),
    10_000,
  );
  alarm.exhausted();
  alarm.exhausted();
  alarm.exhausted();
  assert.equal(lines.length, 1);
  await clock.advance(10_000);
  alarm.exhausted();
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /out of file descriptors .*raise the open-files limit/);
  assert.match(lines[1]!, /\(2 more since the last line\)/);
});

const hasPrlimit = spawnSync('prlimit', ['--version']).status === 0;

test('a proxy out of descriptors answers at capacity (or resets), never "instance not answering", and serves again once they are back', {
  skip: hasPrlimit ? false : 'prlimit (util-linux) is not installed',
}, async () => {
  // The instance, in this process: takes requests and never answers, so each exchange holds two proxy sockets.
  const instance = createServer((s) => {
    s.on('error', () => s.destroy());
    s.resume();
  });
  await new Promise<void>((r) => instance.listen(0, '127.0.0.1', r));
  const child = spawn(process.execPath, [join('dist', 'test', 'helpers', 'fd-proxy.js'), String((instance.address() as AddressInfo).port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const sockets: Socket[] = [];
  try {
    const ready = await until('the proxy to start', () => /READY (\d+) (.*)\n/.exec(out) ?? undefined, 20_000);
    const port = Number(ready[1]);
    const cookie = ready[2]!;
    // Started with the usual limit (loading modules opens many files at once); now 24 more than it holds.
    const held = readdirSync(`/proc/${child.pid}/fd`).length;
    const lowered = spawnSync('prlimit', ['--pid', String(child.pid), `--nofile=${held + 24}:${held + 24}`]);
    assert.equal(lowered.status, 0, `prlimit --pid: ${lowered.stderr}`);
    const answers: string[] = [];
    // Each held exchange takes two descriptors in the proxy; 40 of them exceed the 24 left.
    for (let i = 0; i < 40; i++) {
      const s = connect(port, '127.0.0.1');
      sockets.push(s);
      const got = await new Promise<string>((resolve) => {
        let buf = '';
        const done = (what: string) => {
          clearTimeout(t);
          resolve(what);
        };
        const t = setTimeout(() => done('held'), 300);
        s.on('data', (d: Buffer) => {
          buf += d.toString('latin1');
          if (buf.includes('\r\n\r\n')) done(buf.split('\r\n')[0]!);
        });
        s.on('error', () => done('reset'));
        s.on('close', () => done(buf ? buf.split('\r\n')[0]! : 'closed'));
        s.write(`GET /hold/x${i} HTTP/1.1\r\nHost: a\r\nCookie: ${cookie}\r\n\r\n`);
      });
      answers.push(got);
    }
    assert.ok(answers.includes('held'), `some exchanges were held: ${answers.join(', ')}`);
    assert.ok(
      answers.some((a) => a !== 'held'),
      `the limit was reached: ${answers.join(', ')}`,
    );
    for (const a of answers)
      assert.ok(
        a === 'held' || a === 'reset' || a === 'closed' || a === 'HTTP/1.1 503 Service Unavailable',
        `not an honest answer: ${a}; proxy said: ${out.slice(-600)}`,
      );
    if (answers.includes('HTTP/1.1 503 Service Unavailable')) assert.match(out, /out of file descriptors/);
    // Release everything: the proxy serves again (the entry answers without the instance).
    for (const s of sockets.splice(0)) s.destroy();
    await until(
      'the proxy to serve again',
      async () => {
        const r = await fetch(`http://127.0.0.1:${port}/_warmpool/healthz`).catch(() => undefined);
        return r?.status === 200 ? true : undefined;
      },
      10_000,
      100,
    );
    assert.equal(child.exitCode, null, 'the proxy process is still running');
  } finally {
    for (const s of sockets) s.destroy();
    child.kill('SIGKILL');
    instance.close();
  }
});
