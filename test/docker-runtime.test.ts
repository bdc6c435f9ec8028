// DockerRuntime against the real engine with the stand-in image: networking, labels, limits, claims
// across a restart, output, exit watching, and the errors that tell an operator what to do.

import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { AppConfig } from '../core/config.js';
import { ManualClock } from '../core/clock.js';
import { isWarmpoolError, type WarmpoolError } from '../core/errors.js';
import { PortAllocator } from '../pool/ports.js';
import { DockerRuntime } from '../pool/runtimes/docker.js';
import { Engine } from '../pool/runtimes/engine.js';
import { countByLabel, dockerSkipReason, inspectContainer, killContainer, removeByLabel } from './helpers/docker.js';
import { sendJson, startFakeEngine } from './helpers/fake-engine.js';
import { until } from './helpers/wait.js';

const IMAGE = 'warmpool/standin:latest';
const DEPLOYMENT = `t-docker-${process.pid}-${randomBytes(3).toString('hex')}`;
const SELECT = `warmpool.deployment=${DEPLOYMENT}`;
// The allocator skips ports in use, so a busy range costs a few probes, not a failure.
const PORTS = { from: 42000 + (process.pid % 500) * 10, to: 42000 + (process.pid % 500) * 10 + 999 };

function app(over: Partial<AppConfig> = {}): AppConfig {
  return {
    name: 'standin',
    runtime: 'docker',
    image: IMAGE,
    port: 0,
    env: { APP_ONLY: 'a' },
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
    ...over,
  };
}

let seq = 0;
const spec = (env: Record<string, string> = {}) => ({ app: 'standin', instanceId: `i${Date.now().toString(36)}${seq++}`, env });

