// The claim journal: claims appended before they are answered, read at the next start. Pool level,
// against FakeRuntime and a ManualClock, with the journal in a temporary folder: warmpool "dies"
// (the fleet is dropped without stop) between a claim and its engine record, a new fleet starts on
// the same engine and journal, and the instance goes to no other visitor; its cookie still gets it.
// Issue "Class-day resilience".

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClaimJournal, replay } from '../pool/claim-journal.js';
import { ManualClock, settle } from '../core/clock.js';
import { parseConfig, type WarmpoolConfig } from '../core/config.js';
import { Fleet } from '../pool/fleet.js';
import { MemoryTrafficLog } from '../pool/traffic-log.js';
import { FakeRuntime, fakePortCheck } from './helpers/fake-runtime.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'wp-journal-'));
  dirs.push(d);
  return d;
}

const A = '10.0.0.1';
const B = '10.0.0.2';

/** One warmpool run: a fleet over `rt` with the journal of `dir`. A second run on the same rt and dir is a restart. */
function run(config: WarmpoolConfig, rt: FakeRuntime, dir: string, logged: string[] = []) {
  const clock = new ManualClock();
  const log = new MemoryTrafficLog();
  const journal = ClaimJournal.forDeployment(dir, config.deployment, { log: (m) => logged.push(m) });
  const fleet = new Fleet({ config, runtimes: { process: rt }, clock, portCheck: fakePortCheck, trafficLog: log, journal, log: (m) => logged.push(m) });
  return { clock, log, journal, fleet };
}

function world(pool: string) {
  const config = parseConfig(`
deployment: t
apps:
  - name: demo
    command: [fake]
    readiness: { log: "^READY$", timeout: 30s }
    pool: ${pool}
    grace: 5m
`);
  const rt = new FakeRuntime();
  rt.autoReady = true;
  return { config, rt, dir: tempDir() };
}

const counts = (f: Fleet) => {
  const s = f.status()[0]!;
  return { ready: s.ready, starting: s.starting, claimed: s.claimed };
};

test('killed after the first request reached the instance, before the engine recorded the claim: the restart restores it as that session, no other visitor gets it, the cookie does', async () => {
  const w = world('{ warm: 2, max: 3 }');
  const first = run(w.config, w.rt, w.dir);
  await first.fleet.start();
  await settle();
  w.rt.markClaimed = () => new Promise<void>(() => {}); // the engine record never lands before the kill
  const r = await first.fleet.claim('demo', { visitor: A });
  if (r.kind !== 'session') return assert.fail('expected a session');
  const { session, instanceId: x } = r.target;
  // On disk the moment the claim is answered, before any engine call could have landed.
  assert.match(readFileSync(first.journal.path, 'utf8'), new RegExp(`"claimed":"${x}","session":"${session}","app":"demo"`));
  assert.equal(statSync(first.journal.path).mode & 0o777, 0o600);
  first.fleet.event(session, 'request'); // the student's notebook now has their state
  await settle();
  assert.equal(w.rt.instances.get(x)!.claim, undefined, 'not recorded on the engine');
  assert.deepEqual(counts(first.fleet), { ready: 2, starting: 0, claimed: 1 });

  // SIGKILL: nothing stops the first fleet. A new one starts on the same engine and state folder.
  w.rt.markClaimed = FakeRuntime.prototype.markClaimed.bind(w.rt);
  const next = run(w.config, w.rt, w.dir);
  await next.fleet.start();
  await settle();
  assert.deepEqual(counts(next.fleet), { ready: 2, starting: 0, claimed: 1 }, 'adopted as claimed, not as ready');
  const others = [await next.fleet.claim('demo', { visitor: B }), await next.fleet.claim('demo', { visitor: B })];
  assert.deepEqual(
    others.map((o) => o.kind),
    ['session', 'session'],
  );
  for (const o of others) assert.notEqual(o.kind === 'session' && o.target.instanceId, x, 'never handed to another visitor');
  assert.equal((await next.fleet.claim('demo', { visitor: B })).kind, 'queued', 'max reached: the next one waits, the journaled instance stays out of reach');
  const back = next.fleet.find(session, x);
  assert.equal(back.kind, 'live', 'the cookie gets its instance back');
  assert.equal(back.kind === 'live' && back.target.claimedAt, r.target.claimedAt, 'the lifetime still counts from the claim');
  await next.fleet.claimsRecorded();
  assert.equal(w.rt.instances.get(x)!.claim?.session, session, 'recorded on the engine at the restart');
  assert.ok(next.log.entries.some((e) => e.type === 'restored' && e.session === session && /restored from the claim journal/.test(String(e.detail))));
  await next.fleet.stop();
  assert.equal(readFileSync(next.journal.path, 'utf8'), '', 'everything removed: nothing left to journal');
});

