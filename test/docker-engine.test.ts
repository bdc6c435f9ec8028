// The Engine API client (pool/runtimes/engine.ts): every call warmpool makes, against the real
// engine (containers of warmpool/node:20 on the host network, bound to 127.0.0.1, removed by label);
// and against a fake engine on a unix socket for what the real one cannot show on demand: a hang, a
// 500, chunks cut mid-line and mid-header, a refused connection, a stale pooled connection, reuse.
// The stream parsers are tested with literal bytes cut at every position.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isWarmpoolError } from '../core/errors.js';
import { API_VERSION, Engine, EngineError, isOutOfSequence, parseDockerHost, type EngineEvent } from '../pool/runtimes/engine.js';
import { Demuxer, LineSplitter, demuxToString, type StreamId } from '../pool/runtimes/engine-streams.js';
import { countByLabel, dockerSkipReason, removeByLabel } from './helpers/docker.js';
import { sendJson, startFakeEngine, type FakeEngine } from './helpers/fake-engine.js';
import { until } from './helpers/wait.js';

const NODE_IMAGE = 'warmpool/node:20';
const RUN = `t-engine-${process.pid}-${randomBytes(3).toString('hex')}`;
const LABEL = 'warmpool.test-engine';
const SELECT = `${LABEL}=${RUN}`;

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  assert.fail('expected a rejection');
}

async function engineRejection(p: Promise<unknown>, code: EngineError['code']): Promise<EngineError> {
  const e = await rejection(p);
  assert.ok(e instanceof EngineError, `expected an EngineError, got ${String(e)}`);
  assert.ok(isWarmpoolError(e, code), `expected code ${code}, got ${e.code}: ${e.message}`);
  return e;
}

/** A node:20 container on the host network running `script`; labelled for clean-up. */
function nodeContainer(script: string, over: { Tty?: boolean } = {}) {
  return {
    Image: NODE_IMAGE,
    Cmd: ['node', '-e', script],
    Labels: { [LABEL]: RUN },
    Tty: over.Tty,
    HostConfig: { NetworkMode: 'host', RestartPolicy: { Name: 'no' as const } },
  };
}

const name = (what: string) => `warmpool-${RUN}-${what}-${randomBytes(2).toString('hex')}`;

