// core/config-load.ts: the config read in a worker thread arrives as loadConfig would return it
// (RegExps and all), and its failures are the same errors, codes, messages and hints.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../core/config.js';
import { loadConfigIsolated } from '../core/config-load.js';
import { isWarmpoolError } from '../core/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'warmpool-config-load-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

test("a valid config arrives equal to loadConfig's, RegExps included; env is the one given", async () => {
  const p = file(
    'ok.yaml',
    `deployment: t
apps:
  - name: demo
    command: [node, server.js]
    readiness: { log: "^Go to (http\\\\S+)$", timeout: 90s }
    secret: { fromOutput: "token=(\\\\w+)", inject: { query: token } }
    pool: { warm: 2, max: 5 }
`,
  );
  const env = { WARMPOOL_REPLICA: 'replica-7' };
  const inWorker = await loadConfigIsolated(p, env);
  assert.deepStrictEqual(inWorker, loadConfig(p, env));
  assert.ok(inWorker.apps[0]!.readiness.log instanceof RegExp);
  assert.equal(inWorker.apps[0]!.readiness.log!.test('Go to http://x'), true);
});

test('a bad config and a missing file: the same error as loadConfig, code, message and hint', async () => {
  const cases = [file('bad.yaml', 'apps:\n  - name: x\n    pool: { warm: -1 }\n'), file('yaml.yaml', 'apps: [\n'), join(dir, 'missing.yaml')];
  for (const p of cases) {
    let direct: unknown;
    try {
      loadConfig(p, {});
    } catch (e) {
      direct = e;
    }
    assert.ok(isWarmpoolError(direct), p);
    await assert.rejects(loadConfigIsolated(p, {}), (e: unknown) => {
      assert.ok(isWarmpoolError(e));
      assert.equal(e.code, direct.code);
      assert.equal(e.message, direct.message);
      assert.equal(e.hint, direct.hint);
      return true;
    });
  }
});