test('killed between the answer and the first request: the restored instance waits for its cookie until grace, then is removed, never handed out', async () => {
  const w = world('{ warm: 1, max: 2 }');
  const first = run(w.config, w.rt, w.dir);
  await first.fleet.start();
  await settle();
  const r = await first.fleet.claim('demo', { visitor: A });
  if (r.kind !== 'session') return assert.fail('expected a session');
  const x = r.target.instanceId;
  await settle();

  const next = run(w.config, w.rt, w.dir);
  await next.fleet.start();
  await settle();
  assert.deepEqual(counts(next.fleet), { ready: 1, starting: 0, claimed: 1 });
  const other = await next.fleet.claim('demo', { visitor: B });
  assert.notEqual(other.kind === 'session' && other.target.instanceId, x);
  await next.clock.advance(5 * 60_000 - 1);
  assert.equal(next.fleet.find(r.target.session, x).kind, 'live', 'held for its cookie');
  assert.ok(!w.rt.removed.includes(x));
  await next.clock.advance(1);
  const found = next.fleet.find(r.target.session, x);
  assert.deepEqual(found.kind === 'ended' && found.reason, 'grace', 'no connection since the restart: ended at its grace');
  await settle();
  assert.ok(w.rt.removed.includes(x), 'removed, not given back to the pool');
  await next.fleet.stop();
});

test('a claim given back unused is journaled as returned: after a restart the instance is ready again', async () => {
  const w = world('{ warm: 1, max: 1 }');
  const first = run(w.config, w.rt, w.dir);
  await first.fleet.start();
  await settle();
  const r = await first.fleet.claim('demo', { visitor: A });
  if (r.kind !== 'session') return assert.fail('expected a session');
  await first.clock.advance(15_000);
  assert.equal(first.log.entries.find((e) => e.type === 'returned-unused')?.session, r.target.session);
  assert.match(readFileSync(first.journal.path, 'utf8'), new RegExp(`"returned":"${r.target.instanceId}"`));

  const next = run(w.config, w.rt, w.dir);
  await next.fleet.start();
  await settle();
  assert.deepEqual(counts(next.fleet), { ready: 1, starting: 0, claimed: 0 });
  const again = await next.fleet.claim('demo', { visitor: B });
  assert.equal(again.kind === 'session' && again.target.instanceId, r.target.instanceId, 'pristine: handed out again');
  assert.equal(next.fleet.find(r.target.session, r.target.instanceId).kind, 'unknown', 'and never to the old cookie');
  await next.fleet.stop();
});

test('a journal that cannot be written (disk full): the claim is recorded on the engine before it is answered, and an unused one is replaced, not reused', async () => {
  const w = world('{ warm: 1, max: 1 }');
  const logged: string[] = [];
  const first = run(w.config, w.rt, w.dir, logged);
  await first.fleet.start();
  await settle();
  // Every write now fails the way a full disk does (ENOSPC).
  (first.journal as unknown as { fd: number }).fd = openSync('/dev/full', 'w');
  let release!: () => void;
  const gate = new Promise<void>((res) => {
    release = res;
  });
  const mark = FakeRuntime.prototype.markClaimed.bind(w.rt);
  w.rt.markClaimed = async (id, c) => {
    await gate;
    return mark(id, c);
  };
  let answered = false;
  const claiming = first.fleet.claim('demo', { visitor: A }).then((r) => {
    answered = true;
    return r;
  });
  await settle();
  assert.equal(answered, false, 'not answered before the engine records it');
  assert.match(logged.join('\n'), /claim journal .*: cannot append \(.*ENOSPC.*\); claims are recorded on the engine before their visitor is answered/);
  release();
  const r = await claiming;
  if (r.kind !== 'session') return assert.fail('expected a session');
  assert.equal(w.rt.instances.get(r.target.instanceId)!.claim?.session, r.target.session);
  await first.clock.advance(15_000);
  await settle();
  assert.ok(w.rt.removed.includes(r.target.instanceId), 'unused, but recorded: replaced');
  assert.equal(w.rt.created.length, 2);
  await first.fleet.stop();
});

