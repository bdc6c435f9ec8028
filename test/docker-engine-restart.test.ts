// The Docker Engine restarted while a class is connected, through the real `warmpool start` (runtime
// docker, host networking, warmpool/standin:latest) on a second dockerd of the test's own with
// `--live-restore` (the machine's engine is a swarm member, which refuses live-restore, and is shared):
// stopped with SIGTERM, then killed with SIGKILL, with sessions live. Live sessions keep relaying both
// ways, new visitors get a ready instance or wait in line, warmpool says the engine is unreachable,
// the pool recovers by itself, a container that died meanwhile is noticed, and every container is
// claimed by exactly one session. Issue "Class-day resilience", item "Engine faults".

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PlutoClient } from '../examples/standin/driver.js';
import { CELLS } from '../examples/standin/server.js';
import { parseName } from '../pool/runtimes/docker-labels.js';
import { cookieFacts, type Cli, type Progress } from './helpers/cli.js';
import { deploymentContainers, noOrphanContainers, type DeploymentContainer as Container } from './helpers/docker.js';
import { CookieJar, request } from './helpers/http.js';
import { OwnDockerd, ownDockerdSkipReason } from './helpers/own-dockerd.js';
import { claim, cleanupSites, start, type Site } from './helpers/process-site.js';
import { until } from './helpers/wait.js';

const IMAGE = 'warmpool/standin:latest';
const DEPLOYMENT = `t-engine-${process.pid}-${randomBytes(3).toString('hex')}`;
/**
 * How long a notebook executes before READY: long enough that dockerd is killed while one warms. Its
 * readiness timeout (300 s) is far beyond the waits below, so a READY lost with the engine's log
 * stream fails the test rather than being papered over by a replacement.
 */
const STARTUP_MS = 3000;

interface Visitor {
  jar: CookieJar;
  session: string;
  instance: string;
}

/** A visitor whose editor's WebSocket is open through warmpool. */
interface Live extends Visitor {
  client: PlutoClient;
}

const skip = await ownDockerdSkipReason();

