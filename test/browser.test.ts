// Real headless Chromium through the proxy: entry → cookie → deep link → editor page → live
// WebSocket; moving the slider round-trips through the instance; on an empty pool, the waiting page
// (its script and stream under the page's CSP) takes the student in by itself. Skipped (with a
// notice) when /usr/bin/chromium is missing, unless WARMPOOL_REQUIRE_BROWSER=1.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { startStandin } from '../examples/standin/server.js';
import { ManualClock } from '../core/clock.js';
import { parseConfig } from '../core/config.js';
import { Fleet } from '../pool/fleet.js';
import { openWebSocketSockets } from '../proxy/index.js';
import { FakePool, appConfig, startProxyServer, warmpoolConfig } from './helpers/fake-pool.js';
import { FakeRuntime, fakePortCheck } from './helpers/fake-runtime.js';
import { until } from './helpers/wait.js';

const CHROMIUM = '/usr/bin/chromium';
const have = existsSync(CHROMIUM);
if (!have && process.env.WARMPOOL_REQUIRE_BROWSER !== '1') {
  console.log(`# browser test skipped: ${CHROMIUM} is not installed (apt-get install chromium; WARMPOOL_REQUIRE_BROWSER=1 makes this a failure)`);
}

test('headless Chromium: entry → editor page → live WebSocket, slider round trip', {
  skip: !have && process.env.WARMPOOL_REQUIRE_BROWSER !== '1' ? 'chromium missing' : false,
  timeout: 120_000,
}, async () => {
  assert.ok(have, `${CHROMIUM} is required (WARMPOOL_REQUIRE_BROWSER=1)`);
  const secret = 'Br0wser1';
  const s = await startStandin({ port: 0, secret, stateBytes: 300_000, out: () => {}, log: () => {} });
  const pool = new FakePool([
    appConfig('demo', {
      deepLink: '/open?path=webapp.jl',
      classifier: 'pluto',
      secret: { env: 'PLUTO_SECRET', inject: { query: 'secret', headerFormat: '{secret}' } },
    }),
  ]);
  pool.addInstance('demo', { port: s.port, secret });
  const p = await startProxyServer({ config: warmpoolConfig([...pool.apps()]), pool });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    const seen: string[] = [];
    page.on('response', async (r) => {
      seen.push(`${r.status()} ${r.url()}`);
      for (const v of Object.values(await r.allHeaders())) assert.ok(!v.includes(secret), `secret in a response header of ${r.url()}`);
    });
    await page.goto(`${p.url}/demo/`);
    assert.match(page.url(), new RegExp(`/demo/edit\\?id=${s.notebookId}$`));
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready', undefined, { timeout: 30_000 });
    assert.ok(Number(await page.textContent('#state-bytes')) > 290_000, 'the full state arrived over the relayed socket');

    const traffic = [...pool.sessions.values()][0]!.traffic;
    const activeBefore = traffic.lastActive ?? 0;
    await new Promise((r) => setTimeout(r, 5));
    await page.locator('#bond').fill('42');
    await page.waitForFunction(() => document.getElementById('bond-value')?.textContent === '42', undefined, { timeout: 10_000 });
    // (pool.activity() itself is coalesced to once a second; the page load just before may have used it up.)
    assert.ok(traffic.lastActive! > activeBefore, 'the slider counted as user activity');
    assert.ok(pool.activities.length >= 1);
    assert.equal(traffic.messagesIn.update_notebook, 2, 'the empty start-up update and the slider');

    const cookies = await context.cookies();
    assert.deepEqual(
      cookies.map((c) => [c.name, c.path, c.httpOnly, c.sameSite]),
      [['warmpool_demo', '/demo/', true, 'Lax']],
    );
    assert.ok(!(await page.content()).includes(secret), 'secret not in the page');
    assert.equal(s.connections(), 1);
    assert.equal(pool.claims.length, 1);
    assert.ok(
      seen.some((l) => l.startsWith('302 ') && l.endsWith('/demo/')),
      seen.join('\n'),
    );
    await context.close();
  } finally {
    await browser.close();
    await p.close();
    await s.close();
  }
  assert.equal(p.proxy.openSockets(), 0);
  assert.equal(openWebSocketSockets(), 0);
});

