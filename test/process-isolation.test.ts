// Process instances kept apart: as root, each instance runs
// under a uid of its own, so code inside one cannot read another's /proc/<pid>/environ (its secret)
// or warmpool's state directory (cookie key, state files); its own environment, home and app files
// still work, and removal (also after a restart) leaves no process of its user, checked by PID.
// The probe app is a `node -e` server that reads, lists, writes and spawns on request.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRuntimes, createWarmpool, type Warmpool } from '../index.js';
import { validateConfig, type WarmpoolConfig } from '../core/config.js';
import type { InstanceRecord } from '../pool/runtime.js';
import type { ProcessRuntime } from '../pool/runtimes/process.js';
import { UidRange, isolationPlan, processesByUid } from '../pool/runtimes/process-users.js';
import { privateDir } from '../pool/private-dir.js';
import { MemoryTrafficLog } from '../pool/traffic-log.js';
import { request } from './helpers/http.js';
import { eventually, waitForStatus } from './helpers/wait.js';

const ROOT = process.platform === 'linux' && process.getuid?.() === 0;
const needsRoot = ROOT
  ? false
  : `needs root on Linux (this is ${process.platform}, uid ${process.getuid?.()}): instances get users of their own only when warmpool runs as root`;
if (needsRoot) console.log(`# process-isolation: real-process tests skipped: ${needsRoot}`);

const UIDS = { uidFrom: 1879100000, count: 20 };

const PROBE = `
const http = require('http'), fs = require('fs'), cp = require('child_process');
const out = (res, code, body) => { res.writeHead(code, { 'content-type': 'application/json' }); res.end(JSON.stringify(body)); };
http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  const p = u.searchParams.get('path');
  try {
    if (u.pathname === '/read') return out(res, 200, { text: fs.readFileSync(p, 'latin1') });
    if (u.pathname === '/list') return out(res, 200, { names: fs.readdirSync(p) });
    if (u.pathname === '/write') { fs.writeFileSync(p, 'mine'); return out(res, 200, {}); }
    if (u.pathname === '/escape') {
      const c = cp.spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e6)'], { detached: true, stdio: 'ignore' });
      c.unref();
      return out(res, 200, { pid: c.pid });
    }
    if (u.pathname === '/whoami') return out(res, 200, { uid: process.getuid(), gid: process.getgid(), groups: process.getgroups(), home: process.env.HOME, tmp: process.env.TMPDIR });
    out(res, 404, {});
  } catch (e) { out(res, 403, { code: e.code }); }
}).listen(Number(process.env.PORT), '127.0.0.1', () => console.log('READY'));
`;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

interface World {
  base: string;
  stateDir: string;
  appDir: string;
  config: WarmpoolConfig;
  lines: string[];
  start(): Promise<{ wp: Warmpool; rt: ProcessRuntime }>;
}

function world(o: { warm?: number; appMode?: number } = {}): World {
  const base = mkdtempSync(join(tmpdir(), 'wp-iso-'));
  chmodSync(base, 0o755); // so only warmpool's own modes keep instances out
  const stateDir = join(base, 'state');
  mkdirSync(stateDir, { mode: 0o755 }); // as an older warmpool left it
  chmodSync(stateDir, 0o755);
  const appDir = join(base, 'app');
  mkdirSync(appDir);
  chmodSync(appDir, o.appMode ?? 0o755);
  writeFileSync(join(appDir, 'data.txt'), 'course material');
  chmodSync(join(appDir, 'data.txt'), 0o644);
  const config = validateConfig({
    deployment: 'isotest',
    stateDir,
    ports: { from: 46000, to: 46999 },
    processUsers: UIDS,
    apps: [
      {
        name: 'probe',
        command: [process.execPath, '-e', PROBE],
        cwd: appDir,
        readiness: { log: '^READY$', timeout: '20s' },
        pool: { warm: o.warm ?? 2, max: 4 },
        secret: { env: 'APP_SECRET', inject: { query: 'secret' } },
      },
    ],
  });
  const lines: string[] = [];
  const w: World = {
    base,
    stateDir,
    appDir,
    config,
    lines,
    async start() {
      const log = (m: string) => lines.push(m);
      const runtimes = await buildRuntimes(config, log);
      const wp = await createWarmpool(config, { runtimes, env: {}, log, trafficLog: new MemoryTrafficLog() });
      return { wp, rt: runtimes.process as ProcessRuntime };
    },
  };
  cleanups.push(() => rmSync(base, { recursive: true, force: true }));
  return w;
}

