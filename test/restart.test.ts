// Class-day restarts of the real `warmpool start` on the process runtime: SIGKILLed while instances
// warm, right after a claim, and mid-refill, then started again at once (as systemd or
// `restart: always` does). Each time the new process must listen within seconds, route every claimed
// session to its own instance, adopt or remove everything else, and leave no process behind.
// Issue "Class-day resilience".

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cli, cookieFacts, pidsWithEnv, type CliOptions } from './helpers/cli.js';
import { CookieJar, follow, request } from './helpers/http.js';
import { until } from './helpers/wait.js';

const SERVER = join(process.cwd(), 'dist/examples/standin/server.js');
const MARK = 'WARMPOOL_TEST_RUN';
/** Seconds an immediate restart may take to listen: adoption checks each instance for at most 3 s. */
const LISTEN_WITHIN_MS = 8000;

interface Site { dir: string; file: string; stateDir: string; marker: string; deployment: string }
const sites: Site[] = [];
const clis: Cli[] = [];

afterEach(async () => {
  // A warmpool still running is stopped the ordinary way (it removes its instances)...
  for (const c of clis.splice(0)) if (!c.exit) await c.kill('SIGTERM');
  for (const s of sites.splice(0)) {
    // ...and anything left after that is an orphan: killed here, and reported.
    const left = pidsWithEnv(MARK, s.marker);
    for (const pid of left) { try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ } }
    rmSync(s.dir, { recursive: true, force: true });
    assert.deepEqual(left, [], 'no instance process outlives warmpool');
  }
});

/** A config for one process app `demo` (the stand-in, executing its notebook for startupMs). */
function site(startupMs = 2000, pool = '{ warm: 2, max: 6, parallel: 2 }'): Site {
  const dir = mkdtempSync(join(tmpdir(), 'wp-restart-'));
  const marker = randomBytes(6).toString('hex');
  const s: Site = { dir, file: join(dir, 'warmpool.yaml'), stateDir: join(dir, 'state'), marker, deployment: `t-restart-${marker}` };
  writeFileSync(s.file, `
listen: { host: 127.0.0.1, port: 0 }
deployment: ${s.deployment}
stateDir: ${s.stateDir}
ports: { from: 49000, to: 49999 }
apps:
  - name: demo
    runtime: process
    command: [${process.execPath}, ${SERVER}]
    env: { STARTUP_DELAY_MS: ${startupMs}, STATE_BYTES: 2000, ${MARK}: ${marker} }
    deepLink: /open?path=webapp.jl
    readiness: { log: "^READY$", timeout: 30s }
    pool: ${pool}
    secret: { env: PLUTO_SECRET, inject: { query: secret } }
`);
  sites.push(s);
  return s;
}

function start(s: Site, o?: CliOptions): Cli {
  const c = new Cli(s.file, o);
  clis.push(c);
  return c;
}

interface State { instanceId: string; pid: number; port: number; claim?: { session: string; at: number } }

/** The process runtime's state files: what a restarted warmpool finds. */
function states(s: Site): State[] {
  const dir = join(s.stateDir, 'process', s.deployment);
  let names: string[] = [];
  try { names = readdirSync(dir).filter((n) => n.endsWith('.json')); } catch { return []; }
  return names.flatMap((n) => {
    try { return [JSON.parse(readFileSync(join(dir, n), 'utf8')) as State]; } catch { return []; }
  });
}

/** SIGKILL, then at once a new warmpool on the same config; resolves once it listens. */
async function killAndRestart(s: Site, old: Cli): Promise<{ cli: Cli; url: string }> {
  const exit = await old.kill('SIGKILL');
  assert.equal(exit.signal, 'SIGKILL');
  const cli = start(s);
  const port = await cli.port(LISTEN_WITHIN_MS).catch((e: Error) => {
    throw new Error(`an immediate restart did not listen within ${LISTEN_WITHIN_MS} ms: ${e.message}`);
  });
  console.error(`restart: listening ${cli.listenedAfterMs} ms after an immediate restart`);
  return { cli, url: `http://127.0.0.1:${port}` };
}

/** A browser's first visit: claims an instance; the cookie is in the jar. Only the claim, not the deep link. */
async function claim(url: string): Promise<{ jar: CookieJar; session: string; instance: string }> {
  const jar = new CookieJar();
  const r = await request(`${url}/demo/`, { jar, headers: { accept: 'text/html' } });
  assert.equal(r.status, 302, `a claim: ${r.status} ${r.text.slice(0, 200)}`);
  const cookie = jar.get('warmpool_demo');
  assert.ok(cookie, 'a session cookie');
  return { jar, ...cookieFacts(cookie) };
}

