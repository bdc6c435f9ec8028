// SwarmRuntime and the warm pool on a real single-node swarm with the stand-in image: the service spec
// on the engine, warm-up, readiness, 50 concurrent claims, refill, a task that dies, adoption after a
// restart, claims by compare-and-swap (two replicas on one swarm never hand one instance out twice),
// task failures as errors with backoff, and nothing left behind. Then, against a fake engine, the
// watch re-reading the task list after its event stream reconnects.

import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { ManualClock } from '../core/clock.js';
import { parseConfig, type AppConfig } from '../core/config.js';
import { isWarmpoolError, type WarmpoolError } from '../core/errors.js';
import { Fleet } from '../pool/fleet.js';
import { PortAllocator } from '../pool/ports.js';
import { httpProbe } from '../pool/readiness.js';
import type { InstanceRecord } from '../pool/runtime.js';
import { Engine } from '../pool/runtimes/engine.js';
import { SwarmRuntime } from '../pool/runtimes/swarm.js';
import { SWARM_LABEL } from '../pool/runtimes/swarm-labels.js';
import { MemoryTrafficLog } from '../pool/traffic-log.js';
import type { SessionTarget } from '../pool/api.js';
import { killContainer } from './helpers/docker.js';
import { sendJson, startFakeEngine } from './helpers/fake-engine.js';
import { containersByLabel, inspectService, networksByLabel, removeServicesByLabel, serviceTasks, servicesByLabel, swarmSkipReason } from './helpers/swarm.js';
import { collectOffer, hold, ticketOf } from './helpers/line.js';
import { eventually, until, waitForStatus } from './helpers/wait.js';

const IMAGE = 'warmpool/standin:latest';
// One deployment per file run: its label selects exactly what this file created.
const DEPLOYMENT = `t-swarm-${process.pid}-${randomBytes(3).toString('hex')}`;
const SELECT = `warmpool.deployment=${DEPLOYMENT}`;
// Host-network ports, away from the docker suites' ranges (42000-58999) and the default (20000-29999).
// Replica b gets its own range: two processes on one host must not hand out the same port.
const BASE = 30000 + (process.pid % 40) * 200;
const PORTS_A = { from: BASE, to: BASE + 99 };
const PORTS_B = { from: BASE + 100, to: BASE + 199 };
const LOG_READY = '{ log: "^READY$", timeout: 60s }';

const engine = new Engine();
const cleanups: (() => Promise<void> | void)[] = [];
let logs: string[] = [];
/** Figures for the report at the end. */
const figures: string[] = [];

interface WorldOptions {
  pool: string;
  env?: string;
  readiness?: string;
  image?: string;
  /** The app's swarm: block, as YAML flow. */
  swarm?: string;
  limits?: string;
  ticketTtlMs?: number;
  backoffMs?: { first: number; max: number };
  schedulingTimeoutMs?: number;
}

/** A config for one app `standin` on the swarm and a factory for runtime + fleet per replica (called again to "restart" one). */
function world(o: WorldOptions) {
  const config = parseConfig(`
deployment: ${DEPLOYMENT}
ports: { from: ${PORTS_A.from}, to: ${PORTS_A.to} }
swarm: { replica: a }
apps:
  - name: standin
    runtime: swarm
    image: ${o.image ?? IMAGE}
    env: { ${o.env ?? 'STATE_BYTES: 2000'} }
    readiness: ${o.readiness ?? LOG_READY}
    pool: ${o.pool}
${o.swarm ? `    swarm: ${o.swarm}` : ''}
${o.limits ? `    limits: ${o.limits}` : ''}
`);
  const make = (replica: 'a' | 'b' = 'a') => {
    const log = (m: string) => logs.push(`[${replica}] ${m}`);
    const range = replica === 'a' ? PORTS_A : PORTS_B;
    const rt = new SwarmRuntime({
      deployment: DEPLOYMENT,
      replica,
      ports: new PortAllocator(range.from, range.to),
      engine,
      log,
      relistMs: 1000,
      schedulingTimeoutMs: o.schedulingTimeoutMs,
    });
    const fleet = new Fleet({
      config: { ...config, swarm: { replica, schedulingTimeoutMs: o.schedulingTimeoutMs ?? 60_000 } },
      runtimes: { swarm: rt },
      trafficLog: new MemoryTrafficLog(),
      log,
      backoffMs: o.backoffMs,
    });
    cleanups.push(() => fleet.stop(false));
    return { rt, fleet };
  };
  return { config, app: config.apps[0]!, make, ...make('a') };
}