async function ask(r: InstanceRecord, path: string, file?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const reply = await request(`http://127.0.0.1:${r.port}${path}${file === undefined ? '' : `?path=${encodeURIComponent(file)}`}`);
  return { status: reply.status, body: JSON.parse(reply.text) as Record<string, unknown> };
}

/** Refused by the kernel: the probe answers 403 with the error code. */
async function refused(r: InstanceRecord, path: string, file: string, what: string): Promise<void> {
  const a = await ask(r, path, file);
  assert.deepEqual(a, { status: 403, body: { code: 'EACCES' } }, what);
}

/** Alive and not a zombie (an orphan's zombie waits for init here). */
function running(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

const live = async (rt: ProcessRuntime) => (await rt.list()).filter((r) => r.running);
const uidOf = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);

async function assertAllGone(pids: number[], uids: number[], homes: string[]): Promise<void> {
  await eventually(() => pids.every((p) => !running(p)), `every process (${pids.join(', ')}) to exit`);
  const byUid = await processesByUid();
  for (const uid of uids) assert.deepEqual(byUid.get(uid) ?? [], [], `no process of uid ${uid} left`);
  for (const h of homes) assert.equal(existsSync(h), false, `home ${h} removed`);
}

test('isolationPlan: own users only as root on Linux with processUsers on; otherwise a warning that says what is shared', () => {
  const cfg = { uidFrom: 1879048192, count: 10 };
  assert.deepEqual(isolationPlan(cfg, 0, 'linux'), { kind: 'isolate', users: cfg });
  const cases: [ReturnType<typeof isolationPlan>, RegExp][] = [
    [isolationPlan(false, 0, 'linux'), /processUsers is off/],
    [isolationPlan(cfg, 1000, 'linux'), /runs as uid 1000, not root/],
    [isolationPlan(cfg, 0, 'darwin'), /need Linux \(this is darwin\)/],
    [isolationPlan(cfg, undefined, 'win32'), /need Linux/],
  ];
  for (const [plan, why] of cases) {
    assert.equal(plan.kind, 'shared');
    const warning = plan.kind === 'shared' ? plan.warning : '';
    assert.match(warning, why);
    assert.match(warning, /environment .*\/proc\/<pid>\/environ/);
    assert.match(warning, /state directory \(cookie key/);
    assert.match(warning, /use runtime docker in production/);
  }
});

test('UidRange: next-fit, skips held, busy and reserved uids, holds adopted ones, reports exhaustion', () => {
  const r = new UidRange(100, 6, new Set([101]));
  assert.equal(r.take(new Set()), 100);
  assert.equal(r.take(new Set([102])), 103, 'reserved 101 and busy 102 skipped');
  r.release(100);
  assert.equal(r.take(new Set()), 104, 'next-fit: the uid just given back is not the next one out');
  assert.equal(r.take(new Set()), 105);
  assert.equal(r.take(new Set()), 100, 'wraps around to the one given back');
  assert.equal(r.take(new Set()), 102, 'no longer busy');
  assert.equal(r.take(new Set()), undefined, 'used up');
  const adopted = new UidRange(100, 3);
  adopted.hold(101);
  adopted.hold(999); // outside the range: ignored
  assert.deepEqual([adopted.take(new Set()), adopted.take(new Set()), adopted.take(new Set())], [100, 102, undefined]);
  assert.equal(adopted.inUse, 3);
});

test('privateDir: creates 0700, tightens a folder an older version left open, refuses a shared one', () => {
  const base = mkdtempSync(join(tmpdir(), 'wp-iso-dir-'));
  cleanups.push(() => rmSync(base, { recursive: true, force: true }));
  privateDir(join(base, 'new', 'state'));
  assert.equal(statSync(join(base, 'new', 'state')).mode & 0o777, 0o700);
  const open = join(base, 'open');
  mkdirSync(open);
  chmodSync(open, 0o755);
  privateDir(open);
  assert.equal(statSync(open).mode & 0o777, 0o700);
  const shared = join(base, 'shared');
  mkdirSync(shared);
  chmodSync(shared, 0o1777);
  assert.throws(() => privateDir(shared), new RegExp(`stateDir ${shared} is a shared folder \\(mode 1777\\), writable by other users`));
  assert.equal(statSync(shared).mode & 0o7777, 0o1777, 'left as it was');
});

test('without isolation, start-up logs a warning naming what instances share', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'wp-iso-off-'));
  cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
  const config = validateConfig({ stateDir, processUsers: false, apps: [{ name: 'a', command: ['x'] }] });
  const lines: string[] = [];
  await buildRuntimes(config, (m) => lines.push(m));
  assert.equal(lines.length, 1);
  assert.match(
    lines[0]!,
    /^WARNING: runtime process: processUsers is off, so instances run as warmpool's own user: every instance can read the others' environment/,
  );
});

