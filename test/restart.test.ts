// Class-day restarts of the real `warmpool start` on the process runtime: SIGKILLed while instances
// warm, right after a claim, and mid-refill, then started again at once (as systemd or
// `restart: always` does). Each time the new process must listen within seconds, route every claimed
// session to its own instance, adopt or remove everything else, and leave no process behind.
// Issue "Class-day resilience".

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pidsWithEnv } from './helpers/cli.js';
import { CookieJar, follow, request } from './helpers/http.js';
import { MARK, claim, cleanupSites, killAndRestart, noOrphans, routesToOwn, site, start, states, stopClean } from './helpers/process-site.js';
import { until } from './helpers/wait.js';

afterEach(cleanupSites);

test('SIGKILL while instances warm, restarted at once: listens, adopts or replaces them, no orphan', async () => {
  const s = site(2500);
  const first = start(s);
  await first.port();
  // Both instances spawned (state files with pids), neither has executed its notebook yet.
  await first.waitProgress('demo', (p) => p.starting === 2);
  await until('two state files with pids', () => (states(s).filter((x) => x.pid > 0).length === 2 ? true : undefined));
  assert.equal(first.progress('demo')!.ready, 0, 'killed before any instance was ready');
  const warming = states(s)
    .map((x) => x.pid)
    .sort();

  const { cli } = await killAndRestart(s, first);
  await cli.waitProgress('demo', (p) => p.ready === 2 && p.starting === 0);
  await noOrphans(s);
  const kept = states(s)
    .map((x) => x.pid)
    .filter((p) => warming.includes(p)).length;
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

test('SIGKILL right after the first request of a session, before its claim is recorded: no new visitor gets that instance after the restart, its cookie does', async () => {
  const s = site(300, '{ warm: 1, max: 2, parallel: 2 }');
  const first = start(s);
  const url1 = `http://127.0.0.1:${await first.port()}`;
  await first.waitProgress('demo', (p) => p.ready === 1);
  const v = await claim(url1);
  // The state file cannot take the claim: its temporary file's name is a folder (EISDIR, even for root).
  const blocker = join(s.stateDir, 'process', s.deployment, `${v.instance}.json.claim.tmp`);
  mkdirSync(blocker);
  // The first request reaches the instance: the student's editor, through the session.
  const r = await follow(`${url1}/demo/open?path=webapp.jl`, { jar: v.jar, headers: { accept: 'text/html' } });
  assert.equal(r.final.status, 200, r.final.text.slice(0, 300));
  assert.match(r.url, /\/demo\/edit\?id=/);
  await first.when('the failed record', () => first.lines.find((l) => l.includes(`could not record the claim of instance ${v.instance}`)));
  assert.equal(states(s).find((x) => x.instanceId === v.instance)?.claim, undefined, 'not on the engine (the state file)');
  assert.match(
    readFileSync(join(s.stateDir, `claims-${s.deployment}.jsonl`), 'utf8'),
    new RegExp(`"claimed":"${v.instance}","session":"${v.session}"`),
    'in the journal',
  );
  await first.waitProgress('demo', (p) => p.ready === 1 && p.starting === 0 && p.claimed === 1);

  const { cli, url } = await killAndRestart(s, first);
  rmdirSync(blocker); // the engine (the state file) takes records again
  assert.ok(
    cli.lines.some((l) => /found 2 instance\(s\) of an earlier run \(1 claimed, 1 of them known from the claim journal only\)/.test(l)),
    cli.output(),
  );
  // A new visitor gets the other instance; the next one, with max reached, waits: neither gets the claimed one.
  const w = await claim(url);
  assert.notEqual(w.instance, v.instance, 'never handed to another visitor');
  const jar = new CookieJar();
  const full = await request(`${url}/demo/`, { jar, headers: { accept: 'text/html' } });
  assert.equal(full.status, 503, `the waiting page, not an instance: ${full.status} ${full.text.slice(0, 200)}`);
  assert.equal(jar.get('warmpool_demo'), undefined);
  await routesToOwn(url, s, v);
  await routesToOwn(url, s, w);
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
  const before = states(s)
    .map((x) => x.instanceId)
    .sort();
  const again = await killAndRestart(s, cli);
  await routesToOwn(again.url, s, a);
  await routesToOwn(again.url, s, b);
  await again.cli.waitProgress('demo', (p) => p.ready === 2 && p.starting === 0 && p.claimed === 2);
  assert.deepEqual(
    states(s)
      .map((x) => x.instanceId)
      .sort(),
    before,
    'all adopted, nothing created',
  );
  await noOrphans(s);
  await stopClean(s, again.cli);
});

test('SIGTERM while a restarted warmpool checks what it found: start-up finishes, every instance is removed, status 0', async () => {
  const s = site(2500);
  const first = start(s);
  await first.waitProgress('demo', (p) => p.starting === 2);
  await until('two state files with pids', () => (states(s).filter((x) => x.pid > 0).length === 2 ? true : undefined));
  await first.kill('SIGKILL');
  const cli = start(s);
  await cli.when('the adoption line', () => cli.lines.find((l) => /found 2 instance\(s\) of an earlier run/.test(l)));
  const exit = await cli.kill('SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null }, cli.output());
  assert.match(cli.output(), /SIGTERM while starting/);
  assert.deepEqual(pidsWithEnv(MARK, s.marker), [], 'every instance process removed');
  assert.deepEqual(states(s), [], 'every state file removed');
});

test("a start-up that Node would abandon (every timer unref'd, as the Clock's were) says why and exits non-zero, not 0 in silence", async () => {
  const s = site(2500);
  // Puts back the cause of the silent exit from outside: every timer and interval unref'd.
  const preload = join(s.dir, 'unref-timers.mjs');
  writeFileSync(
    preload,
    `for (const name of ['setTimeout', 'setInterval']) {
  const orig = globalThis[name];
  globalThis[name] = function (...a) { const t = orig.apply(this, a); t?.unref?.(); return t; };
}
`,
  );
  const first = start(s);
  await first.waitProgress('demo', (p) => p.starting === 2);
  await until('two state files with pids', () => (states(s).filter((x) => x.pid > 0).length === 2 ? true : undefined));
  await first.kill('SIGKILL');
  const stalled = start(s, { nodeArgs: ['--import', preload] });
  const exit = await stalled.exited;
  assert.equal(exit.code, 1, stalled.output());
  assert.match(stalled.output(), /^err: warmpool: stopped while adopting what an earlier run left .*nothing was left to wait for/m);
  // Its instances are still there for the next start, which adopts them.
  const next = start(s);
  await next.port();
  await next.waitProgress('demo', (p) => p.ready === 2 && p.starting === 0);
  await noOrphans(s);
  await stopClean(s, next);
});

// Before: the stop waited for a start-up that waits for the engine, i.e. forever (the timeout turns that into a failure).
test('SIGTERM while start-up waits for a Docker Engine that does not answer: it gives up at once, status 0, nothing created', { timeout: 30_000 }, async () => {
  const s = site();
  // The same site with its app on the Docker runtime, and DOCKER_HOST a socket nobody listens on.
  const yaml = readFileSync(s.file, 'utf8')
    .replace('runtime: process', 'runtime: docker\n    image: warmpool/standin:latest')
    .replace(/\n {4}command: .*\n/, '\n');
  writeFileSync(s.file, yaml);
  const cli = start(s, { env: { DOCKER_HOST: `unix://${join(s.dir, 'no-engine.sock')}` } });
  await cli.when('a failed listing', () => cli.lines.find((l) => /docker runtime: cannot list instances \(attempt 1/.test(l)));
  const exit = await cli.kill('SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null }, cli.output());
  assert.match(cli.output(), /SIGTERM: stopped while waiting for the docker engine to answer: nothing was adopted or created/);
});
