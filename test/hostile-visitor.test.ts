// The visitor-side hostile corpus: anonymous visitors send smuggling heads, pipelines, drips, floods,
// duplicate and forged cookies and broken upgrades; each case says what the proxy answers and what (if
// anything) may reach an instance; after each, the bystander must still be served.

import { describe } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { cookieName } from '../proxy/index.js';
import { wsOpen } from './helpers/http.js';
import {
  ResponseStream,
  corpus,
  drip,
  echo,
  fetchWithin,
  hasResponse,
  headerValues,
  rawExchange,
  readResponses,
  switching,
  targetOf,
  withDeadline,
  type Behaviour,
  type RawResult,
  type Stage,
  type StageOptions,
} from './helpers/hostile.js';
import { eventually, until } from './helpers/wait.js';

const STAGE: StageOptions = {
  relay: { headerTimeoutMs: 500, websocketsPerSession: 2, connectionsPerAddress: 1000 },
  evilInstances: 2,
};
const { kase, alone, finish } = corpus(STAGE);

/** Plain requests echoed; WebSocket upgrades switched and held open (their frames recorded). */
const echoAndSwitch: Behaviour = {
  request(head, c, n) {
    if (/\r\nupgrade: *websocket/i.test(head)) c.socket.write(switching(head));
    else echo.request!(head, c, n);
  },
};

/** A raw request to the proxy, read until a complete answer or a close (3 s at most). */
function raw(s: Stage, text: string, deadlineMs = 3000): Promise<RawResult> {
  return rawExchange(s.p.port, text, { until: hasResponse, deadlineMs });
}

function statusOf(r: RawResult): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(r.text);
  return m ? Number(m[1]) : 0;
}

/** Nothing of the visitor's request reached any hostile instance. */
function nothingReached(s: Stage, what: string): void {
  for (const e of s.evils) {
    assert.equal(e.heads.length, 0, `${what}: ${e.id} received ${JSON.stringify(e.heads)}`);
    assert.equal(e.bytes, 0, `${what}: ${e.id} received ${e.bytes} bytes`);
  }
}

function upgradeHead(s: Stage, o: { cookie?: string; key?: string | null; path?: string } = {}): string {
  const key = o.key === null ? '' : `Sec-WebSocket-Key: ${o.key ?? 'dGhlIHNhbXBsZSBub25jZQ=='}\r\n`;
  return `GET ${o.path ?? '/evil/ws'} HTTP/1.1\r\nHost: 127.0.0.1:${s.p.port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n${key}Cookie: ${o.cookie ?? s.evilCookie}\r\n\r\n`;
}

describe('request smuggling', () => {
  const cases: [string, string, string][] = [
    ['Connection: content-length', 'Connection: content-length\r\nContent-Length: 5\r\n', 'hello'],
    ['Connection: transfer-encoding', 'Connection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n', '5\r\nhello\r\n0\r\n\r\n'],
    ['Connection: host', 'Connection: host\r\nContent-Length: 5\r\n', 'hello'],
    ['Connection: keep-alive, Content-Length', 'Connection: keep-alive, Content-Length\r\nContent-Length: 5\r\n', 'hello'],
  ];
  for (const [name, headers, body] of cases) {
    kase(`${name} on a request with a body: 400, nothing reaches the instance`, {}, async (s) => {
      const r = await raw(s, `POST /evil/x HTTP/1.1\r\nHost: x\r\nCookie: ${s.evilCookie}\r\n${headers}\r\n${body}`);
      assert.equal(statusOf(r), 400, JSON.stringify(r.text.slice(0, 80)));
      nothingReached(s, name);
    });
  }

  kase('two Host headers: 400, nothing reaches the instance', {}, async (s) => {
    const r = await raw(s, `GET /evil/x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nCookie: ${s.evilCookie}\r\n\r\n`);
    assert.equal(statusOf(r), 400, JSON.stringify(r.text.slice(0, 80)));
    nothingReached(s, 'two Host');
  });

  kase('Content-Length beside Transfer-Encoding, and a Transfer-Encoding not ending in chunked: 400, nothing reaches the instance', {}, async (s) => {
    for (const framing of [
      'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n',
      'Transfer-Encoding: chunked, identity\r\n',
      'Content-Length: 5\r\nContent-Length: 6\r\n',
    ]) {
      const r = await raw(s, `POST /evil/x HTTP/1.1\r\nHost: x\r\nCookie: ${s.evilCookie}\r\n${framing}\r\n5\r\nhello\r\n0\r\n\r\n`);
      assert.equal(statusOf(r), 400, `${JSON.stringify(framing)}: ${JSON.stringify(r.text.slice(0, 80))}`);
      nothingReached(s, framing);
    }
  });
});

