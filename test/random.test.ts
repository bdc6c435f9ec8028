// core/random.ts: ids and secrets drawn from one refilled buffer. Every draw fresh (none repeats
// across refills), copies the caller keeps do not change under later draws, bad sizes refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshRandom, randomToken } from '../core/random.js';

test('tokens over several refills of the buffer are all distinct and of the asked size', () => {
  const seen = new Set<string>();
  // 4096-byte buffer: 2,000 draws of 18 bytes cross it about nine times, at shifting offsets.
  for (let i = 0; i < 2000; i++) {
    const t = randomToken(i % 2 ? 18 : 16);
    assert.equal(Buffer.from(t, 'base64url').length, i % 2 ? 18 : 16);
    assert.match(t, /^[A-Za-z0-9_-]+$/);
    assert.ok(!seen.has(t), `token ${t} drawn twice`);
    seen.add(t);
  }
});

test('freshRandom hands out a copy: later draws and refills leave it as it was', () => {
  const kept = freshRandom(32);
  const before = Buffer.from(kept);
  for (let i = 0; i < 600; i++) freshRandom(16);
  assert.deepEqual(kept, before);
  assert.notDeepEqual(freshRandom(32), kept);
});

test('sizes outside 1..4096 are refused, naming the size', () => {
  assert.throws(() => freshRandom(0), /0 bytes asked/);
  assert.throws(() => randomToken(5000), /5000 bytes asked, from 1 to 4096/);
  assert.equal(freshRandom(4096).length, 4096);
});
