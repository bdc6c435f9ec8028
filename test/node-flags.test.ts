// warmpool's node flags: listed once (the shebang of bin/warmpool.ts), passed by every launcher (the
// command itself, npm start, the Dockerfile, the benchmark), and noticed when missing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { missingFlagsNote, missingNodeFlags, shebangNodeFlags, warmpoolNodeFlags } from '../bin/node-flags.js';
import { warmpoolNodeArgv } from '../bench/variants.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FLAGS = warmpoolNodeFlags();

test('shebangNodeFlags reads the node flags of a shebang line', () => {
  assert.deepEqual(shebangNodeFlags('#!/usr/bin/env node'), []);
  assert.deepEqual(shebangNodeFlags('#!/usr/bin/env -S node --max-semi-space-size=4'), ['--max-semi-space-size=4']);
  assert.deepEqual(shebangNodeFlags('#!/usr/bin/env -S node --a=1  --b\r'), ['--a=1', '--b']);
  assert.deepEqual(shebangNodeFlags('#!/usr/local/bin/node --a'), ['--a']);
  assert.throws(() => shebangNodeFlags('// not a shebang'), /not a shebang/);
  assert.throws(() => shebangNodeFlags('#!/usr/bin/env bash'), /does not run node/);
  // Without -S Linux hands "node --a" to env as ONE word: the command would not start.
  assert.throws(() => shebangNodeFlags('#!/usr/bin/env node --a'), /needs env -S/);
});

test('the warmpool command caps the young generation and floors the old-generation limit, with flags this node accepts', () => {
  assert.ok(
    FLAGS.some((f) => /^--max-semi-space-size=\d+$/.test(f)),
    `flags: ${FLAGS.join(' ')}`,
  );
  // Below ~32 MiB the limit leaves less room than one young collection's worth of relayed read buffers (README, "Node flags").
  const floor = FLAGS.map((f) => /^--initial-old-space-size=(\d+)$/.exec(f)).find(Boolean);
  assert.ok(floor && Number(floor[1]) >= 32, `flags: ${FLAGS.join(' ')}`);
  const r = spawnSync(process.execPath, [...FLAGS, '-e', '0'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  // The source and the compiled command carry the same shebang (tsc keeps it).
  assert.equal(readFileSync(`${ROOT}bin/warmpool.ts`, 'utf8').split('\n', 1)[0], readFileSync(`${ROOT}dist/bin/warmpool.js`, 'utf8').split('\n', 1)[0]);
});

test("the Dockerfile's CMD passes exactly the warmpool command's flags", () => {
  const line = readFileSync(`${ROOT}Dockerfile`, 'utf8')
    .split('\n')
    .filter((l) => /^CMD\s/.test(l));
  assert.equal(line.length, 1, 'one CMD');
  const cmd = JSON.parse(line[0]!.replace(/^CMD\s+/, '')) as string[];
  assert.deepEqual(cmd, ['node', ...FLAGS, '/opt/warmpool/dist/bin/warmpool.js', 'start']);
});

test('npm start runs the warmpool command with its flags', () => {
  const start = (JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { scripts: Record<string, string> }).scripts.start!;
  const run = start
    .split('&&')
    .map((s) => s.trim())
    .find((s) => s.includes('dist/bin/warmpool.js'));
  assert.ok(run, `start script: ${start}`);
  const words = run.split(/\s+/);
  // Either the command itself (its shebang passes the flags) or node with exactly those flags.
  if (words[0] !== 'dist/bin/warmpool.js' && words[0] !== './dist/bin/warmpool.js') {
    assert.deepEqual(words.slice(0, FLAGS.length + 2), ['node', ...FLAGS, 'dist/bin/warmpool.js'], `start script: ${start}`);
  } else {
    const build = (JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { scripts: Record<string, string> }).scripts.build!;
    assert.match(build, /chmod \+x dist\/bin\/warmpool\.js/, 'the build makes the command executable');
  }
});

test("the benchmark starts warmpool with the deployment flags first, an experiment's after (the last one wins)", () => {
  assert.deepEqual(warmpoolNodeArgv('t', [], {}), FLAGS);
  assert.deepEqual(warmpoolNodeArgv('t', ['--x'], { BENCH_WARMPOOL_NODE_ARGS: '--max-semi-space-size=16  --y' }), [
    ...FLAGS,
    '--max-semi-space-size=16',
    '--y',
    '--x',
  ]);
});

test('missingNodeFlags: flags given on the command line or in NODE_OPTIONS, in any spelling or value, count', () => {
  const want = ['--max-semi-space-size=4'];
  assert.deepEqual(missingNodeFlags(want, [], ''), want);
  assert.deepEqual(missingNodeFlags(want, ['--max-semi-space-size=4'], ''), []);
  assert.deepEqual(missingNodeFlags(want, ['--max_semi_space_size=8'], ''), []);
  assert.deepEqual(missingNodeFlags(want, ['--inspect'], '--trace-gc --max-semi-space-size=2'), []);
  assert.deepEqual(missingNodeFlags(want, ['--max-old-space-size=512'], undefined), want);
});

test('missingFlagsNote: a note naming the missing flags, none when they are all there', () => {
  const want = ['--max-semi-space-size=4'];
  const note = missingFlagsNote(want, ['--enable-source-maps'], '');
  assert.ok(note);
  assert.match(note, /started without --max-semi-space-size=4/);
  assert.match(note, /README, "Node flags"/);
  assert.equal(missingFlagsNote(want, ['--max-semi-space-size=4']), undefined);
  assert.equal(missingFlagsNote([], []), undefined);
});
