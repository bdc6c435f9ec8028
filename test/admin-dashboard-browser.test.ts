// The admin dashboard in headless Chromium against a real warmpool (process runtime, stand-in app):
// sign in (a wrong token refused), watch the pool refill after Refresh, see students' sessions
// appear with their traffic, end one from the page; the token from the demo's URL fragment; no CSP
// violation. A screenshot goes to test-artifacts/admin-dashboard.png. Skipped (with a notice) when
// /usr/bin/chromium is missing, unless WARMPOOL_REQUIRE_BROWSER=1.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Page } from 'playwright-core';
import { PlutoClient } from '../examples/standin/driver.js';
import { openWebSocketSockets } from '../proxy/index.js';
import { ADMIN_TOKEN, adminWorld } from './helpers/admin-world.js';
import { eventually, waitForStatus } from './helpers/wait.js';

const CHROMIUM = '/usr/bin/chromium';
const have = existsSync(CHROMIUM);
const skip = !have && process.env.WARMPOOL_REQUIRE_BROWSER !== '1';
if (skip)
  console.log(
    `# admin dashboard browser test skipped: ${CHROMIUM} is not installed (apt-get install chromium; WARMPOOL_REQUIRE_BROWSER=1 makes this a failure)`,
  );

const text = (page: Page, sel: string) => page.locator(sel).first().textContent();

