// /_warmpool/healthz on the public port: 200 while the engine answers and every pool can serve or
// is warming; 503 when the runtime's engine is unreachable (list() fails) or a pool is failing.
// Fleet on FakeRuntime and a ManualClock, the proxy on a real port.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, settle } from '../core/clock.js';
import { parseConfig } from '../core/config.js';
import { WarmpoolError } from '../core/errors.js';
import { Fleet } from '../pool/fleet.js';
import type { InstanceRecord } from '../pool/runtime.js';
import { FakeRuntime, fakePortCheck } from './helpers/fake-runtime.js';
import { startProxyServer } from './helpers/fake-pool.js';
import { request } from './helpers/http.js';

class FlakyRuntime extends FakeRuntime {
  unreachable = false;
  override async list(): Promise<InstanceRecord[]> {
    if (this.unreachable) throw new WarmpoolError('ENGINE_UNREACHABLE', 'cannot reach /var/run/docker.sock');
    return super.list();
  }
}

async function world(pool: string) {
  const config = parseConfig(`
apps:
  - name: demo
    command: [fake]
    readiness: { log: "^READY$", timeout: 30s }
    pool: ${pool}
`);
  const clock = new ManualClock();
  const rt = new FlakyRuntime();
  const fleet = new Fleet({ config, runtimes: { process: rt }, clock, portCheck: fakePortCheck, backoffMs: { first: 1000, max: 8000 } });
  const p = await startProxyServer({ config, pool: fleet, clock });
  const health = async () => {
    const r = await request(`${p.url}/_warmpool/healthz`);
    return { status: r.status, body: JSON.parse(r.text) };
  };
  return { clock, rt, fleet, p, health };
}

test('healthz: warming and ready are healthy; an unreachable engine is 503 until it answers again', async () => {
  const { clock, rt, fleet, p, health } = await world('{ warm: 1, max: 2 }');
  try {
    await fleet.start();
    await settle();
    let h = await health();
    assert.equal(h.status, 200);
    assert.deepEqual(h.body.pools, [{ app: 'demo', state: 'warming', canServe: true, ready: 0 }]);
    rt.readyAll();
    await settle();
    await clock.advance(5000);
    h = await health();
    assert.deepEqual([h.status, h.body.ok, h.body.apps], [200, true, ['demo']]);
    assert.deepEqual(h.body.engines, [{ runtime: 'process', reachable: true }]);
    assert.deepEqual(h.body.pools, [{ app: 'demo', state: 'ok', canServe: true, ready: 1 }]);

    rt.unreachable = true;
    await clock.advance(5000);
    h = await health();
    assert.deepEqual([h.status, h.body.ok], [503, false]);
    assert.deepEqual(h.body.engines, [{ runtime: 'process', reachable: false }]);
    assert.ok(!JSON.stringify(h.body).includes('docker.sock'), 'no engine detail on the public port');
    const head = await request(`${p.url}/_warmpool/healthz`, { method: 'HEAD' });
    assert.deepEqual([head.status, head.text], [503, '']);

    rt.unreachable = false;
    await clock.advance(5000);
    assert.equal((await health()).status, 200);
  } finally {
    await p.close();
    await fleet.stop();
  }
});

test('healthz: a pool whose creates fail with nothing ready is 503; one at capacity is not', async () => {
  const { clock, rt, fleet, p, health } = await world('{ warm: 1, max: 1 }');
  try {
    rt.failWith = new Error('image broken');
    await fleet.start();
    await settle();
    let h = await health();
    assert.equal(h.status, 503);
    assert.deepEqual(h.body.pools, [{ app: 'demo', state: 'failing', canServe: false, ready: 0 }]);
    rt.failWith = undefined;
    rt.autoReady = true;
    await clock.advance(1000);
    assert.equal((await health()).status, 200);
    assert.equal((await fleet.claim('demo')).kind, 'session');
    h = await health();
    assert.equal(h.status, 200, 'a full class is not an outage');
    assert.deepEqual(h.body.pools, [{ app: 'demo', state: 'full', canServe: false, ready: 0 }]);
  } finally {
    await p.close();
    await fleet.stop();
  }
});