describe('pipelining', () => {
  const N = 2000;
  const pipeline = (s: Stage): string => {
    let out = '';
    for (let i = 0; i < N; i++) out += `GET /evil/p/${i} HTTP/1.1\r\nHost: x\r\nCookie: ${s.evilCookie}\r\n\r\n`;
    return out;
  };

  /** Writes the whole pipeline at once; resolves once `stopAt` answers are in (or the connection ends). */
  function pipelined(s: Stage, stopAt: number): Promise<{ bodies: string[]; socket: Socket }> {
    return withDeadline(
      new Promise((resolve) => {
        const socket = connect(s.p.port, '127.0.0.1');
        const reader = new ResponseStream();
        const bodies: string[] = [];
        socket.on('error', () => undefined);
        socket.on('data', (d: Buffer) => {
          for (const r of reader.push(d)) bodies.push(`${r.status} ${r.body.toString('latin1')}`);
          if (bodies.length >= stopAt) resolve({ bodies, socket });
        });
        socket.on('close', () => resolve({ bodies, socket }));
        socket.write(pipeline(s));
      }),
      20_000,
      'the pipelined answers',
    );
  }

  kase(`${N} pipelined GETs on one connection: answered in order; at most 2 connections to the instance at once`, {}, async (s) => {
    s.evil.behave(echo);
    const { bodies, socket } = await pipelined(s, N);
    socket.destroy();
    assert.equal(bodies.length, N);
    for (let i = 0; i < N; i++) assert.equal(bodies[i], `200 /p/${i}`, `answer ${i}`);
    assert.ok(s.evil.peakOpen <= 2, `${s.evil.peakOpen} connections to the instance at once`);
  });

  kase(`${N} pipelined GETs, the client gone halfway: the proxy ends its exchanges with the instance promptly, no request follows`, {}, async (s) => {
    // Answers a little later, so the pipeline is still being worked through when the client leaves.
    s.evil.behave({ request: (head, c, n) => void setTimeout(() => echo.request!(head, c, n), 1) });
    const { bodies, socket } = await pipelined(s, N / 2);
    socket.destroy();
    assert.ok(bodies.length >= N / 2);
    // An exchange that completed while the client was leaving puts its connection back idle, kept alive
    // for the session's other connections (seen in CI: 1,002 answered, 1 idle connection left). Dropping
    // the instance's idle connections leaves only busy ones, which must end with the visitor.
    s.p.proxy.forgetInstance('127.0.0.1', s.evil.port);
    await eventually(() => s.evil.open === 0, 'the instance connections closed', 1000, 5);
    await eventually(() => s.p.proxy.openSockets() === s.baseline.sockets, 'nothing in flight in the proxy', 1000, 5);
    const heads = s.evil.heads.length;
    const accepted = s.evil.accepted;
    // With nothing in flight nothing can be sent; the bystander round shows time passing without one.
    const r = await fetchWithin(s.url('/good/between'), { jar: s.goodJar });
    assert.equal(r.status, 200);
    assert.equal(s.evil.heads.length, heads);
    assert.equal(s.evil.accepted, accepted);
  });
});

