// Process instances kept apart (issue "Class-day resilience", item 3): warmpool's state directory
// (cookie key, state files holding each instance's secret, instance output) is warmpool's alone.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { privateDir } from '../pool/private-dir.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => { while (cleanups.length) await cleanups.pop()!(); });

test('privateDir: creates 0700, tightens a folder an older version left open, refuses a shared one', () => {
  const base = mkdtempSync(join(tmpdir(), 'wp-iso-dir-'));
  cleanups.push(() => rmSync(base, { recursive: true, force: true }));
  privateDir(join(base, 'new', 'state'));
  assert.equal(statSync(join(base, 'new', 'state')).mode & 0o777, 0o700);
  const open = join(base, 'open');
  mkdirSync(open);
  chmodSync(open, 0o755);
  privateDir(open);
  assert.equal(statSync(open).mode & 0o777, 0o700);
  const shared = join(base, 'shared');
  mkdirSync(shared);
  chmodSync(shared, 0o1777);
  assert.throws(() => privateDir(shared), new RegExp(`stateDir ${shared} is a shared folder \\(mode 1777\\), writable by other users`));
  assert.equal(statSync(shared).mode & 0o7777, 0o1777, 'left as it was');
});
