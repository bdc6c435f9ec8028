// The one list of end reasons (core/end-reasons.ts): every reason has a sentence on the "session
// ended" page and is known to `warmpool sessions` (its --reason filter and its totals columns).
// (`warmpool sessions` once refused --reason lost and had no column for it.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { END_REASONS, END_REASON_NAMES, isEndReason, type EndReason } from '../core/end-reasons.js';
import { render } from '../proxy/answers.js';
import { HELP, sessionsCommand } from '../bin/sessions.js';

test('the list: unique names, each with what it means', () => {
  assert.equal(new Set(END_REASON_NAMES).size, END_REASONS.length);
  for (const r of END_REASONS) assert.ok(r.what.length > 10, r.reason);
  assert.ok(isEndReason('lost') && isEndReason('unused') && !isEndReason('idel') && !isEndReason(undefined));
});

test('every end reason has its own sentence on the "session ended" page', () => {
  const sentence = (reason: EndReason | 'unknown') => {
    const r = render({ kind: 'ended', app: 'demo', reason }, false);
    assert.equal(r.status, 410);
    return (JSON.parse(r.body) as { error: { message: string } }).error.message.replace('Your session of demo has ended. ', '');
  };
  const texts = END_REASON_NAMES.map((r) => sentence(r));
  for (const [i, t] of texts.entries()) assert.ok(t && t !== 'undefined', `${END_REASON_NAMES[i]}: ${t}`);
  assert.equal(new Set([...texts, sentence('unknown')]).size, texts.length + 1, 'no two reasons share a sentence');
  const page = render({ kind: 'ended', app: 'demo', reason: 'lost' }, true);
  assert.match(page.body, /Its instance was gone when the server restarted\./);
});

test('warmpool sessions knows every end reason: --reason accepts it, totals has a column for it, --help names it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wp-reasons-'));
  try {
    const run = async (args: string[]) => {
      let out = '';
      let err = '';
      const code = await sessionsCommand(['--dir', dir, ...args], {
        out: (s) => {
          out += s;
        },
        err: (s) => {
          err += s;
        },
      });
      return { code, out, err };
    };
    for (const r of END_REASON_NAMES) {
      const res = await run(['--reason', r, '--json']);
      assert.equal(res.code, 0, `--reason ${r}: ${res.err}`);
    }
    const bad = await run(['--reason', 'idel']);
    assert.equal(bad.code, 2, 'an unknown reason is refused');
    assert.match(bad.err, new RegExp(`expected one of ${END_REASON_NAMES.join(', ')}, live`));
    const header = (await run(['totals', '--csv'])).out.split('\n')[0]!.split(',');
    for (const r of END_REASON_NAMES) assert.ok(header.includes(`ended_${r}`), `totals column ended_${r}: ${header.join(',')}`);
    const help = HELP.replace(/\s+/g, ' ');
    for (const r of END_REASON_NAMES) assert.ok(help.includes(r), `--help names ${r}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