describe('request head limits', () => {
  kase('a request head dripped a byte every 50 ms: closed (408 or without a word) once the header timeout passes', {}, async (s) => {
    const r = await rawExchange(
      s.p.port,
      (sock) => {
        void drip(sock, `GET /evil/slow HTTP/1.1\r\nHost: x\r\nCookie: ${s.evilCookie}\r\nX-Slow: ${'a'.repeat(200)}`, 50);
      },
      { deadlineMs: 3000 },
    );
    // headerTimeoutMs is 500: three seconds tells a timeout kept from none without timing it to the millisecond.
    assert.ok(r.closed, `still open after ${r.ms} ms`);
    if (r.buf.length > 0) assert.equal(statusOf(r), 408, JSON.stringify(r.text.slice(0, 80)));
    nothingReached(s, 'dripped head');
  });

  kase('200 connections that never send a byte: all closed by the header timeout', {}, async (s) => {
    const socks = await Promise.all(
      Array.from(
        { length: 200 },
        () =>
          new Promise<Socket>((resolve) => {
            const c = connect(s.p.port, '127.0.0.1', () => resolve(c));
            c.on('error', () => undefined);
          }),
      ),
    );
    let closed = 0;
    for (const c of socks) c.on('close', () => closed++);
    try {
      // headerTimeoutMs is 500; the bound only tells "closed" from "held", with room for a loaded machine
      // (3 s once failed here with two benchmarks running beside the suite).
      await eventually(() => closed === socks.length, `all 200 closed by the proxy (${closed} so far)`, 10_000, 20);
    } finally {
      for (const c of socks) c.destroy();
    }
  });

  kase('a request head of 100 KiB of headers: 431, nothing reaches the instance', {}, async (s) => {
    let pad = '';
    for (let i = 0; i < 100; i++) pad += `X-Pad-${i}: ${'p'.repeat(1000)}\r\n`;
    const r = await raw(s, `GET /evil/big-head HTTP/1.1\r\nHost: x\r\nCookie: ${s.evilCookie}\r\n${pad}\r\n`);
    assert.equal(statusOf(r), 431, JSON.stringify(r.text.slice(0, 80)));
    nothingReached(s, '100 KiB head');
  });

  kase('a request line of 100 KiB: 414 or 431, nothing reaches the instance', {}, async (s) => {
    const r = await raw(s, `GET /evil/${'l'.repeat(100 * 1024)} HTTP/1.1\r\nHost: x\r\nCookie: ${s.evilCookie}\r\n\r\n`);
    assert.ok([414, 431].includes(statusOf(r)), JSON.stringify(r.text.slice(0, 80)));
    nothingReached(s, '100 KiB request line');
  });

  kase('1,000 small headers: relayed whole to the instance (or refused with 431), never truncated', {}, async (s) => {
    let many = '';
    for (let i = 0; i < 1000; i++) many += `X-H-${i}: ${i}\r\n`;
    const r = await raw(s, `GET /evil/many HTTP/1.1\r\nHost: x\r\nCookie: ${s.evilCookie}\r\n${many}\r\n`);
    const status = statusOf(r);
    assert.ok(status === 200 || status === 431, String(status));
    if (status === 200) assert.equal(s.evil.heads[0]!.match(/\r\nX-H-\d+: /g)?.length, 1000);
    else nothingReached(s, '1,000 headers');
  });

  kase('a NUL in a header value, and in the request target: 400, nothing reaches the instance', {}, async (s) => {
    for (const text of [
      `GET /evil/x HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\nCookie: ${s.evilCookie}\r\n\r\n`,
      `GET /evil/a\x00b HTTP/1.1\r\nHost: x\r\nCookie: ${s.evilCookie}\r\n\r\n`,
    ]) {
      const r = await raw(s, text);
      assert.equal(statusOf(r), 400, JSON.stringify(r.text.slice(0, 80)));
      nothingReached(s, 'NUL');
    }
  });
});