/** A bare runtime (no fleet) for replica a or b. */
function runtime(replica: 'a' | 'b' = 'a', over: { schedulingTimeoutMs?: number } = {}): SwarmRuntime {
  const range = replica === 'a' ? PORTS_A : PORTS_B;
  const rt = new SwarmRuntime({
    deployment: DEPLOYMENT,
    replica,
    ports: new PortAllocator(range.from, range.to),
    engine,
    log: (m) => logs.push(`[${replica}] ${m}`),
    relistMs: 1000,
    ...over,
  });
  cleanups.push(() => rt.close());
  return rt;
}

function app(over: Partial<AppConfig> = {}): AppConfig {
  return {
    name: 'standin',
    runtime: 'swarm',
    image: IMAGE,
    port: 0,
    env: { STATE_BYTES: '2000' },
    deepLink: '/',
    resolveDeepLink: false,
    prefix: { mode: 'strip' },
    pool: { warm: 0, max: 4, parallel: 2 },
    readiness: { http: { path: '/ping', status: 200 }, timeoutMs: 20_000, intervalMs: 100 },
    limits: {},
    network: 'host',
    idleTimeoutMs: 60_000,
    maxLifetimeMs: 60_000,
    graceMs: 0,
    classifier: 'pluto',
    swarm: { constraints: [], spread: [], reservations: {} },
    ...over,
  };
}

let seq = 0;
const spec = () => ({ app: 'standin', instanceId: `i${Date.now().toString(36)}${seq++}`, env: {} });

async function ping(host: string, port: number): Promise<boolean> {
  return httpProbe({ host, port } as InstanceRecord, '/ping', 200);
}

async function rejectsWith(p: Promise<unknown>, code: WarmpoolError['code']): Promise<WarmpoolError> {
  try {
    await p;
  } catch (e) {
    assert.ok(
      isWarmpoolError(e, code),
      `expected WarmpoolError ${code}, got ${e instanceof Error ? `${(e as WarmpoolError).code ?? e.name}: ${e.message}` : String(e)}`,
    );
    return e as WarmpoolError;
  }
  assert.fail(`expected a rejection with ${code}`);
}

const running = async (rt: SwarmRuntime) => (await rt.list()).filter((r) => r.running);
const sessionsOf = (results: Awaited<ReturnType<Fleet['claim']>>[]): SessionTarget[] => results.flatMap((r) => (r.kind === 'session' ? [r.target] : []));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/** The container of an instance's task (on this node). */
async function taskContainer(serviceId: string): Promise<string> {
  return until(
    'the task container',
    async () => (await serviceTasks(serviceId)).find((t) => t.Status.ContainerStatus?.ContainerID)?.Status.ContainerStatus?.ContainerID,
  );
}

const skip = await swarmSkipReason();