/** The cookie still reaches a live editor, on the instance it was issued for, and that claim is on disk for the next restart. */
async function routesToOwn(url: string, s: Site, v: { jar: CookieJar; session: string; instance: string }): Promise<void> {
  const r = await follow(`${url}/demo/open?path=webapp.jl`, { jar: v.jar, headers: { accept: 'text/html' } });
  assert.equal(r.final.status, 200, `session ${v.session} answered ${r.final.status}: ${r.final.text.slice(0, 300)}`);
  assert.match(r.url, /\/demo\/edit\?id=/, 'the editor of the notebook');
  const st = await until(`the claim of ${v.session} on ${v.instance} to be on disk`, () => {
    const x = states(s).find((y) => y.instanceId === v.instance);
    return x?.claim?.session === v.session ? x : undefined;
  }, 5000);
  assert.ok(pidsWithEnv(MARK, s.marker).includes(st.pid), `instance ${v.instance} (pid ${st.pid}) is running`);
}

/** Every instance process is one the running warmpool knows (a state file naming its pid), and vice versa. */
async function noOrphans(s: Site): Promise<void> {
  const want = () => states(s).map((x) => x.pid).filter((p) => p > 0).sort((a, b) => a - b);
  await until('instance processes and state files to agree', () => {
    const live = pidsWithEnv(MARK, s.marker);
    return JSON.stringify(live) === JSON.stringify(want()) ? true : undefined;
  }, 10_000).catch((e: Error) => {
    throw new Error(`${e.message}: processes ${JSON.stringify(pidsWithEnv(MARK, s.marker))}, state files ${JSON.stringify(want())}`);
  });
}

/** Stops it with SIGTERM: status 0, every instance process and state file gone. */
async function stopClean(s: Site, cli: Cli): Promise<void> {
  const exit = await cli.kill('SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null }, cli.output());
  assert.deepEqual(pidsWithEnv(MARK, s.marker), [], 'every instance process removed');
  assert.deepEqual(states(s), [], 'every state file removed');
}

test('SIGKILL while instances warm, restarted at once: listens, adopts or replaces them, no orphan', async () => {
  const s = site(2500);
  const first = start(s);
  await first.port();
  // Both instances spawned (state files with pids), neither has executed its notebook yet.
  await first.waitProgress('demo', (p) => p.starting === 2);
  await until('two state files with pids', () => (states(s).filter((x) => x.pid > 0).length === 2 ? true : undefined));
  assert.equal(first.progress('demo')!.ready, 0, 'killed before any instance was ready');
  const warming = states(s).map((x) => x.pid).sort();

  const { cli } = await killAndRestart(s, first);
  await cli.waitProgress('demo', (p) => p.ready === 2 && p.starting === 0);
  await noOrphans(s);
  const kept = states(s).map((x) => x.pid).filter((p) => warming.includes(p)).length;
  console.error(`restart: ${kept} of 2 warming instances adopted, ${2 - kept} replaced`);
  await stopClean(s, cli);
});

test('SIGKILL right after a claim, restarted at once: the cookie gets its own instance back', async () => {
  const s = site(300);
  const first = start(s);
  const url1 = `http://127.0.0.1:${await first.port()}`;
  await first.waitProgress('demo', (p) => p.ready === 2);
  const v = await claim(url1);
  // Killed as soon as the visitor has the cookie: the claim may not be recorded yet.
  const { cli, url } = await killAndRestart(s, first);
  await routesToOwn(url, s, v);
  // A second visitor gets another instance, never that one.
  const w = await claim(url);
  assert.notEqual(w.instance, v.instance);
  await routesToOwn(url, s, w);
  await cli.waitProgress('demo', (p) => p.ready === 2 && p.starting === 0 && p.claimed === 2);
  await noOrphans(s);
  await stopClean(s, cli);
});

test('SIGKILL mid-refill, restarted at once: claimed sessions keep their instances, the pool refills, no orphan', async () => {
  const s = site(1500);
  const first = start(s);
  const url1 = `http://127.0.0.1:${await first.port()}`;
  await first.waitProgress('demo', (p) => p.ready === 2);
  const a = await claim(url1);
  await routesToOwn(url1, s, a);
  const b = await claim(url1);
  // The pool refills behind the claims: kill while the new instances execute their notebooks.
  await first.waitProgress('demo', (p) => p.starting > 0);
  const { cli, url } = await killAndRestart(s, first);
  await routesToOwn(url, s, a);
  await routesToOwn(url, s, b);
  await cli.waitProgress('demo', (p) => p.ready === 2 && p.starting === 0 && p.claimed === 2);
  await noOrphans(s);
  // Killed again straight after, with everything settled: the same sessions, nothing new.
  const before = states(s).map((x) => x.instanceId).sort();
  const again = await killAndRestart(s, cli);
  await routesToOwn(again.url, s, a);
  await routesToOwn(again.url, s, b);
  await again.cli.waitProgress('demo', (p) => p.ready === 2 && p.starting === 0 && p.claimed === 2);
  assert.deepEqual(states(s).map((x) => x.instanceId).sort(), before, 'all adopted, nothing created');
  await noOrphans(s);
  await stopClean(s, again.cli);
});