describe('request targets', () => {
  kase('an absolute-form target: 400, nothing reaches the instance', {}, async (s) => {
    const r = await raw(s, `GET http://127.0.0.1:${s.p.port}/evil/x HTTP/1.1\r\nHost: 127.0.0.1:${s.p.port}\r\nCookie: ${s.evilCookie}\r\n\r\n`);
    assert.equal(statusOf(r), 400, JSON.stringify(r.text.slice(0, 80)));
    nothingReached(s, 'absolute-form');
  });

  kase(".. and %2e%2e in paths: routed by the literal first segment, never to another app's instance", {}, async (s) => {
    const both = `${s.evilCookie}; ${s.goodJar.header('/good/')}`;
    const before = s.good.targets.length;
    for (const path of ['/evil/../good/ping', '/evil/..%2fgood/ping', '/evil/%2e%2e/good/ping', '/evil/%2E%2E%2Fgood/ping']) {
      const r = await raw(s, `GET ${path} HTTP/1.1\r\nHost: x\r\nCookie: ${both}\r\nConnection: close\r\n\r\n`);
      assert.ok(statusOf(r) > 0, path);
      assert.equal(s.good.targets.length, before, `${path} reached the bystander's instance`);
    }
    // The evil instance got them under its own path, as sent: the proxy does not resolve dot segments.
    assert.deepEqual(s.evil.heads.map(targetOf), ['/../good/ping', '/..%2fgood/ping', '/%2e%2e/good/ping', '/%2E%2E%2Fgood/ping']);
    const r = await raw(s, `GET /good/../evil/x HTTP/1.1\r\nHost: x\r\nCookie: ${s.evilCookie}\r\nConnection: close\r\n\r\n`);
    assert.equal(statusOf(r), 400, 'the good app without its cookie');
    assert.equal(s.evil.heads.length, 4, 'not the evil instance either');
  });

  kase('%00 in the path: relayed byte for byte, not decoded', {}, async (s) => {
    const r = await raw(s, `GET /evil/a%00b?q=%00 HTTP/1.1\r\nHost: x\r\nCookie: ${s.evilCookie}\r\n\r\n`);
    assert.equal(statusOf(r), 200);
    assert.deepEqual(s.evil.heads.map(targetOf), ['/a%00b?q=%00']);
  });
});

describe('connection limits', () => {
  const FLOOD: StageOptions = { relay: { connectionsPerAddress: 5, headerTimeoutMs: 10_000 } };

  /** A kept-alive connection that has had one answered request through the bystander's session. */
  async function keptAlive(s: Stage, i: number): Promise<RawResult> {
    return rawExchange(s.p.port, `GET /good/kept-${i} HTTP/1.1\r\nHost: x\r\nCookie: ${s.goodJar.header('/good/')}\r\n\r\n`, {
      until: hasResponse,
      keepOpen: true,
      deadlineMs: 3000,
    });
  }

  alone(
    'connectionsPerAddress 5: the 6th concurrent connection gets a raw 429 with Connection: close and is closed; after some close, connections are accepted again',
    FLOOD,
    {},
    async (s) => {
      const kept: Socket[] = [];
      try {
        for (let i = 0; i < 5; i++) {
          const r = await keptAlive(s, i);
          assert.equal(statusOf(r), 200, `connection ${i}`);
          kept.push(r.socket);
        }
        const sixth = await rawExchange(s.p.port, `GET /good/sixth HTTP/1.1\r\nHost: x\r\nCookie: ${s.goodJar.header('/good/')}\r\n\r\n`, { deadlineMs: 2000 });
        assert.equal(statusOf(sixth), 429, JSON.stringify(sixth.text.slice(0, 80)));
        const [res] = readResponses(sixth.buf, { eof: true }).responses;
        assert.deepEqual(
          headerValues(res!.headers, 'connection').map((v) => v.toLowerCase()),
          ['close'],
        );
        assert.ok(sixth.closed, 'closed after the answer');
        kept.shift()!.destroy();
        kept.shift()!.destroy();
        await until(
          'a connection accepted again',
          async () => {
            const r = await keptAlive(s, 99);
            r.socket.destroy();
            return statusOf(r) === 200 ? true : undefined;
          },
          3000,
          20,
        );
      } finally {
        for (const k of kept) k.destroy();
      }
    },
  );

  alone(
    'connectionsPerAddress 5 with 127.0.0.1 a trusted proxy: its connections are not limited this way',
    { ...FLOOD, trustedProxies: ['127.0.0.1'] },
    {},
    async (s) => {
      const kept: Socket[] = [];
      try {
        for (let i = 0; i < 10; i++) {
          const r = await keptAlive(s, i);
          assert.equal(statusOf(r), 200, `connection ${i}`);
          kept.push(r.socket);
        }
      } finally {
        for (const k of kept) k.destroy();
      }
    },
  );

  kase(
    'websocketsPerSession 2: a 3rd simultaneous upgrade of one session is refused with 429; after one closes a new one is accepted; another session is unaffected',
    {},
    async (s) => {
      for (const e of s.evils) e.behave(echoAndSwitch);
      const a = await s.evilSession(0);
      const b = await s.evilSession(1);
      const open: WebSocket[] = [];
      const opener = (jar: typeof a.jar) => () => wsOpen(s.url('/evil/ws'), { jar, perMessageDeflate: false }).then((ws) => (open.push(ws), ws));
      try {
        const first = await opener(a.jar)();
        await opener(a.jar)();
        const third = await rawExchange(s.p.port, upgradeHead(s, { cookie: a.jar.header('/evil/') }), { until: hasResponse, deadlineMs: 3000 });
        assert.equal(statusOf(third), 429, JSON.stringify(third.text.slice(0, 80)));
        // Another session, while the first holds its two.
        await opener(b.jar)();
        await opener(b.jar)();
        const closed = new Promise((resolve) => first.once('close', resolve));
        // This instance never answers a close frame: the tab goes away without the closing handshake.
        first.terminate();
        await withDeadline(closed, 3000, 'the first WebSocket closing');
        await until(
          'a new WebSocket for the first session',
          async () => {
            const r = await rawExchange(s.p.port, upgradeHead(s, { cookie: a.jar.header('/evil/') }), {
              until: (buf) => buf.includes('\r\n\r\n'),
              deadlineMs: 3000,
            });
            return statusOf(r) === 101 ? true : undefined;
          },
          3000,
          20,
        );
      } finally {
        for (const ws of open) ws.terminate();
      }
    },
  );
});

