// Properties of the response parser alone, over arbitrary and near-valid bytes: it throws nothing
// but UpstreamProtocolError, reads the same however the bytes are cut, hands writeHead only what
// writeHead accepts, and keeps headers named like Object.prototype members as headers.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { IncomingMessage, ServerResponse, validateHeaderName, validateHeaderValue } from 'node:http';
import { Socket } from 'node:net';
import fc from 'fast-check';
import { ResponseParser, UpstreamProtocolError } from '../proxy/protocol/http1-response.js';

interface Head {
  status: number;
  reason: string;
  minor: number;
  framing: string;
  headers: [string, string | string[]][];
  rawHeaders: readonly string[];
}

interface Outcome {
  refused: boolean;
  heads: Head[];
  body: string;
  complete: boolean;
  keepAlive: boolean;
  upgraded: boolean;
  /** For an upgrade: the bytes after the 101 head, the new protocol's. */
  rest: string;
}

interface Mode {
  headOnly: boolean;
  upgrade: boolean;
}

/** Feeds the pieces in order, then the end of the stream; records everything the handler saw. */
function run(pieces: Buffer[], m: Mode, onHead?: (p: ResponseParser) => void): Outcome {
  const p = new ResponseParser();
  const o: Outcome = { refused: false, heads: [], body: '', complete: false, keepAlive: false, upgraded: false, rest: '' };
  const body: Buffer[] = [];
  const rest: Buffer[] = [];
  p.start(
    {
      onHead(pp) {
        onHead?.(pp);
        o.heads.push({
          status: pp.status,
          reason: pp.reason,
          minor: pp.minor,
          framing: pp.framing,
          headers: Object.entries(pp.headers),
          rawHeaders: [...pp.rawHeaders],
        });
      },
      onBody(c) {
        assert.equal(o.complete, false, 'no body after the end');
        body.push(Buffer.from(c));
      },
      onEnd() {
        assert.equal(o.complete, false, 'one end');
        o.complete = true;
      },
    },
    m.headOnly,
    m.upgrade,
  );
  try {
    for (const piece of pieces) {
      if (p.upgraded) {
        rest.push(piece);
        continue;
      }
      const used = p.execute(piece);
      if (p.upgraded) rest.push(piece.subarray(used));
      else assert.equal(used, piece.length, 'all of a read is HTTP until an upgrade');
    }
    p.finish();
  } catch (e) {
    if (!(e instanceof UpstreamProtocolError)) throw e;
    assert.equal(e.code, 'UPSTREAM_BAD_RESPONSE');
    o.refused = true;
  }
  o.body = Buffer.concat(body).toString('latin1');
  o.rest = Buffer.concat(rest).toString('latin1');
  o.keepAlive = p.keepAlive;
  o.upgraded = p.upgraded;
  return o;
}

function cutAt(bytes: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of [...at, bytes.length]) {
    if (c > from) out.push(bytes.subarray(from, c));
    from = c;
  }
  return out;
}

const byteByByte = (bytes: Buffer): Buffer[] => [...bytes].map((x) => Buffer.from([x]));

// ---------------------------------------------------------------------------------------------
// Inputs: arbitrary bytes, and heads of arbitrary bytes in the shape of a response

const TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const tcharByte = fc.constantFrom(...[...TCHARS].map((c) => c.charCodeAt(0)));
/** Mostly bytes a field may hold, often the ones that break one. */
const fieldByte = fc.oneof(
  { weight: 6, arbitrary: tcharByte },
  { weight: 2, arbitrary: fc.constantFrom(0x20, 0x09, 0x22, 0x2c, 0x3b, 0x3d, 0x5c, 0x80, 0xa0, 0xff) },
  { weight: 1, arbitrary: fc.constantFrom(0x00, 0x01, 0x0a, 0x0d, 0x1b, 0x7f, 0x3a) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
);
const bytes = (unit: fc.Arbitrary<number>, maxLength: number) => fc.array(unit, { maxLength }).map((a) => Buffer.from(a));
const text = (s: string) => Buffer.from(s, 'latin1');

const statusStart = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom('HTTP/1.1 200', 'HTTP/1.0 200', 'HTTP/1.1 404', 'HTTP/1.1 204', 'HTTP/1.1 304', 'HTTP/1.1 100', 'HTTP/1.1 101', 'HTTP/1.1 103'),
  },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 1099 }).map((n) => `HTTP/1.1 ${String(n).padStart(3, '0')}`) },
);
const PROTO_NAMES = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', '__defineGetter__'];
const fieldName = fc.oneof({ weight: 5, arbitrary: bytes(fieldByte, 10) }, { weight: 1, arbitrary: fc.constantFrom(...PROTO_NAMES).map(text) });
const fieldLine = fc.tuple(fieldName, bytes(fieldByte, 16)).map(([n, v]) => Buffer.concat([n, text(':'), v, text('\r\n')]));
const framingLine = fc.constantFrom(
  '',
  'Content-Length: 5\r\n',
  'Content-Length: 0\r\n',
  'Transfer-Encoding: chunked\r\n',
  'Transfer-Encoding: gzip\r\n',
  'Upgrade: websocket\r\nConnection: Upgrade\r\n',
);
/** After the head: chunk syntax, digits and line ends, or anything. */
const tailByte = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...[...'0123456789abcdefABCDEF;="\\ \t:xX-\r\n\r\n\r\n'].map((c) => c.charCodeAt(0))) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
);
const shapedResponse = fc
  .tuple(statusStart, bytes(fieldByte, 12), fc.array(fieldLine, { maxLength: 4 }), framingLine, bytes(tailByte, 40))
  .map(([start, reason, lines, framing, tail]) => Buffer.concat([text(start), text(' '), reason, text('\r\n'), ...lines, text(framing), text('\r\n'), tail]));

const input = fc.oneof({ weight: 1, arbitrary: fc.uint8Array({ maxLength: 80 }).map((a) => Buffer.from(a)) }, { weight: 4, arbitrary: shapedResponse });
const mode = fc.record({ headOnly: fc.boolean(), upgrade: fc.boolean() });
// HTTP1_RUNS=50000 for a deeper search than CI's.
const RUNS = Number(process.env.HTTP1_RUNS ?? 1000);

// ---------------------------------------------------------------------------------------------

