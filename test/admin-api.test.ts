// The admin JSON API and event stream against a real warmpool: createWarmpool() with the process
// runtime running the Pluto stand-in, a visitor entering through the public listener and talking
// over a relayed WebSocket. Every read endpoint, every action (end, resize, drain/resume, refresh:
// only unclaimed instances replaced), the timeline from the on-disk traffic log, and the errors.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { PlutoClient } from '../examples/standin/driver.js';
import { openWebSocketSockets } from '../proxy/index.js';
import { adminWorld, openStateStream, type AdminWorld } from './helpers/admin-world.js';
import { request } from './helpers/http.js';
import { eventually, waitForStatus } from './helpers/wait.js';

const worlds: AdminWorld[] = [];
afterEach(async () => {
  while (worlds.length) await worlds.pop()!.close();
  assert.equal(openWebSocketSockets(), 0, 'no relayed socket left open');
});
async function world(pool: string, extra?: string): Promise<AdminWorld> {
  const w = await adminWorld({ pool, extra });
  worlds.push(w);
  return w;
}

test('reads: apps, live sessions with traffic and deadlines, a timeline from the log, the state stream; end a session', async () => {
  const w = await world('{ warm: 2, max: 3 }');
  const stream = await openStateStream(w.adminUrl);
  try {
    assert.equal(stream.status, 200);
    assert.match(stream.contentType, /^text\/event-stream/);
    const filled = await stream.next((s) => s.apps[0].ready === 2);
    assert.deepEqual(filled.sessions, []);

    let apps = (await w.api('GET', '/api/apps')).json.apps;
    assert.equal(apps.length, 1);
    const a = apps[0];
    assert.deepEqual(
      [a.name, a.runtime, a.health, a.ready, a.starting, a.claimed, a.failed, a.warm, a.max, a.draining, a.live],
      ['demo', 'process', 'ok', 2, 0, 0, 0, 2, 3, false, 0],
    );
    assert.equal(a.history.claims.length, 60);

    const jar = await w.enter();
    const c = await PlutoClient.open(`${w.url}/demo/`, { cookie: jar.header('/demo/') });
    await c.start();
    await c.setBond(5);
    await c.ping();

    const live = (await w.api('GET', '/api/sessions')).json.live;
    assert.equal(live.length, 1);
    const s = live[0];
    assert.equal(s.app, 'demo');
    assert.ok(s.bytesIn > 0 && s.bytesOut > 15_000, `traffic counted: ${s.bytesIn} in, ${s.bytesOut} out`);
    assert.ok(s.messagesIn >= 3);
    assert.ok(s.messagesInByType.update_notebook >= 1);
    assert.equal(s.openConnections, 1);
    assert.equal(s.idleDeadline, s.lastActive + 20 * 60_000, 'default idle timeout from the last activity');
    assert.equal(s.endsBy, 'idle');
    assert.ok(s.lastActive >= s.claimedAt && s.lastActive <= Date.now());

    const seen = await stream.next((x) => x.sessions.length === 1);
    assert.equal(seen.sessions[0].id, s.id);
    assert.equal(seen.apps[0].claimed, 1);

    const one = (await w.api('GET', `/api/sessions/${s.id}`)).json;
    assert.equal(one.live.id, s.id);
    const types = one.timeline.map((e: { type: string }) => e.type);
    for (const t of ['claimed', 'first-request', 'ws-open']) assert.ok(types.includes(t), `${t} in ${types.join(', ')}`);
    assert.equal(one.record.session, s.id);
    assert.equal(one.record.reason, undefined);

    apps = (await w.api('GET', '/api/apps')).json.apps;
    assert.deepEqual([apps[0].claimed, apps[0].live], [1, 1]);
    assert.equal(apps[0].history.claims.at(-1), 1);
    const state = (await w.api('GET', '/api/state')).json;
    assert.deepEqual(Object.keys(state).sort(), ['apps', 'now', 'recent', 'sessions']);

    // End it: the student's socket closes, their cookie gets the "session ended" page.
    const end = await w.api('POST', `/api/sessions/${s.id}/end`);
    assert.deepEqual([end.status, end.json], [200, { session: s.id, ended: true }]);
    await eventually(() => w.wp.fleet.liveSessions().length === 0, 'the session ended');
    const gone = await request(`${w.url}/demo/edit`, { jar, headers: { accept: 'text/html' } });
    assert.equal(gone.status, 410);
    await c.close().catch(() => undefined);
    const after = await stream.next((x) => x.sessions.length === 0 && x.recent.ends.length === 1);
    assert.deepEqual([after.recent.ends[0].session, after.recent.ends[0].reason], [s.id, 'admin']);
    assert.ok(after.recent.ends[0].bytesOut > 15_000, "the summary's traffic");

    const ended = (await w.api('GET', `/api/sessions/${s.id}`)).json;
    assert.equal(ended.live, null);
    assert.equal(ended.record.reason, 'admin');
    assert.equal(ended.timeline.at(-1).type, 'ended');
    assert.equal((await w.api('GET', '/api/sessions')).json.recent[0].session, s.id);

    const again = await w.api('POST', `/api/sessions/${s.id}/end`);
    assert.deepEqual([again.status, again.json.error.code], [404, 'SESSION_UNKNOWN']);
    const never = await w.api('GET', '/api/sessions/nobody-at-all');
    assert.deepEqual([never.status, never.json.error.code], [404, 'SESSION_UNKNOWN']);
  } finally {
    stream.close();
  }
});