async function pingOk(port: number): Promise<true | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/ping`, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status === 200 ? true : undefined;
  } catch {
    return undefined;
  }
}

async function rejectsWith(p: Promise<unknown>, code: WarmpoolError['code']): Promise<WarmpoolError> {
  try {
    await p;
  } catch (e) {
    assert.ok(
      isWarmpoolError(e, code),
      `expected WarmpoolError ${code}, got ${e instanceof Error ? `${e.name} ${(e as WarmpoolError).code ?? ''}: ${e.message}` : String(e)}`,
    );
    return e as WarmpoolError;
  }
  assert.fail(`expected a rejection with ${code}`);
}

describe('DockerRuntime (real engine)', { skip: await dockerSkipReason(), timeout: 180_000 }, () => {
  const engine = new Engine();
  const logs: string[] = [];
  let ports: PortAllocator;
  let rt: DockerRuntime;

  before(() => {
    // Idempotent and offline: a no-op (~0.2 s) when the images match dist/, a build (a few s) when not,
    // so the suite never tests a stale stand-in and also runs on a machine that skipped .ci/run.
    const r = spawnSync('bash', [fileURLToPath(new URL('../../scripts/build-images.sh', import.meta.url))], {
      stdio: ['ignore', 'inherit', 'inherit'],
      timeout: 300_000,
    });
    assert.equal(r.status, 0, 'scripts/build-images.sh failed: see its output above');
  });

  const fresh = () => {
    ports = new PortAllocator(PORTS.from, PORTS.to);
    rt = new DockerRuntime({ deployment: DEPLOYMENT, ports, engine, log: (m) => logs.push(m) });
  };

  afterEach(async () => {
    await rt?.close();
    const left = await countByLabel(SELECT);
    await removeByLabel(SELECT);
    assert.equal(left, 0, `${left} container(s) of deployment ${DEPLOYMENT} left behind by the test`);
  });

  after(async () => {
    await removeByLabel(SELECT);
    engine.close();
  });

  test('host networking: answers /ping on 127.0.0.1:<allocated port>; labels, limits and env are on the container', async () => {
    fresh();
    const s = spec({ SECRET: 's3cret' });
    const rec = await rt.create(app({ limits: { cpus: 0.5, memoryBytes: 256 * 1024 * 1024 } }), s);
    assert.equal(rec.instanceId, s.instanceId);
    assert.equal(rec.app, 'standin');
    assert.equal(rec.deployment, DEPLOYMENT);
    assert.equal(rec.host, '127.0.0.1');
    assert.ok(rec.port >= PORTS.from && rec.port <= PORTS.to, `port ${rec.port} from the allocator's range`);
    assert.equal(rec.running, true);
    assert.equal(rec.claim, undefined);
    assert.equal(rec.env.PORT, String(rec.port));
    assert.equal(rec.env.HOST, '127.0.0.1');
    assert.equal(rec.env.SECRET, 's3cret');
    assert.equal(rec.env.APP_ONLY, 'a');
    await until('/ping on the host port', () => pingOk(rec.port));

    const info = await inspectContainer(rec.runtimeId);
    assert.equal(info.Name, `/warmpool-${DEPLOYMENT}-standin-${s.instanceId}`);
    assert.equal(info.HostConfig.NetworkMode, 'host');
    assert.equal(info.HostConfig.NanoCpus, 500_000_000);
    assert.equal(info.HostConfig.Memory, 256 * 1024 * 1024);
    assert.equal(info.Config.Labels?.['warmpool.app'], 'standin');
    assert.equal(info.Config.Labels?.['warmpool.instance'], s.instanceId);
    assert.equal(info.Config.Labels?.['warmpool.deployment'], DEPLOYMENT);
    assert.equal(info.Config.Labels?.['warmpool.port'], String(rec.port));
    assert.equal(info.Config.Labels?.['warmpool.created'], String(rec.createdAt));

    const listed = await rt.list();
    assert.equal(listed.length, 1);
    assert.deepEqual(listed[0], rec);

    await rt.remove(rec.instanceId);
    assert.equal(await countByLabel(SELECT), 0);
    await rt.remove(rec.instanceId); // idempotent
    assert.deepEqual(await rt.list(), []);
  });

  test('bridge networking: the container port is published on 127.0.0.1 only, read back by inspect', async () => {
    fresh();
    const rec = await rt.create(app({ network: 'bridge', port: 8080 }), spec());
    assert.equal(rec.host, '127.0.0.1');
    assert.ok(rec.port > 0, 'a published host port');
    assert.equal(rec.env.HOST, '0.0.0.0', 'inside its own namespace the app listens on all interfaces');
    assert.equal(rec.env.PORT, '8080');
    await until('/ping on the published port', () => pingOk(rec.port));

    const info = await inspectContainer(rec.runtimeId);
    assert.equal(info.HostConfig.NetworkMode, 'bridge');
    const bindings = info.NetworkSettings.Ports?.['8080/tcp'];
    assert.ok(bindings && bindings.length > 0, 'port 8080/tcp published');
    for (const b of bindings) assert.equal(b.HostIp, '127.0.0.1', 'published on loopback only');
    assert.equal(Number(bindings[0]!.HostPort), rec.port);
    assert.equal(info.Config.Labels?.['warmpool.port'], '8080');

    assert.deepEqual(await rt.list(), [rec]);
    await rt.remove(rec.instanceId);
  });

  test('markClaimed renames the container, and a restarted runtime finds the claim via list()', async () => {
    fresh();
    const a = await rt.create(app(), spec());
    const b = await rt.create(app(), spec());
    const claim = { session: randomBytes(16).toString('base64url'), at: 1_700_000_000_123 };
    await rt.markClaimed(a.instanceId, claim);
    const info = await inspectContainer(a.runtimeId);
    assert.equal(info.Name, `/warmpool-${DEPLOYMENT}-standin-${a.instanceId}.claimed-${claim.at}-${claim.session}`);
    await rt.close();

    // Simulated restart: a new runtime with an empty memory and a fresh allocator.
    const ports2 = new PortAllocator(PORTS.from, PORTS.to);
    const rt2 = new DockerRuntime({ deployment: DEPLOYMENT, ports: ports2, engine, log: (m) => logs.push(m) });
    rt = rt2;
    const listed = await rt2.list();
    const byId = new Map(listed.map((r) => [r.instanceId, r]));
    assert.deepEqual(byId.get(a.instanceId)?.claim, claim);
    assert.equal(byId.get(b.instanceId)?.claim, undefined);
    assert.equal(byId.get(a.instanceId)?.env.PORT, String(a.port), 'env rebuilt from the engine');
    // The adopted instances' host ports are held: a new allocation gets neither.
    const p = await ports2.allocate();
    assert.ok(p !== a.port && p !== b.port, `allocated ${p}, which an adopted instance holds`);
    ports2.release(p);

    // A second claim (by the restarted runtime, found by label) replaces the first.
    const claim2 = { session: 'second', at: 1_700_000_000_999 };
    await rt2.markClaimed(a.instanceId, claim2);
    assert.deepEqual((await rt2.list()).find((r) => r.instanceId === a.instanceId)?.claim, claim2);

    await rt2.remove(a.instanceId);
    await rt2.remove(b.instanceId);
    await rejectsWith(rt2.markClaimed(a.instanceId, claim), 'INSTANCE_GONE');
  });

  test('output() delivers what the instance printed from its start, READY included', async () => {
    fresh();
    const rec = await rt.create(app(), spec());
    await until('/ping', () => pingOk(rec.port));
    // Started after the app printed READY: the past is replayed.
    const lines: string[] = [];
    const stop = rt.output(rec.instanceId, (l) => lines.push(l));
    await until('READY in the output', () => (lines.some((l) => l.includes('READY')) ? true : undefined));
    assert.ok(
      lines.every((l) => !l.includes('\n')),
      'split into lines',
    );
    stop();
    await rt.remove(rec.instanceId);
  });

  test('watch() reports an instance killed outside warmpool, and not one warmpool removed itself', async () => {
    fresh();
    const exits: Array<[string, string]> = [];
    const stop = rt.watch((id, detail) => exits.push([id, detail]));
    const mine = await rt.create(app(), spec());
    const victim = await rt.create(app(), spec());
    await rt.remove(mine.instanceId);
    await killContainer(victim.runtimeId);
    await until('the exit report', () => (exits.length > 0 ? true : undefined));
    // Events arrive in order: the removal came first, so had it been reported it would be here by now.
    assert.equal(exits[0]![0], victim.instanceId);
    assert.match(exits[0]![1], /exited with code 137/);
    assert.ok(!exits.some(([id]) => id === mine.instanceId), 'our own removal is not an exit');
    const listed = await rt.list();
    assert.deepEqual(
      listed.map((r) => [r.instanceId, r.running]),
      [[victim.instanceId, false]],
    );
    await rt.remove(victim.instanceId);
    stop();
  });

  test('a missing image is IMAGE_NOT_FOUND, naming the image and how to get it; nothing is left', async () => {
    fresh();
    const image = `warmpool/does-not-exist-${randomBytes(3).toString('hex')}:latest`;
    const e = await rejectsWith(rt.create(app({ image }), spec()), 'IMAGE_NOT_FOUND');
    assert.ok(e.message.includes(image), e.message);
    assert.match(e.message, /npm run images/);
    assert.match(e.message, /docker load/);
  });

  test('a create that fails after the container exists removes it (start error: no such command)', async () => {
    fresh();
    const e = await rejectsWith(rt.create(app({ args: ['/no/such/binary'] }), spec()), 'ENGINE_ERROR');
    assert.match(e.message, /no\/such\/binary|no such file/i);
    assert.equal(await countByLabel(SELECT), 0);
  });
});