test("an instance reads neither another instance's environment nor warmpool's state; its own environment, home and app files work; removal leaves no process", {
  skip: needsRoot,
}, async () => {
  const w = world();
  const { wp, rt } = await w.start();
  let closed = false;
  cleanups.push(() => (closed ? undefined : wp.close(false)));
  await waitForStatus(wp.fleet, 'probe', (s) => s.ready === 2);
  assert.deepEqual(
    w.lines.filter((l) => /WARNING/.test(l)),
    [],
    'isolating: no warning',
  );
  const [a, b] = await live(rt);
  assert.ok(a && b);
  const pidA = Number(a.runtimeId),
    pidB = Number(b.runtimeId);

  // Each its own uid from the range, gid the same, no supplementary groups, a private home.
  const whoA = (await ask(a, '/whoami')).body,
    whoB = (await ask(b, '/whoami')).body;
  const uids = [whoA.uid as number, whoB.uid as number];
  assert.notEqual(uids[0], uids[1]);
  for (const [who, pid] of [
    [whoA, pidA],
    [whoB, pidB],
  ] as const) {
    assert.ok((who.uid as number) >= UIDS.uidFrom && (who.uid as number) < UIDS.uidFrom + UIDS.count, `uid ${who.uid} from processUsers`);
    assert.equal(who.gid, who.uid);
    assert.deepEqual(who.groups, [who.gid], "root's supplementary groups dropped");
    assert.equal(uidOf(pid), who.uid, "the pid in the state file is that user's");
    assert.equal(who.tmp, who.home);
    const st = statSync(who.home as string);
    assert.deepEqual([st.uid, st.mode & 0o777], [who.uid, 0o700]);
  }

  // Another instance's environment holds its secret and port; from A it cannot be read.
  const environB = readFileSync(`/proc/${pidB}/environ`, 'latin1');
  assert.ok(environB.includes(`APP_SECRET=${b.env.APP_SECRET}`), "B's secret is in its environment (read as root)");
  await refused(a, '/read', `/proc/${pidB}/environ`, "B's environment, read from A");
  await refused(a, '/read', `/proc/${process.pid}/environ`, "warmpool's environment, read from A");
  const own = await ask(a, '/read', '/proc/self/environ');
  assert.equal(own.status, 200);
  assert.ok((own.body.text as string).includes(`WARMPOOL_INSTANCE=${a.instanceId}`), 'A reads its own environment');
  assert.ok((own.body.text as string).includes(`APP_SECRET=${a.env.APP_SECRET}`));

  // warmpool's state: the folder was 0755 before warmpool started; now nothing in it is A's to read.
  const procDir = join(w.stateDir, 'process', 'isotest');
  const modes: [string, number][] = [
    [w.stateDir, 0o700],
    [join(w.stateDir, 'cookie-key'), 0o600],
    [join(w.stateDir, 'process'), 0o700],
    [procDir, 0o700],
    [join(procDir, `${b.instanceId}.json`), 0o600],
    [join(procDir, `${b.instanceId}.log`), 0o600],
  ];
  for (const [p, mode] of modes) assert.equal((statSync(p).mode & 0o777).toString(8), mode.toString(8), p);
  await refused(a, '/list', w.stateDir, 'listing the state directory');
  await refused(a, '/read', join(w.stateDir, 'cookie-key'), 'the cookie key');
  await refused(a, '/read', join(procDir, `${b.instanceId}.json`), "B's state file (its secret)");
  await refused(a, '/read', join(procDir, `${a.instanceId}.json`), "A's own state file");
  await refused(a, '/read', join(procDir, `${b.instanceId}.log`), "B's output");

  // Homes: A's own works, B's is closed; what A writes in shared /tmp is A's alone (umask 077).
  assert.equal((await ask(a, '/write', join(whoA.home as string, 'notes'))).status, 200);
  await refused(a, '/list', whoB.home as string, "B's home");
  await refused(a, '/write', join(whoB.home as string, 'planted'), "writing into B's home");
  const shared = join(tmpdir(), `wp-iso-shared-${a.instanceId}`);
  cleanups.push(() => rmSync(shared, { force: true }));
  assert.equal((await ask(a, '/write', shared)).status, 200);
  assert.equal(statSync(shared).mode & 0o777, 0o600);
  await refused(b, '/read', shared, "A's file in /tmp, read from B");

  // The app's files stay readable.
  assert.deepEqual(await ask(a, '/read', join(w.appDir, 'data.txt')), { status: 200, body: { text: 'course material' } });

  // A child that leaves A's process group (setsid) is still A's user: removal ends it too.
  const escapee = (await ask(a, '/escape')).body.pid as number;
  await eventually(() => running(escapee), 'the escaped child to run');
  assert.notEqual(readFileSync(`/proc/${escapee}/stat`, 'utf8').split(') ')[1]!.split(' ')[2], String(pidA), 'in a process group of its own');

  closed = true;
  await wp.close(false);
  await assertAllGone([pidA, pidB, escapee], uids, [whoA.home as string, whoB.home as string]);
  assert.deepEqual(readdirSync(procDir), [], 'state files and output removed');
});