describe('Engine against the real Docker Engine', { skip: await dockerSkipReason(), timeout: 120_000 }, () => {
  const engine = new Engine();

  after(async () => {
    engine.close();
    const left = await countByLabel(SELECT);
    await removeByLabel(SELECT);
    assert.equal(left, 0, `${left} container(s) of run ${RUN} left behind`);
  });

  test('ping, version, image inspect; a missing image is IMAGE_NOT_FOUND on inspect and on create', async () => {
    await engine.ping();
    const v = await engine.version();
    assert.match(v.ApiVersion, /^1\.\d+$/);
    const img = await engine.inspectImage(NODE_IMAGE);
    assert.ok(img.RepoTags?.includes(NODE_IMAGE), `tags ${img.RepoTags}`);
    const missing = `warmpool/does-not-exist-${randomBytes(3).toString('hex')}:latest`;
    const e1 = await engineRejection(engine.inspectImage(missing), 'IMAGE_NOT_FOUND');
    assert.equal(e1.status, 404);
    const e2 = await engineRejection(engine.createContainer(name('missing'), { Image: missing, Labels: { [LABEL]: RUN } }), 'IMAGE_NOT_FOUND');
    assert.ok(e2.message.includes(missing), e2.message);
    assert.match(e2.message, /POST \/containers\/create/);
    assert.match(e2.message, /never pulls/);
  });

  test(`this engine serves the pinned Engine API version ${API_VERSION}`, async () => {
    const v = await engine.version();
    const num = (x: string) => x.split('.').map(Number) as [number, number];
    const cmp = (a: string, b: string) => num(a)[0] - num(b)[0] || num(a)[1] - num(b)[1];
    assert.ok(cmp(v.ApiVersion, API_VERSION) >= 0, `engine API ${v.ApiVersion} is older than ${API_VERSION}`);
    if (v.MinAPIVersion) assert.ok(cmp(v.MinAPIVersion, API_VERSION) <= 0, `engine no longer serves ${API_VERSION} (minimum ${v.MinAPIVersion})`);
    assert.equal(engine.apiVersion, API_VERSION);
  });

  test('create, start, inspect, list by label, logs, follow logs, rename, events, kill, remove', async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    const nm = name('life');
    const script =
      "require('http').createServer((q, s) => s.end('ok')).listen(0, '127.0.0.1', function () { console.log('READY ' + this.address().port); console.error('to stderr'); })";
    const { Id: id } = await engine.createContainer(nm, { ...nodeContainer(script), Env: ['WHO=engine-test'] });
    assert.match(id, /^[0-9a-f]{64}$/);

    // Events from before the create (since), filtered to this container by label: create, start, rename, die.
    const events: EngineEvent[] = [];
    const abort = new AbortController();
    const stream = await engine.events({ since, filters: { type: ['container'], label: [SELECT] }, signal: abort.signal }, (ev) => events.push(ev));

    await engine.startContainer(id);
    await engine.startContainer(id); // already running: 304, not an error
    const info = await engine.inspectContainer(id);
    assert.equal(info.Name, `/${nm}`);
    assert.equal(info.State.Running, true);
    assert.equal(info.Config.Labels?.[LABEL], RUN);
    assert.ok(info.Config.Env?.includes('WHO=engine-test'));
    assert.equal(info.HostConfig.NetworkMode, 'host');

    const listed = await engine.listContainers({ all: true, filters: { label: [SELECT] } });
    assert.deepEqual(
      listed.map((c) => c.Id),
      [id],
    );
    assert.equal(listed[0]!.Labels[LABEL], RUN);
    assert.equal(listed[0]!.State, 'running');
    assert.deepEqual(await engine.listContainers({ filters: { label: [`${LABEL}=someone-else`] } }), []);

    // Non-follow logs: both streams, demultiplexed (no 8-byte headers in the text).
    const text = await until('READY in the logs', async () => {
      const t = await engine.logs(id);
      return /READY \d+/.test(t) && t.includes('to stderr') ? t : undefined;
    });
    assert.ok(![...text].some((ch) => ch.charCodeAt(0) <= 8), 'no frame headers left in the text');
    const port = Number(/READY (\d+)/.exec(text)![1]);
    const res = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(await res.text(), 'ok', 'host networking, bound to 127.0.0.1');

    // Follow logs: the past is replayed, each piece tagged with its stream.
    const pieces: Array<[StreamId, string]> = [];
    const follow = new AbortController();
    const logs = await engine.followLogs(id, { signal: follow.signal }, (s, d) => pieces.push([s, d.toString('utf8')]));
    await until('both streams followed', () =>
      pieces.some(([s, t]) => s === 1 && t.includes('READY')) && pieces.some(([s, t]) => s === 2 && t.includes('to stderr')) ? true : undefined,
    );
    follow.abort();
    await logs.done; // resolves after an abort

    const renamed = `${nm}.claimed-1-x`;
    await engine.renameContainer(id, renamed);
    assert.equal((await engine.inspectContainer(id)).Name, `/${renamed}`);

    await engine.killContainer(id);
    await until('the die event', () => (events.some((e) => e.Action === 'die') ? true : undefined));
    const actions = events.filter((e) => e.Actor?.ID === id).map((e) => e.Action);
    for (const a of ['create', 'start', 'rename', 'kill', 'die']) assert.ok(actions.includes(a), `event ${a} in ${actions.join(',')}`);
    assert.equal(events.find((e) => e.Action === 'die')!.Actor?.Attributes?.exitCode, '137');
    assert.equal((await engine.inspectContainer(id)).State.Running, false);
    await engine.stopContainer(id, { t: 1 }); // already stopped: 304, not an error
    abort.abort();
    await stream.done;

    await engine.removeContainer(id, { force: true, volumes: true });
    const gone = await engineRejection(engine.inspectContainer(id), 'ENGINE_ERROR');
    assert.equal(gone.status, 404);
    assert.match(gone.message, /GET \/containers\/[0-9a-f]+\/json/);
    const again = await engineRejection(engine.removeContainer(id, { force: true }), 'ENGINE_ERROR');
    assert.equal(again.status, 404);
  });

  test('stop: SIGTERM, the container exits, the engine answers once it is down', async () => {
    const { Id: id } = await engine.createContainer(
      name('stop'),
      nodeContainer("process.on('SIGTERM', () => { console.log('bye'); process.exit(3); }); setInterval(() => {}, 1e9); console.log('up')"),
    );
    await engine.startContainer(id);
    await until('up', async () => ((await engine.logs(id)).includes('up') ? true : undefined));
    await engine.stopContainer(id, { t: 10 });
    const info = await engine.inspectContainer(id);
    assert.equal(info.State.Running, false);
    assert.equal(info.State.ExitCode, 3);
    assert.match(await engine.logs(id, { tail: 1 }), /^bye\n$/, 'tail: the last line only');
    await engine.removeContainer(id);
  });

  test('a TTY container: its logs are plain text (no multiplexing), read as is', async () => {
    const { Id: id } = await engine.createContainer(
      name('tty'),
      nodeContainer("console.log('hello from a tty'); console.error('and its stderr')", { Tty: true }),
    );
    await engine.startContainer(id);
    await until('the exit', async () => ((await engine.inspectContainer(id)).State.Running ? undefined : true));
    const told = await engine.logs(id, { tty: true });
    assert.match(told, /hello from a tty\r?\n/);
    assert.match(told, /and its stderr/);
    assert.equal(await engine.logs(id), told, 'without the tty hint the stream shows itself to be raw');
    await engine.removeContainer(id, { force: true });
  });
});

