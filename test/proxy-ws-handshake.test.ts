// The WebSocket handshake as the relay writes and reads it on its own socket: raw TCP instances that
// answer by hand (a 101 split byte by byte, WebSocket bytes in the 101's read, refusals with bodies,
// broken and oversized answers, hang-ups, silence) and what the visitor gets for each.

import { test, describe, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { WebSocket } from 'ws';
import { ResponseParser, UpstreamProtocolError, type ResponseHandler } from '../proxy/protocol/http1-response.js';
import { openWebSocketSockets } from '../proxy/index.js';
import { FakePool, appConfig, enterApp, proxyForPool, type ProxyServer } from './helpers/fake-pool.js';
import { type CookieJar, rawUpgrade, request, wsClosed } from './helpers/http.js';

const SECRET = 'Hs5ecret';
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
  assert.equal(openWebSocketSockets(), 0, 'every relayed socket is closed after each test');
});

/** A TCP instance: onRequest gets the handshake request head (text) and the socket to answer on by hand. */
async function rawInstance(onRequest: (head: string, socket: Socket) => void): Promise<{ port: number; heads: string[]; received: Buffer[] }> {
  const sockets = new Set<Socket>();
  const heads: string[] = [];
  const received: Buffer[] = [];
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buf = Buffer.alloc(0);
    let inHead = true;
    socket.on('data', (d: Buffer) => {
      if (!inHead) {
        received.push(d);
        return;
      }
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      inHead = false;
      const head = buf.subarray(0, end).toString('latin1');
      if (buf.length > end + 4) received.push(buf.subarray(end + 4));
      heads.push(head);
      onRequest(head, socket);
    });
  });
  const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return { port, heads, received };
}

function acceptFor(requestHead: string): string {
  const key = /\r\nsec-websocket-key: *([^\r]+)/i.exec(requestHead)![1]!;
  return createHash('sha1')
    .update(key + GUID)
    .digest('base64');
}

