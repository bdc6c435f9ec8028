// The admin surface's lock: the token from the environment or a file, compared in constant time;
// missing, wrong and right tokens on every protected path; off without a token (and said so at
// start); not on the public port unless admin.public is set, and then behind the same token.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createWarmpool, listenAdmin, type Warmpool } from '../index.js';
import { MIN_TOKEN_LENGTH, TokenCheck, loadAdminToken } from '../admin/auth.js';
import { parseConfig } from '../core/config.js';
import { isWarmpoolError } from '../core/errors.js';
import { FakeRuntime } from './helpers/fake-runtime.js';
import { closeServer, listen, request } from './helpers/http.js';

const TOKEN = 'admin-token-0123456789abcdef';
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function config(extra = '') {
  const stateDir = mkdtempSync(join(tmpdir(), 'wp-admin-auth-'));
  dirs.push(stateDir);
  return parseConfig(`
listen: { port: 0 }
deployment: admin-auth
stateDir: ${stateDir}
${extra}
apps:
  - name: demo
    command: [fake]
    pool: { warm: 0, max: 1 }
`);
}

interface Up {
  wp: Warmpool;
  publicUrl: string;
  adminUrl?: string;
  logs: string[];
  close(): Promise<void>;
}

async function up(extra: string, env: NodeJS.ProcessEnv): Promise<Up> {
  const logs: string[] = [];
  const wp = await createWarmpool(config(extra), { env, runtimes: { process: new FakeRuntime() }, log: (m) => logs.push(m) });
  const pub = wp.createServer();
  const port = await listen(pub);
  const admin = wp.admin?.createServer();
  const adminPort = admin ? await listen(admin) : undefined;
  return {
    wp,
    logs,
    publicUrl: `http://127.0.0.1:${port}`,
    adminUrl: adminPort ? `http://127.0.0.1:${adminPort}` : undefined,
    async close() {
      await wp.close();
      await closeServer(pub);
      if (admin) await closeServer(admin);
    },
  };
}

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

