// The structured log: JSON lines carrying the ids a line is about, readable lines on a terminal,
// levels, and a log call that never throws whatever its destination does.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, parseLevel, readable } from '../core/log.js';

test('JSON lines carry message, level and the app, instance and session ids', () => {
  const lines: string[] = [];
  const { log } = createLogger({ json: true, write: (l) => lines.push(l) });
  log('instance i1 failed', { app: 'demo', instance: 'i1', session: 's1' }, 'error');
  log('plain');
  const [a, b] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(a!.msg, 'instance i1 failed');
  assert.equal(a!.level, 50);
  assert.deepEqual([a!.app, a!.instance, a!.session], ['demo', 'i1', 's1']);
  assert.equal(a!.name, 'warmpool');
  assert.equal(b!.level, 30);
});

test('levels below the chosen one are dropped; WARMPOOL_LOG_LEVEL values are checked', () => {
  const lines: string[] = [];
  const { log } = createLogger({ json: true, level: 'warn', write: (l) => lines.push(l) });
  log('detail', undefined, 'debug');
  log('note');
  log('careful', undefined, 'warn');
  assert.deepEqual(
    lines.map((l) => (JSON.parse(l) as { msg: string }).msg),
    ['careful'],
  );
  assert.equal(parseLevel('debug'), 'debug');
  assert.equal(parseLevel('loud'), undefined);
});

test('readable lines: time, level, message, then the fields', () => {
  const lines: string[] = [];
  const { log } = createLogger({ json: false, write: (l) => lines.push(l) });
  log('claimed', { app: 'demo', session: 's9' }, 'warn');
  assert.match(lines[0]!, /^\d\d:\d\d:\d\d\.\d{3} WARN  claimed {2}app=demo session=s9\n$/);
  assert.equal(readable('not json\n'), 'not json\n');
});

test('a destination that throws (a closed output) never reaches the caller', () => {
  const { log } = createLogger({
    json: true,
    write: () => {
      throw Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
    },
  });
  assert.doesNotThrow(() => log('still fine', { app: 'demo' }, 'error'));
});