test('headless Chromium: a student on an empty pool sees the waiting page and lands in the app by itself when an instance is ready', {
  skip: !have && process.env.WARMPOOL_REQUIRE_BROWSER !== '1' ? 'chromium missing' : false,
  timeout: 120_000,
}, async () => {
  assert.ok(have, `${CHROMIUM} is required (WARMPOOL_REQUIRE_BROWSER=1)`);
  const s = await startStandin({ port: 0, stateBytes: 50_000, out: () => {}, log: () => {} });
  const config = parseConfig(`
deployment: browser
queue: { pageHold: 0 }  # the waiting page at once: this test is about the page
apps:
  - name: demo
    command: [fake]
    deepLink: /open?path=webapp.jl
    readiness: { log: "^READY$", timeout: 10m }
    pool: { warm: 0, max: 1 }
    classifier: pluto
`);
  // The real pool and line on a manual clock; the instance is the stand-in, ready when the test says.
  const clock = new ManualClock();
  const rt = new FakeRuntime();
  rt.backendPort = s.port;
  const fleet = new Fleet({ config, runtimes: { process: rt }, clock, portCheck: fakePortCheck });
  const p = await startProxyServer({ config, pool: fleet, clock });
  await fleet.start();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems: string[] = [];
    // (Chromium logs the waiting page's own 503 as a failed resource: that one is expected.)
    page.on('console', (m) => {
      if (m.type() === 'error' && !/status of 503/.test(m.text())) problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(String(e)));
    const first = await page.goto(`${p.url}/demo/`);
    assert.equal(first?.status(), 503);
    assert.equal(await page.textContent('h1'), 'Waiting for demo');
    assert.match((await page.textContent('#wp-headline'))!, /a new one is being started for you/);
    assert.equal(await page.textContent('#wp-place'), 'You are next in line.');
    // The page's script opened its stream: that holds the place.
    await until('the page to hold its place', () => (fleet.status()[0]!.queued === 1 ? true : undefined));
    assert.equal(fleet.liveSessions().length, 0);
    await clock.advance(3000);
    rt.print(rt.live[0]!, 'READY');
    await page.waitForURL(new RegExp(`/demo/edit\\?id=${s.notebookId}$`), { timeout: 30_000 });
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready', undefined, { timeout: 30_000 });
    const session = fleet.liveSessions()[0]!;
    assert.equal(session.claimedAt, clock.now(), 'collected at the clock instant the instance was ready');
    assert.ok(session.firstRequestSeen, 'in use');
    assert.equal(session.target.traffic.openConnections, 1, 'its WebSocket is open');
    assert.deepEqual(
      (await context.cookies()).map((c) => [c.name, c.path, c.httpOnly]),
      [['warmpool_demo', '/demo/', true]],
    );
    assert.deepEqual(problems, [], 'no script error, nothing refused by the CSP');
    assert.equal(fleet.status()[0]!.queued, 0);
    await context.close();

    // Without JavaScript: the <noscript> refresh holds the place with a held navigation.
    const plain = await browser.newContext({ javaScriptEnabled: false });
    const page2 = await plain.newPage();
    const shown = await page2.goto(`${p.url}/demo/`, { waitUntil: 'commit' });
    assert.equal(shown?.status(), 503, "the waiting page, shown while its refresh's navigation is held");
    await until('the held navigation to hold its place', () => (fleet.status()[0]!.queued === 1 ? true : undefined));
    await fleet.end(session.id, 'admin'); // the first student leaves; a new instance starts
    await until('a new instance', () => (rt.live.length === 1 && rt.live[0] !== session.member.id ? true : undefined));
    rt.print(rt.live[0]!, 'READY');
    await page2.waitForURL(new RegExp(`/demo/edit\\?id=${s.notebookId}$`), { timeout: 30_000 });
    assert.equal(fleet.liveSessions().length, 1);
    await plain.close();
  } finally {
    await browser.close();
    await p.close();
    await fleet.stop();
    await s.close();
  }
  assert.equal(p.proxy.openSockets(), 0);
  assert.equal(openWebSocketSockets(), 0);
});
