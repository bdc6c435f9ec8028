// The relay's own HTTP/1.1 client (proxy/upstream/): the response parser fed whole, byte by byte and
// in random splits; then the client through the proxy against raw TCP instances that frame their
// answers by hand (chunked, close-delimited, interim, lying lengths, broken heads, dropped connections).

import { test, describe, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect as netConnect, createServer as createNetServer, type Socket, type Server as NetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { ResponseParser, UpstreamProtocolError, type ResponseHandler } from '../proxy/protocol/http1-response.js';
import { lentReadBuffers } from '../proxy/upstream/read-buffers.js';
import { FakePool, appConfig, enterApp, proxyForPool, type ProxyServer } from './helpers/fake-pool.js';
import { type CookieJar, closeServer, listen, request } from './helpers/http.js';
import { eventually } from './helpers/wait.js';

// ---------------------------------------------------------------------------------------------
// The parser alone

interface Parsed {
  status: number;
  reason: string;
  headers: Record<string, string | string[]>;
  framing: string;
  body: string;
  heads: number;
  ends: number;
  lasts: number;
  keepAlive: boolean;
  complete: boolean;
}

function parse(chunks: Buffer[], o: { head?: boolean; eof?: boolean } = {}): Parsed {
  const p = new ResponseParser();
  const r: Parsed = { status: 0, reason: '', headers: {}, framing: '', body: '', heads: 0, ends: 0, lasts: 0, keepAlive: false, complete: false };
  const body: Buffer[] = [];
  const h: ResponseHandler = {
    onHead(pp) {
      r.heads++;
      r.status = pp.status;
      r.reason = pp.reason;
      r.headers = { ...pp.headers };
      r.framing = pp.framing;
    },
    onBody(c, last) {
      assert.equal(r.ends, 0, 'no body after the end');
      body.push(Buffer.from(c));
      if (last) r.lasts++;
    },
    onEnd() {
      r.ends++;
    },
  };
  p.start(h, o.head ?? false);
  for (const c of chunks) p.execute(c);
  if (o.eof) p.finish();
  r.body = Buffer.concat(body).toString('latin1');
  r.keepAlive = p.keepAlive;
  r.complete = p.complete;
  return r;
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** A small deterministic PRNG (mulberry32): the random splits are the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The same bytes cut every way: whole, at every single position, byte by byte, and in random pieces. */
function* splits(msg: Buffer): Generator<Buffer[]> {
  yield [msg];
  for (let i = 1; i < msg.length; i++) yield [msg.subarray(0, i), msg.subarray(i)];
  yield [...msg].map((x) => Buffer.from([x]));
  const rnd = prng(42);
  for (let n = 0; n < 300; n++) {
    const parts: Buffer[] = [];
    let i = 0;
    while (i < msg.length) {
      const len = 1 + Math.floor(rnd() * 12);
      parts.push(msg.subarray(i, i + len));
      i += len;
    }
    yield parts;
  }
}

function throwsProtocol(msg: string, o: { head?: boolean } = {}): void {
  for (const parts of [[b(msg)], [...b(msg)].map((x) => Buffer.from([x]))]) {
    assert.throws(() => parse(parts, o), UpstreamProtocolError, JSON.stringify(msg));
  }
}

describe('response parser', () => {
  test('chunked with extensions and trailers, cut at every position: the same body, one end', () => {
    const msg = b(
      'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n' +
        '5;name=value;q="x;y"\r\nhello\r\n' +
        '1;ext\r\n,\r\n' +
        'A\r\n world 123\r\n' +
        '000\r\n' +
        'X-Checksum: abc\r\nX-Other: 1\r\n\r\n',
    );
    for (const parts of splits(msg)) {
      const r = parse(parts);
      assert.equal(r.status, 200);
      assert.equal(r.framing, 'chunked');
      assert.equal(r.body, 'hello, world 123');
      assert.equal(r.heads, 1);
      assert.equal(r.ends, 1);
      assert.equal(r.keepAlive, true);
      assert.equal(r.headers['x-checksum'], undefined, 'trailers are consumed, not headers');
    }
  });

  test('Content-Length, cut at every position; the whole body in one read is marked last', () => {
    const msg = b('HTTP/1.1 201 Created\r\nContent-Length: 11\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nhello world');
    for (const parts of splits(msg)) {
      const r = parse(parts);
      assert.equal(r.status, 201);
      assert.equal(r.reason, 'Created');
      assert.equal(r.body, 'hello world');
      assert.equal(r.ends, 1);
      assert.equal(r.lasts, 1);
      assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);
      assert.equal(r.keepAlive, true);
    }
    // One Content-Length line with one number, as llhttp wants: "5, 5" and a repeated line are refused
    // even when they agree; leading zeros are dropped.
    assert.equal(parse([b('HTTP/1.1 200 OK\r\nContent-Length: 005\r\n\r\nabcde')]).headers['content-length'], '5');
    throwsProtocol('HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nabcde');
    throwsProtocol('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nabcde');
    throwsProtocol('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef');
    throwsProtocol('HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nabcdef');
    throwsProtocol('HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n');
    throwsProtocol('HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n');
  });

  test('Transfer-Encoding beside Content-Length is refused, as llhttp refuses it', () => {
    throwsProtocol('HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
    throwsProtocol('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 100\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
    // A final coding other than chunked: read until close.
    const g = parse([b('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzzz')], { eof: true });
    assert.equal(g.framing, 'close');
    assert.equal(g.body, 'zzz');
    assert.equal(g.ends, 1);
  });

  test('no length: the body runs until the connection closes, and the connection is not reused', () => {
    const msg = b('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end');
    for (const parts of splits(msg)) {
      const r = parse(parts, { eof: true });
      assert.equal(r.framing, 'close');
      assert.equal(r.body, 'until the end');
      assert.equal(r.ends, 1);
      assert.equal(r.keepAlive, false);
    }
    const cut = parse([msg]);
    assert.equal(cut.ends, 0, 'not complete before the close');
  });

  test('HEAD, 204 and 304 have no body whatever their Content-Length says', () => {
    for (const [msg, head] of [
      ['HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n', true],
      ['HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n', false],
      ['HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n', false],
    ] as const) {
      for (const parts of splits(b(msg))) {
        const r = parse(parts, { head });
        assert.equal(r.framing, 'none', msg);
        assert.equal(r.ends, 1, msg);
        assert.equal(r.body, '');
        assert.equal(r.keepAlive, true, msg);
      }
    }
    assert.equal(parse([b('HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n')], { head: true }).headers['content-length'], '1234', 'kept for the visitor');
    // Bytes after a complete response: that connection is not trusted again.
    const extra = parse([b('HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\nabc')]);
    assert.equal(extra.ends, 1);
    assert.equal(extra.keepAlive, false);
  });

  test('interim 1xx responses are skipped; a 101 to a plain request is refused', () => {
    const msg = b('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    for (const parts of splits(msg)) {
      const r = parse(parts);
      assert.equal(r.heads, 1);
      assert.equal(r.status, 200);
      assert.equal(r.headers.link, undefined);
      assert.equal(r.body, 'ok');
      assert.equal(r.ends, 1);
    }
    throwsProtocol('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n');
  });

  test('HTTP/1.0: not kept alive unless it says keep-alive; Connection: close is honoured', () => {
    const a = parse([b('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi')]);
    assert.equal(a.body, 'hi');
    assert.equal(a.keepAlive, false);
    assert.equal(parse([b('HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nhi')]).keepAlive, true);
    assert.equal(parse([b('HTTP/1.0 200 OK\r\n\r\nuntil close')], { eof: true }).body, 'until close');
    assert.equal(parse([b('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi')]).keepAlive, false);
    assert.equal(parse([b('HTTP/1.1 200 OK\r\nConnection: foo, Close\r\nContent-Length: 2\r\n\r\nhi')]).keepAlive, false);
    // An empty reason phrase, and none at all.
    assert.equal(parse([b('HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n')]).status, 404);
    assert.equal(parse([b('HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n')]).reason, '');
  });

  test('malformed heads and chunk framing are refused', () => {
    for (const msg of [
      'HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n', // obs-fold
      'HTTP/1.1 200 OK\nContent-Length: 0\n\n', // bare LF line ends
      'HTTP/1.1 200 OK\r\nX-A: 1\nX-B: 2\r\nContent-Length: 0\r\n\r\n', // a bare LF inside
      'HTTP/1.1 200 OK\r\nX-A: 1\rX-B: 2\r\nContent-Length: 0\r\n\r\n', // a bare CR inside
      'HTTP/1.1 200 OK\r\nno colon here\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n', // whitespace before the colon
      'HTTP/1.1 200 OK\r\n: empty name\r\n\r\n',
      'HTTP/2 200 OK\r\n\r\n',
      'HTTP/1.1 20 OK\r\n\r\n',
      'HTTP/1.1 200OK\r\n\r\n',
      'ICY 200 OK\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n;ext\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\n\r\n',
    ])
      throwsProtocol(msg);
    const huge = b(`HTTP/1.1 200 OK\r\n${'X-Big: ' + 'a'.repeat(70 * 1024)}\r\n\r\n`);
    assert.throws(() => parse([huge]), /larger than 65536/);
    assert.throws(() => parse([huge.subarray(0, 40_000), huge.subarray(40_000)]), /larger than 65536/);
  });
});

// ---------------------------------------------------------------------------------------------
// The client through the proxy

interface RawBackend {
  port: number;
  /** Connections accepted so far. */
  accepted: number;
  /** Request heads received, in order. */
  heads: string[];
  close(): Promise<void>;
}

/**
 * A TCP "instance" that answers by hand: onRequest gets each request head (bodies with a
 * Content-Length are skipped) and the socket, and writes whatever bytes the test wants.
 */
async function rawBackend(onRequest: (head: string, socket: Socket, nOnSocket: number) => void): Promise<RawBackend> {
  const sockets = new Set<Socket>();
  const r = { accepted: 0, heads: [] as string[] };
  const server: NetServer = createNetServer((socket) => {
    r.accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buf = Buffer.alloc(0);
    let skip = 0;
    let n = 0;
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (skip > 0) {
          const k = Math.min(skip, buf.length);
          skip -= k;
          buf = buf.subarray(k);
          if (skip > 0) return;
        }
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        buf = buf.subarray(end + 4);
        skip = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        r.heads.push(head);
        onRequest(head, socket, n++);
      }
    });
  });
  const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
  return Object.assign(r, {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  });
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

interface Setup {
  p: ProxyServer;
  jar: CookieJar;
  pool: FakePool;
  logs: string[];
  url: (path: string) => string;
}

/** A proxy in front of one instance at `port`, with a session cookie already in the jar. */
async function through(port: number, o: { headersTimeoutMs?: number } = {}): Promise<Setup> {
  const pool = new FakePool([appConfig('demo')]);
  pool.addInstance('demo', { port, id: 'inst-7' });
  const logs: string[] = [];
  const p = await proxyForPool(pool, { log: (m) => logs.push(m), ...o });
  cleanups.push(() => p.close());
  const jar = await enterApp(p, 'demo');
  return { p, jar, pool, logs, url: (path) => `${p.url}/demo${path}` };
}

async function raw(handler: Parameters<typeof rawBackend>[0]): Promise<RawBackend> {
  const be = await rawBackend(handler);
  cleanups.push(() => be.close());
  return be;
}

async function nodeBackend(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; port: number; accepted: () => number }> {
  let accepted = 0;
  const server = createHttpServer(handler);
  server.on('connection', () => accepted++);
  const port = await listen(server);
  cleanups.push(() => closeServer(server));
  return { server, port, accepted: () => accepted };
}

/**
 * GET through the proxy, the body hashed as it comes. pauseEvery: a slow reader, pausing pauseMs
 * after every so many reads; until: nothing read before it settles (the visitor's socket fills).
 */
function hashedGet(
  url: string,
  cookie: string,
  o: { pauseEvery?: number; pauseMs?: number; until?: Promise<void> } = {},
): Promise<{ hash: string; n: number; te?: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = httpRequest({ host: u.hostname, port: u.port, path: u.pathname, agent: false, headers: { cookie } }, (res) => {
      const h = createHash('sha256');
      let n = 0;
      let reads = 0;
      if (o.until) {
        res.pause();
        void o.until.then(() => res.resume());
      }
      res.on('data', (c: Buffer) => {
        h.update(c);
        n += c.length;
        if (o.pauseEvery && ++reads % o.pauseEvery === 0) {
          res.pause();
          setTimeout(() => res.resume(), o.pauseMs ?? 2);
        }
      });
      res.on('end', () => resolve({ hash: h.digest('hex'), n, te: res.headers['transfer-encoding'] }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('upstream client through the proxy', () => {
  test('chunked answers (extensions, trailers, written in pieces) arrive whole; the connection is reused', async () => {
    const be = await raw((_head, s) => {
      s.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhel');
      setTimeout(() => s.write('lo\r\n6\r\n, worl\r\n1\r\nd\r'), 5);
      setTimeout(() => s.write('\n0\r\nX-Trailer: t\r\n\r\n'), 10);
    });
    const { url, jar } = await through(be.port);
    for (let i = 0; i < 3; i++) {
      const r = await request(url(`/c${i}`), { jar });
      assert.equal(r.status, 200);
      assert.equal(r.text, 'hello, world');
      assert.equal(r.headers['x-trailer'], undefined);
    }
    assert.equal(be.accepted, 1, 'one upstream connection for three requests');
  });

  test('Content-Length answers: sequential requests share one kept-alive connection', async () => {
    const be = await raw((head, s) => {
      const body = `you asked ${head.split(' ')[1]}`;
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    });
    const { url, jar } = await through(be.port);
    for (let i = 0; i < 20; i++) assert.equal((await request(url(`/n${i}`), { jar })).text, `you asked /n${i}`);
    assert.equal(be.accepted, 1);
    assert.equal(be.heads.length, 20);
    assert.match(be.heads[0]!, /^GET \/n0 HTTP\/1\.1\r\n/);
  });

  test('the entry opens a connection to the instance it hands out; the first request uses it', async () => {
    const be = await raw((head, s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi'));
    const { url, jar, p } = await through(be.port);
    await eventually(() => be.accepted === 1, 'a connection opened by the entry, before any request', 5000, 10);
    assert.equal(be.heads.length, 0);
    assert.equal(p.proxy.openSockets(), 1);
    assert.equal((await request(url('/first'), { jar })).text, 'hi');
    assert.equal(be.accepted, 1, 'the first request went over it');
    // A visitor who comes back with their cookie is not handed out again: no second spare.
    assert.equal((await request(url('/'), { jar, headers: { accept: 'text/html' } })).status, 302);
    assert.equal((await request(url('/second'), { jar })).text, 'hi');
    assert.equal(be.accepted, 1);
  });

  test('HEAD, 204 and 304 with a lying Content-Length are answered at once, and the connection is kept', async () => {
    const be = await raw((head, s) => {
      if (head.startsWith('HEAD')) s.write('HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n');
      else if (head.includes(' /204 ')) s.write('HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n');
      else if (head.includes(' /304 ')) s.write('HTTP/1.1 304 Not Modified\r\nETag: "x"\r\nContent-Length: 10\r\n\r\n');
      else s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    const { url, jar } = await through(be.port);
    const head = await request(url('/h'), { jar, method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], '5000');
    assert.equal(head.body.length, 0);
    assert.equal((await request(url('/204'), { jar })).status, 204);
    const nm = await request(url('/304'), { jar });
    assert.equal(nm.status, 304);
    assert.equal(nm.headers.etag, '"x"');
    assert.equal((await request(url('/after'), { jar })).text, 'ok');
    assert.equal(be.accepted, 1);
  });

  test('interim 1xx responses are skipped; the final one is relayed', async () => {
    const be = await raw((_head, s) => {
      s.write('HTTP/1.1 100 Continue\r\n\r\n');
      setTimeout(() => s.write('HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 Fine Thanks\r\nContent-Length: 4\r\n\r\ndone'), 5);
    });
    const { url, jar } = await through(be.port);
    const r = await new Promise<{ status: number; message: string; text: string }>((resolve, reject) => {
      const u = new URL(url('/x'));
      const req = httpRequest({ host: u.hostname, port: u.port, path: u.pathname, agent: false, headers: { cookie: jar.header('/demo/') } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, message: res.statusMessage!, text }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.deepEqual(r, { status: 200, message: 'Fine Thanks', text: 'done' });
  });

  test('HTTP/1.0 and close-delimited answers are relayed whole; Connection: close is not reused', async () => {
    const be = await raw((head, s) => {
      if (head.includes(' /old ')) s.end('HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nan old server, body until close');
      else if (head.includes(' /close ')) s.write('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye');
      else s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    const { url, jar } = await through(be.port);
    assert.equal((await request(url('/old'), { jar })).text, 'an old server, body until close');
    assert.equal((await request(url('/old'), { jar })).text, 'an old server, body until close');
    assert.equal(be.accepted, 2, 'a close-delimited answer uses its connection up');
    assert.equal((await request(url('/close'), { jar })).text, 'bye');
    assert.equal((await request(url('/next'), { jar })).text, 'ok');
    assert.equal(be.accepted, 4, 'Connection: close is honoured');
    assert.equal((await request(url('/next'), { jar })).text, 'ok');
    assert.equal(be.accepted, 4, 'a kept-alive answer is reused');
  });

  test('an idle connection the instance closes is dropped; one that dies under a request: GET retried, POST answered 502', async () => {
    // Requests numbered per connection: the first answer keeps the connection, the second request on
    // it meets a connection the instance closes without answering (the keep-alive race).
    const be = await raw((head, s, n) => {
      if (head.includes(' /end-after ')) {
        s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        return;
      }
      if (n >= 1) {
        s.destroy();
        return;
      }
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst');
    });
    const { url, jar, pool } = await through(be.port);

    // The instance ends a kept-alive connection between requests: the next request gets a new one.
    assert.equal((await request(url('/end-after'), { jar })).text, 'ok');
    await eventually(() => be.accepted === 1, 'one connection', 5000, 10);
    assert.equal((await request(url('/a'), { jar })).text, 'first');
    assert.equal(be.accepted, 2);

    // Dies under a GET: sent again on a fresh connection, the visitor sees nothing.
    const again = await request(url('/b'), { jar });
    assert.equal(again.status, 200);
    assert.equal(again.text, 'first');
    assert.equal(be.accepted, 3);
    assert.deepEqual(
      be.heads.slice(-2).map((h) => h.split('\r\n')[0]),
      ['GET /b HTTP/1.1', 'GET /b HTTP/1.1'],
    );

    // Dies under a POST: a body is not sent twice.
    const post = await request(url('/c'), { jar, method: 'POST', body: 'data', headers: { accept: 'application/json' } });
    assert.equal(post.status, 502);
    assert.equal(JSON.parse(post.text).error.code, 'INSTANCE_NOT_READY');
    assert.equal(be.heads.filter((h) => h.startsWith('POST /c ')).length, 1);
    assert.ok(pool.eventsOf('upstream-error').some((e) => e.detail?.code === 'UPSTREAM_CLOSED'));
  });

  test('a malformed head: 502 and a log line naming the instance', async () => {
    const be = await raw((head, s) => {
      if (head.includes(' /fold ')) s.write('HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n');
      else if (head.includes(' /lf ')) s.write('HTTP/1.1 200 OK\nContent-Length: 0\n\n');
      else if (head.includes(' /cl ')) s.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab');
      else if (head.includes(' /bad-value ')) s.write('HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 0\r\n\r\n');
      else s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    const { url, jar, logs } = await through(be.port);
    for (const path of ['/fold', '/lf', '/cl', '/bad-value']) {
      const r = await request(url(path), { jar, headers: { accept: 'application/json' } });
      assert.equal(r.status, 502, path);
      assert.equal(JSON.parse(r.text).error.code, 'INSTANCE_NOT_READY');
    }
    assert.ok(
      logs.some((l) => l.includes('inst-7') && l.includes('/fold') && /folding/.test(l)),
      logs.join('\n'),
    );
    assert.equal((await request(url('/fine'), { jar })).text, 'ok', 'the proxy carries on');
  });

  test('no head within headersTimeoutMs: 504', async () => {
    const be = await raw(() => undefined); // never answers
    const { url, jar, pool } = await through(be.port, { headersTimeoutMs: 150 });
    const r = await request(url('/slow'), { jar, headers: { accept: 'application/json' } });
    assert.equal(r.status, 504);
    assert.match(JSON.parse(r.text).error.message, /did not answer in time/);
    assert.ok(pool.eventsOf('upstream-error').some((e) => e.detail?.code === 'UPSTREAM_HEADERS_TIMEOUT'));
  });

  test('20 MiB to a slow reader, Content-Length and chunked: intact', async () => {
    const big = randomBytes(20 * 1024 * 1024);
    const hash = createHash('sha256').update(big).digest('hex');
    const be = await nodeBackend((req, res) => {
      req.resume();
      if (req.url === '/cl') {
        res.writeHead(200, { 'content-length': big.length });
        res.end(big);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream' }); // chunked, in 1 MiB writes
      let i = 0;
      const more = (): void => {
        while (i < big.length) {
          const ok = res.write(big.subarray(i, i + 1024 * 1024));
          i += 1024 * 1024;
          if (!ok) return void res.once('drain', more);
        }
        res.end();
      };
      more();
    });
    const { url, jar, p } = await through(be.port);
    for (const path of ['/cl', '/chunked']) {
      // A slow reader: stop now and then, so the proxy has to hold the instance back.
      const got = await hashedGet(url(path), jar.header('/demo/'), { pauseEvery: 8 });
      assert.equal(got.n, big.length, path);
      assert.equal(got.hash, hash, path);
      if (path === '/chunked') assert.equal(got.te, 'chunked');
    }
    assert.equal(be.accepted(), 1, 'the connection survived both');
    assert.equal(p.proxy.openSockets(), 1, 'one kept-alive upstream connection, nothing in flight');
  });

  test('visitors at once, bodies of every size, slow and fast readers: each gets its own bytes, round after round', async () => {
    // Upstream reads land in one shared buffer or in buffers lent to streaming connections
    // (proxy/upstream/read-buffers.ts): a view written on after the next read overwrote it would show here.
    const sizes = [1, 900, 16 * 1024 - 1, 16 * 1024, 65_536, 65_537, 200_000, 1_000_000, 8 * 1024 * 1024];
    const bodies = new Map(sizes.map((n) => [n, randomBytes(n)]));
    const be = await nodeBackend((req, res) => {
      req.resume();
      const body = bodies.get(Number(req.url!.split('/')[2]))!;
      res.writeHead(200, { 'content-length': body.length });
      // Half the answers in pieces, so reads end mid-body at odd places.
      if (req.url!.endsWith('/pieces')) {
        let i = 0;
        const more = (): void => {
          if (i >= body.length) return void res.end();
          const n = 1 + Math.floor(Math.random() * 100_000);
          res.write(body.subarray(i, i + n));
          i += n;
          setImmediate(more);
        };
        more();
      } else res.end(body);
    });
    const { url, jar, p } = await through(be.port);
    for (let round = 0; round < 3; round++) {
      const asked = sizes.flatMap((n) => [
        { n, path: `/b/${n}/whole`, slow: false },
        { n, path: `/b/${n}/pieces`, slow: true },
      ]);
      const got = await Promise.all(asked.map((a) => hashedGet(url(a.path), jar.header('/demo/'), a.slow ? { pauseEvery: 4, pauseMs: 5 } : {})));
      for (const [i, a] of asked.entries()) {
        assert.equal(got[i]!.n, a.n, `round ${round} ${a.path}`);
        assert.equal(got[i]!.hash, createHash('sha256').update(bodies.get(a.n)!).digest('hex'), `round ${round} ${a.path}`);
      }
    }
    assert.ok(lentReadBuffers() <= p.proxy.openSockets(), 'buffers lent only to open connections');
    await p.close();
    assert.equal(lentReadBuffers(), 0, 'every lent buffer back once the connections are gone');
  });

  test('a visitor who reads nothing for a while, the instance dripping small pieces: intact (writes queue on read buffers)', async () => {
    // Small reads while the visitor's socket is full: each write queues views of the read buffer (the
    // shared one, or one lent after a first full read) below the high-water mark, where nothing pauses.
    const size = 16 * 1024 * 1024;
    const body = randomBytes(size);
    let written!: () => void;
    const be = await nodeBackend((req, res) => {
      req.resume();
      const first = Number(req.url!.split('/')[2]);
      res.writeHead(200, { 'content-length': size });
      res.write(body.subarray(0, first));
      let i = first;
      const more = (): void => {
        if (i >= size) {
          // All of it handed to Node (not yet flushed: the visitor reads nothing, so it cannot be); the
          // visitor starts reading on the next turn of the loop.
          res.end();
          return void setImmediate(written);
        }
        res.write(body.subarray(i, i + 4096)); // backpressure ignored: the instance keeps dripping
        i += 4096;
        setImmediate(more);
      };
      more();
    });
    const { url, jar } = await through(be.port);
    for (const first of [0, 65_536]) {
      const done = new Promise<void>((resolve) => (written = resolve));
      const got = await hashedGet(url(`/drip/${first}`), jar.header('/demo/'), { until: done });
      assert.equal(got.n, size, `first piece ${first}`);
      assert.equal(got.hash, createHash('sha256').update(body).digest('hex'), `first piece ${first}`);
    }
  });

  test('an instance that names Content-Length in Connection: the visitor gets the body chunked by Node, intact', async () => {
    // The header is dropped on the way (hop-by-hop by the instance's own word), so the body cannot go
    // straight to the visitor's socket as written: Node frames it.
    const body = randomBytes(300_000);
    const be = await raw((_head, s) => {
      s.write(`HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: ${body.length}\r\n\r\n`);
      s.write(body.subarray(0, 70_000));
      setTimeout(() => s.write(body.subarray(70_000)), 5);
    });
    const { url, jar } = await through(be.port);
    for (let i = 0; i < 2; i++) {
      const r = await request(url(`/dropped-length-${i}`), { jar });
      assert.equal(r.status, 200);
      assert.equal(r.headers['transfer-encoding'], 'chunked');
      assert.equal(r.headers['content-length'], undefined);
      assert.ok(r.body.equals(body), 'the same bytes');
    }
  });

  test('a chunked upload goes up chunked and intact', async () => {
    const be = await nodeBackend((req, res) => {
      const h = createHash('sha256');
      let n = 0;
      req.on('data', (c: Buffer) => {
        h.update(c);
        n += c.length;
      });
      req.on('end', () =>
        res.end(JSON.stringify({ n, hash: h.digest('hex'), te: req.headers['transfer-encoding'] ?? null, cl: req.headers['content-length'] ?? null })),
      );
    });
    const { url, jar, pool } = await through(be.port);
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const got = await new Promise<string>((resolve, reject) => {
      const u = new URL(url('/upload'));
      const req = httpRequest(
        {
          host: u.hostname,
          port: u.port,
          path: u.pathname,
          method: 'PUT',
          agent: false,
          headers: { cookie: jar.header('/demo/'), 'transfer-encoding': 'chunked' },
        },
        (res) => {
          let s = '';
          res.on('data', (c: Buffer) => (s += c));
          res.on('end', () => resolve(s));
        },
      );
      req.on('error', reject);
      let i = 0;
      const step = 100_003;
      const more = (): void => {
        while (i < data.length) {
          const ok = req.write(data.subarray(i, i + step));
          i += step;
          if (!ok) return void req.once('drain', more);
        }
        req.end();
      };
      more();
    });
    assert.deepEqual(JSON.parse(got), { n: data.length, hash: createHash('sha256').update(data).digest('hex'), te: 'chunked', cl: null });
    assert.equal([...pool.sessions.values()][0]!.traffic.bytesIn, data.length, 'upload bytes counted without a Content-Length');
    // And the connection is fine for the next request.
    assert.equal((await request(url('/upload'), { jar, method: 'POST', body: 'abc' })).status, 200);
    assert.equal(be.accepted(), 1);
  });

  test('a visitor who leaves mid-response: that upstream connection is destroyed, not reused', async () => {
    let closed = 0;
    const be = await nodeBackend((req, res) => {
      req.resume();
      if (req.url === '/forever') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        const t = setInterval(() => res.write('tick\n'), 5);
        res.on('close', () => {
          clearInterval(t);
          closed++;
        });
        return;
      }
      res.end('ok');
    });
    const { url, jar, p } = await through(be.port);
    await new Promise<void>((resolve, reject) => {
      const u = new URL(url('/forever'));
      const req = httpRequest({ host: u.hostname, port: u.port, path: u.pathname, agent: false, headers: { cookie: jar.header('/demo/') } }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.end();
      setTimeout(() => reject(new Error('no data')), 5000).unref();
    });
    await eventually(() => closed === 1, 'the instance saw its connection close', 5000, 10);
    await eventually(() => p.proxy.openSockets() === 0, 'the proxy let go of it', 5000, 10);
    assert.equal((await request(url('/next'), { jar })).text, 'ok');
    assert.equal(be.accepted(), 2, 'the next request had a new connection');
  });

  test('repeated Set-Cookie headers all reach the visitor, in order', async () => {
    const be = await raw((_head, s) => {
      s.write('HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nX-One: 1\r\nset-cookie: b=2; Path=/\r\nSET-COOKIE: c=3; Path=/\r\nContent-Length: 0\r\n\r\n');
    });
    const { url, jar } = await through(be.port);
    const r = await request(url('/cookies'), { jar });
    assert.deepEqual(r.headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/', 'c=3; Path=/']);
    assert.equal(r.headers['x-one'], '1');
  });

  test('a visitor without Host (HTTP/1.0) still sends one upstream', async () => {
    const be = await raw((_head, s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    const { p, jar } = await through(be.port);
    const text = await new Promise<string>((resolve, reject) => {
      const c = netConnect(p.port, '127.0.0.1', () => {
        c.write(`GET /demo/nohost HTTP/1.0\r\nCookie: ${jar.header('/demo/')}\r\n\r\n`);
      });
      let s = '';
      c.on('data', (d: Buffer) => (s += d));
      c.on('end', () => resolve(s));
      c.on('error', reject);
    });
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.match(text, /\r\n\r\nok$/);
    assert.match(be.heads.at(-1)!, new RegExp(`\\r\\nHost: 127\\.0\\.0\\.1:${be.port}`));
  });
});