describe('Engine against a fake engine on a unix socket', () => {
  let fake: FakeEngine | undefined;
  const engines: Engine[] = [];
  const open = async (opts: { timeoutMs?: number; maxSockets?: number } = {}) => {
    fake ??= await startFakeEngine();
    const e = new Engine({ socketPath: fake.socketPath, ...opts });
    engines.push(e);
    return { engine: e, fake };
  };

  after(async () => {
    for (const e of engines) e.close();
    await fake?.close();
  });

  const fresh = async (opts: { timeoutMs?: number; maxSockets?: number } = {}) => {
    for (const e of engines.splice(0)) e.close();
    await fake?.close();
    fake = undefined;
    return open(opts);
  };

  test(`every call names the pinned API version (/v${API_VERSION}/...), streams too; the error still names the call without it`, async () => {
    const { engine, fake } = await fresh();
    fake.handle((req, res) => {
      if (req.path === '/events' || req.path.endsWith('/logs')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.end();
        return;
      }
      if (req.path === '/_ping') {
        res.writeHead(200);
        res.end('OK');
        return;
      }
      if (req.path === '/containers/gone/json') return sendJson(res, 404, { message: 'No such container: gone' });
      sendJson(res, 200, req.path.endsWith('/json') && !req.path.startsWith('/containers/') ? [] : {});
    });
    await engine.ping();
    await engine.version();
    await engine.listContainers();
    await engine.listServices();
    await engine.listTasks({ filters: { service: ['s1'] } });
    await (await engine.events({}, () => undefined)).done;
    await (await engine.followServiceLogs('s1', {}, () => undefined)).done;
    const e = await engineRejection(engine.inspectContainer('gone'), 'ENGINE_ERROR');
    assert.equal(e.call, 'GET /containers/gone/json');
    assert.equal(fake.requests.length, 8);
    for (const r of fake.requests) assert.equal(r.version, API_VERSION, `${r.method} ${r.path} named version ${r.version}`);
    assert.equal(API_VERSION, '1.41', "the types in engine-types.ts are 1.41's: change both together");
  });

  test('an engine older than the pinned version: an error that says to upgrade it', async () => {
    const { engine, fake } = await fresh();
    fake.handle((_req, res) => sendJson(res, 400, { message: 'client version 1.41 is too new. Maximum supported API version is 1.40' }));
    const e = await engineRejection(engine.version(), 'ENGINE_ERROR');
    assert.equal(e.status, 400);
    assert.match(e.message, /older than the Engine API 1\.41/);
    assert.match(e.message, /Maximum supported API version is 1\.40/);
    assert.match(e.message, /upgrade the engine to Docker 20\.10/);
  });

  test('swarm calls: service create, inspect, update with the version read, remove; tasks by service; out of sequence and not-a-manager told apart', async () => {
    const { engine, fake } = await fresh();
    let index = 5;
    fake.handle((req, res) => {
      if (req.path === '/services/create') return sendJson(res, 201, { ID: 'svc1' });
      if (req.path === '/services/svc1' && req.method === 'GET') return sendJson(res, 200, { ID: 'svc1', Version: { Index: index }, Spec: { Name: 'n' } });
      if (req.path === '/services/svc1/update') {
        if (Number(req.query.get('version')) !== index) return sendJson(res, 500, { message: 'rpc error: code = Unknown desc = update out of sequence' });
        index++;
        return sendJson(res, 200, { Warnings: null });
      }
      if (req.path === '/services/svc1' && req.method === 'DELETE') {
        res.writeHead(200);
        res.end();
        return;
      }
      if (req.path === '/tasks') return sendJson(res, 200, [{ ID: 't1', ServiceID: 'svc1' }]);
      if (req.path === '/info') return sendJson(res, 200, { Swarm: { LocalNodeState: 'inactive' } });
      sendJson(res, 503, {
        message: 'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.',
      });
    });
    const spec = { Name: 'n', Labels: { a: 'b' }, TaskTemplate: { ContainerSpec: { Image: 'img:1' }, RestartPolicy: { Condition: 'none' as const } } };
    assert.deepEqual(await engine.createService(spec), { ID: 'svc1' });
    const svc = await engine.inspectService('svc1');
    await engine.updateService('svc1', svc.Version.Index, { ...spec, Labels: { a: 'c' } });
    const stale = await rejection(engine.updateService('svc1', svc.Version.Index, spec));
    assert.ok(isOutOfSequence(stale), `a stale version is "out of sequence": ${String(stale)}`);
    assert.ok(!isOutOfSequence(await rejection(engine.listServices())), 'another failure is not');
    await assert.rejects(engine.updateService('svc1', -1, spec), /Version\.Index/);
    assert.deepEqual(await engine.listTasks({ filters: { service: ['svc1'] } }), [{ ID: 't1', ServiceID: 'svc1' }]);
    await engine.removeService('svc1');
    assert.equal((await engine.info()).Swarm?.LocalNodeState, 'inactive');
    const notManager = await engineRejection(engine.listServices(), 'ENGINE_ERROR');
    assert.match(notManager.message, /not a swarm manager/);
    assert.match(notManager.message, /docker swarm init/);

    const [create, inspect, update] = fake.requests;
    assert.deepEqual([create!.method, create!.path, JSON.parse(create!.body)], ['POST', '/services/create', spec]);
    assert.deepEqual([inspect!.method, inspect!.path], ['GET', '/services/svc1']);
    assert.deepEqual(
      [update!.method, update!.path, update!.query.get('version'), JSON.parse(update!.body).Labels],
      ['POST', '/services/svc1/update', '5', { a: 'c' }],
    );
    const tasks = fake.requests.find((r) => r.path === '/tasks')!;
    assert.deepEqual(JSON.parse(tasks.query.get('filters')!), { service: ['svc1'] });
    assert.ok(fake.requests.some((r) => r.method === 'DELETE' && r.path === '/services/svc1'));
  });

  test('a call the engine never answers fails at the configured timeout, naming the call and the socket', async () => {
    const { engine, fake } = await fresh({ timeoutMs: 50 });
    fake.handle(() => undefined); // never answers
    const e = await engineRejection(engine.createContainer('x', { Image: 'i' }), 'ENGINE_UNREACHABLE');
    assert.equal(e.errno, 'TIMEOUT');
    assert.equal(e.call, 'POST /containers/create');
    assert.match(e.message, /did not answer POST \/containers\/create within 50 ms/);
    assert.ok(e.message.includes(fake.socketPath), e.message);
    assert.match(e.message, /dockerd/);
    // A per-call limit overrides the engine's.
    const e2 = await engineRejection(engine.ping({ timeoutMs: 20 }), 'ENGINE_UNREACHABLE');
    assert.match(e2.message, /within 20 ms/);
    await until('the timed-out connections closed', () => (fake.openConnections() === 0 ? true : undefined), 5000);
  });

  test('a stream whose head never comes (a hung engine) fails at the timeout, so the caller can reopen it', async () => {
    const { engine, fake } = await fresh({ timeoutMs: 50 });
    fake.handle(() => undefined); // never answers
    const events: unknown[] = [];
    const e = await engineRejection(
      engine.events({}, (ev) => events.push(ev)),
      'ENGINE_UNREACHABLE',
    );
    assert.equal(e.errno, 'TIMEOUT');
    assert.equal(e.call, 'GET /events');
    assert.match(e.message, /did not answer GET \/events within 50 ms/);
    assert.deepEqual(events, []);
    await until('the timed-out stream connection closed', () => (fake.openConnections() === 0 ? true : undefined), 5000);
  });

  test('an AbortSignal cancels a call (and its connection)', async () => {
    const { engine, fake } = await fresh({ timeoutMs: 0 });
    fake.handle(() => undefined);
    const ac = new AbortController();
    const p = engine.listContainers({}, { signal: ac.signal });
    await until('the request at the engine', () => (fake.requests.length === 1 ? true : undefined), 5000);
    ac.abort();
    const e = await rejection(p);
    assert.equal((e as Error).name, 'AbortError');
    await until('the connection closed', () => (fake.openConnections() === 0 ? true : undefined), 5000);
    const pre = await rejection(engine.ping({ signal: AbortSignal.abort() }));
    assert.equal((pre as Error).name, 'AbortError');
  });

  test('a 500 with a JSON message becomes ENGINE_ERROR naming the call, the status and the message', async () => {
    const { engine, fake } = await fresh();
    fake.handle((req, res) => {
      if (req.path.endsWith('/start'))
        return sendJson(res, 500, { message: 'OCI runtime create failed: exec: "/no/such/binary": stat /no/such/binary: no such file or directory' });
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end('bad gateway from a front proxy');
    });
    const e = await engineRejection(engine.startContainer('abc'), 'ENGINE_ERROR');
    assert.equal(e.status, 500);
    assert.equal(e.call, 'POST /containers/abc/start');
    assert.match(e.detail, /^OCI runtime create failed/);
    assert.match(e.message, /POST \/containers\/abc\/start/);
    assert.match(e.message, /no such file or directory/);
    assert.match(e.message, /HTTP 500/);
    const e2 = await engineRejection(engine.inspectContainer('abc'), 'ENGINE_ERROR');
    assert.equal(e2.status, 502);
    assert.equal(e2.detail, 'bad gateway from a front proxy', 'a body that is not JSON is quoted as text');
  });

  test('requests carry what the engine expects: filters as JSON, booleans as 1/0, the create body and name, an update body', async () => {
    const { engine, fake } = await fresh();
    fake.handle((req, res) => {
      if (req.path === '/containers/json') return sendJson(res, 200, []);
      if (req.path === '/containers/create') return sendJson(res, 201, { Id: 'c1', Warnings: [] });
      if (req.path === '/containers/c1/update') return sendJson(res, 200, { Warnings: [] });
      res.writeHead(204);
      res.end();
    });
    await engine.listContainers({ all: true, filters: { label: ['a=b', 'c'] } });
    await engine.createContainer('my name', { Image: 'img:1', Env: ['A=1'] });
    await engine.removeContainer('c1', { force: true, volumes: true });
    await engine.renameContainer('c1', 'new.name');
    assert.deepEqual(await engine.updateContainer('c1', { CpuShares: 1024 }), { Warnings: [] });
    const [list, create, remove, rename, update] = fake.requests;
    assert.equal(list!.query.get('all'), '1');
    assert.deepEqual(JSON.parse(list!.query.get('filters')!), { label: ['a=b', 'c'] });
    assert.equal(create!.method, 'POST');
    assert.equal(create!.query.get('name'), 'my name');
    assert.deepEqual(JSON.parse(create!.body), { Image: 'img:1', Env: ['A=1'] });
    assert.deepEqual([remove!.method, remove!.path, remove!.query.get('force'), remove!.query.get('v')], ['DELETE', '/containers/c1', '1', '1']);
    assert.deepEqual([rename!.path, rename!.query.get('name')], ['/containers/c1/rename', 'new.name']);
    assert.deepEqual([update!.method, update!.path, JSON.parse(update!.body)], ['POST', '/containers/c1/update', { CpuShares: 1024 }]);
  });

  test('ordinary calls share one keep-alive connection; concurrent ones at most maxSockets; streams use their own', async () => {
    const { engine, fake } = await fresh({ maxSockets: 3 });
    const held: Array<() => void> = [];
    fake.handle((req, res) => {
      if (req.path === '/events') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
        held.push(() => res.end());
        return;
      }
      sendJson(res, 200, { Version: 'fake', ApiVersion: '1.41', Os: 'linux', Arch: 'x' });
    });
    for (let i = 0; i < 20; i++) await engine.version();
    assert.equal(fake.connections(), 1, '20 calls one after another, one connection');
    await Promise.all(Array.from({ length: 30 }, () => engine.version()));
    assert.ok(fake.connections() <= 3, `30 concurrent calls opened ${fake.connections()} connections; maxSockets is 3`);
    const before = fake.connections();
    // Three open event streams do not take the pool's connections: calls still go through.
    const streams = await Promise.all([1, 2, 3].map(() => engine.events({}, () => undefined)));
    await engine.version();
    assert.equal(fake.connections(), before + 3, 'one new connection per stream, none for the call');
    for (const end of held) end();
    await Promise.all(streams.map((s) => s.done));
  });

  test('a pooled connection the engine dropped is resent once for GET (not for POST)', async () => {
    const { engine, fake } = await fresh();
    let n = 0;
    fake.handle((req, res, raw) => {
      n++;
      // The second request arrives on the kept-alive connection: drop it unanswered, like an engine that
      // closed an idle connection just as the client reused it.
      if (n === 2 || n === 4) return raw.socket.destroy();
      sendJson(res, 200, []);
    });
    await engine.listContainers();
    assert.deepEqual(await engine.listContainers(), [], 'resent on a new connection');
    assert.equal(fake.connections(), 2);
    assert.equal(fake.requests.length, 3);
    // A POST is not resent: it may have been carried out.
    const e = await engineRejection(engine.renameContainer('c', 'd'), 'ENGINE_UNREACHABLE');
    assert.equal(e.errno, 'ECONNRESET');
    assert.equal(fake.requests.length, 4);
  });

  test('events: lines cut across chunks (mid-line, mid-character) are whole events; bad lines reported; abort ends the stream', async () => {
    const { engine, fake } = await fresh();
    let stream: import('node:http').ServerResponse | undefined;
    let closed = false;
    fake.handle((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      res.on('close', () => {
        closed = true;
      });
      stream = res;
    });
    const events: EngineEvent[] = [];
    const bad: string[] = [];
    const ac = new AbortController();
    const s = await engine.events(
      { since: 42, filters: { type: ['container'] }, signal: ac.signal },
      (ev) => events.push(ev),
      (l) => bad.push(l),
    );
    assert.equal(fake.requests[0]!.query.get('since'), '42');
    const text =
      JSON.stringify({ Action: 'die', time: 1, Actor: { ID: 'a', Attributes: { name: 'zürich-☃' } } }) +
      '\n' +
      JSON.stringify({ Action: 'destroy', time: 2 }) +
      '\nnot json\n' +
      JSON.stringify({ Action: 'start', time: 3 }) +
      '\n';
    const bytes = Buffer.from(text);
    // One HTTP chunk per cut, at awkward places: inside a line, inside the two-byte ü and three-byte ☃.
    const u = bytes.indexOf(Buffer.from('ü'));
    const snow = bytes.indexOf(Buffer.from('☃'));
    const cuts = [5, u + 1, snow + 1, snow + 2, bytes.indexOf(10) + 1, bytes.length - 3, bytes.length];
    let at = 0;
    for (const c of cuts) {
      stream!.write(bytes.subarray(at, c));
      at = c;
    }
    await until('three events', () => (events.length >= 3 ? true : undefined), 5000);
    assert.deepEqual(
      events.map((e) => e.Action),
      ['die', 'destroy', 'start'],
    );
    assert.equal(events[0]!.Actor?.Attributes?.name, 'zürich-☃');
    assert.deepEqual(bad, ['not json']);
    ac.abort();
    await s.done;
    await until('the engine to see the stream closed', () => (closed ? true : undefined), 5000);
  });

  test('events: the engine ending the stream resolves done; a dropped connection rejects it', async () => {
    const { engine, fake } = await fresh();
    let res: import('node:http').ServerResponse | undefined;
    fake.handle((_req, r) => {
      r.writeHead(200, { 'content-type': 'application/json' });
      r.flushHeaders();
      res = r;
    });
    const got: EngineEvent[] = [];
    const a = await engine.events({}, (ev) => got.push(ev));
    res!.end(JSON.stringify({ Action: 'die' })); // last line without a newline
    await a.done;
    assert.deepEqual(
      got.map((e) => e.Action),
      ['die'],
      'the last line is delivered at the end',
    );
    const b = await engine.events({}, () => undefined);
    res!.socket!.destroy();
    const e = await engineRejection(b.done, 'ENGINE_UNREACHABLE');
    assert.equal(e.call, 'GET /events');
  });

  test('follow logs: multiplexed frames cut mid-header and mid-payload are demultiplexed by stream', async () => {
    const { engine, fake } = await fresh();
    let res: import('node:http').ServerResponse | undefined;
    fake.handle((_req, r) => {
      r.writeHead(200, { 'content-type': 'application/vnd.docker.raw-stream' });
      r.flushHeaders();
      res = r;
    });
    const frame = (stream: number, text: string) => {
      const payload = Buffer.from(text);
      const h = Buffer.alloc(8);
      h[0] = stream;
      h.writeUInt32BE(payload.length, 4);
      return Buffer.concat([h, payload]);
    };
    const bytes = Buffer.concat([frame(1, 'READY\n'), frame(2, 'warn: x\n'), frame(1, 'line two\n')]);
    const out: string[] = [];
    const err: string[] = [];
    const ac = new AbortController();
    const s = await engine.followLogs('c1', { signal: ac.signal }, (id, d) => (id === 2 ? err : out).push(d.toString()));
    assert.equal(fake.requests[0]!.query.get('follow'), '1');
    // Cuts: inside the first header, between header and payload, inside the second header, mid-payload.
    for (const [a, b] of [
      [0, 3],
      [3, 8],
      [8, 14],
      [14, 17],
      [17, 30],
      [30, bytes.length],
    ] as const)
      res!.write(bytes.subarray(a, b));
    await until('all three frames', () => (out.join('') === 'READY\nline two\n' && err.join('') === 'warn: x\n' ? true : undefined), 5000);
    ac.abort();
    await s.done;
  });

  test('non-follow logs over a response cut into chunks', async () => {
    const { engine, fake } = await fresh();
    const frame = (stream: number, text: string) => Buffer.concat([Buffer.from([stream, 0, 0, 0, 0, 0, 0, Buffer.byteLength(text)]), Buffer.from(text)]);
    fake.handle((req, res) => {
      assert.equal(req.query.get('tail'), '20');
      res.writeHead(200);
      const bytes = Buffer.concat([frame(1, 'a\n'), frame(2, 'b\n')]);
      res.write(bytes.subarray(0, 5));
      res.end(bytes.subarray(5));
    });
    assert.equal(await engine.logs('c1', { tail: 20 }), 'a\nb\n');
  });

  test('no engine: a missing socket and a refused one are ENGINE_UNREACHABLE, naming the socket and what to do', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warmpool-engine-'));
    try {
      const missing = new Engine({ socketPath: join(dir, 'nothing.sock') });
      const e1 = await engineRejection(missing.ping(), 'ENGINE_UNREACHABLE');
      assert.equal(e1.errno, 'ENOENT');
      assert.ok(e1.message.includes(join(dir, 'nothing.sock')), e1.message);
      assert.match(e1.message, /no socket there: is dockerd running/);

      // A socket file nobody listens on (its server was SIGKILLed, so the file stays): ECONNREFUSED.
      const stale = join(dir, 'stale.sock');
      const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => console.log('up'))`], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      const refused = new Engine({ socketPath: stale });
      const e2 = await engineRejection(refused.listContainers(), 'ENGINE_UNREACHABLE');
      assert.equal(e2.errno, 'ECONNREFUSED');
      assert.ok(e2.message.includes(stale));
      assert.match(e2.message, /GET \/containers\/json/);
      assert.match(e2.message, /dockerd/);
      // Streams too.
      await engineRejection(
        refused.events({}, () => undefined),
        'ENGINE_UNREACHABLE',
      );
      missing.close();
      refused.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('DOCKER_HOST tcp://host:port: plain HTTP to a TCP engine', async () => {
    const server = createServer((req, res) => sendJson(res, 200, { Version: 'tcp-fake', ApiVersion: '1.41', Os: 'linux', Arch: 'x', path: req.url }));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const engine = new Engine({ env: { DOCKER_HOST: `tcp://127.0.0.1:${port}` } });
    try {
      assert.equal(engine.where, `http://127.0.0.1:${port}`);
      assert.equal((await engine.version()).Version, 'tcp-fake');
    } finally {
      engine.close();
      await new Promise((r) => server.close(r));
    }
  });
});

