// docker-compose.yml deployed with `docker stack deploy` on the single-node swarm: warmpool runs as
// warmpool/warmpool:latest (the Dockerfile, built offline by scripts/build-images.sh) and creates the
// stand-in's instance services through the mounted socket. healthz, a visit (entry → 302 with the
// cookie → deep link → editor page 200 → a WebSocket exchange), the image's HEALTHCHECK, and on
// `docker stack rm` warmpool removing its own instances. The after hook removes whatever is left by
// label (stack services, instance services and containers, configs, secrets, networks, volumes) and
// asserts nothing is.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PlutoClient } from '../examples/standin/driver.js';
import { SWARM_LABEL } from '../pool/runtimes/swarm-labels.js';
import { dockerCli, inspectContainer } from './helpers/docker.js';
import { CookieJar, follow, request } from './helpers/http.js';
import { containersByLabel, inspectService, removeServicesByLabel, servicesByLabel, swarmSkipReason } from './helpers/swarm.js';
import { eventually, until } from './helpers/wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SOCKET = '/var/run/docker.sock';
const STACK = `t-stack-${process.pid}-${randomBytes(3).toString('hex')}`;
// warmpool's deployment label: its instance services are not the stack's, they carry this one.
const DEPLOYMENT = STACK;
const IN_STACK = `com.docker.stack.namespace=${STACK}`;
const OURS = `warmpool.deployment=${DEPLOYMENT}`;
// warmpool listens on the host network: a port of its own per run, below the ephemeral range (32768+);
// the instances' ports come right after it (probed by warmpool before use).
const PORT = 32000 + (process.pid % 19) * 40;
const BASE = `http://127.0.0.1:${PORT}`;
const STATE_BYTES = 20_000;

/** Why the suite cannot run here (printed), or undefined. Throws instead when Docker is required. */
async function skipReason(): Promise<string | undefined> {
  const swarm = await swarmSkipReason();
  if (swarm) return swarm;
  const tcp = process.env.DOCKER_HOST && !process.env.DOCKER_HOST.startsWith(`unix://${SOCKET}`);
  if (!tcp && existsSync(SOCKET)) return undefined;
  const why = `the stack mounts ${SOCKET}, and the engine is ${tcp ? `at DOCKER_HOST=${process.env.DOCKER_HOST}` : 'not behind it'}`;
  if (process.env.WARMPOOL_REQUIRE_DOCKER === '1') throw new Error(`${why}, and WARMPOOL_REQUIRE_DOCKER=1`);
  console.error(`NOTICE: ${why}: stack deploy suite skipped`);
  return why;
}

