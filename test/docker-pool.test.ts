// The warm pool (Fleet) over the real Docker Engine with the stand-in image — the scenarios of
// process-runtime.test.ts for containers: warm-up, readiness gating, 50 concurrent claims, refill,
// crash replacement, adoption after a restart, bridge networking, a missing image, nothing left behind.

import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../core/config.js';
import { Fleet } from '../pool/fleet.js';
import { httpProbe } from '../pool/readiness.js';
import { PortAllocator } from '../pool/ports.js';
import type { InstanceRecord } from '../pool/runtime.js';
import { DockerRuntime } from '../pool/runtimes/docker.js';
import { Engine, type ContainerInfo, type CreateOptions, type CreateResult, type Filters } from '../pool/runtimes/engine.js';
import { parseName } from '../pool/runtimes/docker-labels.js';
import { MemoryTrafficLog } from '../pool/traffic-log.js';
import { countByLabel, dockerSkipReason, inspectContainer, killContainer, removeByLabel } from './helpers/docker.js';
import { collectOffer, hold, ticketOf } from './helpers/line.js';
import { eventually, until, waitForStatus } from './helpers/wait.js';

const IMAGE = 'warmpool/standin:latest';
// One deployment per file run: its label selects exactly what this file created.
const DEPLOYMENT = `t-dpool-${process.pid}-${randomBytes(3).toString('hex')}`;
const SELECT = `warmpool.deployment=${DEPLOYMENT}`;
// Host-network ports; not docker-runtime.test.ts's range (42000-47999). The allocator skips busy ports.
const PORTS = { from: 48000 + (process.pid % 100) * 100, to: 48000 + (process.pid % 100) * 100 + 999 };
const LOG_READY = '{ log: "^READY$", timeout: 60s }';

const engine = new Engine();
const cleanups: (() => Promise<void> | void)[] = [];
/** Fleet and runtime log lines, kept quiet; printed when a test leaves containers behind. */
let logs: string[] = [];

interface WorldOptions {
  pool: string;
  env?: string;
  readiness?: string;
  image?: string;
  /** Extra app keys, one YAML line each (network, port, secret). */
  extra?: string[];
  backoffMs?: { first: number; max: number };
  /** Engine client for the runtime (default: the shared one). */
  engine?: Engine;
}

/** A config for one app `standin` and a factory for runtime + fleet (called again to "restart" warmpool). */
function world(o: WorldOptions) {
  const config = parseConfig(`
deployment: ${DEPLOYMENT}
ports: { from: ${PORTS.from}, to: ${PORTS.to} }
apps:
  - name: standin
    runtime: docker
    image: ${o.image ?? IMAGE}
    env: { ${o.env ?? 'STATE_BYTES: 2000'} }
    readiness: ${o.readiness ?? LOG_READY}
    pool: ${o.pool}
${(o.extra ?? []).map((l) => `    ${l}`).join('\n')}
`);
  const make = () => {
    const log = (m: string) => logs.push(m);
    const rt = new DockerRuntime({ deployment: DEPLOYMENT, ports: new PortAllocator(config.ports.from, config.ports.to), engine: o.engine ?? engine, log });
    const fleet = new Fleet({ config, runtimes: { docker: rt }, trafficLog: new MemoryTrafficLog(), log, backoffMs: o.backoffMs });
    return { rt, fleet };
  };
  const first = make();
  cleanups.push(() => first.fleet.stop(false));
  return { config, make, ...first };
}

const running = async (rt: DockerRuntime) => (await rt.list()).filter((r) => r.running);
const ids = (recs: InstanceRecord[]) => recs.map((r) => r.instanceId).sort();

async function ping(host: string, port: number): Promise<boolean> {
  return httpProbe({ host, port } as InstanceRecord, '/ping', 200);
}

/** A ready instance answers at once: log readiness also waits for its port (READY comes before listen). */
async function answers(host: string, port: number): Promise<void> {
  assert.ok(await ping(host, port), `/ping on ${host}:${port} answers as soon as the instance is ready`);
}

