// A warmpool site on the process runtime for tests of the real `warmpool start` command: a config
// in a temporary folder (one app `demo`, the stand-in), its state files, the checks a restart must
// pass (a cookie still reaches its own instance, no orphan process), and the clean-up after each test.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cli, cookieFacts, pidsWithEnv, type CliOptions } from './cli.js';
import { CookieJar, follow, request } from './http.js';
import { until } from './wait.js';

const SERVER = join(process.cwd(), 'dist/examples/standin/server.js');
/** Every instance process of a site carries MARK=<its marker> in its environment: how orphans are found. */
export const MARK = 'WARMPOOL_TEST_RUN';
/** How long an immediate restart may take to listen: adoption checks each instance for at most 3 s. */
export const LISTEN_WITHIN_MS = 8000;

export interface Site {
  dir: string;
  file: string;
  stateDir: string;
  marker: string;
  deployment: string;
}
const sites: Site[] = [];
const clis: Cli[] = [];

/** For afterEach: stops what still runs, kills and reports orphans, removes the folders. */
export async function cleanupSites(): Promise<void> {
  // A warmpool still running is stopped the ordinary way (it removes its instances)...
  for (const c of clis.splice(0)) if (!c.exit) await c.kill('SIGTERM');
  for (const s of sites.splice(0)) {
    // ...and anything left after that is an orphan: killed here, and reported.
    const left = pidsWithEnv(MARK, s.marker);
    for (const pid of left) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    rmSync(s.dir, { recursive: true, force: true });
    assert.deepEqual(left, [], 'no instance process outlives warmpool');
  }
}

/** A config for one process app `demo` (the stand-in, executing its notebook for startupMs). */
export function site(startupMs = 2000, pool = '{ warm: 2, max: 6, parallel: 2 }'): Site {
  const dir = mkdtempSync(join(tmpdir(), 'wp-restart-'));
  const marker = `m${randomBytes(6).toString('hex')}`; // a letter first: YAML reads 386102e7 as a number
  const s: Site = { dir, file: join(dir, 'warmpool.yaml'), stateDir: join(dir, 'state'), marker, deployment: `t-restart-${marker}` };
  writeFileSync(
    s.file,
    `
listen: { host: 127.0.0.1, port: 0 }
deployment: ${s.deployment}
stateDir: ${s.stateDir}
ports: { from: 36000, to: 36999 }
apps:
  - name: demo
    runtime: process
    command: [${process.execPath}, ${SERVER}]
    env: { STARTUP_DELAY_MS: ${startupMs}, STATE_BYTES: 2000, ${MARK}: ${marker} }
    deepLink: /open?path=webapp.jl
    readiness: { log: "^READY$", timeout: 30s }
    pool: ${pool}
    secret: { env: PLUTO_SECRET, inject: { query: secret } }
`,
  );
  sites.push(s);
  return s;
}

export function start(s: Site, o?: CliOptions): Cli {
  const c = new Cli(s.file, o);
  clis.push(c);
  return c;
}

export interface State {
  instanceId: string;
  pid: number;
  port: number;
  claim?: { session: string; at: number };
}

/** The process runtime's state files: what a restarted warmpool finds. */
export function states(s: Site): State[] {
  const dir = join(s.stateDir, 'process', s.deployment);
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
  return names.flatMap((n) => {
    try {
      return [JSON.parse(readFileSync(join(dir, n), 'utf8')) as State];
    } catch {
      return [];
    }
  });
}

/** SIGKILL, then at once a new warmpool on the same config; resolves once it listens. */
export async function killAndRestart(s: Site, old: Cli): Promise<{ cli: Cli; url: string }> {
  const exit = await old.kill('SIGKILL');
  assert.equal(exit.signal, 'SIGKILL');
  const cli = start(s);
  const port = await cli.port(LISTEN_WITHIN_MS).catch((e: Error) => {
    throw new Error(`an immediate restart did not listen within ${LISTEN_WITHIN_MS} ms: ${e.message}`);
  });
  console.error(`restart: listening ${cli.listenedAfterMs} ms after an immediate restart`);
  return { cli, url: `http://127.0.0.1:${port}` };
}

/**
 * A browser's first visit: claims an instance; the cookie is in the jar. With none ready yet it waits
 * in line the way a browser without JavaScript does (the waiting page's held-request URL, answered
 * once an instance is reserved). Only the claim, not the deep link.
 */
export async function claim(url: string): Promise<{ jar: CookieJar; session: string; instance: string }> {
  const jar = new CookieJar();
  let r = await request(`${url}/demo/`, { jar, headers: { accept: 'text/html' } });
  if (r.status === 503) {
    const wait = /data-wait="([^"]+)"/.exec(r.text)?.[1]?.replaceAll('&amp;', '&');
    assert.ok(wait, `a waiting page with its held-request URL: ${r.text.slice(0, 300)}`);
    r = await request(new URL(wait, `${url}/demo/`).toString(), { jar, headers: { accept: 'text/html' } });
  }
  assert.equal(r.status, 302, `a claim: ${r.status} ${r.text.slice(0, 200)}`);
  const cookie = jar.get('warmpool_demo');
  assert.ok(cookie, 'a session cookie');
  return { jar, ...cookieFacts(cookie) };
}

/** The cookie still reaches a live editor, on the instance it was issued for, and that claim is on disk for the next restart. */
export async function routesToOwn(url: string, s: Site, v: { jar: CookieJar; session: string; instance: string }): Promise<void> {
  const r = await follow(`${url}/demo/open?path=webapp.jl`, { jar: v.jar, headers: { accept: 'text/html' } });
  assert.equal(r.final.status, 200, `session ${v.session} answered ${r.final.status}: ${r.final.text.slice(0, 300)}`);
  assert.match(r.url, /\/demo\/edit\?id=/, 'the editor of the notebook');
  const st = await until(
    `the claim of ${v.session} on ${v.instance} to be on disk`,
    () => {
      const x = states(s).find((y) => y.instanceId === v.instance);
      return x?.claim?.session === v.session ? x : undefined;
    },
    5000,
  );
  assert.ok(pidsWithEnv(MARK, s.marker).includes(st.pid), `instance ${v.instance} (pid ${st.pid}) is running`);
}

/** Every instance process is one the running warmpool knows (a state file naming its pid), and vice versa. */
export async function noOrphans(s: Site): Promise<void> {
  const want = () =>
    states(s)
      .map((x) => x.pid)
      .filter((p) => p > 0)
      .sort((a, b) => a - b);
  await until(
    'instance processes and state files to agree',
    () => {
      const live = pidsWithEnv(MARK, s.marker);
      return JSON.stringify(live) === JSON.stringify(want()) ? true : undefined;
    },
    10_000,
  ).catch((e: Error) => {
    throw new Error(`${e.message}: processes ${JSON.stringify(pidsWithEnv(MARK, s.marker))}, state files ${JSON.stringify(want())}`);
  });
}

/** Stops it with SIGTERM: status 0, every instance process and state file gone. */
export async function stopClean(s: Site, cli: Cli, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const exit = await cli.kill(signal);
  assert.deepEqual(exit, { code: 0, signal: null }, cli.output());
  assert.deepEqual(pidsWithEnv(MARK, s.marker), [], 'every instance process removed');
  assert.deepEqual(states(s), [], 'every state file removed');
}
