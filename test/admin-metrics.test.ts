// /metrics on the admin listener, parsed: prom-client's process metrics and warmpool's series —
// pool gauges per app and state, claims and the wait in line, sessions ended by reason, relayed
// bytes and messages, classified messages by type, failed creates, open sockets — after a real
// class moment: one student in, a second waiting in line, the first ended by an admin.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { PlutoClient } from '../examples/standin/driver.js';
import { openWebSocketSockets } from '../proxy/index.js';
import { adminWorld, type AdminWorld } from './helpers/admin-world.js';
import { CookieJar, request } from './helpers/http.js';
import { eventually, waitForStatus } from './helpers/wait.js';

const worlds: AdminWorld[] = [];
afterEach(async () => {
  while (worlds.length) await worlds.pop()!.close();
  assert.equal(openWebSocketSockets(), 0);
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The text exposition format, enough of it: TYPE lines and `name{a="b",...} value` samples. */
function parse(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) {
      types.set(t[1]!, t[2]!);
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

async function scrape(w: AdminWorld) {
  const r = await w.api('GET', '/metrics');
  assert.equal(r.status, 200);
  assert.match(String(r.reply.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  const { samples, types } = parse(r.reply.text);
  const get = (name: string, labels: Record<string, string> = {}): number | undefined =>
    samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
  return { samples, types, get };
}

test('metrics after a class moment: claims, a wait in line, an admin end, traffic, failures, sockets', async () => {
  const w = await adminWorld({
    pool: '{ warm: 1, max: 1 }',
    apps: `
  - name: broken
    command: [${process.execPath}, -e, "setInterval(() => {}, 1000)"]
    readiness: { log: "^READY$", timeout: 300ms }
    pool: { warm: 1, max: 1 }
`,
  });
  worlds.push(w);
  await waitForStatus(w.wp.fleet, 'demo', (s) => s.ready === 1);
  await waitForStatus(w.wp.fleet, 'broken', (s) => s.failures >= 1);

  // Student A gets the one instance and works in it.
  const a = await w.enter();
  const ca = await PlutoClient.open(`${w.url}/demo/`, { cookie: a.header('/demo/') });
  await ca.start();
  await ca.setBond(1);
  await ca.ping();
  // Student B's client waits in line: its request is held.
  const b = new CookieJar();
  const held = request(`${w.url}/demo/`, { jar: b, headers: { accept: 'application/json' } });
  await waitForStatus(w.wp.fleet, 'demo', (s) => s.queued === 1);

  let m = await scrape(w);
  assert.ok((m.get('process_cpu_user_seconds_total') ?? -1) >= 0, 'prom-client default process metrics');
  assert.ok((m.get('process_resident_memory_bytes') ?? 0) > 0);
  assert.ok(m.get('nodejs_eventloop_lag_seconds') !== undefined);
  assert.equal(m.get('warmpool_pool_instances', { app: 'demo', state: 'claimed' }), 1);
  assert.equal(m.get('warmpool_pool_instances', { app: 'demo', state: 'ready' }), 0);
  assert.equal(m.get('warmpool_pool_waiting', { app: 'demo' }), 1);
  assert.equal(m.get('warmpool_pool_target', { app: 'demo', kind: 'warm' }), 1);
  assert.equal(m.get('warmpool_pool_target', { app: 'demo', kind: 'max' }), 1);
  assert.equal(m.get('warmpool_sessions_live', { app: 'demo' }), 1);
  assert.equal(m.get('warmpool_sessions_live', { app: 'broken' }), 0);
  assert.equal(m.get('warmpool_claims_total', { app: 'demo', waited: 'false' }), 1);
  assert.ok(m.get('warmpool_open_sockets')! >= 2, 'the relayed WebSocket: client and upstream');
  const liveBytesOut = m.get('warmpool_relayed_bytes_total', { app: 'demo', direction: 'out' })!;
  assert.ok(liveBytesOut > 15_000, `live traffic counted: ${liveBytesOut}`);
  assert.ok(m.get('warmpool_activity_messages_total', { app: 'demo', type: 'update_notebook' })! >= 1);
  assert.ok(m.get('warmpool_create_failures_total', { app: 'broken' })! >= 1);
  assert.equal(m.get('warmpool_create_failures_total', { app: 'demo' }), 0);
  assert.ok(m.get('warmpool_pool_failures_in_a_row', { app: 'broken' })! >= 1);
  assert.equal(m.get('warmpool_session_events_total', { app: 'demo', type: 'ws-open' }), 1);

  // An admin ends A; B's held request gets the refilled instance the moment it is ready.
  const sa = w.wp.fleet.liveSessions()[0]!.id;
  assert.equal((await w.api('POST', `/api/sessions/${sa}/end`)).status, 200);
  await ca.close().catch(() => undefined);
  const got = await held;
  assert.equal(got.status, 302, 'B got in from the line');
  await eventually(() => w.wp.fleet.liveSessions().length === 1, "B's session");

  m = await scrape(w);
  assert.equal(m.get('warmpool_claims_total', { app: 'demo', waited: 'true' }), 1);
  assert.equal(m.get('warmpool_wait_in_line_seconds_count', { app: 'demo' }), 1);
  const waited = m.get('warmpool_wait_in_line_seconds_sum', { app: 'demo' })!;
  assert.ok(waited > 0 && waited < 60, `waited ${waited} s`);
  assert.equal(m.get('warmpool_wait_in_line_seconds_bucket', { app: 'demo', le: '+Inf' }), 1);
  assert.equal(m.get('warmpool_sessions_ended_total', { app: 'demo', reason: 'admin' }), 1);
  assert.ok(m.get('warmpool_relayed_bytes_total', { app: 'demo', direction: 'out' })! >= liveBytesOut, "an ended session's bytes stay counted");
  assert.ok(m.get('warmpool_relayed_messages_total', { app: 'demo', direction: 'in' })! >= 3);
  assert.ok(m.get('warmpool_relayed_messages_total', { app: 'demo', direction: 'out' })! >= 1);
  assert.equal(m.get('warmpool_relayed_requests_total', { app: 'demo' }), 1, "A's editor page: the entry sent A straight to it, past the deep link");
  assert.equal(m.get('warmpool_session_events_total', { app: 'demo', type: 'ended' }), 1);

  for (const [name, type] of [
    ['warmpool_pool_instances', 'gauge'],
    ['warmpool_open_sockets', 'gauge'],
    ['warmpool_claims_total', 'counter'],
    ['warmpool_sessions_ended_total', 'counter'],
    ['warmpool_relayed_bytes_total', 'counter'],
    ['warmpool_activity_messages_total', 'counter'],
    ['warmpool_create_failures_total', 'counter'],
    ['warmpool_wait_in_line_seconds', 'histogram'],
  ] as const) {
    assert.equal(m.types.get(name), type, name);
  }
  const names = new Set(m.samples.map((s) => s.name));
  for (const n of names) assert.match(n, /^[a-z_:][a-z0-9_:]*$/);
});