describe('DOCKER_HOST and options', () => {
  const table: Array<[string | undefined, Record<string, string>, unknown]> = [
    [undefined, {}, { socketPath: '/var/run/docker.sock' }],
    ['', {}, { socketPath: '/var/run/docker.sock' }],
    ['unix:///run/user/1000/docker.sock', {}, { socketPath: '/run/user/1000/docker.sock' }],
    ['tcp://10.0.0.5:2376', {}, { host: '10.0.0.5', port: 2376 }],
    ['tcp://docker.internal', {}, { host: 'docker.internal', port: 2375 }],
    ['http://[::1]:2375', {}, { host: '::1', port: 2375 }],
    ['tcp://10.0.0.5:2376', { DOCKER_TLS_VERIFY: '0' }, { host: '10.0.0.5', port: 2376 }],
  ];
  for (const [value, env, want] of table) {
    test(`${JSON.stringify(value)} ${JSON.stringify(env)}`, () => assert.deepEqual(parseDockerHost(value, env), want));
  }
  for (const [value, env, why] of [
    ['ssh://me@host', {}, /ssh:\/\/ is not supported.*ssh -nNL/],
    ['npipe:////./pipe/docker_engine', {}, /npipe:\/\/ is not supported/],
    ['unix://relative.sock', {}, /must be absolute/],
    ['tcp://10.0.0.5:2376', { DOCKER_TLS_VERIFY: '1' }, /plain HTTP only/],
    ['/var/run/docker.sock', {}, /expected a URL/],
  ] as const) {
    test(`${value} is refused, saying what works`, () => {
      assert.throws(
        () => parseDockerHost(value, env),
        (e: unknown) => isWarmpoolError(e, 'CONFIG_INVALID') && why.test(e.message) && e.message.includes(value),
      );
    });
  }
  test('the constructor rejects unknown options and bad values', () => {
    assert.throws(() => new Engine({ socketpath: '/x' } as never), /unknown option socketpath/);
    assert.throws(() => new Engine({ timeoutMs: -1 }), /timeoutMs/);
    assert.throws(() => new Engine({ maxSockets: 0 }), /maxSockets/);
    assert.throws(() => new Engine({ host: 'unix:///a', socketPath: '/b' }), /not both/);
  });
});

