// Docker Engine calls timed for the admin metrics: the route label (ids elided, version dropped), the
// Engine client's onCall hook on a fake engine, and the histogram the metrics endpoint shows.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, callRoute } from '../pool/runtimes/engine.js';
import { FleetMonitor } from '../admin/monitor.js';
import { createMetrics } from '../admin/metrics.js';
import { Fleet } from '../pool/fleet.js';
import { ManualClock } from '../core/clock.js';
import { parseConfig } from '../core/config.js';
import { FakeRuntime } from './helpers/fake-runtime.js';
import { sendJson, startFakeEngine } from './helpers/fake-engine.js';

const routes: [string, string, string][] = [
  ['POST', '/v1.41/containers/3f2a9c/rename?name=x', 'POST /containers/{id}/rename'],
  ['GET', '/v1.41/containers/json?all=1', 'GET /containers/json'],
  ['POST', '/v1.41/containers/create?name=wp-1', 'POST /containers/create'],
  ['DELETE', '/v1.41/containers/abc?force=1', 'DELETE /containers/{id}'],
  ['POST', '/v1.41/services/q1w2/update?version=12', 'POST /services/{id}/update'],
  ['GET', '/v1.41/tasks?filters=x', 'GET /tasks'],
  ['GET', '/_ping', 'GET /_ping'],
];
for (const [method, path, want] of routes) {
  test(`callRoute ${method} ${path} → ${want}`, () => assert.equal(callRoute(method, path), want));
}

test('the Engine client reports each call with its route, duration and outcome', async () => {
  const fake = await startFakeEngine((req, res) => {
    if (req.path === '/_ping') {
      res.end('OK');
      return;
    }
    if (req.path.endsWith('/json')) {
      sendJson(res, 404, { message: 'No such container: c9' });
      return;
    }
    sendJson(res, 500, { message: 'boom' });
  });
  const calls: [string, number, boolean][] = [];
  const engine = new Engine({ socketPath: fake.socketPath, onCall: (route, ms, ok) => calls.push([route, ms, ok]) });
  try {
    await engine.ping();
    await engine.inspectContainer('c9').catch(() => undefined);
    assert.deepEqual(
      calls.map(([r, , ok]) => [r, ok]),
      [
        ['GET /_ping', true],
        ['GET /containers/{id}/json', false],
      ],
    );
    assert.ok(calls.every(([, ms]) => ms >= 0 && ms < 30_000));
  } finally {
    await engine.close();
    await fake.close();
  }
});

test('warmpool_engine_call_seconds counts each call by route and outcome', async () => {
  const config = parseConfig('apps:\n  - name: demo\n    command: [x]\n    readiness: { log: READY }\n');
  const clock = new ManualClock();
  const fleet = new Fleet({ config, runtimes: { process: new FakeRuntime() }, clock });
  const monitor = new FleetMonitor(clock);
  const metrics = createMetrics({ fleet, monitor, openSockets: () => 0, processMetrics: false });
  monitor.engineCall('POST /containers/{id}/rename', 12, true);
  monitor.engineCall('POST /containers/{id}/rename', 40, true);
  monitor.engineCall('GET /containers/json', 3, false);
  const text = await metrics.text();
  metrics.close();
  assert.match(text, /warmpool_engine_call_seconds_count\{call="POST \/containers\/\{id\}\/rename",outcome="ok"\} 2/);
  assert.match(text, /warmpool_engine_call_seconds_bucket\{le="0.025",call="POST \/containers\/\{id\}\/rename",outcome="ok"\} 1/);
  assert.match(text, /warmpool_engine_call_seconds_count\{call="GET \/containers\/json",outcome="error"\} 1/);
});