test('refresh replaces only unclaimed instances; the claimed one keeps serving its student', async () => {
  const w = await world('{ warm: 2, max: 4 }');
  await waitForStatus(w.wp.fleet, 'demo', (s) => s.ready === 2);
  const jar = await w.enter();
  await waitForStatus(w.wp.fleet, 'demo', (s) => s.ready === 2 && s.claimed === 1);
  const claimed = w.wp.fleet.liveSessions()[0]!.member.id;
  const unclaimed = (await w.rt.list()).filter((r) => r.running && r.instanceId !== claimed).map((r) => r.instanceId);
  assert.equal(unclaimed.length, 2);

  const r = await w.api('POST', '/api/apps/demo/refresh');
  assert.equal(r.status, 200);
  assert.deepEqual(new Set(r.json.replaced), new Set(unclaimed));
  await waitForStatus(w.wp.fleet, 'demo', (s) => s.ready === 2 && s.starting === 0);
  const running = (await w.rt.list()).filter((x) => x.running).map((x) => x.instanceId);
  for (const id of unclaimed) assert.ok(!running.includes(id), `old ${id} removed`);
  assert.ok(running.includes(claimed), 'the claimed instance is still running');
  assert.equal(running.length, 3);
  const still = await request(`${w.url}/demo/open?path=webapp.jl`, { jar, headers: { accept: 'text/html' } });
  assert.equal(still.status, 302, "the student's instance still answers through the proxy");
  assert.equal(w.wp.fleet.liveSessions()[0]!.member.id, claimed);
  assert.ok(w.logs.some((l) => /refreshed by an admin: replacing 2 unclaimed instance/.test(l)));
});

test('resize, drain and resume through the API; errors name what is wrong', async () => {
  const w = await world('{ warm: 1, max: 3 }');
  await waitForStatus(w.wp.fleet, 'demo', (s) => s.ready === 1);

  const up = await w.api('POST', '/api/apps/demo/resize', { warm: 2 });
  assert.deepEqual([up.status, up.json], [200, { app: 'demo', warm: 2, max: 3 }]);
  await waitForStatus(w.wp.fleet, 'demo', (s) => s.ready === 2);
  const bad = await w.api('POST', '/api/apps/demo/resize', { warm: 5 });
  assert.deepEqual([bad.status, bad.json.error.code], [400, 'BAD_REQUEST']);
  assert.match(bad.json.error.message, /warm 5 is above max 3/);
  assert.equal((await w.api('POST', '/api/apps/demo/resize', {})).status, 400);
  assert.equal((await w.api('POST', '/api/apps/demo/resize', '{not json')).json.error.message, 'the request body is not JSON');
  assert.equal((await w.api('POST', '/api/apps/demo/resize', 'x'.repeat(5000))).status, 413, 'a body over 4 KiB');
  assert.deepEqual([(await w.api('POST', '/api/apps/nope/drain')).status, (await w.api('POST', '/api/apps/nope/drain')).json.error.code], [404, 'APP_UNKNOWN']);
  assert.equal((await w.api('GET', '/api/apps/demo/drain')).status, 405);
  assert.equal((await w.api('POST', '/api/apps')).status, 405);
  assert.equal((await w.api('GET', '/api/apps/%zz')).status, 400);

  const jar = await w.enter();
  const drain = await w.api('POST', '/api/apps/demo/drain');
  assert.deepEqual([drain.status, drain.json], [200, { app: 'demo', draining: true }]);
  await waitForStatus(w.wp.fleet, 'demo', (s) => s.ready === 0 && s.starting === 0);
  const turnedAway = await request(`${w.url}/demo/`, { headers: { accept: 'application/json' } });
  assert.deepEqual([turnedAway.status, JSON.parse(turnedAway.text).error.code], [503, 'POOL_STOPPED']);
  assert.equal((await request(`${w.url}/demo/open?path=webapp.jl`, { jar })).status, 302, 'the session in use goes on');
  const shown = (await w.api('GET', '/api/apps/demo')).json;
  assert.deepEqual([shown.draining, shown.health, shown.warm], [true, 'draining', 2]);

  assert.deepEqual((await w.api('POST', '/api/apps/demo/resume')).json, { app: 'demo', draining: false });
  await waitForStatus(w.wp.fleet, 'demo', (s) => s.ready === 2);
  await w.enter();
  assert.equal(w.wp.fleet.liveSessions().length, 2);
});
