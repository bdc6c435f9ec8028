// pool/http-probe.ts against real servers on port 0: the status of a well-formed answer (whole or a
// byte at a time), nothing from anything else (refused, silent, closed early, not HTTP, endless line),
// and the request as sent (target, Host, the secret's header and cookie; unsafe values never sent).
// probeHead's Location (one, visible ASCII, from a well-formed head) and pool/deep-link.ts on top of it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { deepLinkRedirect } from '../pool/deep-link.js';
import { probeHead, probeStatus } from '../pool/http-probe.js';
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

/** Each case against a raw server of its own, closed after it. */
async function eachOnItsServer<T>(
  cases: [string, T][],
  serve: (c: T) => ReturnType<typeof rawServer>,
  check: (port: number, what: string, c: T) => Promise<void>,
) {
  for (const [what, c] of cases) {
    const { port, server } = await serve(c);
    try {
      await check(port, what, c);
    } finally {
      await close(server);
    }
  }
}

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
  await eachOnItsServer(cases, rawServer, async (port, what) => assert.equal(await probeStatus(to(port), '/', {}, 300), undefined, what));
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

/** A raw server that answers every request with `answer` (whole, then closes). */
const answering = (answer: string) => rawServer((s) => s.once('data', () => s.end(answer)));

test('probeHead: the status and the one Location of a whole head, also a byte at a time', async () => {
  const head = 'HTTP/1.1 302 Found\r\nContent-Length: 0\r\nlocation:  ./edit?id=42 \r\nX-Other: y\r\n\r\n';
  {
    const { port, server } = await answering(head);
    try {
      assert.deepEqual(await probeHead(to(port), '/open?path=webapp.jl', {}, 2000), { status: 302, location: './edit?id=42' });
    } finally {
      await close(server);
    }
  }
  const { port, server } = await rawServer((s) => {
    let i = 0;
    s.once('data', () => {
      const t = setInterval(() => (i < head.length ? s.write(head[i++]!) : clearInterval(t)), 1);
      s.on('close', () => clearInterval(t));
    });
  });
  try {
    assert.deepEqual(await probeHead(to(port), '/', {}, 5000), { status: 302, location: './edit?id=42' });
  } finally {
    await close(server);
  }
});

test('probeHead: no Location from a head that has none, two, or one that is not visible ASCII; no answer from a head that is not well-formed', async () => {
  const statusOnly: [string, string][] = [
    ['none', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'],
    ['two', 'HTTP/1.1 302 Found\r\nLocation: /a\r\nLocation: /b\r\n\r\n'],
    ['a space inside', 'HTTP/1.1 302 Found\r\nLocation: /a b\r\n\r\n'],
    ['a control byte', 'HTTP/1.1 302 Found\r\nLocation: /a\x01b\r\n\r\n'],
    ['not ASCII', 'HTTP/1.1 302 Found\r\nLocation: /caf\xe9\r\n\r\n'],
    ['empty', 'HTTP/1.1 302 Found\r\nLocation: \r\n\r\n'],
    ['too long', `HTTP/1.1 302 Found\r\nLocation: /${'a'.repeat(3000)}\r\n\r\n`],
  ];
  await eachOnItsServer(statusOnly, answering, async (port, what, answer) => {
    const got = await probeHead(to(port), '/', {}, 2000);
    assert.equal(got?.status, Number(answer.slice(9, 12)), what);
    assert.equal(got?.location, undefined, what);
  });
  const none: [string, string][] = [
    ['a folded field line', 'HTTP/1.1 302 Found\r\nLocation: /a\r\n  /b\r\n\r\n'],
    ['a line without a colon', 'HTTP/1.1 302 Found\r\nLocation /a\r\n\r\n'],
    ['a field name with a space', 'HTTP/1.1 302 Found\r\nLoca tion: /a\r\n\r\n'],
    ['closed before the blank line', 'HTTP/1.1 302 Found\r\nLocation: /a\r\n'],
    ['a head that never ends', `HTTP/1.1 302 Found\r\n${'X-A: b\r\n'.repeat(3000)}`],
    ['not HTTP', 'SSH-2.0-OpenSSH_9.2\r\n'],
  ];
  await eachOnItsServer(none, answering, async (port, what) => assert.equal(await probeHead(to(port), '/', {}, 500), undefined, what));
});

test("deepLinkRedirect: GETs the app's deep link with its secret and returns a redirect's Location, nothing for other answers", async () => {
  const config = parseConfig(`
deployment: t
apps:
  - name: demo
    command: [x]
    deepLink: /open?path=webapp.jl
    readiness: { log: "^READY$" }
    secret: { env: PLUTO_SECRET, inject: { query: secret } }
`);
  const app = config.apps[0]!;
  assert.equal(app.resolveDeepLink, false, 'classifier generic: not resolved unless asked');
  for (const [status, expected] of [
    [302, './edit?id=1'],
    [303, './edit?id=1'],
    [307, './edit?id=1'],
    [200, undefined],
    [404, undefined],
    [304, undefined],
  ] as const) {
    const { port, server, requests } = await answering(`HTTP/1.1 ${status} X\r\nLocation: ./edit?id=1\r\n\r\n`);
    try {
      assert.equal(await deepLinkRedirect(app, to(port), 'sEcReT12'), expected, `status ${status}`);
      assert.match(requests[0]!, /^GET \/open\?path=webapp\.jl&secret=sEcReT12 HTTP\/1\.1\r\n/);
    } finally {
      await close(server);
    }
  }
});