describe('SwarmRuntime on a real single-node swarm', { skip, timeout: 900_000 }, () => {
  before(() => {
    // Idempotent and offline (a no-op when the images match dist/): never test a stale stand-in.
    const r = spawnSync('bash', [fileURLToPath(new URL('../../scripts/build-images.sh', import.meta.url))], {
      stdio: ['ignore', 'inherit', 'inherit'],
      timeout: 300_000,
    });
    assert.equal(r.status, 0, 'scripts/build-images.sh failed: see its output above');
  });

  afterEach(async () => {
    // Stopping every fleet (and runtime) must remove every service it owns, before stop() resolves.
    while (cleanups.length) await cleanups.pop()!();
    const services = await servicesByLabel(SELECT);
    // A removed service's task container stops on its node after the service is gone (SIGTERM, then up to 10 s).
    const containers = await until('the task containers to go', async () => ((await containersByLabel(SELECT)).length === 0 ? [] : undefined), 30_000).catch(
      async () => containersByLabel(SELECT),
    );
    const networks = await networksByLabel(SELECT);
    await removeServicesByLabel(SELECT);
    if (services.length + containers.length + networks.length > 0) console.error(logs.join('\n'));
    logs = [];
    assert.deepEqual(
      [services.length, containers.length, networks.length],
      [0, 0, 0],
      `services, containers, networks of deployment ${DEPLOYMENT} left behind`,
    );
  });

  after(async () => {
    await removeServicesByLabel(SELECT);
    engine.close();
    console.error(`swarm figures:\n  ${figures.join('\n  ')}`);
  });

  test('warm-up: one service per instance, one replica, restart policy none, limits, reservations, placement, host network; each answers on 127.0.0.1', async () => {
    const { fleet, rt } = world({
      pool: '{ warm: 3, max: 4, parallel: 3 }',
      limits: '{ cpus: 0.5, memory: 256m }',
      swarm: '{ reservations: { cpus: 0.05, memory: 32m }, constraints: [node.role==manager], spread: [node.labels.zone] }',
    });
    const t0 = Date.now();
    await fleet.start();
    const st = await waitForStatus(fleet, 'standin', (s) => s.ready === 3, 60_000);
    figures.push(
      `3 warm instances (service create → task running, then READY) in ${Date.now() - t0} ms; create → running per service ${rt.stats.createMs.join(', ')} ms`,
    );
    assert.deepEqual([st.starting, st.claimed, st.failures], [0, 0, 0]);
    const recs = await running(rt);
    assert.equal(recs.length, 3);
    assert.equal((await servicesByLabel(SELECT)).length, 3, 'no extra services');
    assert.equal(new Set(recs.map((r) => r.port)).size, 3, 'distinct ports');
    for (const r of recs) {
      assert.equal(r.host, '127.0.0.1');
      assert.ok(r.port >= PORTS_A.from && r.port <= PORTS_A.to, `port ${r.port} from the configured range`);
      assert.ok(await ping(r.host, r.port), `/ping on ${r.port}`);
      const svc = await inspectService(r.runtimeId);
      const t = svc.Spec.TaskTemplate;
      assert.deepEqual(svc.Spec.Mode, { Replicated: { Replicas: 1 } });
      assert.equal(t.RestartPolicy?.Condition, 'none');
      assert.deepEqual(t.Resources, {
        Limits: { NanoCPUs: 500_000_000, MemoryBytes: 256 * 1024 ** 2 },
        Reservations: { NanoCPUs: 50_000_000, MemoryBytes: 32 * 1024 ** 2 },
      });
      assert.deepEqual(t.Placement?.Constraints, ['node.role==manager']);
      assert.deepEqual(t.Placement?.Preferences, [{ Spread: { SpreadDescriptor: 'node.labels.zone' } }]);
      assert.equal(t.ContainerSpec.Image, IMAGE);
      assert.ok(t.ContainerSpec.Env?.includes(`PORT=${r.port}`) && t.ContainerSpec.Env.includes('HOST=127.0.0.1'), 'bound to loopback on its port');
      assert.deepEqual(svc.Spec.Labels, {
        'warmpool.app': 'standin',
        'warmpool.instance': r.instanceId,
        'warmpool.deployment': DEPLOYMENT,
        'warmpool.port': String(r.port),
        'warmpool.created': String(r.createdAt),
        'warmpool.replica': 'a',
      });
      assert.equal(svc.Spec.Name, `warmpool-${DEPLOYMENT}-standin-${r.instanceId}`);
    }
    assert.equal((await containersByLabel(SELECT)).length, 3, 'task containers carry the labels too');
  });

  test('readiness: a running task whose notebook is still executing is not handed out', async () => {
    const { fleet, rt } = world({ pool: '{ warm: 1, max: 1 }', env: 'STATE_BYTES: 2000, STARTUP_DELAY_MS: 2500, LISTEN_EARLY: 1' });
    await fleet.start();
    const rec = await eventually(
      async () => {
        const r = (await rt.list())[0];
        return r?.running && (await ping(r.host, r.port)) ? r : undefined;
      },
      'the early port to answer',
      30_000,
    );
    assert.equal(fleet.status()[0]!.ready, 0, 'task running, port open, notebook still executing: not ready');
    const early = await fleet.claim('standin');
    assert.equal(early.kind, 'queued');
    const t = await collectOffer(fleet, 'standin', hold(fleet, 'standin', ticketOf(early)));
    assert.equal(t.port, rec!.port, 'the same instance, offered the moment it was ready');
  });

  test('50 concurrent claims: distinct instances or a place in line, never one twice, each on the swarm before its answer; refilled up to max', async () => {
    const t0 = Date.now();
    const { fleet, rt } = world({ pool: '{ warm: 20, max: 30, parallel: 10 }' });
    await fleet.start();
    await waitForStatus(fleet, 'standin', (s) => s.ready === 20, 240_000);
    const warmedIn = Date.now() - t0;
    const tasksBefore = new Map(
      await Promise.all((await rt.list()).map(async (r) => [r.instanceId, (await serviceTasks(r.runtimeId)).map((t) => t.ID)] as const)),
    );

    const c0 = Date.now();
    const results = await Promise.all(Array.from({ length: 50 }, () => fleet.claim('standin')));
    const claimMs = Date.now() - c0;
    const got = sessionsOf(results);
    assert.equal(got.length, 20);
    assert.equal(new Set(got.map((t) => t.instanceId)).size, 20, 'no instance handed out twice');
    assert.equal(new Set(got.map((t) => t.port)).size, 20);
    // The other 30 hold places in line, in this order (what their waiting pages' streams do).
    const queued = results.flatMap((r) => (r.kind === 'queued' ? [hold(fleet, 'standin', r.ticket)] : []));
    assert.equal(queued.length, 30);
    // Recorded before the answer: no claimsRecorded() to wait for.
    const listed = new Map((await rt.list()).map((r) => [r.instanceId, r]));
    for (const t of got) assert.deepEqual(listed.get(t.instanceId)?.claim, { session: t.session, at: t.claimedAt }, 'the claim is on the service');
    // A label-only update does not restart the task.
    for (const t of got)
      assert.deepEqual(
        (await serviceTasks(listed.get(t.instanceId)!.runtimeId)).map((x) => x.ID),
        tasksBefore.get(t.instanceId),
        `the task of ${t.instanceId} is the same`,
      );

    const st = await waitForStatus(fleet, 'standin', (s) => s.ready === 10, 240_000);
    assert.deepEqual([st.starting, st.claimed, st.queued], [0, 20, 30]);
    assert.equal((await servicesByLabel(SELECT)).length, 30, 'never more services than max');
    const late = await Promise.all(queued.slice(0, 10).map((h) => collectOffer(fleet, 'standin', h)));
    assert.deepEqual(
      queued.slice(10).map((h) => h.settled()),
      Array(20).fill(undefined),
      'in the order of the line',
    );
    const all = [...got, ...late];
    assert.equal(new Set(all.map((t) => t.instanceId)).size, 30, 'thirty sessions, thirty services');
    for (const t of late) assert.ok(await ping(t.host, t.port));
    figures.push(
      `20 warm in ${(warmedIn / 1000).toFixed(1)} s (parallel 10); 30 after ${((Date.now() - t0) / 1000).toFixed(1)} s; create → running median ${median(rt.stats.createMs)} ms, max ${Math.max(...rt.stats.createMs)} ms over ${rt.stats.createMs.length}`,
    );
    figures.push(
      `50 concurrent claims (20 granted, each a compare-and-swap label update) answered in ${claimMs} ms; out-of-sequence retries ${rt.stats.casRetries}`,
    );
  });

  test('refills after claims; an ended session removes its service', async () => {
    const { fleet, rt } = world({ pool: '{ warm: 2, max: 5, parallel: 2 }' });
    await fleet.start();
    await waitForStatus(fleet, 'standin', (s) => s.ready === 2, 60_000);
    const warm = (await rt.list()).map((r) => r.instanceId).sort();
    const a = await fleet.claim('standin');
    const b = await fleet.claim('standin');
    assert.ok(a.kind === 'session' && b.kind === 'session');
    assert.deepEqual([a.target.instanceId, b.target.instanceId].sort(), warm, 'the warm ones are handed out');
    await waitForStatus(fleet, 'standin', (s) => s.ready === 2 && s.claimed === 2 && s.starting === 0, 60_000);
    assert.equal((await running(rt)).length, 4);
    await fleet.end(a.target.session, 'admin');
    await eventually(async () => !(await rt.list()).some((r) => r.instanceId === a.target.instanceId), "the ended session's service to be removed", 30_000);
    assert.equal((await servicesByLabel(SELECT)).length, 3, 'not replaced: the pool already holds warm ready ones');
    assert.equal(fleet.find(a.target.session, a.target.instanceId).kind, 'ended');
  });

  test('a task that dies is replaced, not restarted; a claimed one ends its session', async () => {
    const { fleet, rt } = world({ pool: '{ warm: 2, max: 4 }' });
    await fleet.start();
    await waitForStatus(fleet, 'standin', (s) => s.ready === 2, 60_000);
    const [victim] = await rt.list();
    await killContainer(await taskContainer(victim!.runtimeId));
    await eventually(async () => !(await rt.list()).some((r) => r.instanceId === victim!.instanceId), "the dead instance's service to be removed", 30_000);
    await waitForStatus(fleet, 'standin', (s) => s.ready === 2, 60_000);
    assert.ok(!(await running(rt)).some((r) => r.instanceId === victim!.instanceId), 'replaced by a new service');
    assert.ok(
      logs.some((l) => l.includes(victim!.instanceId) && /task failed.*137/.test(l)),
      "the exit is reported with the task's reason",
    );

    const s = await fleet.claim('standin');
    assert.equal(s.kind, 'session');
    if (s.kind !== 'session') return;
    await killContainer(await taskContainer((await rt.list()).find((r) => r.instanceId === s.target.instanceId)!.runtimeId));
    await eventually(() => fleet.find(s.target.session, s.target.instanceId).kind === 'ended', 'the session to end', 30_000);
    const found = fleet.find(s.target.session, s.target.instanceId);
    assert.equal(found.kind === 'ended' && found.reason, 'instance-exited');
    await eventually(async () => !(await rt.list()).some((r) => r.instanceId === s.target.instanceId), "the claimed instance's service to be removed", 30_000);
    await waitForStatus(fleet, 'standin', (x) => x.ready === 2 && x.claimed === 0 && x.starting === 0, 60_000);
  });

  test('after a restart, ready services are adopted and a claimed one keeps its session; nothing new is created', async () => {
    const w = world({ pool: '{ warm: 2, max: 4 }' });
    await w.fleet.start();
    await waitForStatus(w.fleet, 'standin', (s) => s.ready === 2, 60_000);
    const r = await w.fleet.claim('standin');
    assert.equal(r.kind, 'session');
    if (r.kind !== 'session') return;
    await waitForStatus(w.fleet, 'standin', (s) => s.ready === 2, 60_000);
    const before = (await w.rt.list()).map((x) => x.runtimeId).sort();
    assert.equal(before.length, 3);
    await w.fleet.stop(true); // warmpool killed mid-class, services kept

    const second = w.make('a'); // a new SwarmRuntime (empty memory) and Fleet, same replica
    await second.fleet.start();
    const st = second.fleet.status()[0]!;
    assert.deepEqual([st.ready, st.claimed, st.starting, st.failures], [2, 1, 0, 0], 'adopted, nothing new created');
    assert.deepEqual((await second.rt.list()).map((x) => x.runtimeId).sort(), before, 'the same services');
    const found = second.fleet.find(r.target.session, r.target.instanceId);
    assert.equal(found.kind, 'live');
    if (found.kind !== 'live') return;
    assert.deepEqual([found.target.port, found.target.claimedAt], [r.target.port, r.target.claimedAt]);
    const next = await second.fleet.claim('standin');
    assert.ok(next.kind === 'session' && next.target.instanceId !== r.target.instanceId, 'an adopted ready one, never the claimed one');
    if (next.kind === 'session') assert.ok(await ping(next.target.host, next.target.port));
  });

  test('compare-and-swap: claims racing for one instance from two replicas, exactly one wins; the task is not restarted', async () => {
    const a = runtime('a');
    const b = runtime('b');
    const rec = await a.create(app(), spec());
    await until('the instance to answer', async () => ((await ping(rec.host, rec.port)) ? true : undefined));
    const task = (await serviceTasks(rec.runtimeId)).map((t) => t.ID);
    const v0 = (await inspectService(rec.runtimeId)).Version.Index;
    await b.list(); // b learns it, as a second warmpool would at its start
    const tries = Array.from({ length: 20 }, (_, i) => (i % 2 ? b : a).markClaimed(rec.instanceId, { session: `s${i}`, at: 1_700_000_000_000 + i }));
    const settled = await Promise.allSettled(tries);
    const won = settled.flatMap((x, i) => (x.status === 'fulfilled' ? [i] : []));
    assert.equal(won.length, 1, `exactly one claim lands, got ${won.length}`);
    for (const x of settled) if (x.status === 'rejected') assert.ok(isWarmpoolError(x.reason, 'CLAIM_CONFLICT'), String(x.reason));
    const svc = await inspectService(rec.runtimeId);
    assert.equal(svc.Spec.Labels?.[SWARM_LABEL.claimSession], `s${won[0]}`);
    assert.equal(svc.Spec.Labels?.[SWARM_LABEL.claimReplica], won[0]! % 2 ? 'b' : 'a');
    assert.ok(svc.Version.Index > v0, 'the version moved');
    assert.deepEqual(
      (await serviceTasks(rec.runtimeId)).map((t) => t.ID),
      task,
      'same task: label updates do not restart it',
    );
    assert.ok(await ping(rec.host, rec.port), 'still answering');
    const retries = a.stats.casRetries + b.stats.casRetries;
    figures.push(
      `20 racing claims on one service: 1 landed, ${a.stats.claimConflicts + b.stats.claimConflicts} CLAIM_CONFLICT, ${retries} out-of-sequence re-reads`,
    );

    // The loser may not remove the winner's instance; the winner may.
    const [winner, loser] = won[0]! % 2 ? [b, a] : [a, b];
    await loser.remove(rec.instanceId);
    assert.equal((await servicesByLabel(SELECT)).length, 1, 'left to the replica whose visitor has it');
    assert.deepEqual(
      (await loser.list()).map((r) => r.instanceId),
      [],
      'not listed by the other replica either',
    );
    await winner.remove(rec.instanceId);
    assert.equal((await servicesByLabel(SELECT)).length, 0);
  });

  test('two warmpool replicas on one swarm: 50 claims at once across both, never one instance to two visitors', async () => {
    const w = world({ pool: '{ warm: 10, max: 20, parallel: 5 }' });
    await w.fleet.start();
    await waitForStatus(w.fleet, 'standin', (s) => s.ready === 10, 120_000);
    const b = w.make('b');
    await b.fleet.start();
    assert.equal(b.fleet.status()[0]!.ready, 10, "replica b adopted a's ten ready instances");
    assert.equal(b.fleet.status()[0]!.starting, 0, 'and created none');

    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => (i % 2 ? b.fleet : w.fleet).claim('standin').then((r) => ({ r, by: i % 2 ? 'b' : 'a' }))),
    );
    const granted = results.flatMap(({ r, by }) => (r.kind === 'session' ? [{ t: r.target, by }] : []));
    assert.ok(granted.length >= 10, `at least the ten shared ready ones are handed out, got ${granted.length}`);
    assert.equal(new Set(granted.map((g) => g.t.instanceId)).size, granted.length, 'never one instance to two visitors');
    // Each grant is on the swarm, by the replica that answered.
    for (const g of granted) {
      const labels = (await inspectService((await (g.by === 'a' ? w.rt : b.rt).list()).find((r) => r.instanceId === g.t.instanceId)!.runtimeId)).Spec.Labels!;
      assert.deepEqual([labels[SWARM_LABEL.claimSession], labels[SWARM_LABEL.claimReplica]], [g.t.session, g.by]);
    }
    const conflicts = w.rt.stats.claimConflicts + b.rt.stats.claimConflicts;
    figures.push(
      `two replicas, 50 claims at once on 10 shared ready instances: ${granted.length} granted, ${conflicts} lost to the other replica (CLAIM_CONFLICT), ${w.rt.stats.casRetries + b.rt.stats.casRetries} out-of-sequence re-reads`,
    );

    // Each replica refills; neither counts the other's claimed ones as its own.
    await waitForStatus(w.fleet, 'standin', (s) => s.starting === 0 && s.ready + s.claimed <= 20, 120_000);
    await waitForStatus(b.fleet, 'standin', (s) => s.starting === 0 && s.ready + s.claimed <= 20, 120_000);
    const claimedA = w.fleet.status()[0]!.claimed;
    const claimedB = b.fleet.status()[0]!.claimed;
    assert.deepEqual([claimedA, claimedB], [granted.filter((g) => g.by === 'a').length, granted.filter((g) => g.by === 'b').length]);

    // b leaves (removing what is its to remove): a's visitors keep their instances.
    await b.fleet.stop(false);
    for (const g of granted.filter((x) => x.by === 'a')) {
      assert.equal(w.fleet.find(g.t.session, g.t.instanceId).kind, 'live');
      assert.ok(await ping(g.t.host, g.t.port), `a's session on ${g.t.instanceId} still answers after b stopped`);
    }
  });

  test('task failures: a missing image is IMAGE_NOT_FOUND, a task no node takes is NO_SUITABLE_NODE; the pool backs off; nothing is left', async () => {
    const rt = runtime('a', { schedulingTimeoutMs: 1500 });
    const image = `warmpool/does-not-exist-${randomBytes(3).toString('hex')}:latest`;
    const e1 = await rejectsWith(rt.create(app({ image }), spec()), 'IMAGE_NOT_FOUND');
    assert.ok(e1.message.includes(image), e1.message);
    assert.match(e1.message, /never pulls/);
    assert.match(e1.message, /every node/);
    const e2 = await rejectsWith(
      rt.create(app({ swarm: { constraints: ['node.labels.warmpool-test-nope==1'], spread: [], reservations: {} } }), spec()),
      'NO_SUITABLE_NODE',
    );
    assert.match(e2.message, /scheduling constraints not satisfied/);
    assert.match(e2.message, /swarm\.constraints/);
    const e3 = await rejectsWith(rt.create(app({ swarm: { constraints: [], spread: [], reservations: { cpus: 1000 } } }), spec()), 'NO_SUITABLE_NODE');
    assert.match(e3.message, /insufficient resources/);
    const e4 = await rejectsWith(rt.create(app({ args: ['/no/such/binary'] }), spec()), 'INSTANCE_EXITED');
    assert.match(e4.message, /no\/such\/binary/);
    assert.equal((await servicesByLabel(SELECT)).length, 0, 'each failed create removed its service');

    const { fleet } = world({ pool: '{ warm: 1, max: 1 }', image, backoffMs: { first: 200, max: 400 } });
    await fleet.start();
    const st = await waitForStatus(fleet, 'standin', (s) => s.failures === 1, 30_000);
    const firstAt = Date.now();
    assert.match(st.lastError!, /IMAGE_NOT_FOUND/);
    assert.equal((await fleet.claim('standin')).kind, 'queued', 'visitors wait in line, never handed a broken instance');
    await waitForStatus(fleet, 'standin', (s) => s.failures === 3, 30_000);
    assert.ok(Date.now() - firstAt >= 590, `third attempt after ${Date.now() - firstAt} ms, expected ≥ 600 ms of backoff`);
  });

  test('watch(): a task that dies and a service removed outside warmpool are reported; its own removals are not', async () => {
    const rt = runtime('a');
    const exits: Array<[string, string]> = [];
    const stop = rt.watch((id, detail) => exits.push([id, detail]));
    cleanups.push(stop);
    const mine = await rt.create(app(), spec());
    const killed = await rt.create(app(), spec());
    const removed = await rt.create(app(), spec());
    await rt.remove(mine.instanceId);
    await killContainer(await taskContainer(killed.runtimeId));
    await removeServicesByLabel(`warmpool.instance=${removed.instanceId}`);
    await until('two reports', () => (exits.length >= 2 ? true : undefined), 30_000);
    const byId = new Map(exits);
    assert.match(byId.get(killed.instanceId) ?? '', /task failed: task: non-zero exit \(137\)/);
    assert.equal(byId.get(removed.instanceId), 'service removed outside warmpool');
    assert.ok(!byId.has(mine.instanceId), 'our own removal is not an exit');
    await rt.remove(killed.instanceId);
  });
});

