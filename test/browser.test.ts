// Real headless Chromium through the proxy: entry → cookie → deep link → editor page → live
// WebSocket; moving the slider round-trips through the instance. Skipped (with a notice) when
// /usr/bin/chromium is missing, unless WARMPOOL_REQUIRE_BROWSER=1.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { startStandin } from '../examples/standin/server.js';
import { openWebSocketSockets } from '../proxy/index.js';
import { FakePool, appConfig, startProxyServer, warmpoolConfig } from './helpers/fake-pool.js';

const CHROMIUM = '/usr/bin/chromium';
const have = existsSync(CHROMIUM);
if (!have && process.env.WARMPOOL_REQUIRE_BROWSER !== '1') {
  console.log(`# browser test skipped: ${CHROMIUM} is not installed (apt-get install chromium; WARMPOOL_REQUIRE_BROWSER=1 makes this a failure)`);
}

test('headless Chromium: entry → editor page → live WebSocket, slider round trip', { skip: !have && process.env.WARMPOOL_REQUIRE_BROWSER !== '1' ? 'chromium missing' : false, timeout: 120_000 }, async () => {
  assert.ok(have, `${CHROMIUM} is required (WARMPOOL_REQUIRE_BROWSER=1)`);
  const secret = 'Br0wser1';
  const s = await startStandin({ port: 0, secret, stateBytes: 300_000, out: () => {}, log: () => {} });
  const pool = new FakePool([appConfig('demo', {
    deepLink: '/open?path=webapp.jl', classifier: 'pluto',
    secret: { env: 'PLUTO_SECRET', inject: { query: 'secret', headerFormat: '{secret}' } },
  })]);
  pool.addInstance('demo', { port: s.port, secret });
  const p = await startProxyServer({ config: warmpoolConfig([...pool.apps()]), pool });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
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
    assert.deepEqual(cookies.map((c) => [c.name, c.path, c.httpOnly, c.sameSite]), [['warmpool_demo', '/demo/', true, 'Lax']]);
    assert.ok(!(await page.content()).includes(secret), 'secret not in the page');
    assert.equal(s.connections(), 1);
    assert.equal(pool.claims.length, 1);
    assert.ok(seen.some((l) => l.startsWith('302 ') && l.endsWith('/demo/')), seen.join('\n'));
    await context.close();
  } finally {
    await browser.close();
    await p.close();
    await s.close();
  }
  assert.equal(p.proxy.openSockets(), 0);
  assert.equal(openWebSocketSockets(), 0);
});
