// nginx/warmpool.conf in front of warmpool, with real nginx: TLS terminated by nginx, the visit
// marked HTTPS through X-Forwarded-Proto (trusted from 127.0.0.1), so the session cookie is Secure;
// entry, deep link, editor page and a Pluto WebSocket all pass through. nginx listens on a unix
// socket in a temp dir (no port to grab); warmpool on port 0.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import WebSocket from 'ws';
import { createWarmpool, type Warmpool } from '../index.js';
import { parseConfig } from '../core/config.js';
import { MemoryTrafficLog } from '../pool/traffic-log.js';
import { msgpackDecode, msgpackEncode, plutoRequest } from '../examples/standin/protocol.js';
import { closeServer, listen } from './helpers/http.js';
import { waitForStatus, eventually } from './helpers/wait.js';

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));
const OPENSSL = spawnSync('openssl', ['version']).status === 0;
const required = process.env.WARMPOOL_REQUIRE_NGINX === '1';
const skip = !NGINX || !OPENSSL ? `nginx or openssl not installed (apt-get install nginx openssl)` : false;
if (skip && required) throw new Error(`nginx front test: ${skip}, and CI requires it`);
if (skip) console.log(`# nginx front test skipped: ${skip}`);

let dir = '';
let wp: Warmpool | undefined;
let server: Server | undefined;
let nginx: ChildProcess | undefined;
const sock = () => join(dir, 'nginx.sock');

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'wp-nginx-'));
  const config = parseConfig(`
deployment: nginxfront
stateDir: ${dir}/state
trustedProxies: [127.0.0.1]
ports: { from: 44000, to: 44099 }
apps:
  - name: demo
    command: [${process.execPath}, ${join(process.cwd(), 'dist/examples/standin/server.js')}]
    env: { STATE_BYTES: 30000 }
    deepLink: /open?path=webapp.jl
    readiness: { log: "^READY$", timeout: 20s }
    pool: { warm: 1, max: 2 }
    classifier: pluto
    secret: { env: PLUTO_SECRET, inject: { query: secret } }
`);
  wp = await createWarmpool(config, {
    env: { WARMPOOL_COOKIE_KEY: 'nginx-front-test-key-0123456789' },
    trafficLog: new MemoryTrafficLog(),
    log: () => undefined,
  });
  server = createServer((req, res) => wp!.handleRequest(req, res));
  server.on('upgrade', (req, s, head) => wp!.handleUpgrade(req, s, head));
  const port = await listen(server);

  const tls = spawnSync('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=localhost',
    '-keyout',
    join(dir, 'privkey.pem'),
    '-out',
    join(dir, 'fullchain.pem'),
  ]);
  assert.equal(tls.status, 0, String(tls.stderr));
  // The shipped site config, pointed at this warmpool and this temp dir; its HTTPS server listens on a unix socket.
  const site = readFileSync('nginx/warmpool.conf', 'utf8')
    .replace('server 127.0.0.1:8080;', `server 127.0.0.1:${port};`)
    .replace('listen 80;', `listen unix:${join(dir, 'plain.sock')};`)
    .replace('listen 443 ssl;', `listen unix:${sock()} ssl;`)
    .replaceAll('/etc/nginx/tls', dir);
  assert.match(site, new RegExp(`server 127\\.0\\.0\\.1:${port};`));
  writeFileSync(join(dir, 'site.conf'), site);
  writeFileSync(
    join(dir, 'nginx.conf'),
    `daemon off;\nuser root;\nworker_processes 1;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\nhttp {\n  access_log off;\n  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;\n  include ${dir}/site.conf;\n}\n`,
  );
  nginx = spawn(NGINX!, ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  nginx.stderr!.on('data', (d) => {
    err += d;
  });
  await eventually(() => existsSync(sock()) || nginx!.exitCode !== null, 'nginx to listen');
  assert.equal(nginx.exitCode, null, `nginx exited: ${err}`);
  await waitForStatus(wp.fleet, 'demo', (s) => s.ready === 1);
});

after(async () => {
  if (skip) return;
  if (nginx && nginx.exitCode === null) {
    const exited = new Promise((r) => nginx!.once('exit', r));
    nginx.kill('SIGTERM');
    await exited;
  }
  await wp?.close(false);
  if (server) await closeServer(server);
  assert.equal(wp?.openSockets(), 0, 'proxy sockets back to zero');
  rmSync(dir, { recursive: true, force: true });
});

function get(path: string, cookie?: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { socketPath: sock(), path, host: 'localhost', rejectUnauthorized: false, headers: { accept: 'text/html', ...(cookie ? { cookie } : {}) } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

test('over HTTPS through nginx: Secure session cookie, deep link, editor page and a live WebSocket', { skip }, async () => {
  const entry = await get('/demo/');
  assert.equal(entry.status, 302);
  assert.match(String(entry.headers.location), /^\/demo\/edit\?id=/, 'straight where the deep link leads');
  const setCookie = String(entry.headers['set-cookie']);
  assert.match(setCookie, /warmpool_demo=[^;]+;.*Secure/, 'X-Forwarded-Proto https from a trusted proxy makes the cookie Secure');
  const cookie = setCookie.split(';')[0]!;

  const open = await get('/demo/open?path=webapp.jl', cookie);
  assert.equal(open.status, 302);
  assert.match(String(open.headers.location), /^\.\/edit\?id=/, "the app's relative redirect passes through untouched");
  assert.doesNotMatch(JSON.stringify(open.headers), /secret=/, 'the instance secret never reaches the visitor');
  const editor = await get(`/demo/${String(open.headers.location).slice(2)}`, cookie);
  assert.equal(editor.status, 200);
  assert.match(editor.body, /id="status"/);

  // The editor's WebSocket opens on the app root, through nginx's upgrade handling.
  const ws = new WebSocket('wss://localhost/demo/', {
    headers: { cookie },
    createConnection: () => tlsConnect({ path: sock(), servername: 'localhost', rejectUnauthorized: false }),
  } as WebSocket.ClientOptions);
  await new Promise<void>((res, rej) => {
    ws.once('open', () => res());
    ws.once('error', rej);
  });
  const reply = new Promise<Record<string, unknown>>((res) => ws.once('message', (d) => res(msgpackDecode(d as Buffer) as Record<string, unknown>)));
  ws.send(msgpackEncode(plutoRequest('connect', 'nginx-test-client')));
  assert.equal((await reply).type, '👋');
  const live = wp!.fleet.liveSessions()[0]!;
  await eventually(() => live.target.traffic.messagesIn.connect === 1, 'the proxy to count the message');
  assert.equal(live.openConnections, 1);
  const closed = new Promise((r) => ws.once('close', r));
  ws.close(1000);
  await closed;
  await eventually(() => live.openConnections === 0, 'the relayed socket to close');
});

test('a forged cookie through nginx gets a page, never an instance', { skip }, async () => {
  const r = await get('/demo/edit?id=x', 'warmpool_demo=v1.k.forged.forged.demo.1.AAAA');
  assert.equal(r.status, 403);
  assert.match(r.body, /fresh instance/i);
});