test('the journal is compacted at start to the claims still unrecorded, and whenever it passes compactBytes', async () => {
  const dir = tempDir();
  const path = join(dir, 'claims-t.jsonl');
  writeFileSync(
    path,
    [
      '{"t":1,"claimed":"aaaaaaaaaa","session":"s1","app":"demo"}',
      '{"t":2,"claimed":"bbbbbbbbbb","session":"s2","app":"demo"}',
      '{"t":3,"returned":"aaaaaaaaaa"}',
      '{"t":4,"claimed":"cccccccc', // cut short by a crash
    ].join('\n'),
    { mode: 0o644 },
  );
  const logged: string[] = [];
  const j = ClaimJournal.forDeployment(dir, 't', { compactBytes: 400, log: (m) => logged.push(m) });
  assert.deepEqual([...j.earlier.keys()], ['bbbbbbbbbb']);
  assert.match(logged[0]!, /1 unreadable line\(s\) skipped/);
  assert.equal(statSync(path).mode & 0o777, 0o600, 'tightened to 0600');
  j.compact((c) => c.session === 's2');
  assert.equal(readFileSync(path, 'utf8'), '{"t":2,"claimed":"bbbbbbbbbb","session":"s2","app":"demo"}\n');
  for (let i = 0; i < 20; i++) {
    const id = `i${String(i).padStart(9, '0')}`;
    assert.equal(j.claimed({ instance: id, session: `s${i}x`, app: 'demo', at: 10 + i }), true);
    j.settled(id); // recorded on the engine right after
  }
  assert.ok(statSync(path).size < 400, `compacted as it grew (${statSync(path).size} bytes)`);
  assert.deepEqual(
    j.claims().map((c) => c.instance),
    ['bbbbbbbbbb'],
    'settled claims are gone, the unrecorded one stays',
  );
  j.compact();
  j.close();
  assert.deepEqual([...replay(readFileSync(path, 'utf8')).claims.keys()], ['bbbbbbbbbb']);
});

test('replay: the last word per instance stands; malformed lines are skipped and counted', () => {
  const cases: { lines: string[]; want: string[]; skipped: number }[] = [
    { lines: [], want: [], skipped: 0 },
    { lines: ['{"t":1,"claimed":"x1","session":"s1","app":"a"}'], want: ['x1:s1'], skipped: 0 },
    { lines: ['{"t":1,"claimed":"x1","session":"s1","app":"a"}', '{"t":2,"returned":"x1"}'], want: [], skipped: 0 },
    {
      lines: ['{"t":1,"claimed":"x1","session":"s1","app":"a"}', '{"t":2,"returned":"x1"}', '{"t":3,"claimed":"x1","session":"s2","app":"a"}'],
      want: ['x1:s2'],
      skipped: 0,
    },
    { lines: ['{"t":2,"returned":"x9"}'], want: [], skipped: 0 },
    {
      lines: [
        'not json',
        '{"claimed":"x1","session":"s1","app":"a"}',
        '{"t":1,"claimed":"x/1","session":"s1","app":"a"}',
        '{"t":1,"claimed":"x1","session":"s1"}',
      ],
      want: [],
      skipped: 4,
    },
    { lines: ['{"t":1,"claimed":"x1","session":"s1","app":"a"}', '{"t":1,"claimed":"x2","se'], want: ['x1:s1'], skipped: 1 },
  ];
  for (const c of cases) {
    const r = replay(c.lines.join('\n'));
    assert.deepEqual(
      [...r.claims.values()].map((x) => `${x.instance}:${x.session}`),
      c.want,
      c.lines.join(' | '),
    );
    assert.equal(r.skipped, c.skipped, c.lines.join(' | '));
  }
});

test('without a journal (the fallback): a restart adopts the unrecorded instance as ready, and only a cookie that comes first takes it back', async () => {
  // What the journal closes: kept here so the difference stays visible.
  const w = world('{ warm: 1, max: 1 }');
  const mk = () =>
    new Fleet({ config: w.config, runtimes: { process: w.rt }, clock: new ManualClock(), portCheck: fakePortCheck, trafficLog: new MemoryTrafficLog() });
  const first = mk();
  await first.start();
  await settle();
  const r = await first.claim('demo', { visitor: A });
  if (r.kind !== 'session') return assert.fail('expected a session');
  const next = mk();
  await next.start();
  await settle();
  assert.deepEqual(counts(next), { ready: 1, starting: 0, claimed: 0 }, 'looks free');
  const other = await next.claim('demo', { visitor: B });
  assert.equal(other.kind === 'session' && other.target.instanceId, r.target.instanceId, 'handed to another visitor: the hole the journal closes');
  assert.equal(next.find(r.target.session, r.target.instanceId).kind, 'unknown');
  await next.stop();
});