test('loadAdminToken: from the variable or the file; none is off; both, unreadable, short are refused', () => {
  assert.equal(loadAdminToken({}), undefined);
  assert.equal(loadAdminToken({ WARMPOOL_ADMIN_TOKEN: '  ' }), undefined);
  assert.equal(loadAdminToken({ WARMPOOL_ADMIN_TOKEN: ` ${TOKEN}\n` }), TOKEN);
  const dir = mkdtempSync(join(tmpdir(), 'wp-admin-token-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'token'), TOKEN + '\n');
  assert.equal(loadAdminToken({ WARMPOOL_ADMIN_TOKEN_FILE: join(dir, 'token') }), TOKEN);
  const refused = (env: NodeJS.ProcessEnv, re: RegExp) =>
    assert.throws(
      () => loadAdminToken(env),
      (e: unknown) => isWarmpoolError(e, 'CONFIG_INVALID') && re.test((e as Error).message),
    );
  refused({ WARMPOOL_ADMIN_TOKEN: TOKEN, WARMPOOL_ADMIN_TOKEN_FILE: join(dir, 'token') }, /both WARMPOOL_ADMIN_TOKEN and WARMPOOL_ADMIN_TOKEN_FILE are set/);
  refused({ WARMPOOL_ADMIN_TOKEN_FILE: join(dir, 'nope') }, /WARMPOOL_ADMIN_TOKEN_FILE=.*nope cannot be read/);
  refused({ WARMPOOL_ADMIN_TOKEN: 'short' }, new RegExp(`is 5 characters; expected at least ${MIN_TOKEN_LENGTH} characters`));
  refused({ WARMPOOL_ADMIN_TOKEN: 'has white space in the middle' }, /with white space/);
});

test('TokenCheck: only "Bearer <the token>"', () => {
  const c = new TokenCheck(TOKEN);
  assert.equal(c.authorizes(`Bearer ${TOKEN}`), true);
  assert.equal(c.authorizes(`bearer ${TOKEN}`), true, 'the scheme is case-insensitive (RFC 9110)');
  for (const h of [
    undefined,
    '',
    'Bearer',
    'Bearer ',
    `Basic ${TOKEN}`,
    `Bearer ${TOKEN}x`,
    `Bearer ${TOKEN.slice(0, -1)}`,
    `Bearer ${TOKEN} extra`,
    TOKEN,
    `Bearer ${TOKEN.toUpperCase()}`,
  ]) {
    assert.equal(c.authorizes(h), false, String(h));
  }
});

test('the admin listener: missing and wrong tokens get 401 on every protected path, the right one gets through', async () => {
  const u = await up('admin: { port: 0 }', { WARMPOOL_ADMIN_TOKEN: TOKEN });
  try {
    const protectedPaths: [string, string][] = [
      ['GET', '/api/apps'],
      ['GET', '/api/state'],
      ['GET', '/api/sessions'],
      ['GET', '/metrics'],
      ['GET', '/api/events'],
      ['POST', '/api/apps/demo/refresh'],
      ['POST', '/api/sessions/x/end'],
      ['GET', '/api/nothing'],
      ['GET', '/anything'],
    ];
    for (const [method, path] of protectedPaths) {
      for (const headers of [{}, bearer('wrong-token-0123456789abcdef'), { authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` }]) {
        const r = await request(`${u.adminUrl}${path}`, { method, headers });
        assert.equal(r.status, 401, `${method} ${path} with ${JSON.stringify(headers)}`);
        assert.equal(JSON.parse(r.text).error.code, 'ADMIN_UNAUTHORIZED');
        assert.equal(r.headers['www-authenticate'], 'Bearer realm="warmpool admin"');
      }
    }
    assert.equal((await request(`${u.adminUrl}/api/apps?token=${TOKEN}`)).status, 401, 'never from the query string');
    const ok = await request(`${u.adminUrl}/api/apps`, { headers: bearer(TOKEN) });
    assert.equal(ok.status, 200);
    assert.deepEqual(
      JSON.parse(ok.text).apps.map((a: { name: string }) => a.name),
      ['demo'],
    );
    assert.equal(ok.headers['cache-control'], 'no-store');
    assert.equal((await request(`${u.adminUrl}/metrics`, { headers: bearer(TOKEN) })).status, 200);
    const nothing = await request(`${u.adminUrl}/api/nothing`, { headers: bearer(TOKEN) });
    assert.equal(nothing.status, 404);

    // The page, its script and style hold no data: served without the token, under a strict CSP.
    const page = await request(`${u.adminUrl}/`);
    assert.equal(page.status, 200);
    assert.match(page.text, /<title>warmpool admin<\/title>/);
    assert.match(String(page.headers['content-security-policy']), /default-src 'none'; script-src 'self'/);
    assert.equal(page.headers['x-frame-options'], 'DENY');
    assert.ok(!page.text.includes(TOKEN));
    const js = await request(`${u.adminUrl}/dashboard.js`);
    assert.equal(js.status, 200);
    assert.match(String(js.headers['content-type']), /^text\/javascript/);
    assert.ok(!js.text.includes('sourceMappingURL'));
    assert.equal((await request(`${u.adminUrl}/dashboard.css`)).status, 200);
  } finally {
    await u.close();
  }
});

test('no token: the admin surface is off and the start-up log says so', async () => {
  const u = await up('admin: { port: 0, public: true }', {});
  try {
    assert.equal(u.wp.admin, undefined);
    assert.ok(
      u.logs.some((l) => /admin surface off: no admin token \(set WARMPOOL_ADMIN_TOKEN or WARMPOOL_ADMIN_TOKEN_FILE/.test(l)),
      u.logs.join('\n'),
    );
    assert.equal((await request(`${u.publicUrl}/_warmpool/admin/api/apps`, { headers: bearer(TOKEN) })).status, 404, 'nothing on the public port either');
  } finally {
    await u.close();
  }
});

test('not on the public port unless admin.public; then under /_warmpool/admin/ with the same token', async () => {
  const closed = await up('admin: { port: 0 }', { WARMPOOL_ADMIN_TOKEN: TOKEN });
  try {
    for (const p of ['/_warmpool/admin/', '/_warmpool/admin/api/apps', '/_warmpool/admin/metrics', '/_warmpool/admin']) {
      const r = await request(`${closed.publicUrl}${p}`, { headers: bearer(TOKEN) });
      assert.equal(r.status, 404, p);
      assert.ok(!r.text.includes('warmpool admin'), p);
    }
    assert.equal((await request(`${closed.publicUrl}/_warmpool/healthz`)).status, 200, 'healthz stays public');
  } finally {
    await closed.close();
  }
  const open = await up('admin: { port: 0, public: true }', { WARMPOOL_ADMIN_TOKEN: TOKEN });
  try {
    assert.equal((await request(`${open.publicUrl}/_warmpool/admin/api/apps`)).status, 401);
    assert.equal((await request(`${open.publicUrl}/_warmpool/admin/api/apps`, { headers: bearer('nope-nope-nope-nope-nope') })).status, 401);
    const ok = await request(`${open.publicUrl}/_warmpool/admin/api/apps`, { headers: bearer(TOKEN) });
    assert.equal(ok.status, 200);
    assert.equal((await request(`${open.publicUrl}/_warmpool/admin/metrics`, { headers: bearer(TOKEN) })).status, 200);
    const bare = await request(`${open.publicUrl}/_warmpool/admin`);
    assert.equal(bare.status, 308);
    assert.equal(bare.headers.location, '/_warmpool/admin/');
    assert.match((await request(`${open.publicUrl}/_warmpool/admin/`)).text, /dashboard\.js/);
    assert.equal((await request(`${open.publicUrl}/_warmpool/administrator`)).status, 404, 'only the admin prefix itself');
    assert.equal((await request(`${open.adminUrl}/api/apps`, { headers: bearer(TOKEN) })).status, 200, 'its own listener still serves');
  } finally {
    await open.close();
  }
});

test("admin.generateToken (the demo): a token made up per start, in the printed URL's fragment", async () => {
  const u = await up('admin: { port: 0, generateToken: true }', {});
  try {
    const t = u.wp.admin?.generatedToken;
    assert.ok(t && t.length >= MIN_TOKEN_LENGTH);
    assert.equal((await request(`${u.adminUrl}/api/apps`, { headers: bearer(t) })).status, 200);
    const l = await listenAdmin(u.wp.admin!);
    try {
      assert.match(l.url, new RegExp(`^http://127\\.0\\.0\\.1:\\d+/#token=${t}$`));
    } finally {
      await closeServer(l.server);
    }
  } finally {
    await u.close();
  }
  const fromEnv = await up('admin: { port: 0, generateToken: true }', { WARMPOOL_ADMIN_TOKEN: TOKEN });
  try {
    assert.equal(fromEnv.wp.admin?.generatedToken, undefined, "a token of one's own wins, and is never printed");
  } finally {
    await fromEnv.close();
  }
});

test('a bad token setting stops the start with CONFIG_INVALID', async () => {
  await assert.rejects(
    createWarmpool(config('admin: { port: 0 }'), { env: { WARMPOOL_ADMIN_TOKEN: 'tiny' }, runtimes: { process: new FakeRuntime() }, log: () => {} }),
    (e: unknown) => isWarmpoolError(e, 'CONFIG_INVALID') && /admin token from WARMPOOL_ADMIN_TOKEN is 4 characters/.test((e as Error).message),
  );
});