test('dashboard: sign in, watch a pool fill, see sessions appear, end one from the page', {
  skip: skip ? 'chromium missing' : false,
  timeout: 120_000,
}, async () => {
  assert.ok(have, `${CHROMIUM} is required (WARMPOOL_REQUIRE_BROWSER=1)`);
  // A second app whose instances never get ready: its failures and their reason show on the page.
  const w = await adminWorld({
    pool: '{ warm: 2, max: 3 }',
    env: 'STATE_BYTES: 60000, STARTUP_DELAY_MS: 700',
    apps: `
  - name: lab
    command: [${process.execPath}, -e, "setInterval(() => {}, 1000)"]
    readiness: { log: "^READY$", timeout: 300ms }
    pool: { warm: 1, max: 2 }
`,
  });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const students: PlutoClient[] = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('dialog', (d) => void d.accept()); // the page confirms Refresh, Drain and End
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`${r.status()} ${r.url()}`);
    });

    await page.goto(`${w.adminUrl}/`);
    await page.locator('#signin').waitFor({ state: 'visible' });
    await page.fill('#token', 'not-the-token-0123456789');
    await page.click('#signin-form button[type=submit]');
    await page.locator('#signin-error').waitFor({ state: 'visible' });
    assert.match((await text(page, '#signin-error'))!, /refused/);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('warmpool-admin-token')), null, 'a refused token is not kept');
    assert.equal(problems.filter((p) => p.startsWith('401 ')).length, 1, 'the refused token was tried once');
    problems.length = 0; // that 401 (and the console's line for it) was the point

    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#signin-form button[type=submit]');
    await page.locator('#main').waitFor({ state: 'visible' });
    await page.waitForFunction(() => document.getElementById('conn')?.textContent === 'live');
    const card = '.app[data-app="demo"]';
    await page.waitForFunction((c) => document.querySelector(`${c} .ready`)?.textContent === '2', card, { timeout: 30_000 });
    assert.equal(await text(page, `${card} .badge`), 'ok');

    // Refresh from the page: the unclaimed instances are replaced and the pool fills again, live.
    await page.click(`${card} button.refresh`);
    await page.waitForFunction((c) => document.querySelector(`${c} .starting`)?.textContent === '2', card, { timeout: 30_000 });
    await page.waitForFunction(
      (c) => document.querySelector(`${c} .ready`)?.textContent === '2' && document.querySelector(`${c} .starting`)?.textContent === '0',
      card,
      { timeout: 30_000 },
    );

    // Two students arrive; one works in the notebook. Their sessions appear with traffic.
    for (let i = 0; i < 2; i++) {
      const jar = await w.enter();
      const c = await PlutoClient.open(`${w.url}/demo/`, { cookie: jar.header('/demo/') });
      await c.start();
      students.push(c);
    }
    await students[0]!.setBond(3);
    const [first, second] = w.wp.fleet.sessionsView().sort((a, b) => a.claimedAt - b.claimedAt);
    await page.locator(`#sessions tr[data-session="${second!.id}"]`).waitFor({ timeout: 20_000 });
    assert.equal(await page.locator('#sessions tbody tr').count(), 2);
    await page.waitForFunction((c) => document.querySelector(`${c} .claimed`)?.textContent === '2', card);
    assert.match((await text(page, `#sessions tr[data-session="${first!.id}"] td:nth-child(7)`))!, /KiB/, 'traffic in the row');
    assert.match((await text(page, `${card} .spark-total`))!, /^2 claims/);
    assert.ok((await page.locator(`${card} svg.spark polyline`).count()) === 1, 'the sparkline is drawn');

    // The failing app: its badge, its last error, the failures list.
    await page.waitForFunction(() => document.querySelector('.app[data-app="lab"] .badge')?.textContent === 'failing');
    assert.match((await text(page, '.app[data-app="lab"] .lasterror'))!, /READINESS_TIMEOUT/);
    await page.waitForFunction(() => /READINESS_TIMEOUT/.test(document.getElementById('failures')?.textContent ?? ''));

    // Resize from the page (warm 2 -> 1).
    await page.fill(`${card} input.warm`, '1');
    await page.click(`${card} button.resize`);
    await page.waitForFunction((c) => /target 1 warm, max 3/.test(document.querySelector(`${c} .targets`)?.textContent ?? ''), card);
    await waitForStatus(w.wp.fleet, 'demo', (s) => s.warm === 1);

    mkdirSync('test-artifacts', { recursive: true });
    await page.screenshot({ path: 'test-artifacts/admin-dashboard.png', fullPage: true });

    // End the first student's session from the page.
    await page.click(`#sessions tr[data-session="${first!.id}"] button.end`);
    await page.locator(`#sessions tr[data-session="${first!.id}"]`).waitFor({ state: 'detached', timeout: 20_000 });
    await page.locator(`#ends tr[data-session="${first!.id}"]`).waitFor();
    assert.match((await text(page, `#ends tr[data-session="${first!.id}"] td:nth-child(4)`))!, /^admin/);
    assert.deepEqual(
      w.wp.fleet.sessionsView().map((s) => s.id),
      [second!.id],
    );
    await page.screenshot({ path: 'test-artifacts/admin-dashboard-ended.png', fullPage: true });

    // Kept in this tab: a reload stays signed in.
    await page.reload();
    await page.waitForFunction(() => document.getElementById('conn')?.textContent === 'live');
    assert.equal(await page.locator('#signin').isVisible(), false);
    await page.click('#signout');
    await page.locator('#signin').waitFor({ state: 'visible' });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('warmpool-admin-token')), null);

    // The demo's printed URL: the token in the fragment, taken into sessionStorage and out of the address bar.
    const demo = await context.newPage();
    demo.on('pageerror', (e) => problems.push(e.message));
    await demo.goto(`${w.adminUrl}/#token=${ADMIN_TOKEN}`);
    await demo.waitForFunction(() => document.getElementById('conn')?.textContent === 'live');
    assert.equal(demo.url(), `${w.adminUrl}/`);
    assert.equal(await demo.evaluate(() => sessionStorage.getItem('warmpool-admin-token')), ADMIN_TOKEN);

    assert.deepEqual(problems, [], 'no script error and no CSP violation');
    await context.close();
    await eventually(() => w.wp.admin!.surface.streams() === 0, "the page's event streams closed with it");
  } finally {
    for (const c of students) await c.close().catch(() => undefined);
    await browser.close();
    await w.close();
  }
  assert.equal(openWebSocketSockets(), 0);
});