describe('DockerRuntime without an engine', () => {
  const deadEngine = () => new Engine({ socketPath: `/nonexistent/warmpool-${process.pid}/docker.sock` });

  test('create and list fail with ENGINE_UNREACHABLE, saying where and what to do', async () => {
    const ports = new PortAllocator(PORTS.from, PORTS.to);
    const rt = new DockerRuntime({ deployment: DEPLOYMENT, ports, engine: deadEngine(), log: () => {} });
    const e = await rejectsWith(rt.create(app(), spec()), 'ENGINE_UNREACHABLE');
    assert.match(e.message, /nonexistent\/warmpool-\d+\/docker\.sock/);
    assert.match(e.message, /dockerd/);
    await rejectsWith(rt.list(), 'ENGINE_UNREACHABLE');
    await rejectsWith(rt.remove('nope'), 'ENGINE_UNREACHABLE');
    await rt.close();
  });

  test('watch() retries with doubling backoff on the injected clock until stopped', async () => {
    const clock = new ManualClock();
    const logs: string[] = [];
    const rt = new DockerRuntime({
      deployment: DEPLOYMENT,
      ports: new PortAllocator(PORTS.from, PORTS.to),
      engine: deadEngine(),
      clock,
      log: (m) => logs.push(m),
    });
    const stop = rt.watch(() => assert.fail('no exits without an engine'));
    await until('first failure', () => (logs.length >= 1 ? true : undefined), 5000);
    assert.match(logs[0]!, /ENGINE_UNREACHABLE|unreachable/i);
    assert.match(logs[0]!, /reconnecting in 250 ms/);
    assert.equal(clock.timers, 1);
    await clock.advance(249);
    assert.equal(logs.length, 1, 'not before the backoff is over');
    await clock.advance(1);
    await until('second failure', () => (logs.length >= 2 ? true : undefined), 5000);
    assert.match(logs[1]!, /reconnecting in 500 ms/);
    stop();
    assert.equal(clock.timers, 0, 'stop cancels the pending reconnect');
    await rt.close();
  });

  test('watch() parses the event stream, reports each exit once, and resumes from the last event after the stream ends', async () => {
    // A fake engine on a unix socket: each GET /events stays open until the test writes or ends it.
    const clock = new ManualClock();
    const logs: string[] = [];
    const calls: URLSearchParams[] = [];
    const streams: ServerResponse[] = [];
    const closed: boolean[] = [];
    const fake = await startFakeEngine((req, res) => {
      if (req.path !== '/events') return sendJson(res, 404, { message: 'unexpected call' });
      calls.push(req.query);
      const i = streams.length;
      closed[i] = false;
      res.on('close', () => {
        closed[i] = true;
      });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      streams.push(res);
    });
    const engine = new Engine({ socketPath: fake.socketPath });
    const rt = new DockerRuntime({ deployment: 'prod', ports: new PortAllocator(PORTS.from, PORTS.to), engine, clock, log: (m) => logs.push(m) });
    try {
      const exits: Array<[string, string]> = [];
      const stop = rt.watch((id, detail) => exits.push([id, detail]));
      const ev = (action: string, instance: string, time: number, extra: Record<string, string> = {}, deployment = 'prod') =>
        JSON.stringify({
          status: action,
          id: `c-${instance}`,
          Type: 'container',
          Action: action,
          time,
          Actor: { ID: `c-${instance}`, Attributes: { 'warmpool.deployment': deployment, 'warmpool.instance': instance, 'warmpool.app': 'a', ...extra } },
        }) + '\n';

      await until('first connection', () => streams[0]);
      assert.equal(calls[0]!.get('since'), null, 'the first connection only sees new events');
      assert.deepEqual(JSON.parse(calls[0]!.get('filters')!), { type: ['container'], label: ['warmpool.deployment=prod'], event: ['die', 'oom', 'destroy'] });
      const batch =
        ev('die', 'i1', 100, { exitCode: '1' }) +
        ev('oom', 'i2', 101) +
        ev('die', 'i2', 101, { exitCode: '137' }) +
        ev('die', 'other', 101, { exitCode: '0' }, 'staging') +
        ev('destroy', 'i1', 102);
      // Two HTTP chunks, cut mid-line.
      streams[0]!.write(batch.slice(0, 37));
      streams[0]!.write(batch.slice(37));
      await until('two exits', () => (exits.length >= 2 ? true : undefined), 5000);
      streams[0]!.end();
      await until('the reconnect notice', () => (logs.some((l) => /ended; reconnecting in 250 ms/.test(l)) ? true : undefined), 5000);
      assert.deepEqual(
        exits,
        [
          ['i1', 'exited with code 1'],
          ['i2', 'exited with code 137 (out of memory)'],
        ],
        'die then destroy: reported once; other deployments ignored',
      );

      await clock.advance(250);
      await until('second connection', () => streams[1]);
      assert.equal(calls[1]!.get('since'), '102', 'resumes from the last event seen');
      streams[1]!.write(ev('destroy', 'i1', 102) + ev('destroy', 'i3', 103) + 'not json\n');
      await until('third exit', () => (exits.length >= 3 ? true : undefined), 5000);
      assert.deepEqual(exits[2], ['i3', 'container removed outside warmpool']);
      assert.equal(exits.length, 3, 'the replayed destroy of i1 is not reported again');
      await until('the not-JSON notice', () => (logs.some((l) => /not JSON/.test(l)) ? true : undefined), 5000);

      stop();
      await until('the engine to see the stream closed', () => (closed[1] ? true : undefined), 5000);
      assert.equal(clock.timers, 0);
      assert.equal(streams.length, 2, 'no reconnect after stop');
    } finally {
      await rt.close();
      engine.close();
      await fake.close();
    }
  });

  test('the constructor rejects unknown options and a bad deployment name', () => {
    const ports = new PortAllocator(PORTS.from, PORTS.to);
    assert.throws(() => new DockerRuntime({ deployment: 'Bad Name', ports }), /deployment/);
    assert.throws(() => new DockerRuntime({ deployment: 'ok', ports, colour: 'red' } as never), /unknown option colour/);
  });
});