describe('warm pool on the Docker Engine', { skip: await dockerSkipReason(), timeout: 300_000 }, () => {
  let startedAt = 0;

  before(() => {
    startedAt = Date.now();
    // Idempotent and offline (a no-op when the images match dist/): never test a stale stand-in.
    const r = spawnSync('bash', [fileURLToPath(new URL('../../scripts/build-images.sh', import.meta.url))], {
      stdio: ['ignore', 'inherit', 'inherit'],
      timeout: 300_000,
    });
    assert.equal(r.status, 0, 'scripts/build-images.sh failed: see its output above');
  });

  afterEach(async () => {
    // Stopping the fleet must remove everything it owns, before stop() resolves.
    while (cleanups.length) await cleanups.pop()!();
    const left = await countByLabel(SELECT);
    await removeByLabel(SELECT);
    if (left > 0) console.error(logs.join('\n'));
    logs = [];
    assert.equal(left, 0, `${left} container(s) of deployment ${DEPLOYMENT} left behind after fleet.stop()`);
  });

  after(async () => {
    await removeByLabel(SELECT);
    engine.close();
    console.error(`docker-pool: ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
  });

  test('warms up to target, each container answering /ping on its own 127.0.0.1 port', async () => {
    const { fleet, rt } = world({ pool: '{ warm: 3, max: 5, parallel: 3 }' });
    await fleet.start();
    const st = await waitForStatus(fleet, 'standin', (s) => s.ready === 3, 60_000);
    assert.deepEqual([st.starting, st.claimed, st.failures], [0, 0, 0]);
    const recs = await running(rt);
    assert.equal(recs.length, 3);
    assert.equal(await countByLabel(SELECT), 3, 'no extra containers');
    assert.equal(new Set(recs.map((r) => r.port)).size, 3, 'distinct ports');
    for (const r of recs) {
      assert.equal(r.host, '127.0.0.1');
      assert.ok(r.port >= PORTS.from && r.port <= PORTS.to, `port ${r.port} from the configured range`);
      await answers(r.host, r.port);
    }
  });

  test('readiness gating: a port that answers before the notebook has executed is not handed out', async () => {
    const { fleet, rt } = world({ pool: '{ warm: 1, max: 1 }', env: 'STATE_BYTES: 2000, STARTUP_DELAY_MS: 2500, LISTEN_EARLY: 1' });
    await fleet.start();
    const rec = await eventually(
      async () => {
        const r = (await rt.list())[0];
        return r && (await ping(r.host, r.port)) ? r : undefined;
      },
      'the early port to answer',
      30_000,
    );
    assert.equal(fleet.status()[0]!.ready, 0, 'port open, notebook still executing: not ready');
    const early = await fleet.claim('standin');
    assert.equal(early.kind, 'queued');
    const t = await collectOffer(fleet, 'standin', hold(fleet, 'standin', ticketOf(early)));
    assert.equal(t.port, rec!.port, 'the same container, offered the moment it was ready');
  });

  test('50 concurrent claims: distinct containers or a place in line, never one twice; refilled up to max', async () => {
    const t0 = Date.now();
    const { fleet, rt } = world({ pool: '{ warm: 20, max: 30, parallel: 10 }' });
    await fleet.start();
    await waitForStatus(fleet, 'standin', (s) => s.ready === 20, 180_000);
    const warmedIn = Date.now() - t0;

    const results = await Promise.all(Array.from({ length: 50 }, () => fleet.claim('standin')));
    const got = results.flatMap((r) => (r.kind === 'session' ? [r.target] : []));
    assert.equal(got.length, 20);
    assert.equal(new Set(got.map((t) => t.instanceId)).size, 20, 'no instance handed out twice');
    assert.equal(new Set(got.map((t) => t.port)).size, 20);
    // The other 30 hold places in line, in this order (what their waiting pages' streams do).
    const queued = results.flatMap((r) => (r.kind === 'queued' ? [hold(fleet, 'standin', r.ticket)] : []));
    assert.equal(queued.length, 30);
    // Each claim is on the engine (container name), for adoption after a restart; recorded after the answer.
    await fleet.claimsRecorded();
    const marks = new Map((await rt.list()).map((r) => [r.instanceId, r.claim?.session]));
    for (const t of got) assert.equal(marks.get(t.instanceId), t.session);

    // Created on demand up to max (10 more, offered to the head of the line), never past it.
    const st = await waitForStatus(fleet, 'standin', (s) => s.ready === 10, 180_000);
    assert.deepEqual([st.starting, st.claimed, st.queued], [0, 20, 30]);
    assert.equal((await running(rt)).length, 30);
    assert.equal(await countByLabel(SELECT), 30, 'never more containers than max');

    // The first 10 in line get the 10 new containers; the other 20 still wait (max reached).
    const late = await Promise.all(queued.slice(0, 10).map((h) => collectOffer(fleet, 'standin', h)));
    assert.deepEqual(
      queued.slice(10).map((h) => h.settled()),
      Array(20).fill(undefined),
      'in the order of the line',
    );
    assert.deepEqual(
      queued.slice(10).map((h) => h.lines.at(-1)?.position),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    const all = [...got, ...late];
    assert.equal(new Set(all.map((t) => t.instanceId)).size, 30, 'thirty sessions, thirty containers');
    assert.equal(new Set(all.map((t) => t.port)).size, 30);
    for (const t of late) await answers(t.host, t.port);
    console.error(`docker-pool: 20 warm containers in ${(warmedIn / 1000).toFixed(1)} s; 30 in all after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });

  test('refills after claims; an ended session removes its container', async () => {
    const { fleet, rt } = world({ pool: '{ warm: 2, max: 5, parallel: 2 }' });
    await fleet.start();
    await waitForStatus(fleet, 'standin', (s) => s.ready === 2, 60_000);
    const warm = ids(await rt.list());
    const a = await fleet.claim('standin');
    const b = await fleet.claim('standin');
    assert.ok(a.kind === 'session' && b.kind === 'session');
    assert.deepEqual([a.target.instanceId, b.target.instanceId].sort(), warm, 'the warm ones are handed out');
    const st = await waitForStatus(fleet, 'standin', (s) => s.ready === 2 && s.claimed === 2, 60_000);
    assert.equal(st.starting, 0);
    const now = await running(rt);
    assert.equal(now.length, 4);
    const fresh = now.filter((r) => !warm.includes(r.instanceId));
    assert.equal(fresh.length, 2, 'two new containers');
    for (const r of fresh) await answers(r.host, r.port);

    await fleet.end(a.target.session, 'admin');
    await eventually(async () => !(await rt.list()).some((r) => r.instanceId === a.target.instanceId), "the ended session's container to be removed", 30_000);
    assert.equal(await countByLabel(SELECT), 3, 'not replaced: the pool already holds warm ready ones');
    assert.deepEqual(fleet.find(a.target.session, a.target.instanceId).kind, 'ended');
  });

  test('a killed container is removed and replaced; a claimed one ends its session', async () => {
    const { fleet, rt } = world({ pool: '{ warm: 2, max: 4 }' });
    await fleet.start();
    await waitForStatus(fleet, 'standin', (s) => s.ready === 2, 60_000);
    const [victim] = await rt.list();
    await killContainer(victim!.runtimeId);
    await eventually(async () => !(await rt.list()).some((r) => r.instanceId === victim!.instanceId), 'the killed container to be removed', 30_000);
    await waitForStatus(fleet, 'standin', (s) => s.ready === 2, 60_000);
    const after = await running(rt);
    assert.equal(after.length, 2);
    assert.ok(!after.some((r) => r.instanceId === victim!.instanceId), 'replaced by a new container');
    assert.equal(await countByLabel(SELECT), 2, 'the dead container is gone, not just stopped');

    const s = await fleet.claim('standin');
    assert.equal(s.kind, 'session');
    if (s.kind !== 'session') return;
    await killContainer((await rt.list()).find((r) => r.instanceId === s.target.instanceId)!.runtimeId);
    await eventually(() => fleet.find(s.target.session, s.target.instanceId).kind === 'ended', 'the session to end', 30_000);
    const found = fleet.find(s.target.session, s.target.instanceId);
    assert.equal(found.kind === 'ended' && found.reason, 'instance-exited');
    await eventually(async () => !(await rt.list()).some((r) => r.instanceId === s.target.instanceId), 'the claimed container to be removed', 30_000);
    await waitForStatus(fleet, 'standin', (x) => x.ready === 2 && x.claimed === 0 && x.starting === 0, 60_000);
  });

  test('after a restart, ready containers are adopted and a claimed one keeps its session; nothing new is created', async () => {
    const w = world({ pool: '{ warm: 2, max: 4 }', extra: ['secret: { env: PLUTO_SECRET, inject: { query: secret } }'] });
    await w.fleet.start();
    await waitForStatus(w.fleet, 'standin', (s) => s.ready === 2, 60_000);
    const r = await w.fleet.claim('standin');
    assert.equal(r.kind, 'session');
    if (r.kind !== 'session') return;
    assert.ok(r.target.secret, 'a generated secret');
    await waitForStatus(w.fleet, 'standin', (s) => s.ready === 2, 60_000);
    const before = await w.rt.list();
    assert.equal(before.length, 3);
    const containerIds = before.map((x) => x.runtimeId).sort();
    await w.fleet.stop(true); // warmpool killed mid-class, containers kept
    assert.deepEqual((await running(w.rt)).map((x) => x.runtimeId).sort(), containerIds, 'kept running');
    const claimedName = (await inspectContainer(before.find((x) => x.instanceId === r.target.instanceId)!.runtimeId)).Name;
    assert.deepEqual(parseName(claimedName).claim, { session: r.target.session, at: r.target.claimedAt }, 'the claim is in the container name');

    const second = w.make(); // a new DockerRuntime (empty memory) and Fleet on the same deployment
    cleanups.push(() => second.fleet.stop(false));
    await second.fleet.start();
    const st = second.fleet.status()[0]!;
    assert.deepEqual([st.ready, st.claimed, st.starting, st.failures], [2, 1, 0, 0], 'adopted, nothing new created');
    assert.deepEqual((await second.rt.list()).map((x) => x.runtimeId).sort(), containerIds, 'the same containers');
    assert.equal(await countByLabel(SELECT), 3);
    const found = second.fleet.find(r.target.session, r.target.instanceId);
    assert.equal(found.kind, 'live');
    if (found.kind !== 'live') return;
    assert.deepEqual([found.target.port, found.target.secret, found.target.claimedAt], [r.target.port, r.target.secret, r.target.claimedAt]);
    // The adopted ready ones are handed out, never the claimed one.
    const next = await second.fleet.claim('standin');
    assert.ok(next.kind === 'session' && next.target.instanceId !== r.target.instanceId);
    assert.ok(next.kind === 'session' && before.some((x) => x.instanceId === next.target.instanceId), 'an adopted container');
    if (next.kind === 'session') assert.ok(await ping(next.target.host, next.target.port), 'an adopted instance was checked ready: it answers at once');
  });

  test('warming: containers execute at the warming CPU weight and are raised to 1024 once ready, before any claim (read back with docker inspect); a restart keeps both', async () => {
    const w = world({ pool: '{ warm: 2, max: 3, parallel: 2 }', env: 'STATE_BYTES: 2000, STARTUP_DELAY_MS: 1500', extra: ['warming: { cpuShares: 128 }'] });
    const shares = async (instanceId: string) => {
      const rec = (await w.rt.list()).find((x) => x.instanceId === instanceId)!;
      return (await inspectContainer(rec.runtimeId)).HostConfig.CpuShares;
    };
    await w.fleet.start();
    const warming = await until(
      'two running containers',
      async () => {
        const r = await running(w.rt);
        return r.length === 2 ? r : undefined;
      },
      30_000,
    );
    assert.equal(w.fleet.status()[0]!.ready, 0, 'still executing');
    for (const r of warming) assert.equal(await shares(r.instanceId), 128, 'executing its notebook at the warming weight');
    await waitForStatus(w.fleet, 'standin', (s) => s.ready === 2, 60_000);
    // Ready: idle until claimed, raised at once, so a student's first requests never run at the warming weight.
    for (const r of warming) await until('raised once ready', async () => ((await shares(r.instanceId)) === 1024 ? true : undefined), 10_000);

    const v = await w.fleet.claim('standin', { visitor: '10.1.2.3' });
    if (v.kind !== 'session') return assert.fail('expected a session');
    assert.equal(await shares(v.target.instanceId), 1024, 'claimed, not used yet: already at full weight');
    w.fleet.event(v.target.session, 'request');
    await w.fleet.claimsRecorded();
    assert.equal(await shares(v.target.instanceId), 1024, 'raised in place');
    const rec = (await w.rt.list()).find((x) => x.instanceId === v.target.instanceId)!;
    assert.equal((await inspectContainer(rec.runtimeId)).State.Running, true, 'still running: the update did not restart it');
    assert.equal(parseName((await inspectContainer(rec.runtimeId)).Name).claim?.session, v.target.session);
    assert.ok(await ping(v.target.host, v.target.port), 'the instance answers');

    const p = await w.fleet.claim('standin');
    if (p.kind !== 'session') return assert.fail('expected a session');
    await w.fleet.claimsRecorded();
    assert.equal(await shares(p.target.instanceId), 1024);
    // The refill behind them warms low (it executes for 1.5 s).
    const spare = await until(
      'the refill running',
      async () => (await running(w.rt)).find((x) => x.instanceId !== v.target.instanceId && x.instanceId !== p.target.instanceId),
      60_000,
    );
    assert.equal(w.fleet.status()[0]!.ready, 0, 'the refill still executes');
    assert.equal(await shares(spare.instanceId), 128, 'executing: the warming weight');

    // Killed mid-class: a new runtime learns each container's weight from the engine and raises nothing twice.
    await waitForStatus(w.fleet, 'standin', (s) => s.ready === 1, 60_000);
    await w.fleet.stop(true);
    const second = w.make();
    cleanups.push(() => second.fleet.stop(false));
    await second.fleet.start();
    assert.deepEqual([second.fleet.status()[0]!.claimed, second.fleet.status()[0]!.ready], [2, 1]);
    const again = await second.fleet.claim('standin');
    assert.equal(again.kind === 'session' && again.target.instanceId, spare.instanceId);
    await second.fleet.claimsRecorded();
    assert.deepEqual(await Promise.all([v.target.instanceId, p.target.instanceId, spare.instanceId].map(shares)), [1024, 1024, 1024]);
  });

  test('bridge networking: each container publishes its port on 127.0.0.1; HTTP readiness', async () => {
    const { fleet, rt } = world({
      pool: '{ warm: 2, max: 2 }',
      readiness: '{ http: { path: /ping, status: 200 }, timeout: 60s, interval: 100ms }',
      extra: ['network: bridge', 'port: 8080'],
    });
    await fleet.start();
    await waitForStatus(fleet, 'standin', (s) => s.ready === 2, 60_000);
    const recs = await running(rt);
    assert.equal(recs.length, 2);
    assert.equal(new Set(recs.map((r) => r.port)).size, 2, 'distinct published ports');
    for (const r of recs) {
      const info = await inspectContainer(r.runtimeId);
      assert.equal(info.HostConfig.NetworkMode, 'bridge');
      const bindings = info.NetworkSettings.Ports?.['8080/tcp'] ?? [];
      assert.ok(bindings.length > 0);
      for (const b of bindings) assert.equal(b.HostIp, '127.0.0.1', 'published on loopback only');
      assert.equal(Number(bindings[0]!.HostPort), r.port);
    }
    const s = await fleet.claim('standin');
    assert.equal(s.kind, 'session');
    if (s.kind !== 'session') return;
    assert.equal(s.target.host, '127.0.0.1');
    assert.ok(recs.some((r) => r.port === s.target.port));
    assert.ok(await ping(s.target.host, s.target.port));
  });

  test('a missing image: IMAGE_NOT_FOUND in status, naming the image; creates back off; no crash, nothing left', async () => {
    const image = `warmpool/does-not-exist-${randomBytes(3).toString('hex')}:latest`;
    // max 1: one create per attempt (after a backoff, the pool starts as many as it wants at once).
    const { fleet } = world({ pool: '{ warm: 1, max: 1 }', image, backoffMs: { first: 200, max: 400 } });
    await fleet.start();
    const st = await waitForStatus(fleet, 'standin', (s) => s.failures === 1, 30_000);
    const firstAt = Date.now();
    assert.match(st.lastError!, /IMAGE_NOT_FOUND/);
    assert.ok(st.lastError!.includes(image), st.lastError);
    assert.match(st.lastError!, /npm run images/);
    assert.ok(st.nextRetryAt! > firstAt + 100, 'a retry is scheduled ~200 ms on');
    assert.deepEqual([st.ready, st.starting, st.claimed], [0, 0, 0]);
    const q = await fleet.claim('standin');
    assert.equal(q.kind, 'queued', 'visitors wait in line, they are not handed a broken instance');
    // Retries at +200 ms then +400 ms (the max): never sooner.
    await waitForStatus(fleet, 'standin', (s) => s.failures === 3, 30_000);
    assert.ok(Date.now() - firstAt >= 590, `third attempt after ${Date.now() - firstAt} ms, expected ≥ 600 ms of backoff`);
    assert.equal(await countByLabel(SELECT), 0, 'no container was created');
  });

  test('stop() while creates are in flight: every container is gone when it resolves', async () => {
    // Holds each createContainer until stop() has looked for the containers (and found none), so the
    // engine creates them after that look-up: the case where warmpool exits with a container orphaned.
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const creates: Promise<unknown>[] = [];
    let stopping = false;
    let lookedUp = 0;
    class Gated extends Engine {
      override createContainer(name: string, body: CreateOptions): Promise<CreateResult> {
        const p = gate.then(() => super.createContainer(name, body));
        creates.push(p);
        return p;
      }
      override async listContainers(q?: { all?: boolean; filters?: Filters }): Promise<ContainerInfo[]> {
        const r = await super.listContainers(q);
        if (stopping) lookedUp++;
        return r;
      }
    }
    const gated = new Gated();
    cleanups.push(() => gated.close());

    const { fleet } = world({ pool: '{ warm: 3, max: 3, parallel: 3 }', engine: gated });
    await fleet.start();
    await waitForStatus(fleet, 'standin', (s) => s.starting === 3, 10_000);
    stopping = true;
    const stopped = fleet.stop(false);
    await eventually(() => lookedUp >= 3, 'stop() to look for the three containers', 10_000);
    assert.equal(await countByLabel(SELECT), 0, 'not created yet');
    open();
    await stopped;
    const made = await Promise.allSettled(creates);
    assert.deepEqual(
      made.map((r) => r.status),
      ['fulfilled', 'fulfilled', 'fulfilled'],
      'the engine created all three after stop() began',
    );
    assert.equal(await countByLabel(SELECT), 0, 'removed before stop() resolved');
  });
});