describe('Docker Engine stopped and killed with sessions live (live-restore, a second dockerd)', { skip, timeout: 180_000 }, () => {
  let engine: OwnDockerd;
  let dir = '';
  let s: Site;
  let bond = 0;

  before(async () => {
    // Idempotent and offline (a no-op when the images match dist/): never test a stale stand-in.
    const r = spawnSync('bash', [fileURLToPath(new URL('../../scripts/build-images.sh', import.meta.url))], {
      stdio: ['ignore', 'inherit', 'inherit'],
      timeout: 300_000,
    });
    assert.equal(r.status, 0, 'scripts/build-images.sh failed: see its output above');
    engine = new OwnDockerd();
    await engine.start();
    await engine.loadImage(IMAGE);
    dir = mkdtempSync(join(tmpdir(), 'wp-engine-'));
    s = { dir, file: join(dir, 'warmpool.yaml'), stateDir: join(dir, 'state'), marker: '', deployment: DEPLOYMENT };
    writeFileSync(
      s.file,
      `
listen: { host: 127.0.0.1, port: 0 }
deployment: ${DEPLOYMENT}
stateDir: ${s.stateDir}
ports: { from: 39000, to: 39499 }
queue: { hold: 60s }
apps:
  - name: demo
    runtime: docker
    image: ${IMAGE}
    network: host
    env: { STARTUP_DELAY_MS: ${STARTUP_MS}, STATE_BYTES: 2000 }
    deepLink: /open?path=webapp.jl
    readiness: { log: "^READY$", timeout: 300s }
    pool: { warm: 2, max: 8, parallel: 2 }
    secret: { env: PLUTO_SECRET, inject: { query: secret } }
`,
    );
  });

  after(async () => {
    await cleanupSites(); // SIGTERM to a warmpool still running: it removes its containers
    const left = engine?.running ? await containers().catch(() => []) : [];
    await engine?.cleanup();
    assert.deepEqual(engine ? engine.processes() : [], [], 'no process of the second engine outlives the suite');
    if (dir) rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(left, [], 'no container outlives warmpool');
  });

  /** The deployment's containers, read with the docker CLI from the second engine. */
  const containers = (): Promise<Container[]> => deploymentContainers(DEPLOYMENT, engine.host);

  /** One message each way through the relay: a bond set by the client, echoed by the notebook. */
  async function relays(v: Live, when: string): Promise<void> {
    const value = ++bond;
    const reply = await v.client.setBond(value);
    assert.equal(reply.type, 'notebook_diff', `${when}: session ${v.session} got an answer`);
    assert.equal(v.client.state.cell_results?.[CELLS.echo]?.output?.body, String(value), `${when}: session ${v.session} sees its own echo`);
  }

  /** The deep link answers through the session, and the editor's WebSocket opens. */
  async function openEditor(url: string, v: Visitor): Promise<Live> {
    const r = await request(`${url}/demo/open?path=webapp.jl`, { jar: v.jar, headers: { accept: 'text/html' } });
    assert.equal(r.status, 302, `session ${v.session}'s deep link answered ${r.status}: ${r.text.slice(0, 300)}`);
    const client = await PlutoClient.open(`${url.replace('http', 'ws')}/demo/`, { cookie: v.jar.header('/demo/') });
    await client.start();
    return { ...v, client };
  }

  async function healthz(url: string): Promise<{ status: number; body: { ok: boolean; engines?: { runtime: string; reachable: boolean }[] } }> {
    const r = await request(`${url}/_warmpool/healthz`);
    return { status: r.status, body: JSON.parse(r.text) };
  }

  /** The visitor's cookie gets the ended page (the relay to its dead notebook is not tried). */
  async function endedPage(url: string, v: Visitor, who: string): Promise<void> {
    const page = await until(
      `${who} to get the ended page`,
      async () => {
        const r = await request(`${url}/demo/open?path=webapp.jl`, { jar: v.jar, headers: { accept: 'text/html' } });
        return r.status === 410 ? r : undefined;
      },
      30_000,
      50,
    );
    assert.match(page.text, /This session has ended/);
    assert.match(page.text, /stopped unexpectedly/);
  }

  /** The claim of every visitor is on the engine, in its own container's name, and no other container names a claim. */
  async function claimsOnEngine(visitors: Visitor[]): Promise<Container[]> {
    let last: Container[] = [];
    await until(
      'every claim recorded on the engine, each container by one session',
      async () => {
        last = await containers();
        const claimed = last.filter((c) => parseName(c.name).claim);
        const ok =
          claimed.length === visitors.length &&
          visitors.every((v) => {
            const mine = last.filter((c) => parseName(c.name).claim?.session === v.session);
            return mine.length === 1 && mine[0]!.instance === v.instance && mine[0]!.running;
          });
        return ok ? true : undefined;
      },
      40_000,
      100,
    ).catch((e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(last)} vs ${JSON.stringify(visitors.map((v) => [v.session, v.instance]))}`);
    });
    return last;
  }

  test('engine stop/start with sessions live: sessions keep flowing, new visitors wait, the pool recovers, nothing claimed twice', async () => {
    const cli = start(s, { env: { DOCKER_HOST: engine.host } });
    try {
      await classDay(cli);
    } catch (e) {
      // What warmpool said is the first thing to read when this fails.
      console.error(`warmpool's output:\n${cli.output().split('\n').slice(-80).join('\n')}\nthe second dockerd's log:\n${engine.log()}`);
      throw e;
    }
  });

  async function classDay(cli: Cli): Promise<void> {
    const url = `http://127.0.0.1:${await cli.port(30_000)}`;
    await cli.waitProgress('demo', (p) => p.ready === 2, 60_000);
    const a = await openEditor(url, await claim(url));
    const b = await openEditor(url, await claim(url));
    await claimsOnEngine([a, b]);
    await cli.waitProgress('demo', (p) => p.ready === 2 && p.starting === 0 && p.claimed === 2, 60_000);
    await relays(a, 'engine up');
    // b's notebook process, as the engine will not see it go: killed while the engine is down, below.
    const bPid = Number((await engine.cli(['inspect', '--format', '{{.State.Pid}}', (await containers()).find((c) => c.instance === b.instance)!.id])).trim());
    assert.ok(bPid > 0, 'the PID of session b’s notebook');

    // ---- dockerd stopped (SIGTERM): with live-restore its containers keep running ----
    await engine.stop('SIGTERM');
    await relays(a, 'engine stopped');
    await relays(b, 'engine stopped');
    const down = await until('healthz to report the engine unreachable', async () => {
      const h = await healthz(url);
      return h.body.engines?.[0]?.reachable === false ? h : undefined;
    });
    assert.equal(down.status, 503, 'healthz answers 503 while the engine is unreachable');
    // New visitors: the two ready containers, from memory (their claims land once the engine is back)...
    const c = await openEditor(url, await claim(url));
    const d = await openEditor(url, await claim(url));
    await relays(c, 'engine stopped, claimed meanwhile');
    await relays(d, 'engine stopped, claimed meanwhile');
    assert.notEqual(c.instance, d.instance, 'two visitors, two instances');
    // ...then none is ready and none can be made: the waiting page, its place kept by a held request.
    // The visitor in line uses its instance as soon as it is let in (an unused claim goes back after queue.firstUse).
    const e = (await waitInLine(url)).admitted.then((v) => openEditor(url, v));
    e.catch(() => undefined); // awaited below
    process.kill(bPid, 'SIGKILL'); // b's notebook dies while no engine watches
    // Down long enough for warmpool to retry and back off (creates, claim records), not just one failed call.
    await cli.when(
      'the pool to back off its creates',
      () => (cli.lines.some((l) => /failed \(\d+ in a row, next try in (\d{5,}|[2-9]\d{3}) ms\)/.test(l)) ? true : undefined),
      30_000,
    );
    await relays(a, 'engine stopped, still');

    // ---- started again, then killed (SIGKILL) mid-recovery, and started again ----
    await engine.start();
    await relays(a, 'engine back');
    // Killed while a notebook warms for the pool (created and running, READY not printed yet): its
    // output stream breaks with the engine, and READY comes while no engine is there.
    const lineUp = [a, b, c, d].map((v) => v.instance);
    await until(
      'a container warming on the restarted engine',
      async () => ((await containers()).some((x) => x.running && !lineUp.includes(x.instance)) ? true : undefined),
      30_000,
      50,
    );
    await engine.stop('SIGKILL');
    await relays(a, 'engine killed');
    await relays(c, 'engine killed');
    await engine.start();

    // ---- recovered by itself ----
    await endedPage(url, b, 'session b (its notebook killed while the engine was down)');
    const eLive = await e;
    const visitors = [a, c, d, eLive];
    assert.equal(new Set(visitors.map((v) => v.instance)).size, visitors.length, 'no instance handed out twice');
    await cli.waitProgress('demo', (p: Progress) => p.ready === 2 && p.starting === 0 && p.claimed === visitors.length, 60_000);
    await claimsOnEngine(visitors);
    await noOrphanContainers(containers, cli);
    const up = await until('healthz to report the engine reachable', async () => {
      const h = await healthz(url);
      return h.body.engines?.[0]?.reachable ? h : undefined;
    });
    assert.equal(up.status, 200);
    for (const v of [a, c, d]) await relays(v, 'recovered');
    await relays(eLive, 'recovered, waited in line');

    // The engine's events are followed again: a container killed now is noticed, its visitor told.
    await engine.cli(['kill', (await containers()).find((x) => x.instance === d.instance)!.id]);
    await d.client.closed;
    await endedPage(url, d, 'session d (its container killed after the engine came back)');
    for (const v of [a, c, eLive]) v.client.close();

    const exit = await cli.kill('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null }, cli.output());
    assert.deepEqual(await containers(), [], 'every container removed');
  }
});

/**
 * A visitor who finds no instance ready: the waiting page (503, the place in line), then the place held
 * by its held-request URL, the way a browser without JavaScript waits. `admitted` settles once it is let in.
 */
async function waitInLine(url: string): Promise<{ admitted: Promise<Visitor> }> {
  const jar = new CookieJar();
  const page = await request(`${url}/demo/`, { jar, headers: { accept: 'text/html' } });
  assert.equal(page.status, 503, `the waiting page, not a crash: ${page.status} ${page.text.slice(0, 300)}`);
  assert.match(page.text, /id="wp-headline"/);
  assert.match(page.text, /You are next in line\./);
  const wait = /data-wait="([^"]+)"/.exec(page.text)?.[1]?.replaceAll('&amp;', '&');
  assert.ok(wait, 'a held-request URL that keeps the place');
  const admitted = request(new URL(wait, `${url}/demo/`).toString(), { jar, headers: { accept: 'text/html' } }).then((r) => {
    assert.equal(r.status, 302, `let in once an instance is ready: ${r.status} ${r.text.slice(0, 200)}`);
    return { jar, ...cookieFacts(jar.get('warmpool_demo')!) };
  });
  admitted.catch(() => undefined); // awaited later; not an unhandled rejection meanwhile
  return { admitted };
}