describe('stream parsers (literal bytes, cut at every position)', () => {
  // stdout "hi\n", stderr "oops\n", an empty stdout frame, stdout "é\n" (two UTF-8 bytes).
  const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
  const mux = hex('0100000000000003 68690a 0200000000000005 6f6f70730a 0100000000000000 0100000000000003 c3a90a');

  test('Demuxer: every single cut and every pair of cuts gives the same frames', () => {
    const want = [
      [1, 'hi\n'],
      [2, 'oops\n'],
      [1, 'é\n'],
    ];
    const run = (cuts: number[]) => {
      const got: Array<[StreamId, Buffer]> = [];
      const d = new Demuxer((s, b) => got.push([s, Buffer.from(b)]));
      let at = 0;
      for (const c of [...cuts, mux.length]) {
        d.push(mux.subarray(at, c));
        at = c;
      }
      // Merge consecutive pieces of one stream, then decode.
      const merged: Array<[number, Buffer]> = [];
      for (const [s, b] of got) {
        const last = merged[merged.length - 1];
        if (last && last[0] === s) last[1] = Buffer.concat([last[1], b]);
        else merged.push([s, b]);
      }
      return merged.map(([s, b]) => [s, b.toString('utf8')]);
    };
    for (let i = 0; i <= mux.length; i++) {
      for (let j = i; j <= mux.length; j++) assert.deepEqual(run([i, j]), want, `cut at ${i} and ${j}`);
    }
  });

  test('Demuxer: a raw (TTY) stream is passed on as stdout, even when its first chunk is one byte', () => {
    const got: string[] = [];
    const d = new Demuxer((s, b) => got.push(`${s}:${b.toString()}`));
    d.push(Buffer.from('h'));
    d.push(Buffer.from('ello\n'));
    assert.deepEqual(got.join('|'), '1:h|1:ello\n');
    assert.equal(demuxToString(Buffer.from('plain tty text\r\n')), 'plain tty text\r\n');
    assert.equal(demuxToString(mux), 'hi\noops\né\n');
  });

  test('LineSplitter: lines across chunks, \\r\\n, a character cut in two, the last line on flush', () => {
    const lines: string[] = [];
    const s = new LineSplitter((l) => lines.push(l));
    const bytes = Buffer.from('one\r\ntw☃o\nthree');
    const snow = bytes.indexOf(Buffer.from('☃'));
    s.push(bytes.subarray(0, 2));
    s.push(bytes.subarray(2, snow + 1));
    s.push(bytes.subarray(snow + 1, snow + 2));
    s.push(bytes.subarray(snow + 2));
    assert.deepEqual(lines, ['one', 'tw☃o']);
    s.flush();
    assert.deepEqual(lines, ['one', 'tw☃o', 'three']);
  });
});
