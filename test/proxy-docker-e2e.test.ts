// End to end through the proxy with the Docker runtime: createWarmpool with the stand-in image on
// the real engine, host networking on 127.0.0.1. Entry → cookie → deep link → editor page →
// WebSocket session with the full state; a second visit reuses the container; the container
// killed mid-session gives the clear page and closes the socket; nothing left afterwards.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createWarmpool, type Warmpool } from '../index.js';
import { parseConfig } from '../core/config.js';
import { MemoryTrafficLog } from '../pool/traffic-log.js';
import { PlutoClient } from '../examples/standin/driver.js';
import { countByLabel, dockerSkipReason, idsByLabel, inspectContainer, killContainer, removeByLabel } from './helpers/docker.js';
import { CookieJar, closeServer, follow, listen, request } from './helpers/http.js';
import { eventually, waitForStatus } from './helpers/wait.js';

const DEPLOYMENT = `t-pdock-${process.pid}-${randomBytes(3).toString('hex')}`;
const SELECT = `warmpool.deployment=${DEPLOYMENT}`;

describe('proxy over the Docker runtime', { skip: await dockerSkipReason(), timeout: 180_000 }, () => {
  let wp: Warmpool;
  let server: Server;
  let base = '';
  let dir = '';
  const log = new MemoryTrafficLog();

  before(async () => {
    const r = spawnSync('bash', ['scripts/build-images.sh'], { stdio: ['ignore', 'inherit', 'inherit'] });
    assert.equal(r.status, 0, 'scripts/build-images.sh failed');
    dir = mkdtempSync(join(tmpdir(), 'wp-pdock-'));
    const config = parseConfig(`
deployment: ${DEPLOYMENT}
stateDir: ${dir}
ports: { from: 45000, to: 45999 }
apps:
  - name: vdma
    runtime: docker
    image: warmpool/standin:latest
    env: { STATE_BYTES: 120000 }
    deepLink: /open?path=webapp.jl
    readiness: { log: "^READY$", timeout: 60s }
    pool: { warm: 2, max: 3 }
    limits: { cpus: 0.5, memory: 256m }
    classifier: pluto
    secret: { env: PLUTO_SECRET, inject: { query: secret } }
`);
    wp = await createWarmpool(config, { env: { WARMPOOL_COOKIE_KEY: 'docker-e2e-key-0123456789abcdef' }, trafficLog: log, log: () => undefined });
    server = createServer((req, res) => wp.handleRequest(req, res));
    server.on('upgrade', (req, s, head) => wp.handleUpgrade(req, s, head));
    base = `http://127.0.0.1:${await listen(server)}`;
    await waitForStatus(wp.fleet, 'vdma', (s) => s.ready === 2, 60_000);
  });

  after(async () => {
    await wp?.close(false);
    if (server) await closeServer(server);
    const left = await countByLabel(SELECT);
    await removeByLabel(SELECT);
    rmSync(dir, { recursive: true, force: true });
    assert.equal(left, 0, 'no container left behind');
    assert.equal(wp.openSockets(), 0, 'proxy sockets back to zero');
  });

  test('entry → cookie → deep link → editor → WebSocket with the full state; a second visit reuses the container', async () => {
    const jar = new CookieJar();
    const { hops, final, url } = await follow(`${base}/vdma/`, { jar, headers: { accept: 'text/html' } });
    assert.deepEqual(
      hops.map((h) => h.reply.status),
      [302, 200],
    );
    assert.match(url, /\/vdma\/edit\?id=/);
    assert.match(final.text, /id="status"/);
    assert.doesNotMatch(hops.map((h) => JSON.stringify(h.reply.headers) + h.reply.text).join(''), /secret=/, 'no secret reaches the visitor');

    const [session] = wp.fleet.liveSessions();
    await wp.fleet.claimsRecorded(); // recorded at the claim's first use (the deep link's answer), in the background
    const [mine] = await idsByLabel([SELECT, `warmpool.instance=${session!.target.instanceId}`], { all: false });
    assert.ok((await inspectContainer(mine!)).Name.includes('.claimed-'), 'the claim is recorded on the engine (container name)');

    const client = await PlutoClient.open(`${base.replace('http', 'ws')}/vdma/`, { cookie: jar.header('/vdma/') });
    const fullState = await client.start();
    assert.ok(fullState >= 120_000, `full state of ${fullState} bytes received through the proxy`);
    const echo = await client.setBond(42);
    assert.ok(echo.bytes > 0);
    client.close();

    const again = await request(`${base}/vdma/`, { jar, headers: { accept: 'text/html' } });
    assert.equal(again.status, 302);
    assert.equal(wp.fleet.liveSessions().length, 1, 'no second claim');
    assert.equal(wp.fleet.liveSessions()[0]!.target.instanceId, session!.target.instanceId);
  });

  test('a container killed mid-session: the socket closes and the cookie gets the clear page', async () => {
    const before = new Set(wp.fleet.liveSessions().map((x) => x.id));
    const jar = new CookieJar();
    await follow(`${base}/vdma/`, { jar, headers: { accept: 'text/html' } });
    const target = wp.fleet.liveSessions().find((x) => !before.has(x.id))!;
    assert.ok(target, 'a new session');
    const client = await PlutoClient.open(`${base.replace('http', 'ws')}/vdma/`, { cookie: jar.header('/vdma/') });
    await client.start();
    const [container] = await idsByLabel([SELECT, `warmpool.instance=${target.target.instanceId}`], { all: false });
    await killContainer(container!);
    await client.closed;
    const page = await request(`${base}/vdma/edit?id=x`, { jar, headers: { accept: 'text/html' } });
    assert.equal(page.status, 410);
    assert.match(page.text, /stopped unexpectedly/);
    assert.match(page.text, /\/vdma\/\?fresh=1/);
    await eventually(async () => (await idsByLabel([`warmpool.instance=${target.target.instanceId}`])).length === 0, 'the dead container to be removed');
    await waitForStatus(wp.fleet, 'vdma', (st) => st.claimed === 1 && st.ready === 2, 60_000);
  });
});