/** `docker args` with extra environment (the compose file's variables); stdout, or a rejection with stderr. */
function docker(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('docker', args, { cwd: ROOT, env: { ...process.env, ...env }, timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`docker ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

const ids = async (kind: 'config' | 'secret' | 'network' | 'volume', selector: string): Promise<string[]> =>
  (await dockerCli([kind, 'ls', '-q', '--filter', `label=${selector}`])).split('\n').filter(Boolean);

/** The warmpool task's container (running or not), once there is one. */
const warmpoolContainer = async (): Promise<string | undefined> => (await containersByLabel(`com.docker.swarm.service.name=${STACK}_warmpool`))[0];

/** What to read when something times out: the tasks, and the warmpool container's output. */
async function diagnose(): Promise<string> {
  const tasks = await dockerCli(['service', 'ps', '--no-trunc', `${STACK}_warmpool`]).catch((e: Error) => e.message);
  const c = await warmpoolContainer();
  const logs = c ? await dockerCli(['logs', '--tail', '40', c]).catch((e: Error) => e.message) : '(no container)';
  return `\n--- tasks ---\n${tasks}\n--- warmpool output ---\n${logs}`;
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms: number): Promise<T> {
  try {
    return await until(what, fn, ms, 250);
  } catch (e) {
    throw new Error(`${(e as Error).message}${await diagnose()}`);
  }
}

const figures: string[] = [];
const t0 = Date.now();
const mark = (what: string) => figures.push(`${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);

describe('docker stack deploy -c docker-compose.yml (warmpool in its image, on the swarm)', { skip: await skipReason(), timeout: 300_000 }, () => {
  let dir = '';
  let removedByStack = false;

  before(async () => {
    const built = spawnSync('bash', ['scripts/build-images.sh'], {
      cwd: ROOT,
      env: { ...process.env, IMAGES: 'all' },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    assert.equal(built.status, 0, 'scripts/build-images.sh (IMAGES=all) failed');
    mark('images ready');
    dir = mkdtempSync(join(tmpdir(), 'wp-stack-'));
    writeFileSync(
      join(dir, 'warmpool.yaml'),
      `
listen: { host: 127.0.0.1, port: ${PORT} }
deployment: ${DEPLOYMENT}
ports: { from: ${PORT + 1}, to: ${PORT + 39} }
trustedProxies: [127.0.0.1]
apps:
  - name: standin
    runtime: swarm
    image: warmpool/standin:latest
    env: { STATE_BYTES: ${STATE_BYTES} }
    deepLink: /open?path=webapp.jl
    readiness: { log: "^READY$", timeout: 60s }
    pool: { warm: 1, max: 2 }
    limits: { cpus: 0.5, memory: 256m }
    classifier: pluto
    secret: { env: PLUTO_SECRET, inject: { query: secret } }
`,
    );
    writeFileSync(join(dir, 'cookie.key'), `${randomBytes(32).toString('base64url')}\n`, { mode: 0o644 });
    const started = Date.now();
    await docker(['stack', 'deploy', '--resolve-image', 'never', '-c', 'docker-compose.yml', STACK], {
      DOCKER_GID: String(statSync(SOCKET).gid),
      WARMPOOL_YAML: join(dir, 'warmpool.yaml'),
      WARMPOOL_KEY: join(dir, 'cookie.key'),
      WARMPOOL_REPLICA: 'stack-test',
      // No nginx image offline: the service is created, with no task.
      NGINX_REPLICAS: '0',
    });
    mark('stack deployed');
    await waitFor(
      'GET /_warmpool/healthz to answer 200',
      async () => {
        const r = await request(`${BASE}/_warmpool/healthz`).catch(() => undefined);
        return r?.status === 200 ? r : undefined;
      },
      60_000,
    );
    figures.push(`deploy → healthz 200: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    mark('healthz 200');
  });

  after(async () => {
    // Whatever the tests left: the stack, then what warmpool made, then what the stack made besides services.
    if (!removedByStack) await docker(['stack', 'rm', STACK]).catch(() => undefined);
    await eventually(async () => (await containersByLabel(IN_STACK)).length === 0, 'the warmpool container to stop', 70_000, 250).catch(async () => {
      await dockerCli(['rm', '-f', '-v', ...(await containersByLabel(IN_STACK))]).catch(() => undefined);
    });
    await removeServicesByLabel(OURS);
    await removeServicesByLabel(IN_STACK);
    for (const kind of ['config', 'secret', 'network'] as const) {
      const left = await ids(kind, IN_STACK);
      if (left.length > 0) await dockerCli([kind, 'rm', ...left]).catch(() => undefined);
    }
    // The named volume (stateDir) outlives docker stack rm by design; this one was the test's.
    await eventually(async () => (await containersByLabel(OURS)).length === 0, 'the instance containers to go', 30_000, 250).catch(() => undefined);
    const volumes = await ids('volume', IN_STACK);
    if (volumes.length > 0) await dockerCli(['volume', 'rm', ...volumes]).catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
    console.log(`# stack deploy: ${figures.join('; ')}`);

    const left = {
      stackServices: await servicesByLabel(IN_STACK),
      stackContainers: await containersByLabel(IN_STACK),
      instanceServices: await servicesByLabel(OURS),
      instanceContainers: await containersByLabel(OURS),
      configs: await ids('config', IN_STACK),
      secrets: await ids('secret', IN_STACK),
      networks: await ids('network', IN_STACK),
      volumes: await ids('volume', IN_STACK),
    };
    assert.deepEqual(
      left,
      { stackServices: [], stackContainers: [], instanceServices: [], instanceContainers: [], configs: [], secrets: [], networks: [], volumes: [] },
      'nothing left behind',
    );
  });

  test("warmpool runs as uid 1000 in the socket's group, on the host network, on a manager", async () => {
    const c = await waitFor('the warmpool container', warmpoolContainer, 10_000);
    const info = await inspectContainer(c);
    assert.equal((info.Config as { User?: string }).User, `1000:${statSync(SOCKET).gid}`);
    assert.equal(info.HostConfig.NetworkMode, 'host');
    const { Spec } = await inspectService(`${STACK}_warmpool`);
    assert.deepEqual(Spec.TaskTemplate.Placement?.Constraints, ['node.role == manager']);
  });

  test('a visit: entry 302 with the cookie → deep link → editor 200 → WebSocket exchange', async () => {
    // A warm instance first: warmpool prints its pool status on every change.
    await waitFor(
      'a ready instance (warmpool prints "standin: 1 ready")',
      async () => {
        const c = await warmpoolContainer();
        const out = c ? await dockerCli(['logs', c]).catch(() => '') : '';
        return /standin: [1-9]\d* ready/.test(out) ? true : undefined;
      },
      90_000,
    );
    mark('instance ready');

    const jar = new CookieJar();
    const entry = await request(`${BASE}/standin/`, { jar, headers: { accept: 'text/html' } });
    assert.equal(entry.status, 302);
    assert.match(String(entry.headers.location), /^\/standin\/edit\?id=/, 'straight where the deep link leads');
    assert.match(String(entry.headers['set-cookie']), /^warmpool_standin=[^;]+;.*HttpOnly/);
    const deep = await follow(new URL(entry.headers.location!, BASE).toString(), { jar, headers: { accept: 'text/html' } });
    assert.equal(deep.final.status, 200, `deep link: ${deep.hops.map((h) => `${h.reply.status} ${h.url}`).join(' → ')}`);
    assert.match(deep.url, /\/standin\/edit\?id=/);
    assert.match(deep.final.text, /id="status"/);

    // The claim is on the engine: a service label written by compare-and-swap, from inside the container.
    const claimed = [];
    for (const id of await servicesByLabel(OURS)) {
      if ((await inspectService(id)).Spec.Labels?.[SWARM_LABEL.claimSession]) claimed.push(id);
    }
    assert.equal(claimed.length, 1, 'one instance service carries the claim');

    const client = await PlutoClient.open(`${BASE.replace('http', 'ws')}/standin/`, { cookie: jar.header('/standin/') });
    const fullState = await client.start();
    assert.ok(fullState >= STATE_BYTES, `the notebook state (${fullState} bytes) came through`);
    const echo = await client.setBond(42);
    assert.ok(echo.bytes > 0);
    assert.deepEqual(await client.close(), { code: 1000, reason: 'byebye' });
    mark('visit done');
  });

  test("the image's HEALTHCHECK (node, asking /_warmpool/healthz) reports healthy", async () => {
    const c = (await warmpoolContainer())!;
    // First probe 10 s (the interval) after the start.
    const status = await waitFor(
      'Docker to call the container healthy',
      async () => {
        const s = (await inspectContainer(c)).State as { Health?: { Status: string } };
        return s.Health?.Status === 'healthy' || s.Health?.Status === 'unhealthy' ? s.Health.Status : undefined;
      },
      60_000,
    );
    assert.equal(status, 'healthy');
    mark('healthy');
  });

  test('docker stack rm: warmpool, stopped, removes its instance services', async () => {
    assert.ok((await servicesByLabel(OURS)).length > 0, 'instances to remove');
    await docker(['stack', 'rm', STACK]);
    removedByStack = true;
    await waitFor(
      "the stack's services and warmpool's instance services to go",
      async () => ((await servicesByLabel(IN_STACK)).length === 0 && (await servicesByLabel(OURS)).length === 0 ? true : undefined),
      60_000,
    );
    mark('stack removed, instances gone');
  });
});