describe('SwarmRuntime watch against a fake engine', () => {
  test('the event stream reconnects with backoff, and the task list is read again: a task that died in the gap is reported', async () => {
    const clock = new ManualClock();
    const logs: string[] = [];
    const streams: ServerResponse[] = [];
    const versions = new Set<string | undefined>();
    let state = 'running';
    const labels = {
      'warmpool.app': 'a',
      'warmpool.instance': 'i1',
      'warmpool.deployment': 'prod',
      'warmpool.port': '20001',
      'warmpool.created': '1',
      'warmpool.replica': 'r1',
    };
    const fake = await startFakeEngine((req, res) => {
      versions.add(req.version);
      if (req.path === '/events') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
        streams.push(res);
        return;
      }
      if (req.path === '/services')
        return sendJson(res, 200, [
          {
            ID: 'svc1',
            Version: { Index: 7 },
            CreatedAt: '',
            UpdatedAt: '',
            Spec: { Name: 'warmpool-prod-a-i1', Labels: labels, TaskTemplate: { ContainerSpec: { Image: 'x', Env: ['PORT=20001'] } } },
          },
        ]);
      if (req.path === '/tasks') {
        return sendJson(res, 200, [
          {
            ID: 't1',
            Version: { Index: 9 },
            CreatedAt: '2026-01-01T00:00:00Z',
            ServiceID: 'svc1',
            DesiredState: state === 'running' ? 'running' : 'shutdown',
            Status: {
              State: state,
              Err: state === 'failed' ? 'task: non-zero exit (1)' : undefined,
              ContainerStatus: { ExitCode: state === 'failed' ? 1 : 0 },
            },
          },
        ]);
      }
      sendJson(res, 404, { message: `unexpected ${req.method} ${req.path}` });
    });
    const engine = new Engine({ socketPath: fake.socketPath });
    const rt = new SwarmRuntime({
      deployment: 'prod',
      replica: 'r1',
      ports: new PortAllocator(PORTS_A.from, PORTS_A.to),
      engine,
      clock,
      log: (m) => logs.push(m),
      relistMs: 3_600_000,
    });
    try {
      assert.deepEqual(
        (await rt.list()).map((r) => [r.instanceId, r.running]),
        [['i1', true]],
      );
      const exits: Array<[string, string]> = [];
      const stop = rt.watch((id, detail) => exits.push([id, detail]));
      await until('first connection', () => streams[0]);
      const tasksRead = () => fake.requests.filter((r) => r.path === '/tasks').length;
      await until('the read after connecting', () => (tasksRead() >= 2 ? true : undefined), 5000);
      assert.deepEqual(exits, [], 'running: nothing to report');

      streams[0]!.end();
      await until('the reconnect notice', () => (logs.some((l) => /ended; reconnecting in 250 ms/.test(l)) ? true : undefined), 5000);
      state = 'failed'; // dies while no stream is open: no event will say so
      const before = tasksRead();
      await clock.advance(249);
      assert.equal(streams.length, 1, 'not before the backoff is over');
      await clock.advance(1);
      await until('second connection', () => streams[1]);
      await until('the exit report', () => (exits.length > 0 ? true : undefined), 5000);
      assert.ok(tasksRead() > before, 'the task list was read again after the reconnect');
      assert.deepEqual(exits, [['i1', 'task failed: task: non-zero exit (1) (exit code 1)']]);
      assert.deepEqual([...versions], ['1.41'], 'every call named the pinned API version');
      stop();
      assert.equal(clock.timers, 0, 'stop cancels the periodic read and any reconnect');
    } finally {
      await rt.close();
      engine.close();
      await fake.close();
    }
  });

  test('the constructor rejects unknown options and bad names', () => {
    const ports = new PortAllocator(PORTS_A.from, PORTS_A.to);
    assert.throws(() => new SwarmRuntime({ deployment: 'Bad Name', replica: 'a', ports }), /deployment/);
    assert.throws(() => new SwarmRuntime({ deployment: 'ok', replica: 'A_1', ports }), /replica/);
    assert.throws(() => new SwarmRuntime({ deployment: 'ok', replica: 'a', ports, colour: 'red' } as never), /unknown option colour/);
    assert.throws(() => new SwarmRuntime({ deployment: 'ok', replica: 'a', ports, pollMs: 0 }), /pollMs/);
  });
});