function switchingHead(requestHead: string, extra = ''): string {
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(requestHead)}\r\n${extra}\r\n`;
}

/** An unmasked server text frame (payload < 126 bytes). */
function textFrame(s: string): Buffer {
  const p = Buffer.from(s);
  return Buffer.concat([Buffer.from([0x81, p.length]), p]);
}

/** Writes bytes one per write, each in its own turn of the event loop (so the proxy reads them apart). */
async function byteByByte(socket: Socket, data: Buffer): Promise<void> {
  for (let i = 0; i < data.length; i++) {
    if (socket.destroyed) return;
    socket.write(data.subarray(i, i + 1));
    await new Promise((r) => setTimeout(r, 1));
  }
}

interface Setup {
  p: ProxyServer;
  pool: FakePool;
  jar: CookieJar;
  logs: string[];
}

async function through(port: number, o: { wsHandshakeTimeoutMs?: number; secret?: boolean } = {}): Promise<Setup> {
  const pool = new FakePool([appConfig('demo', o.secret ? { secret: { env: 'S', inject: { query: 'secret', headerFormat: '{secret}' } } } : {})]);
  pool.addInstance('demo', { port, id: 'inst-ws-9', secret: o.secret ? SECRET : undefined });
  const logs: string[] = [];
  const p = await proxyForPool(pool, { log: (m) => logs.push(m), wsHandshakeTimeoutMs: o.wsHandshakeTimeoutMs });
  cleanups.push(() => p.close());
  const jar = await enterApp(p, 'demo');
  return { p, pool, jar, logs };
}

/** A ws client that records messages from the start (the first may arrive with the 101). */
function wsClient(s: Setup, path = '/demo/ws'): { ws: WebSocket; messages: string[]; opened: Promise<void> } {
  const ws = new WebSocket(`${s.p.url.replace('http', 'ws')}${path}`, { headers: { cookie: s.jar.header('/demo/') } });
  const messages: string[] = [];
  ws.on('message', (d) => messages.push(d.toString()));
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, messages, opened };
}

/** A handshake written by hand through the proxy: everything the visitor's socket reads, until it closes or `until` holds. */
function rawVisitor(s: Setup, until: (got: Buffer) => boolean): Promise<{ text: string; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(s.p.port, '127.0.0.1');
    let got = Buffer.alloc(0);
    const done = (): void => resolve({ text: got.toString('latin1'), socket });
    socket.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (until(got)) done();
    });
    socket.on('close', done);
    socket.on('error', reject);
    socket.write(
      `GET /demo/ws HTTP/1.1\r\nHost: 127.0.0.1:${s.p.port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: ${s.jar.header('/demo/')}\r\n\r\n`,
    );
  });
}

async function waitFor(pred: () => boolean, what = 'condition', limitMs = 10_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('the parser in upgrade mode', () => {
  /** Feeds chunks until the 101; returns the bytes left for the WebSocket (the read's rest and later reads). */
  function feed(chunks: Buffer[]): { p: ResponseParser; rest: string; heads: number } {
    const p = new ResponseParser();
    let heads = 0;
    const h: ResponseHandler = { onHead: () => void heads++, onBody: () => undefined, onEnd: () => undefined };
    p.start(h, false, true);
    for (let k = 0; k < chunks.length; k++) {
      const used = p.execute(chunks[k]!);
      if (p.upgraded) return { p, heads, rest: Buffer.concat([chunks[k]!.subarray(used), ...chunks.slice(k + 1)]).toString('latin1') };
    }
    return { p, heads, rest: '' };
  }

  test('a 101 ends the parse: names kept as written, the offset of the first WebSocket byte returned', () => {
    const bytes = Buffer.from(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: v1.kernel\r\n\r\n\x81\x02hi',
      'latin1',
    );
    for (const split of [bytes.length, 10, 1]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < bytes.length; i += split) chunks.push(bytes.subarray(i, i + split));
      const r = feed(chunks);
      assert.equal(r.p.upgraded, true);
      assert.equal(r.heads, 1);
      assert.equal(r.p.status, 101);
      assert.equal(r.p.reason, 'Switching Protocols');
      assert.deepEqual(r.p.rawHeaders, ['Upgrade', 'websocket', 'Connection', 'Upgrade', 'Sec-WebSocket-Protocol', 'v1.kernel']);
      assert.equal(r.p.headers['sec-websocket-protocol'], 'v1.kernel');
      assert.equal(r.rest, '\x81\x02hi', "the rest of the read is the WebSocket's");
    }
  });

  test('a 101 still refused when no upgrade was asked; a normal answer unchanged in upgrade mode', () => {
    const p = new ResponseParser();
    p.start({ onHead: () => undefined, onBody: () => undefined, onEnd: () => undefined }, false);
    assert.throws(() => p.execute(Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n')), UpstreamProtocolError);
    const bodies: string[] = [];
    let ended = 0;
    const q = new ResponseParser();
    q.start({ onHead: () => undefined, onBody: (c) => void bodies.push(c.toString()), onEnd: () => void ended++ }, false, true);
    const refusal = Buffer.from('HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope');
    assert.equal(q.execute(refusal), refusal.length);
    assert.equal(q.upgraded, false);
    assert.deepEqual([bodies.join(''), ended, q.status], ['nope', 1, 403]);
  });
});

describe("WebSocket handshake on the relay's own socket", () => {
  test('a 101 head split byte by byte reaches the visitor as the instance wrote it, less the secret', async () => {
    const inst = await rawInstance((head, socket) => {
      const answer = switchingHead(head, `X-Mixed-Case: Kept\r\nX-Echo: token=${SECRET}\r\nsec-websocket-protocol: chat\r\n`);
      void byteByByte(socket, Buffer.from(answer, 'latin1')).then(() => socket.write(textFrame('after the split head')));
    });
    const s = await through(inst.port, { secret: true });
    const r = await rawVisitor(s, (got) => got.includes('after the split head'));
    r.socket.destroy();
    const want =
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${acceptFor(inst.heads[0]!)}\r\nX-Mixed-Case: Kept\r\nsec-websocket-protocol: chat\r\n\r\n`;
    assert.equal(r.text, want + textFrame('after the split head').toString('latin1'));
    assert.ok(!r.text.includes(SECRET));
    // The request went up in the relay's form: method, path (prefix stripped) with the secret, Connection/Upgrade, visitor's Host.
    const req = inst.heads[0]!;
    assert.match(req, new RegExp(`^GET /ws\\?secret=${SECRET} HTTP/1\\.1\\r\\n`));
    assert.match(req, /\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n/);
    assert.match(req, new RegExp(`\\r\\nHost: 127\\.0\\.0\\.1:${s.p.port}\\r\\n`));
    assert.equal(s.pool.eventsOf('ws-open').length, 1);
    assert.equal(s.pool.eventsOf('ws-open')[0]!.detail!.protocol, 'chat');
    await waitFor(() => s.pool.closed === 1, 'the relay closed');
  });

  test('WebSocket bytes in the same read as the 101 head go to the visitor first, counted; the pipe works both ways', async () => {
    const inst = await rawInstance((head, socket) => {
      socket.write(Buffer.concat([Buffer.from(switchingHead(head), 'latin1'), textFrame('first'), textFrame('second')]));
    });
    const s = await through(inst.port);
    const c = wsClient(s);
    await c.opened;
    await waitFor(() => c.messages.length === 2, 'both early messages');
    assert.deepEqual(c.messages, ['first', 'second']);
    c.ws.send('up');
    await waitFor(() => Buffer.concat(inst.received).length >= 2 + 4 + 2, 'the client frame reached the instance');
    const traffic = s.pool.sessions.values().next().value!.traffic;
    assert.equal(traffic.framesOut.data, 2);
    assert.equal(traffic.messagesOut, 2);
    assert.equal(traffic.framesIn.data, 1);
    c.ws.terminate();
    await waitFor(() => s.pool.closed === 1, 'ws-close');
    assert.equal(s.pool.eventsOf('ws-close')[0]!.detail!.framesOut, 2);
  });

  test('a 403 with a chunked body is relayed as a refusal, without the secret, in pieces or not', async () => {
    for (const split of [false, true]) {
      const inst = await rawInstance((_head, socket) => {
        const body = `no entry without ${SECRET}`;
        const answer = Buffer.from(
          `HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nX-Echo: ${SECRET}\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
          'latin1',
        );
        if (split) void byteByByte(socket, answer);
        else socket.write(answer);
      });
      const s = await through(inst.port, { secret: true });
      const r = await rawUpgrade(`${s.p.url}/demo/ws`, { cookie: s.jar.header('/demo/') });
      assert.equal(r.status, 403);
      assert.equal(r.headers.connection, 'close');
      assert.equal(r.headers['content-type'], 'text/plain');
      assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);
      assert.equal(r.headers['x-echo'], undefined);
      assert.equal(r.body, 'no entry without ');
      assert.equal(s.pool.opened, 0);
      assert.equal(s.pool.eventsOf('upstream-error').length, 0);
    }
  });

  test('a broken or oversized answer, or a 101 that is no WebSocket: 502, logged naming the instance', async () => {
    const answers = [
      'HTTP/1.1 abc Nope\r\n\r\n',
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n',
      `HTTP/1.1 101 Switching Protocols\r\nX-Big: ${'x'.repeat(70 * 1024)}`,
    ];
    for (const answer of answers) {
      const inst = await rawInstance((_head, socket) => socket.write(answer));
      const s = await through(inst.port);
      const r = await rawUpgrade(`${s.p.url}/demo/ws`, { cookie: s.jar.header('/demo/') });
      assert.equal(r.status, 502, answer.slice(0, 40));
      assert.match(r.body, /INSTANCE_NOT_READY/);
      assert.equal(s.logs.length, 1);
      assert.match(s.logs[0]!, /websocket handshake for \/ws with demo instance inst-ws-9 \(127\.0\.0\.1:\d+\) failed: /);
      assert.deepEqual(
        s.pool.eventsOf('upstream-error').map((e) => e.detail),
        [{ code: 'UPSTREAM_BAD_RESPONSE', path: '/ws', websocket: true }],
      );
      assert.equal(s.pool.opened, 0);
    }
  });

  test('the instance hanging up mid-handshake (before a byte, or mid-head): 502', async () => {
    for (const partial of ['', 'HTTP/1.1 101 Switching Proto']) {
      const inst = await rawInstance((_head, socket) => socket.end(partial));
      const s = await through(inst.port);
      const r = await rawUpgrade(`${s.p.url}/demo/ws`, { cookie: s.jar.header('/demo/') });
      assert.equal(r.status, 502);
      assert.deepEqual(
        s.pool.eventsOf('upstream-error').map((e) => e.detail!.code),
        ['ECONNRESET'],
      );
      assert.equal(s.logs.length, 0);
    }
  });

  test('a refusal cut short drops the visitor without an answer', async () => {
    const inst = await rawInstance((_head, socket) => socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 100\r\n\r\nonly part'));
    const s = await through(inst.port);
    await assert.rejects(rawUpgrade(`${s.p.url}/demo/ws`, { cookie: s.jar.header('/demo/') }));
  });

  test('no answer within the handshake timeout: 504', async () => {
    const inst = await rawInstance(() => undefined);
    const s = await through(inst.port, { wsHandshakeTimeoutMs: 50 });
    const r = await rawUpgrade(`${s.p.url}/demo/ws`, { cookie: s.jar.header('/demo/') });
    assert.equal(r.status, 504);
    assert.deepEqual(
      s.pool.eventsOf('upstream-error').map((e) => e.detail!.code),
      ['handshake-timeout'],
    );
  });

  test("a close frame in the 101's read: the instance's close code reaches the visitor", async () => {
    const inst = await rawInstance((head, socket) => {
      socket.write(switchingHead(head));
      // Close frame 4003 "bye", unmasked.
      socket.write(Buffer.from([0x88, 5, 0x0f, 0xa3, 0x62, 0x79, 0x65]));
    });
    const s = await through(inst.port);
    const c = wsClient(s);
    await c.opened;
    assert.deepEqual(await wsClosed(c.ws), { code: 4003, reason: 'bye' });
  });
});
