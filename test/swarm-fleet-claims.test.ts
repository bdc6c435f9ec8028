// The fleet on a runtime whose instances several warmpool processes share (swarm's sharedClaims),
// against an in-memory engine with compare-and-swap claims and a ManualClock: a claim is on the engine
// before its answer, two fleets never hand one instance to two visitors, a lost claim tries the next
// instance, and an engine that cannot say puts the instance back. No Docker, no sleeps.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, settle } from '../core/clock.js';
import { parseConfig, type AppConfig } from '../core/config.js';
import { WarmpoolError, isWarmpoolError } from '../core/errors.js';
import { Fleet } from '../pool/fleet.js';
import type { ClaimMark, InstanceRecord, InstanceSpec, Runtime } from '../pool/runtime.js';
import { MemoryTrafficLog } from '../pool/traffic-log.js';
import { fakePortCheck } from './helpers/fake-runtime.js';

/** What the shared engine holds: instances and their claims (with the replica that made each). */
class Store {
  readonly instances = new Map<string, InstanceRecord & { by?: string }>();
  down = false;
  nextPort = 31000;
}

/** One warmpool process's view of the shared engine. markClaimed is a compare-and-swap that yields first, so claims interleave. */
class SharedFake implements Runtime {
  readonly kind = 'process' as const;
  readonly sharedClaims = true;
  readonly conflicts: string[] = [];
  constructor(
    readonly replica: string,
    readonly store: Store,
  ) {}

  async create(app: AppConfig, spec: InstanceSpec): Promise<InstanceRecord> {
    const rec: InstanceRecord = {
      instanceId: spec.instanceId,
      app: app.name,
      deployment: 't',
      runtimeId: spec.instanceId,
      host: '127.0.0.1',
      port: this.store.nextPort++,
      running: true,
      createdAt: 0,
      env: {},
    };
    this.store.instances.set(spec.instanceId, { ...rec });
    return rec;
  }
  async remove(id: string): Promise<void> {
    const r = this.store.instances.get(id);
    if (r?.by && r.by !== this.replica) return; // another replica's visitor has it
    this.store.instances.delete(id);
  }
  async list(): Promise<InstanceRecord[]> {
    return [...this.store.instances.values()].filter((r) => !r.by || r.by === this.replica).map(({ by: _by, ...r }) => r);
  }
  async markClaimed(id: string, claim: ClaimMark): Promise<void> {
    await new Promise((r) => setImmediate(r)); // the engine round trip: others may claim meanwhile
    if (this.store.down) throw new WarmpoolError('ENGINE_UNREACHABLE', 'fake engine down');
    const r = this.store.instances.get(id);
    if (!r) throw new WarmpoolError('INSTANCE_GONE', `no ${id}`);
    if (r.claim && !(r.claim.session === claim.session && r.by === this.replica)) {
      this.conflicts.push(id);
      throw new WarmpoolError('CLAIM_CONFLICT', `instance ${id} was claimed first by replica ${r.by}`);
    }
    r.claim = claim;
    r.by = this.replica;
  }
  output(_id: string, onLine: (line: string) => void): () => void {
    onLine('READY');
    return () => {};
  }
  watch(): () => void {
    return () => {};
  }
  async close(): Promise<void> {}
}

function fleetOn(store: Store, replica: string, clock: ManualClock, pool = '{ warm: 4, max: 8, parallel: 4 }') {
  const config = parseConfig(`
deployment: t
apps:
  - name: demo
    command: [fake]
    readiness: { log: "^READY$", timeout: 30s }
    pool: ${pool}
`);
  const rt = new SharedFake(replica, store);
  const logs: string[] = [];
  const fleet = new Fleet({ config, runtimes: { process: rt }, clock, portCheck: fakePortCheck, trafficLog: new MemoryTrafficLog(), log: (m) => logs.push(m) });
  return { rt, fleet, logs };
}

async function warm(fleet: Fleet, n: number): Promise<void> {
  await fleet.start();
  for (let i = 0; i < 20 && fleet.status()[0]!.ready < n; i++) await settle();
  assert.equal(fleet.status()[0]!.ready, n);
}

test('a claim is on the shared engine before the visitor is answered', async () => {
  const store = new Store();
  const { fleet } = fleetOn(store, 'a', new ManualClock());
  await warm(fleet, 4);
  const r = await fleet.claim('demo');
  assert.equal(r.kind, 'session');
  if (r.kind !== 'session') return;
  assert.deepEqual(store.instances.get(r.target.instanceId)?.claim, { session: r.target.session, at: r.target.claimedAt }, 'recorded when claim() resolved');
  await fleet.claimsRecorded(); // nothing left in the background
  await fleet.stop(false);
});

