// Class-day resilience on the real Docker Engine, through the real `warmpool start` (runtime docker,
// host networking, warmpool/standin:latest): SIGKILLed while containers warm, right after a claim and
// mid-refill, then started again at once; and containers that die or are removed behind warmpool's
// back (docker kill, docker rm -f), noticed from the engine's events: the visitor gets the ended page
// within a second. Issue "Class-day resilience".

import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseName } from '../pool/runtimes/docker-labels.js';
import type { Cli, Progress } from './helpers/cli.js';
import {
  deploymentContainers,
  dockerCli,
  dockerSkipReason,
  noOrphanContainers,
  removeByLabel,
  type DeploymentContainer as Container,
} from './helpers/docker.js';
import { request, type CookieJar } from './helpers/http.js';
import { claim, cleanupSites, killAndRestart, start, type Site } from './helpers/process-site.js';
import { until } from './helpers/wait.js';

const IMAGE = 'warmpool/standin:latest';
// One deployment per site: its label selects exactly what a test created (others share the engine).
const RUN = `t-drestart-${process.pid}-${randomBytes(3).toString('hex')}`;
/** Noticing a container that died or was removed, from the engine's events (the class-day goal: "within a second"). */
const NOTICE_WITHIN_MS = 1000;

const made: Site[] = [];
let seq = 0;

/** A config for one docker app `demo` (host networking), its own deployment label. */
function site(startupMs: number, pool = '{ warm: 2, max: 6, parallel: 2 }'): Site {
  const dir = mkdtempSync(join(tmpdir(), 'wp-drestart-'));
  const s: Site = { dir, file: join(dir, 'warmpool.yaml'), stateDir: join(dir, 'state'), marker: '', deployment: `${RUN}-${seq++}` };
  made.push(s);
  writeFileSync(
    s.file,
    `
listen: { host: 127.0.0.1, port: 0 }
deployment: ${s.deployment}
stateDir: ${s.stateDir}
ports: { from: 37000, to: 37999 }
apps:
  - name: demo
    runtime: docker
    image: ${IMAGE}
    network: host
    env: { STARTUP_DELAY_MS: ${startupMs}, STATE_BYTES: 2000 }
    deepLink: /open?path=webapp.jl
    readiness: { log: "^READY$", timeout: 60s }
    pool: ${pool}
    secret: { env: PLUTO_SECRET, inject: { query: secret } }
`,
  );
  return s;
}

/** The deployment's containers, from the docker CLI (not warmpool's own engine client). */
const containers = (s: Site): Promise<Container[]> => deploymentContainers(s.deployment);

/** The cookie reaches a live editor; its container runs and carries the claim in its name (for the next restart). */
async function routesToOwn(url: string, s: Site, v: { jar: CookieJar; session: string; instance: string }): Promise<void> {
  const r = await request(`${url}/demo/open?path=webapp.jl`, { jar: v.jar, headers: { accept: 'text/html' } });
  assert.equal(r.status, 302, `session ${v.session} answered ${r.status}: ${r.text.slice(0, 300)}`);
  assert.match(String(r.headers.location), /edit\?id=/, 'the notebook answered, through the session');
  await until(
    `the claim of ${v.session} in the name of container ${v.instance}`,
    async () => {
      const c = (await containers(s)).find((x) => x.instance === v.instance);
      return c?.running && parseName(c.name).claim?.session === v.session ? true : undefined;
    },
    10_000,
  );
}

const noOrphans = (s: Site, cli: Cli): Promise<void> => noOrphanContainers(() => containers(s), cli);