describe('cookies', () => {
  /** A valid cookie value for session i, signed at `issued`. */
  async function signed(s: Stage, i: number, issued: number): Promise<string> {
    const e = await s.evilSession(i);
    return s.p.proxy.codec.sign({ session: e.session, instance: e.instanceId, app: 'evil', issued });
  }
  const name = cookieName('evil');

  kase("two valid warmpool_evil cookies of different sessions: routed to the newer one's instance, whatever their order", {}, async (s) => {
    const now = Date.now();
    const older = await signed(s, 0, now - 2000);
    const newer = await signed(s, 1, now - 1000);
    const [a, b] = s.evils;
    for (const cookie of [`${name}=${older}; ${name}=${newer}`, `${name}=${newer}; ${name}=${older}`]) {
      a!.reset();
      b!.reset();
      const r = await raw(s, `GET /evil/who HTTP/1.1\r\nHost: x\r\nCookie: ${cookie}\r\nConnection: close\r\n\r\n`);
      assert.equal(statusOf(r), 200);
      assert.equal(a!.heads.length, 0, `${cookie.slice(0, 40)}…: routed to the older session`);
      assert.equal(b!.heads.length, 1);
    }
  });

  kase('a forged warmpool_evil cookie beside a valid one: the valid one is used, in either order', {}, async (s) => {
    const valid = await signed(s, 1, Date.now());
    const forged = valid.slice(0, -4) + (valid.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    const [a, b] = s.evils;
    for (const cookie of [`${name}=${forged}; ${name}=${valid}`, `${name}=${valid}; ${name}=${forged}`]) {
      a!.reset();
      b!.reset();
      const r = await raw(s, `GET /evil/who HTTP/1.1\r\nHost: x\r\nCookie: ${cookie}\r\nConnection: close\r\n\r\n`);
      assert.equal(statusOf(r), 200, JSON.stringify(r.text.slice(0, 60)));
      assert.equal(b!.heads.length, 1);
      assert.equal(a!.heads.length, 0);
    }
  });

  kase('two valid cookies of different sessions signed at the same time: 403, routed nowhere', {}, async (s) => {
    const t = Date.now() - 500;
    const one = await signed(s, 0, t);
    const two = await signed(s, 1, t);
    const r = await raw(s, `GET /evil/who HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\nCookie: ${name}=${one}; ${name}=${two}\r\nConnection: close\r\n\r\n`);
    assert.equal(statusOf(r), 403, JSON.stringify(r.text.slice(0, 60)));
    nothingReached(s, 'ambiguous cookies');
  });

  kase('a forged cookie: a 403 page (text/html for a browser), never a relay', {}, async (s) => {
    const valid = s.evilJar.get(name)!;
    for (const forged of ['v1.AAAAAAAA.czE.ZXZpbC0x.ZXZpbA.abc.' + 'A'.repeat(43), valid.slice(0, -1) + (valid.endsWith('A') ? 'B' : 'A'), 'garbage']) {
      const r = await fetchWithin(s.url('/evil/x'), { headers: { cookie: `${name}=${forged}`, accept: 'text/html' }, deadlineMs: 3000 });
      assert.equal(r.status, 403, forged);
      assert.match(String(r.headers['content-type']), /^text\/html/);
      nothingReached(s, 'forged cookie');
    }
  });

  kase("another app's warmpool cookie sent to /evil/: never forwarded to the instance; the visitor's other cookies are", {}, async (s) => {
    const r = await raw(
      s,
      `GET /evil/c HTTP/1.1\r\nHost: x\r\nCookie: ${s.evilCookie}; ${s.goodJar.header('/good/')}; theme=dark\r\nConnection: close\r\n\r\n`,
    );
    assert.equal(statusOf(r), 200);
    const head = s.evil.heads[0]!;
    assert.doesNotMatch(head, /warmpool_/i);
    assert.match(head, /\r\nCookie: theme=dark(\r\n|$)/);
  });

  kase('X-Forwarded-* and Forwarded from an untrusted visitor: replaced, not relayed', {}, async (s) => {
    const r = await raw(
      s,
      `GET /evil/xff HTTP/1.1\r\nHost: x\r\nCookie: ${s.evilCookie}\r\nX-Forwarded-For: 10.9.8.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: admin.example\r\nForwarded: for=10.9.8.7\r\n\r\n`,
    );
    assert.equal(statusOf(r), 200);
    const head = s.evil.heads[0]!;
    assert.match(head, /\r\nX-Forwarded-For: 127\.0\.0\.1(\r\n|$)/);
    assert.match(head, /\r\nX-Forwarded-Proto: http(\r\n|$)/);
    assert.doesNotMatch(head, /10\.9\.8\.7|admin\.example|\r\nForwarded:/i);
  });
});

describe('WebSocket upgrades', () => {
  kase('an upgrade without Sec-WebSocket-Key: 400 from the proxy, nothing reaches the instance', {}, async (s) => {
    s.evil.behave(echoAndSwitch);
    const r = await rawExchange(s.p.port, upgradeHead(s, { key: null }), { until: hasResponse, deadlineMs: 3000 });
    assert.equal(statusOf(r), 400, JSON.stringify(r.text.slice(0, 80)));
    nothingReached(s, 'no key');
  });

  kase('garbage frames after the upgrade: relayed untouched, the proxy carries on and lets go of both sockets when the client leaves', {}, async (s) => {
    s.evil.behave(echoAndSwitch);
    const garbage = Buffer.concat([Buffer.alloc(100, 0xff), Buffer.from([0x81, 0x05]), Buffer.from('nomask'), Buffer.alloc(100, 0x00)]);
    const r = await rawExchange(s.p.port, upgradeHead(s), { until: (b) => b.includes('\r\n\r\n'), keepOpen: true, deadlineMs: 3000 });
    assert.equal(statusOf(r), 101);
    r.socket.write(garbage);
    await eventually(() => Buffer.concat([...s.evil.conns].flatMap((c) => c.after)).length >= garbage.length, 'the garbage at the instance', 3000, 10);
    assert.deepEqual(Buffer.concat([...s.evil.conns].flatMap((c) => c.after)), garbage);
    r.socket.destroy();
  });
});

finish();