test('two fleets on one shared engine: 40 claims at once, never one instance to two visitors; a lost claim tries the next', async () => {
  const store = new Store();
  const clock = new ManualClock();
  const a = fleetOn(store, 'a', clock);
  const b = fleetOn(store, 'b', clock);
  await warm(a.fleet, 4);
  await warm(b.fleet, 4); // adopted a's four
  assert.equal(store.instances.size, 4, 'b created none');
  const results = await Promise.all(
    Array.from({ length: 40 }, (_, i) => (i % 2 ? b.fleet : a.fleet).claim('demo').then((r) => ({ r, by: i % 2 ? 'b' : 'a' }))),
  );
  const granted = results.flatMap(({ r, by }) => (r.kind === 'session' ? [{ t: r.target, by }] : []));
  assert.equal(new Set(granted.map((g) => g.t.instanceId)).size, granted.length, 'never one instance twice');
  assert.ok(granted.length >= 4, `the four shared ones are handed out, got ${granted.length}`);
  for (const g of granted) {
    const r = store.instances.get(g.t.instanceId)!;
    assert.deepEqual([r.claim?.session, r.by], [g.t.session, g.by], 'the engine names the visitor who got it');
  }
  const conflicts = a.rt.conflicts.length + b.rt.conflicts.length;
  assert.ok(conflicts >= 1, 'both fleets wanted the same four: some claims were lost');
  assert.ok([...a.logs, ...b.logs].some((l) => /claimed first by replica .*; trying another instance/.test(l)));
  // Each fleet counts only its own claims; what it lost is dropped, not removed.
  assert.equal(a.fleet.status()[0]!.claimed + b.fleet.status()[0]!.claimed, granted.length);
  for (const g of granted) assert.ok(store.instances.has(g.t.instanceId), "a lost claim never removed the winner's instance");
  await b.fleet.stop(false);
  for (const g of granted.filter((x) => x.by === 'a')) assert.ok(store.instances.has(g.t.instanceId), "b stopping leaves a's visitors their instances");
  await a.fleet.stop(false);
});

test('an engine that cannot record the claim: the visitor gets the error, the instance is ready again', async () => {
  const store = new Store();
  const { fleet } = fleetOn(store, 'a', new ManualClock(), '{ warm: 1, max: 1 }');
  await warm(fleet, 1);
  store.down = true;
  await assert.rejects(fleet.claim('demo'), (e: unknown) => isWarmpoolError(e, 'ENGINE_UNREACHABLE'));
  assert.deepEqual([fleet.status()[0]!.ready, fleet.status()[0]!.claimed], [1, 0], 'back to ready, not lost');
  store.down = false;
  const r = await fleet.claim('demo');
  assert.equal(r.kind, 'session');
  await fleet.stop(false);
});

test('an instance gone before its claim landed: dropped, and the visitor gets the next one', async () => {
  const store = new Store();
  const { fleet } = fleetOn(store, 'a', new ManualClock(), '{ warm: 2, max: 2 }');
  await warm(fleet, 2);
  const [first] = [...store.instances.keys()];
  store.instances.delete(first!); // removed outside warmpool, not yet noticed
  const r = await fleet.claim('demo');
  assert.equal(r.kind, 'session');
  assert.notEqual(r.kind === 'session' && r.target.instanceId, first);
  assert.ok(!store.instances.has(first!) && fleet.status()[0]!.claimed === 1, 'the gone one is dropped, not counted');
  await fleet.stop(false);
});

test("a visitor's claim on a shared engine is recorded before its answer too; unused at queue.firstUse it is replaced, not handed out again", async () => {
  const store = new Store();
  const clock = new ManualClock();
  const { fleet } = fleetOn(store, 'a', clock, '{ warm: 1, max: 2 }');
  await warm(fleet, 1);
  const r = await fleet.claim('demo', { visitor: '10.0.0.1' });
  if (r.kind !== 'session') return assert.fail('expected a session');
  assert.equal(store.instances.get(r.target.instanceId)?.claim?.session, r.target.session, 'on the engine before the answer');
  await clock.advance(15_000);
  await settle();
  const found = fleet.find(r.target.session, r.target.instanceId);
  assert.equal(found.kind === 'ended' && found.reason, 'unused');
  assert.ok(!store.instances.has(r.target.instanceId), 'removed: the engine names it claimed, so it is not reused');
  assert.equal(fleet.status()[0]!.claimed, 0);
  await fleet.stop(false);
});

test('an offer another replica claimed before it was collected: the visitor joins the line again, the other keeps it', async () => {
  const store = new Store();
  const clock = new ManualClock();
  const a = fleetOn(store, 'a', clock, '{ warm: 0, max: 1 }');
  await a.fleet.start();
  const q = await a.fleet.claim('demo', { visitor: '10.0.0.1' });
  if (q.kind !== 'queued') return assert.fail('expected a place in line');
  let offer: Awaited<ReturnType<Fleet['wait']>> | undefined;
  void a.fleet.wait('demo', q.ticket, { kind: 'stream', signal: new AbortController().signal }).then((w) => {
    offer = w;
  });
  for (let i = 0; i < 20 && offer === undefined; i++) await settle();
  if (offer?.kind !== 'offer') return assert.fail(`expected an offer, got ${JSON.stringify(offer)}`);
  const b = fleetOn(store, 'b', clock, '{ warm: 1, max: 1 }');
  await warm(b.fleet, 1); // adopted a's instance, offered but not yet collected
  const rb = await b.fleet.claim('demo');
  assert.equal(rb.kind, 'session');
  assert.deepEqual(await a.fleet.collect('demo', offer.collect), { kind: 'gone' });
  assert.equal(store.instances.get(rb.kind === 'session' ? rb.target.instanceId : '')?.by, 'b');
  await a.fleet.stop(false);
  await b.fleet.stop(false);
});
