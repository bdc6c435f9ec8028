// The process runtime and the warm pool against real child processes running the stand-in app:
// warm-up, readiness gating, 50 concurrent claims, refill, crash replacement, adoption after a
// restart, and nothing left behind.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type WarmpoolConfig } from '../core/config.js';
import { Fleet } from '../pool/fleet.js';
import { httpProbe } from '../pool/readiness.js';
import { PortAllocator } from '../pool/ports.js';
import { ProcessRuntime } from '../pool/runtimes/process.js';
import { MemoryTrafficLog } from '../pool/traffic-log.js';
import { collectOffer, hold, ticketOf } from './helpers/line.js';
import { eventually, until, waitForStatus } from './helpers/wait.js';

const SERVER = join(process.cwd(), 'dist/examples/standin/server.js');
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function world(pool: string, env = 'STATE_BYTES: 2000', readiness = '{ log: "^READY$", timeout: 20s }') {
  const stateDir = mkdtempSync(join(tmpdir(), 'wp-proc-'));
  const config = parseConfig(`
deployment: proctest
stateDir: ${stateDir}
ports: { from: 41000, to: 41999 }
apps:
  - name: demo
    command: [${process.execPath}, ${SERVER}]
    env: { ${env} }
    readiness: ${readiness}
    pool: ${pool}
`);
  const make = () => {
    const rt = new ProcessRuntime({ deployment: 'proctest', ports: new PortAllocator(41000, 41999), stateDir, pollMs: 100 });
    const fleet = new Fleet({ config, runtimes: { process: rt }, trafficLog: new MemoryTrafficLog() });
    return { rt, fleet };
  };
  const first = make();
  cleanups.push(async () => {
    await first.fleet.stop(false);
    const left = await first.rt.list();
    assert.deepEqual(
      left.filter((r) => r.running).map((r) => r.instanceId),
      [],
      'no process left behind',
    );
    rmSync(stateDir, { recursive: true, force: true });
  });
  return { config, stateDir, make, ...first };
}

const pids = async (rt: ProcessRuntime) => (await rt.list()).filter((r) => r.running).map((r) => Number(r.runtimeId));
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('warms up to target with real processes, each answering on its own port', async () => {
  const { fleet, rt } = world('{ warm: 3, max: 5, parallel: 3 }');
  await fleet.start();
  await waitForStatus(fleet, 'demo', (s) => s.ready === 3);
  const recs = (await rt.list()).filter((r) => r.running);
  assert.equal(recs.length, 3);
  assert.equal(new Set(recs.map((r) => r.port)).size, 3);
  for (const r of recs) assert.ok(await httpProbe(r, '/ping', 200), `instance on port ${r.port} answers`);
});

test('readiness gating: a port that answers before the notebook has executed is not handed out', async () => {
  const { fleet, rt } = world('{ warm: 1, max: 1 }', 'STATE_BYTES: 2000, STARTUP_DELAY_MS: 1500, LISTEN_EARLY: 1');
  await fleet.start();
  const rec = await eventually(async () => {
    const r = (await rt.list())[0];
    return r && (await httpProbe(r, '/ping', 200)) ? r : undefined;
  }, 'the early port to answer');
  assert.equal(fleet.status()[0]!.ready, 0, 'port open, notebook still executing: not ready');
  const early = await fleet.claim('demo');
  assert.equal(early.kind, 'queued');
  const waiter = hold(fleet, 'demo', ticketOf(early));
  const t = await collectOffer(fleet, 'demo', waiter);
  assert.equal(t.port, rec!.port, 'the same process, offered the moment it was ready');
});

test('50 concurrent claims: distinct instances or a place in line, never one instance twice; then refill', async () => {
  const { fleet, rt } = world('{ warm: 20, max: 30, parallel: 10 }');
  await fleet.start();
  await waitForStatus(fleet, 'demo', (s) => s.ready === 20, 60_000);
  const results = await Promise.all(Array.from({ length: 50 }, () => fleet.claim('demo')));
  const got = results.flatMap((r) => (r.kind === 'session' ? [r.target] : []));
  assert.equal(got.length, 20);
  assert.equal(new Set(got.map((t) => t.instanceId)).size, 20);
  assert.equal(new Set(got.map((t) => t.port)).size, 20);
  const queued = results.flatMap((r) => (r.kind === 'queued' ? [hold(fleet, 'demo', r.ticket)] : []));
  assert.equal(queued.length, 30);
  // Created on demand up to max (10 more), never past it; offered to the first 10 in line.
  const late = await Promise.all(queued.slice(0, 10).map((h) => collectOffer(fleet, 'demo', h)));
  assert.equal(new Set([...got, ...late].map((t) => t.port)).size, 30);
  const st = fleet.status()[0]!;
  assert.equal(st.ready + st.starting + st.claimed, 30);
  assert.equal(st.queued, 20, 'the other 20 still hold their places');
  assert.equal((await pids(rt)).length, 30);
});