describe('response parser properties', () => {
  test('only UpstreamProtocolError is thrown, and the reading does not depend on how the bytes are cut', () => {
    let accepted = 0;
    fc.assert(
      fc.property(input, mode, fc.array(fc.nat(), { maxLength: 8 }), (buf, m, cuts) => {
        const whole = run([buf], m);
        assert.deepEqual(run(byteByByte(buf), m), whole, 'byte by byte');
        assert.deepEqual(run(cutAt(buf, cuts), m), whole, `cut at ${JSON.stringify(cuts)}`);
        if (!whole.refused && whole.heads.length) accepted++;
      }),
      { numRuns: RUNS },
    );
    assert.ok(accepted >= RUNS / 20, `only ${accepted} of ${RUNS} inputs reached an accepted head`);
  });

  test("every accepted status, reason and field passes writeHead's own checks", () => {
    let heads = 0;
    fc.assert(
      fc.property(input, mode, (buf, m) => {
        run([buf], m, (p) => {
          heads++;
          assert.ok(p.status >= 100 && p.status <= 999, `status ${p.status}`);
          validateHeaderValue('reason', p.reason);
          const flat: string[] = [];
          for (const name in p.headers) {
            validateHeaderName(name);
            const v = p.headers[name]!;
            for (const one of typeof v === 'string' ? [v] : v) {
              validateHeaderValue(name, one);
              flat.push(name, one);
            }
          }
          for (let i = 0; i < p.rawHeaders.length; i += 2) {
            validateHeaderName(p.rawHeaders[i]!);
            validateHeaderValue(p.rawHeaders[i]!, p.rawHeaders[i + 1]!);
          }
          // And writeHead itself, on a response that goes nowhere.
          new ServerResponse(new IncomingMessage(new Socket())).writeHead(p.status, p.reason, flat);
        });
      }),
      { numRuns: RUNS },
    );
    assert.ok(heads >= RUNS / 20, `only ${heads} heads checked`);
  });

  test('generated valid fields, Object.prototype names among them, round-trip into a null-prototype record', () => {
    const name = fc.oneof(
      fc.constantFrom(...PROTO_NAMES, 'Constructor', '__PROTO__'),
      fc.string({ unit: fc.constantFrom(...TCHARS), minLength: 1, maxLength: 8 }),
    );
    // A value: no OWS at either end (the parser trims it), any field byte inside.
    const value = fc
      .string({ unit: fc.constantFrom('a', 'Z', '0', ' ', '\t', '"', '\x80', '\xff', ':', ','), maxLength: 8 })
      .map((v) => (v.length ? `<${v}>` : ''));
    fc.assert(
      fc.property(fc.array(fc.tuple(name, value), { maxLength: 8 }), (pairs) => {
        const head = `HTTP/1.1 200 OK\r\n${pairs.map(([n, v]) => `${n}: ${v}\r\n`).join('')}Content-Length: 0\r\n\r\n`;
        const expected = new Map<string, string[]>();
        for (const [n, v] of pairs) expected.set(n.toLowerCase(), [...(expected.get(n.toLowerCase()) ?? []), v]);
        expected.set('content-length', ['0']);
        let got: Record<string, string | string[]> | undefined;
        const o = run([text(head)], { headOnly: false, upgrade: false }, (p) => {
          got = p.headers;
        });
        assert.equal(o.refused, false);
        assert.equal(Object.getPrototypeOf(got), null);
        assert.deepEqual(Object.keys(got!).sort(), [...expected.keys()].sort());
        for (const [n, vs] of expected) assert.deepEqual(got![n], vs.length === 1 ? vs[0] : vs, n);
      }),
      { numRuns: 300 },
    );
  });

  test('a long head trickled in byte by byte reads as it does whole; one over the limit is refused', () => {
    const fieldsOf = (n: number) => Array.from({ length: n }, (_, k) => `X-Field-${k}: ${'v'.repeat(k % 50)}\r\n`).join('');
    const long = text(`HTTP/1.1 200 OK\r\n${fieldsOf(400)}Content-Length: 3\r\n\r\nabc`);
    const m = { headOnly: false, upgrade: false };
    const whole = run([long], m);
    assert.equal(whole.refused, false);
    assert.equal(whole.heads[0]!.headers.length, 401);
    assert.deepEqual(run(byteByByte(long), m), whole);
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 40 }), (cuts) => {
        assert.deepEqual(run(cutAt(long, cuts), m), whole);
      }),
      { numRuns: 50 },
    );
    const over = text(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
    assert.equal(run(byteByByte(over), m).refused, true);
  });

  test('constructor, __proto__ and toString are headers like any other', () => {
    const msg = 'HTTP/1.1 200 OK\r\nConstructor: a\r\n__proto__: b\r\ntoString: c\r\n__proto__: d\r\nhasOwnProperty: e\r\nContent-Length: 2\r\n\r\nhi';
    let headers: Record<string, string | string[]> = {};
    const o = run(byteByByte(text(msg)), { headOnly: false, upgrade: false }, (p) => {
      headers = p.headers;
    });
    assert.equal(o.refused, false);
    assert.equal(o.body, 'hi');
    assert.equal(headers['constructor'], 'a');
    assert.deepEqual(headers['__proto__'], ['b', 'd']);
    assert.equal(headers['tostring'], 'c');
    assert.equal(headers['toString'], undefined, 'names are lower-cased; nothing inherited');
    assert.equal(headers['hasownproperty'], 'e');
    assert.deepEqual(Object.keys(headers), ['constructor', '__proto__', 'tostring', 'hasownproperty', 'content-length']);
    // In upgrade mode the 101's raw fields keep them too, as written.
    let raw: readonly string[] = [];
    run(
      [text('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n__proto__: x\r\nconstructor: y\r\n\r\n')],
      { headOnly: false, upgrade: true },
      (p) => {
        raw = p.rawHeaders;
        assert.equal(p.headers['__proto__'], 'x');
      },
    );
    assert.deepEqual(raw, ['Upgrade', 'websocket', 'Connection', 'Upgrade', '__proto__', 'x', 'constructor', 'y']);
  });
});
