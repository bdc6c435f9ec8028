// pool/http-probe.ts against real servers on port 0: the status of a well-formed answer (whole or a
// byte at a time), nothing from anything else (refused, silent, closed early, not HTTP, endless line),
// and the request as sent (target, Host, the secret's header and cookie; unsafe values never sent).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { probeStatus } from '../pool/http-probe.js';
import { httpProbe } from '../pool/readiness.js';
import { parseConfig } from '../core/config.js';
import type { InstanceRecord } from '../pool/runtime.js';

const open = new Set<Socket>();

/** A raw TCP server: each connection gets `onConn`; the request bytes it received are kept. */
async function rawServer(onConn: (s: Socket, got: () => string) => void): Promise<{ port: number; server: Server; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
    let buf = '';
    const i = requests.push('') - 1;
    s.on('data', (d) => {
      buf += d.toString('latin1');
      requests[i] = buf;
    });
    s.on('error', () => undefined);
    onConn(s, () => buf);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, server, requests };
}

function close(server: Server): Promise<void> {
  for (const s of open) s.destroy();
  return new Promise((r) => server.close(() => r()));
}

const to = (port: number) => ({ host: '127.0.0.1', port });

test('a real HTTP server: its status, for the path asked', async () => {
  const seen: string[] = [];
  const server = createHttpServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.host} ${req.headers.connection}`);
    res.writeHead(req.url === '/ping' ? 200 : 404).end('x');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    assert.equal(await probeStatus(to(port), '/ping', {}, 2000), 200);
    assert.equal(await probeStatus(to(port), '/other', {}, 2000), 404);
    assert.deepEqual(seen, [`GET /ping 127.0.0.1:${port} close`, `GET /other 127.0.0.1:${port} close`]);
  } finally {
    await new Promise((r) => server.close(r));
  }
});

test('a status line that arrives a byte at a time is read whole', async () => {
  const { port, server } = await rawServer((s) => {
    const answer = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n';
    let i = 0;
    s.once('data', () => {
      const t = setInterval(() => {
        if (i >= answer.length) return clearInterval(t);
        s.write(answer[i++]!);
      }, 1);
      s.on('close', () => clearInterval(t));
    });
  });
  try {
    assert.equal(await probeStatus(to(port), '/', {}, 5000), 200);
  } finally {
    await close(server);
  }
});

test('no answer is a status: refused, silent, closed early, not HTTP, a line that never ends', async () => {
  const cases: [string, (s: Socket) => void][] = [
    ['silent', () => undefined],
    ['closed before a line end', (s) => s.once('data', () => s.end('HTTP/1.1 200'))],
    ['reset', (s) => s.once('data', () => s.destroy())],
    ['not HTTP', (s) => s.once('data', () => s.write('SSH-2.0-OpenSSH_9.2\r\n'))],
    ['HTTP/2 preface', (s) => s.once('data', () => s.write('HTTP/2 200\r\n\r\n'))],
    ['status of four digits', (s) => s.once('data', () => s.write('HTTP/1.1 2000 OK\r\n\r\n'))],
    ['an endless first line', (s) => s.once('data', () => s.write(`HTTP/1.1 200 ${'x'.repeat(5000)}`))],
  ];
  for (const [what, behave] of cases) {
    const { port, server } = await rawServer(behave);
    try {
      assert.equal(await probeStatus(to(port), '/', {}, 300), undefined, what);
    } finally {
      await close(server);
    }
  }
  // Refused: a port nothing listens on.
  const { port, server } = await rawServer(() => undefined);
  await close(server);
  assert.equal(await probeStatus(to(port), '/', {}, 2000), undefined, 'refused');
});

test("httpProbe sends the secret the app's inject rules say, under the base-url prefix; a token with a line break is never sent", async () => {
  const { port, server, requests } = await rawServer((s) => s.once('data', () => s.end('HTTP/1.1 200 OK\r\n\r\n')));
  const config = parseConfig(`
deployment: t
apps:
  - name: demo
    command: [x]
    prefix: { baseUrlEnv: BASE_URL }
    readiness: { http: { path: /ping, status: 200 } }
    secret: { env: TOKEN, inject: { query: token, header: Authorization, headerFormat: "token {secret}", cookie: tk } }
`);
  const app = config.apps[0]!;
  const rec = { host: '127.0.0.1', port } as InstanceRecord;
  try {
    assert.equal(await httpProbe(rec, '/ping', 200, app, 'a b/c'), true);
    assert.match(requests[0]!, /^GET \/demo\/ping\?token=a%20b%2Fc HTTP\/1\.1\r\n/);
    assert.match(requests[0]!, /\r\nAuthorization: token a b\/c\r\n/);
    assert.match(requests[0]!, /\r\ncookie: tk=a b\/c\r\n/);
    assert.equal(await httpProbe(rec, '/ping', 204, app, 'tok'), false, 'another status');
    const before = requests.length;
    assert.equal(await httpProbe(rec, '/ping', 200, app, 'tok\r\nX-Evil: 1'), false);
    assert.equal(requests.length, before, 'no connection made for a token that cannot go on the wire');
  } finally {
    await close(server);
  }
});