test('a crashed instance is removed and replaced', async () => {
  const { fleet, rt } = world('{ warm: 2, max: 4 }');
  await fleet.start();
  await waitForStatus(fleet, 'demo', (s) => s.ready === 2);
  const [victim] = await rt.list();
  process.kill(Number(victim!.runtimeId), 'SIGKILL');
  await eventually(async () => !(await rt.list()).some((r) => r.instanceId === victim!.instanceId), 'the crashed instance to be removed');
  await waitForStatus(fleet, 'demo', (s) => s.ready === 2);
  assert.equal((await pids(rt)).length, 2);
});

test('after a restart, ready instances are adopted and a claimed one keeps its session', async () => {
  const w = world('{ warm: 2, max: 4 }');
  await w.fleet.start();
  await waitForStatus(w.fleet, 'demo', (s) => s.ready === 2);
  const r = await w.fleet.claim('demo');
  assert.equal(r.kind, 'session');
  if (r.kind !== 'session') return;
  await waitForStatus(w.fleet, 'demo', (s) => s.ready === 2);
  const before = (await pids(w.rt)).sort();
  await w.fleet.stop(true); // killed mid-class, instances kept
  assert.ok(before.every(alive));

  const second = w.make();
  cleanups.push(() => second.fleet.stop(false));
  await second.fleet.start();
  const st = second.fleet.status()[0]!;
  assert.deepEqual([st.ready, st.claimed, st.starting], [2, 1, 0], 'adopted, nothing new created');
  assert.deepEqual((await pids(second.rt)).sort(), before);
  const found = second.fleet.find(r.target.session, r.target.instanceId);
  assert.equal(found.kind, 'live');
  assert.equal(found.kind === 'live' && found.target.port, r.target.port);
  await second.fleet.stop(false);
  await eventually(() => before.every((p) => !alive(p)), 'every process to exit');
  assert.deepEqual(readdirSync(join(w.stateDir, 'process', 'proctest')), [], 'state files removed');
});

test('a command that cannot start is reported and retried, not a crash', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'wp-proc-'));
  const config: WarmpoolConfig = parseConfig(`
stateDir: ${stateDir}
apps:
  - name: broken
    command: [/nonexistent/binary]
    pool: { warm: 1, max: 1 }
`);
  const rt = new ProcessRuntime({ deployment: 'default', ports: new PortAllocator(42000, 42100), stateDir });
  const fleet = new Fleet({ config, runtimes: { process: rt }, backoffMs: { first: 60_000, max: 60_000 } });
  cleanups.push(async () => {
    await fleet.stop(false);
    rmSync(stateDir, { recursive: true, force: true });
  });
  await fleet.start();
  const st = await waitForStatus(fleet, 'broken', (s) => s.failures === 1);
  assert.match(st.lastError!, /cannot start \/nonexistent\/binary for app broken/);
  assert.ok(st.nextRetryAt! > Date.now());
});

test('a create cut short before its pid was written (warmpool killed mid-spawn) is found by the next start, not orphaned', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'wp-proc-'));
  const dir = join(stateDir, 'process', 'proctest');
  mkdirSync(dir, { recursive: true });
  const ports = new PortAllocator(41000, 41999);
  const port = await ports.allocate();
  // What create() leaves when killed right after spawn(): its state file without a pid, and the
  // detached process, which outlives warmpool.
  const env = { STATE_BYTES: '2000', PORT: String(port), HOST: '127.0.0.1', WARMPOOL_INSTANCE: 'cutshort01' };
  writeFileSync(
    join(dir, 'cutshort01.json'),
    JSON.stringify({ instanceId: 'cutshort01', app: 'demo', deployment: 'proctest', pid: 0, port, createdAt: Date.now(), env }),
  );
  const child = spawn(process.execPath, [SERVER], { env: { PATH: process.env.PATH, ...env }, detached: true, stdio: 'ignore' });
  child.unref();
  // And one whose process never started.
  writeFileSync(
    join(dir, 'nevered01.json'),
    JSON.stringify({ instanceId: 'nevered01', app: 'demo', deployment: 'proctest', pid: 0, port: port + 1, createdAt: Date.now(), env: {} }),
  );
  const rt = new ProcessRuntime({ deployment: 'proctest', ports: new PortAllocator(41000, 41999), stateDir });
  cleanups.push(async () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* removed, as it should be */
    }
    await rt.close();
    rmSync(stateDir, { recursive: true, force: true });
  });
  const recs = await until('the spawned process to show in /proc', async () => {
    const r = await rt.list();
    return r.find((x) => x.instanceId === 'cutshort01')?.running ? r : undefined;
  });
  const found = recs.find((r) => r.instanceId === 'cutshort01')!;
  assert.equal(Number(found.runtimeId), child.pid, 'found by the WARMPOOL_INSTANCE in its environment');
  assert.equal(recs.find((r) => r.instanceId === 'nevered01')?.running, false);
  await rt.remove('cutshort01');
  await rt.remove('nevered01');
  assert.equal(alive(child.pid!), false, 'the process is removed');
  assert.deepEqual(readdirSync(dir), [], 'state files removed');
});