async function stopClean(s: Site, cli: Cli): Promise<void> {
  const exit = await cli.kill('SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null }, cli.output());
  assert.deepEqual(await containers(s), [], 'every container removed');
}

const settled = (n: number) => (p: Progress) => p.ready === 2 && p.starting === 0 && p.claimed === n;

/** Polls the cookie until it gets the ended page; resolves with how long that took from `from`. */
async function endedAfter(url: string, v: { jar: CookieJar }, from: number, why: RegExp): Promise<number> {
  const page = await until(
    'the ended page',
    async () => {
      const r = await request(`${url}/demo/open?path=webapp.jl`, { jar: v.jar, headers: { accept: 'text/html' } });
      return r.status === 410 ? r : undefined;
    },
    10_000,
    10,
  );
  const ms = Date.now() - from;
  assert.match(page.text, /This session has ended/);
  assert.match(page.text, why);
  assert.match(page.text, /\/demo\/\?fresh=1/, 'a button for a fresh instance');
  return ms;
}

describe('class-day restarts and vanished containers on the Docker Engine', { skip: await dockerSkipReason(), timeout: 300_000 }, () => {
  before(() => {
    // Idempotent and offline (a no-op when the images match dist/): never test a stale stand-in.
    const r = spawnSync('bash', [fileURLToPath(new URL('../../scripts/build-images.sh', import.meta.url))], {
      stdio: ['ignore', 'inherit', 'inherit'],
      timeout: 300_000,
    });
    assert.equal(r.status, 0, 'scripts/build-images.sh failed: see its output above');
  });

  afterEach(async () => {
    await cleanupSites(); // SIGTERM to any warmpool still running: it removes its containers
    let left = 0;
    for (const x of made.splice(0)) {
      left += (await containers(x)).length;
      await removeByLabel(`warmpool.deployment=${x.deployment}`);
      rmSync(x.dir, { recursive: true, force: true });
    }
    assert.equal(left, 0, 'no container outlives warmpool');
  });

  after(async () => {
    for (const x of made) await removeByLabel(`warmpool.deployment=${x.deployment}`);
  });

  test('SIGKILL while containers warm, restarted at once: listens, adopts or replaces them, no orphan', async () => {
    const s = site(3000);
    const first = start(s);
    await first.port(30_000);
    await first.waitProgress('demo', (p) => p.starting === 2);
    await until('two running containers', async () => ((await containers(s)).filter((c) => c.running).length === 2 ? true : undefined), 30_000);
    assert.equal(first.progress('demo')!.ready, 0, 'killed before any container was ready');
    const warming = (await containers(s)).map((c) => c.id);
    const { cli } = await killAndRestart(s, first);
    await cli.waitProgress('demo', settled(0), 60_000);
    await noOrphans(s, cli);
    const kept = (await containers(s)).filter((c) => warming.includes(c.id)).length;
    console.error(`docker-restart: ${kept} of 2 warming containers adopted, ${2 - kept} replaced`);
    await stopClean(s, cli);
  });

  test('SIGKILL right after a claim, restarted at once: the cookie gets its own container back', async () => {
    const s = site(300);
    const first = start(s);
    const url1 = `http://127.0.0.1:${await first.port(30_000)}`;
    await first.waitProgress('demo', (p) => p.ready === 2, 60_000);
    const v = await claim(url1);
    const { cli, url } = await killAndRestart(s, first);
    await routesToOwn(url, s, v);
    const w = await claim(url);
    assert.notEqual(w.instance, v.instance, 'never handed out twice');
    await routesToOwn(url, s, w);
    await cli.waitProgress('demo', settled(2), 60_000);
    await noOrphans(s, cli);
    await stopClean(s, cli);
  });

  test('SIGKILL mid-refill, restarted at once (twice): sessions keep their containers, the pool refills, no orphan', async () => {
    const s = site(2000);
    const first = start(s);
    const url1 = `http://127.0.0.1:${await first.port(30_000)}`;
    await first.waitProgress('demo', (p) => p.ready === 2, 60_000);
    const a = await claim(url1);
    await routesToOwn(url1, s, a);
    const b = await claim(url1);
    await first.waitProgress('demo', (p) => p.starting > 0);
    const { cli, url } = await killAndRestart(s, first);
    await routesToOwn(url, s, a);
    await routesToOwn(url, s, b);
    await cli.waitProgress('demo', settled(2), 60_000);
    await noOrphans(s, cli);
    const before = (await containers(s)).map((c) => c.id).sort();
    const again = await killAndRestart(s, cli);
    await routesToOwn(again.url, s, a);
    await routesToOwn(again.url, s, b);
    await again.cli.waitProgress('demo', settled(2), 60_000);
    assert.deepEqual((await containers(s)).map((c) => c.id).sort(), before, 'all adopted, nothing created');
    await stopClean(s, again.cli);
  });

  test("containers killed or removed behind warmpool's back: noticed from engine events within a second, the visitor gets the ended page", async () => {
    const s = site(300, '{ warm: 2, max: 8, parallel: 2 }');
    const cli = start(s);
    const url = `http://127.0.0.1:${await cli.port(30_000)}`;
    await cli.waitProgress('demo', (p) => p.ready === 2, 60_000);
    const a = await claim(url);
    const b = await claim(url);
    await routesToOwn(url, s, a);
    await routesToOwn(url, s, b);
    const idOf = async (instance: string) => (await containers(s)).find((c) => c.instance === instance)!.id;

    const aId = await idOf(a.instance);
    let t0 = Date.now();
    await dockerCli(['kill', aId]);
    let cliDone = Date.now();
    const killed = await endedAfter(url, a, cliDone, /stopped unexpectedly/);
    console.error(`docker-restart: docker kill → ended page ${killed} ms after the CLI returned (${cliDone - t0} ms in the CLI)`);
    assert.ok(killed <= NOTICE_WITHIN_MS, `noticed after ${killed} ms`);

    const bId = await idOf(b.instance);
    t0 = Date.now();
    await dockerCli(['rm', '-f', bId]);
    cliDone = Date.now();
    const removed = await endedAfter(url, b, cliDone, /stopped unexpectedly/);
    console.error(`docker-restart: docker rm -f → ended page ${removed} ms after the CLI returned (${cliDone - t0} ms in the CLI)`);
    assert.ok(removed <= NOTICE_WITHIN_MS, `noticed after ${removed} ms`);

    // A ready (unclaimed) container removed behind its back is replaced, and never handed out.
    await cli.waitProgress('demo', settled(0), 60_000);
    const [spare] = (await containers(s)).filter((c) => c.running);
    await dockerCli(['rm', '-f', spare!.id]);
    await until(
      'the removed container to be replaced',
      async () => {
        const cs = await containers(s);
        return !cs.some((c) => c.id === spare!.id) && cs.filter((c) => c.running).length === 2 ? true : undefined;
      },
      60_000,
    );
    await cli.waitProgress('demo', settled(0), 60_000);

    // Killed while warmpool itself was down: the next start finds it dead, and its visitor is told.
    const c = await claim(url);
    await routesToOwn(url, s, c);
    await cli.kill('SIGKILL');
    await dockerCli(['kill', await idOf(c.instance)]);
    const cli2 = start(s);
    const url2 = `http://127.0.0.1:${await cli2.port(30_000)}`;
    await endedAfter(url2, c, Date.now(), /gone when the server restarted/);
    await cli2.waitProgress('demo', settled(0), 60_000);
    await noOrphans(s, cli2);
    await stopClean(s, cli2);
  });
});