test('after a restart, adopted instances keep their uids (new ones get others) and are removed cleanly, escaped children included', {
  skip: needsRoot,
}, async () => {
  const w = world();
  const first = await w.start();
  await waitForStatus(first.wp.fleet, 'probe', (s) => s.ready === 2);
  const adopted = await live(first.rt);
  const escapee = (await ask(adopted[0]!, '/escape')).body.pid as number;
  await eventually(() => running(escapee), 'the escaped child to run');
  await first.wp.close(true); // warmpool stops mid-class, instances kept

  const second = await w.start();
  let closed = false;
  cleanups.push(() => (closed ? undefined : second.wp.close(false)));
  assert.deepEqual((await live(second.rt)).map((r) => r.instanceId).sort(), adopted.map((r) => r.instanceId).sort(), 'adopted');
  const claim = await second.wp.fleet.claim('probe');
  assert.equal(claim.kind, 'session');
  const st = await waitForStatus(second.wp.fleet, 'probe', (s) => s.ready === 2 && s.claimed === 1);
  assert.equal(st.starting, 0);
  const all = await live(second.rt);
  assert.equal(all.length, 3);
  const whos = await Promise.all(all.map(async (r) => (await ask(r, '/whoami')).body));
  const uids = whos.map((x) => x.uid as number);
  assert.equal(new Set(uids).size, 3, `three instances, three uids (${uids.join(', ')})`);
  const fresh = all.find((r) => !adopted.some((x) => x.instanceId === r.instanceId))!;
  await refused(fresh, '/read', `/proc/${adopted[0]!.runtimeId}/environ`, "an adopted instance's environment, read from a new one");

  closed = true;
  await second.wp.close(false);
  await assertAllGone(
    [...all.map((r) => Number(r.runtimeId)), escapee],
    uids,
    whos.map((x) => x.home as string),
  );
  assert.deepEqual(readdirSync(join(w.stateDir, 'process', 'isotest')), [], 'state files removed');
});

test('an app its own user cannot read is refused before start, naming the folder', { skip: needsRoot }, async () => {
  const w = world({ warm: 1, appMode: 0o700 });
  const { wp } = await w.start();
  cleanups.push(() => wp.close(false));
  const st = await waitForStatus(wp.fleet, 'probe', (s) => s.failures >= 1);
  assert.match(st.lastError!, new RegExp(`app probe runs as a user of its own, which cannot reach ${w.appDir} \\(mode 0700\\)`));
});
