// `warmpool schema` prints the config file's JSON Schema, which an editor completes and checks
// warmpool.yaml with: the demo config and the README's example fit it key by key, and every field
// says what it is for. `warmpool validate` still names each field that is wrong.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../core/config.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WARMPOOL = fileURLToPath(new URL('../bin/warmpool.js', import.meta.url));

function warmpool(args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [WARMPOOL, ...args], { encoding: 'utf8', cwd: ROOT, env: { ...process.env, WARMPOOL_CONFIG: '' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  anyOf?: Schema[];
  enum?: unknown[];
  const?: unknown;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  description?: string;
  default?: unknown;
}

function fits(s: Schema, v: unknown): boolean {
  if (s.anyOf) return s.anyOf.some((o) => fits(o, v));
  if (s.enum) return s.enum.includes(v);
  if (s.const !== undefined) return s.const === v;
  switch (s.type) {
    case 'object':
      return v !== null && typeof v === 'object' && !Array.isArray(v);
    case 'array':
      return Array.isArray(v);
    case 'string':
      return typeof v === 'string' && (!s.pattern || new RegExp(s.pattern).test(v));
    case 'integer':
      return Number.isInteger(v) && inRange(s, v as number);
    case 'number':
      return typeof v === 'number' && inRange(s, v);
    case 'boolean':
      return typeof v === 'boolean';
    default:
      return true;
  }
}
const inRange = (s: Schema, n: number) => (s.minimum === undefined || n >= s.minimum) && (s.maximum === undefined || n <= s.maximum);

/** What in value the schema refuses, by path (types, patterns, unknown and missing keys): a small JSON Schema check. */
function misfits(s: Schema, v: unknown, at = ''): string[] {
  const options = s.anyOf ?? [s];
  const o = options.find((x) => fits(x, v));
  if (!o) return [`${at || '(top)'}: ${JSON.stringify(v)} fits none of ${options.map((x) => x.type ?? JSON.stringify(x.enum ?? x.const)).join(', ')}`];
  if (o.type === 'array' && o.items) return (v as unknown[]).flatMap((x, i) => misfits(o.items!, x, `${at}[${i}]`));
  if (o.type !== 'object') return [];
  const obj = v as Record<string, unknown>;
  const out = (o.required ?? []).filter((k) => !(k in obj)).map((k) => `${at}.${k}: missing`);
  for (const [k, x] of Object.entries(obj)) {
    const p = o.properties?.[k] ?? (typeof o.additionalProperties === 'object' ? o.additionalProperties : undefined);
    if (p) out.push(...misfits(p, x, `${at}.${k}`));
    else if (o.additionalProperties === false) out.push(`${at}.${k}: not in the schema`);
  }
  return out;
}

let printed: Schema | undefined;
function schema(): Schema {
  if (printed) return printed;
  const r = warmpool(['schema']);
  assert.equal(r.code, 0, r.err);
  return (printed = JSON.parse(r.out) as Schema);
}

test('warmpool schema prints a JSON Schema of the file: strict mappings, the apps, defaults', () => {
  const s = schema() as Schema & { $schema?: string; title?: string };
  assert.equal(s.$schema, 'http://json-schema.org/draft-07/schema#');
  assert.equal(s.title, 'warmpool configuration');
  assert.equal(s.type, 'object');
  assert.equal(s.additionalProperties, false, 'unknown top-level keys are flagged');
  assert.deepEqual(s.required, ['apps']);
  assert.deepEqual(Object.keys(s.properties!), [
    'listen',
    'deployment',
    'landing',
    'trustedProxies',
    'ports',
    'stateDir',
    'keepOnExit',
    'processUsers',
    'log',
    'relay',
    'queue',
    'swarm',
    'apps',
    'admin',
  ]);
  const app = s.properties!.apps!.items!;
  assert.equal(app.additionalProperties, false);
  assert.deepEqual(app.required, ['name']);
  assert.equal(app.properties!.runtime!.default, 'process');
  assert.deepEqual(app.properties!.runtime!.enum, ['process', 'docker', 'swarm']);
  assert.equal(app.properties!.idleTimeout!.default, '20m', 'defaults as they are written in YAML, not in ms');
  assert.equal(s.properties!.relay!.properties!.headerSize!.default, '16k');
});

test('every field of the schema has a description (what an editor shows on hover)', () => {
  const undescribed: string[] = [];
  const walk = (x: Schema, at: string) => {
    for (const [k, p] of Object.entries(x.properties ?? {})) {
      if (!p.description) undescribed.push(`${at}${k}`);
      walk(p, `${at}${k}.`);
      for (const o of p.anyOf ?? []) walk(o, `${at}${k}.`);
      if (p.items) walk(p.items, `${at}${k}[].`);
    }
  };
  walk(schema(), '');
  assert.deepEqual(undescribed, []);
});

test("examples/demo.yaml fits the schema: its top-level keys and its app's keys are all known", () => {
  const demo = parseYaml(readFileSync(join(ROOT, 'examples/demo.yaml'), 'utf8')) as Record<string, unknown> & { apps: Record<string, unknown>[] };
  const s = schema();
  for (const k of Object.keys(demo)) assert.ok(k in s.properties!, `top-level ${k}`);
  for (const k of Object.keys(demo.apps[0]!)) assert.ok(k in s.properties!.apps!.items!.properties!, `apps[0].${k}`);
  assert.deepEqual(misfits(s, demo), []);
});

test("the README's example config fits the schema and is valid", () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const block = /## Configuration[\s\S]*?```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block, 'the README has a yaml block under Configuration');
  assert.deepEqual(misfits(schema(), parseYaml(block)), []);
  assert.doesNotThrow(() => parseConfig(block, 'README.md'));
});

test('the check above can fail: an unknown key, a wrong type, a bad duration, a missing name', () => {
  const s = schema();
  assert.deepEqual(misfits(s, { colour: 'red', apps: [{ name: 'a', pool: { warm: 'many' }, idleTimeout: 'soon' }, { command: ['x'] }] }).sort(), [
    '.apps[0].idleTimeout: "soon" fits none of number, string',
    '.apps[0].pool.warm: "many" fits none of integer',
    '.apps[1].name: missing',
    '.colour: not in the schema',
  ]);
});

test('warmpool validate: ok with a summary, or each wrong field on a line of its own, status 1', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wp-schema-'));
  try {
    const ok = warmpool(['validate', join(ROOT, 'examples/demo.yaml')]);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /demo\.yaml: ok — 1 app\(s\): demo \(process, warm 3, max 10\)/);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'colour: red\napps:\n  - name: Demo\n    command: [node]\n    idleTimeout: soon\n    pool: { warm: 5, max: 3 }\n');
    const r = warmpool(['validate', bad]);
    assert.equal(r.code, 1);
    const lines = r.err.trim().split('\n');
    assert.deepEqual(lines, [
      `${bad}: apps[0].name is "Demo"; expected lower-case letters, digits and dashes (at most 40); it becomes the public prefix /<name>/`,
      `${bad}: apps[0].pool.max is 3; must be at least pool.warm (5)`,
      `${bad}: apps[0].idleTimeout is "soon"; expected a duration like 90s, 20m, 1h30m, 30d or a number of seconds, at least 1000 ms`,
      `${bad}: colour is "red"; unknown key; allowed keys here: listen, deployment, landing, trustedProxies, ports, stateDir, keepOnExit, processUsers, log, relay, queue, swarm, apps, admin`,
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
