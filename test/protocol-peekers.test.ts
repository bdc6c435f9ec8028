// Property tests for proxy/protocol/msgpack-peek.ts, json-peek.ts and kernel-ws-msg.ts, and the classifiers built on
// them: generated messages agree with @msgpack/msgpack's decode and with JSON.parse; arbitrary bytes never throw.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decode, encode } from '@msgpack/msgpack';
import { PlutoFields, QUERY_ABSENT, QUERY_NOT_STRING, peekPlutoMessage } from '../proxy/protocol/msgpack-peek.js';
import { matchString, stringEnd, valueAt } from '../proxy/protocol/json-peek.js';
import { KernelParts, locateKernelParts } from '../proxy/protocol/kernel-ws-msg.js';
import { classifierFor } from '../proxy/classify/index.js';
import type { MessageClass } from '../proxy/classify/index.js';

const RUNS = { numRuns: 1000 };

/**
 * b behind a Proxy that throws on any index outside [0, length): reading past the end of a typed array gives
 * undefined in JavaScript, which a parser may silently treat as data. Methods run on the real array.
 */
function boundsChecked<T extends Uint8Array>(b: T): T {
  return new Proxy(b, {
    get(target, key) {
      if (typeof key === 'string' && key !== '' && String(Number(key)) === key) {
        const i = Number(key);
        if (!Number.isInteger(i) || i < 0 || i >= target.length) throw new RangeError(`read at ${key} of ${target.length} bytes`);
        return target[i];
      }
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

/** Random splices of a valid message: a few bytes overwritten, then cut somewhere. */
function mutated(base: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc.tuple(base, fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 4 }), fc.nat()).map(([b, edits, cut]) => {
    const m = Uint8Array.from(b);
    for (const [at, v] of edits) if (m.length > 0) m[at % m.length] = v;
    return m.subarray(0, m.length === 0 ? 0 : cut % (m.length + 1));
  });
}

const isMap = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof Date);

const hasOwn = (o: object, k: string): boolean => Object.hasOwn(o, k);

/** An object from entries in the given order, with a random subset of `optional` left out. */
function shuffledObject(entries: Array<[string, unknown]>, order: number[]): Record<string, unknown> {
  const keyed = entries.map((e, i) => [order[i % order.length] ?? 0, i, e] as const);
  keyed.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return Object.fromEntries(keyed.map((k) => k[2]));
}

// ---------------------------------------------------------------------------------------------------------------
// MsgPack: Pluto client messages

const PLUTO_TYPES = ['ping', 'current_time', 'update_notebook', 'complete', 'connect', 'reset_shared_state', 'run_multiple_cells', 'docs'];
const extraKey = fc.string({ maxLength: 12 }).filter((k) => k !== '__proto__' && k !== 'type' && k !== 'body' && k !== 'updates' && k !== 'query');

/** Any MsgPack-encodable value, covering fix/8/16/32 forms of ints, strings, binaries, arrays and maps, floats and ext (Date). */
const { value: anyValue } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', maxDepth: 3 },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.maxSafeInteger(),
    fc.double(),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.string({ minLength: 30, maxLength: 400 }),
    fc.uint8Array({ maxLength: 300 }),
    fc.date({ noInvalidDate: true }),
    fc.array(tie('value'), { maxLength: 20 }),
    fc.uniqueArray(fc.tuple(extraKey, tie('value')), { selector: (e) => e[0], maxLength: 18 }).map((e) => Object.fromEntries(e)),
  ),
}));

const plutoBody = fc
  .record({
    updates: fc.oneof(fc.array(anyValue, { maxLength: 20 }), fc.constant([]), anyValue),
    query: fc.oneof(fc.constantFrom('sq', '\\sq', 'Base.so', ''), fc.string({ unit: 'binary' }), anyValue),
    extras: fc.uniqueArray(fc.tuple(extraKey, anyValue), { selector: (e) => e[0], maxLength: 18 }),
    has: fc.record({ updates: fc.boolean(), query: fc.boolean() }),
    order: fc.array(fc.nat(9), { minLength: 1, maxLength: 20 }),
  })
  .map(({ updates, query, extras, has, order }) => {
    const e: Array<[string, unknown]> = [...extras];
    if (has.updates) e.push(['updates', updates]);
    if (has.query) e.push(['query', query]);
    return shuffledObject(e, order);
  });

/** Pluto-like client messages: usually a known type first and a body map, but any key order, types and bodies. */
const plutoMessage = fc
  .record({
    type: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...PLUTO_TYPES) }, fc.string({ unit: 'binary', maxLength: 300 }), anyValue),
    body: fc.oneof({ weight: 4, arbitrary: plutoBody }, anyValue),
    extras: fc.uniqueArray(fc.tuple(extraKey, anyValue), { selector: (e) => e[0], maxLength: 18 }),
    has: fc.record({ type: fc.nat(9), body: fc.nat(9) }),
    order: fc.array(fc.nat(9), { minLength: 1, maxLength: 20 }),
  })
  .map(({ type, body, extras, has, order }) => {
    const e: Array<[string, unknown]> = [...extras];
    if (has.type > 0) e.push(['type', type]);
    if (has.body > 0) e.push(['body', body]);
    return Buffer.from(encode(shuffledObject(e, order)));
  });

/** A string's UTF-8 bytes decoded the way @msgpack/msgpack decodes them (wrapped in a str32 header). */
function msgpackString(b: Uint8Array, start: number, end: number): unknown {
  const h = Buffer.alloc(5);
  h[0] = 0xdb;
  h.writeUInt32BE(end - start, 1);
  return decode(Buffer.concat([h, b.subarray(start, end)]));
}

test('msgpack-peek: type, body.updates and body.query agree with decode', () => {
  const f = new PlutoFields();
  fc.assert(
    fc.property(plutoMessage, (b) => {
      const d = decode(b) as Record<string, unknown>;
      const body = d.body;
      const readable = typeof d.type === 'string' && (!hasOwn(d, 'body') || isMap(body));
      assert.equal(peekPlutoMessage(boundsChecked(b), f), readable);
      if (!readable) return;
      assert.equal(msgpackString(b, f.typeStart, f.typeEnd), d.type);
      const m = isMap(body) ? body : {};
      assert.equal(f.updates, Array.isArray(m.updates) ? m.updates.length : -1);
      if (!hasOwn(m, 'query')) assert.equal(f.queryStart, QUERY_ABSENT);
      else if (typeof m.query !== 'string') assert.equal(f.queryStart, QUERY_NOT_STRING);
      else assert.equal(msgpackString(b, f.queryStart, f.queryEnd), m.query);
    }),
    RUNS,
  );
});

test('msgpack-peek: arbitrary and mangled bytes never throw, never read out of bounds, report ranges inside the message', () => {
  const f = new PlutoFields();
  const check = (b: Uint8Array): void => {
    if (!peekPlutoMessage(boundsChecked(b), f)) return;
    assert.ok(f.typeStart >= 0 && f.typeStart <= f.typeEnd && f.typeEnd <= b.length);
    assert.ok(f.queryStart < 0 || (f.queryStart <= f.queryEnd && f.queryEnd <= b.length));
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), check), { numRuns: 5000 });
  fc.assert(fc.property(mutated(plutoMessage), check), { numRuns: 5000 });
  // undecodable at once: not a map, an empty buffer, a map header promising more than there is
  for (const hex of ['', 'c1', '93010203', 'df ffffffff a4 74797065', 'de 0001', '81 a4 74797065 db ffffffff']) {
    assert.equal(peekPlutoMessage(boundsChecked(Buffer.from(hex.replace(/ /g, ''), 'hex')), f), false, hex);
  }
});

/** What the Pluto classifier must say about a message on a fresh connection, decided from decode's output. */
function plutoReference(b: Uint8Array): string {
  let d: unknown;
  try {
    d = decode(b);
  } catch {
    return 'active undecodable';
  }
  if (!isMap(d) || typeof d.type !== 'string') return 'active undecodable';
  const t = d.type;
  if (['ping', 'current_time', 'connect', 'reset_shared_state', 'get_all_notebooks', 'complete_symbols', 'all_registered_package_names'].includes(t)) {
    return `idle ${t}`;
  }
  if (t === 'update_notebook' || t === 'complete') {
    if (hasOwn(d, 'body') && !isMap(d.body)) return 'active undecodable';
    const body = isMap(d.body) ? d.body : {};
    if (t === 'update_notebook') return `${Array.isArray(body.updates) && body.updates.length === 0 ? 'idle' : 'active'} update_notebook`;
    const q = body.query;
    return `${!hasOwn(body, 'query') || q === 'sq' || q === '\\sq' ? 'idle' : 'active'} complete`;
  }
  const known = [
    'run_multiple_cells',
    'interrupt_all',
    'docs',
    'reshow_cell',
    'shutdown_notebook',
    'restart_process',
    'write_file',
    'nbpkg_available_versions',
    'pkg_update',
  ];
  return known.includes(t) ? `active ${t}` : 'active other';
}

const show = (c: MessageClass): string => `${c.kind} ${c.type}`;

test('pluto classifier: the first message on a connection is classified as a decode-based reference says, in any key order', () => {
  const pluto = classifierFor('pluto');
  fc.assert(
    fc.property(plutoMessage, (b) => {
      assert.equal(show(pluto.newConnection().clientMessage(2, boundsChecked(b), b.length, false)), plutoReference(b));
    }),
    RUNS,
  );
});

// ---------------------------------------------------------------------------------------------------------------
// JSON: Jupyter kernel messages

/** A JSON value with its object keys in a chosen order: objects are entry lists, so any key (even __proto__) is kept. */
type J = null | boolean | number | string | J[] | { entries: Array<[string, J]> };

const jsonKey = fc.oneof(
  fc.string({ maxLength: 10 }),
  fc.string({ unit: 'binary', maxLength: 10 }),
  fc.constantFrom('msg_type', 'header', 'content', 'data', 'method', 'command', '__proto__'),
);
const jsonString = fc.oneof(fc.string({ maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 30 }), fc.string({ unit: 'grapheme', maxLength: 20 }));

const { value: jsonValue } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', maxDepth: 4 },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    jsonString,
    fc.array(tie('value'), { maxLength: 6 }),
    fc.uniqueArray(fc.tuple(jsonKey, tie('value')), { selector: (e) => e[0], maxLength: 6 }).map((entries) => ({ entries })),
  ),
})) as { value: fc.Arbitrary<J> };

/** Entries (some left out, in any order) for an object that should have the given keys. */
function objectOf(fields: Record<string, fc.Arbitrary<J>>): fc.Arbitrary<J> {
  const names = Object.keys(fields);
  return fc
    .tuple(
      fc.tuple(...names.map((n) => fields[n])),
      fc.array(fc.nat(9), { minLength: names.length, maxLength: names.length }),
      fc.array(fc.nat(19), { minLength: names.length, maxLength: names.length }),
      fc.uniqueArray(
        fc.tuple(
          jsonKey.filter((k) => !names.includes(k)),
          jsonValue,
        ),
        { selector: (e) => e[0], maxLength: 4 },
      ),
    )
    .map(([values, order, keep, extras]) => {
      const entries: Array<[string, J]> = names.flatMap((n, i): Array<[string, J]> => (keep[i] === 0 ? [] : [[n, values[i]]]));
      const all = [...entries, ...extras].map((e, i) => [order[i % order.length], i, e] as const);
      all.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      return { entries: all.map((x) => x[2]) };
    });
}

const JUPYTER_TYPES = [
  'execute_request',
  'comm_msg',
  'complete_request',
  'inspect_request',
  'is_complete_request',
  'kernel_info_request',
  'comm_info_request',
  'history_request',
  'comm_open',
  'comm_close',
  'shutdown_request',
  'interrupt_request',
  'debug_request',
  'input_reply',
];
/** Mostly one of names, sometimes any JSON value. */
const oneOfOr = (names: string[]): fc.Arbitrary<J> => fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...names) }, jsonValue);

const commContent = objectOf({
  comm_id: jsonString,
  data: fc.oneof(
    { weight: 4, arbitrary: objectOf({ method: oneOfOr(['request_states', 'request_state', 'update']), state: jsonValue, buffer_paths: jsonValue }) },
    jsonValue,
  ),
});
const debugContent = objectOf({ seq: jsonValue, type: jsonValue, command: oneOfOr(['debugInfo', 'next']) });
const anyContent = fc.oneof(
  commContent,
  debugContent,
  objectOf({ code: fc.oneof(jsonString, fc.string({ maxLength: 2000 })), silent: fc.boolean() }),
  jsonValue,
);

/** A kernel message; comm_msg and debug_request are drawn often, with contents mostly shaped for them. */
const kernelMessage = oneOfOr([...JUPYTER_TYPES, 'comm_msg', 'comm_msg', 'comm_msg', 'debug_request', 'debug_request', 'frobnicate']).chain((msgType) =>
  objectOf({
    header: fc.oneof(
      {
        weight: 9,
        arbitrary: objectOf({
          date: jsonString,
          msg_id: jsonString,
          msg_type: fc.constant(msgType),
          session: jsonString,
          username: jsonString,
          version: fc.constant('5.2'),
        }),
      },
      jsonValue,
    ),
    parent_header: jsonValue,
    metadata: jsonValue,
    content:
      msgType === 'comm_msg'
        ? fc.oneof({ weight: 5, arbitrary: commContent }, anyContent)
        : msgType === 'debug_request'
          ? fc.oneof({ weight: 5, arbitrary: debugContent }, anyContent)
          : anyContent,
    channel: fc.constantFrom('shell', 'control'),
    buffers: fc.constant([]),
  }),
);

/**
 * Serializes J with the given choices, as any JSON writer might: whitespace around every token, and characters
 * written raw or as \u escapes (\uXXXX pairs for astral ones, \/ for a slash). Lone surrogates are always escaped.
 */
function toJson(v: J, rnd: () => number): string {
  const ws = (): string => (rnd() < 0.7 ? '' : [' ', '\n', '\t', '\r', '  \n '][Math.floor(rnd() * 5)]);
  const str = (s: string): string => {
    let out = '"';
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      const pair = c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00;
      const lone = !pair && c >= 0xd800 && c <= 0xdfff;
      const hex = (u: number): string => '\\u' + u.toString(16).padStart(4, '0');
      if (c === 0x22 || c === 0x5c || c < 0x20 || lone || rnd() < 0.1) {
        if (c === 0x2f && rnd() < 0.5) out += '\\/';
        else if (c === 0x22) out += rnd() < 0.5 ? '\\"' : hex(c);
        else if (c === 0x5c) out += rnd() < 0.5 ? '\\\\' : hex(c);
        else if (c === 0x0a && rnd() < 0.5) out += '\\n';
        else if (pair) out += hex(c) + hex(s.charCodeAt(++i));
        else out += hex(c);
      } else {
        out += pair ? s[i] + s[++i] : s[i];
      }
    }
    return out + '"';
  };
  const write = (x: J): string => {
    if (x === null || typeof x === 'boolean') return String(x);
    if (typeof x === 'number') return rnd() < 0.2 ? x.toExponential() : JSON.stringify(x);
    if (typeof x === 'string') return str(x);
    if (Array.isArray(x)) return '[' + ws() + x.map((e) => write(e) + ws()).join(',' + ws()) + ']';
    return '{' + ws() + x.entries.map(([k, e]) => str(k) + ws() + ':' + ws() + write(e) + ws()).join(',' + ws()) + '}';
  };
  return ws() + write(v) + ws();
}

function seeded(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) / 0x1000000;
}

function framed(layout: number, m: J, rnd: () => number): { opcode: number; bytes: Buffer } {
  const json = (x: J): Buffer => Buffer.from(toJson(x, rnd));
  if (layout === 0) return { opcode: 1, bytes: json(m) }; // legacy text
  const get = (k: string): J => (typeof m === 'object' && m !== null && !Array.isArray(m) ? (m.entries.find((e) => e[0] === k)?.[1] ?? { entries: [] }) : null);
  if (layout === 1) {
    // legacy binary: uint32 BE nbufs, offsets, the JSON message, one buffer
    const list = [json(m), Buffer.from([1, 2, 3])];
    const head = Buffer.alloc(12);
    head.writeUInt32BE(2, 0);
    head.writeUInt32BE(12, 4);
    head.writeUInt32BE(12 + list[0].length, 8);
    return { opcode: 2, bytes: Buffer.concat([head, ...list]) };
  }
  // v1: uint64 LE n, n offsets, channel, header, parent_header, metadata, content
  const list = [Buffer.from('shell'), json(get('header')), json(get('parent_header')), json(get('metadata')), json(get('content'))];
  const offsets = [8 * (list.length + 2)];
  for (const p of list) offsets.push(offsets[offsets.length - 1] + p.length);
  const head = Buffer.alloc(8 * (offsets.length + 1));
  head.writeBigUInt64LE(BigInt(offsets.length), 0);
  for (let i = 0; i < offsets.length; i++) head.writeBigUInt64LE(BigInt(offsets[i]), 8 * (i + 1));
  return { opcode: 2, bytes: Buffer.concat([head, ...list]) };
}

const framedKernelMessage = fc.tuple(fc.nat(2), kernelMessage, fc.integer()).map(([layout, m, seed]) => framed(layout, m, seeded(seed)));

type Obj = Record<string, unknown> | undefined;
const obj = (v: unknown): Obj => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);

function parseJson(b: Buffer, s: number, e: number): Obj {
  try {
    return obj(JSON.parse(b.toString('utf8', s, e)));
  } catch {
    return undefined;
  }
}

/** The Jupyter classifier's rules applied to what JSON.parse reads from the same parts. */
function jupyterReference(opcode: number, b: Buffer): string {
  const parts = new KernelParts();
  if (!locateKernelParts(opcode, b, parts)) return 'active undecodable';
  const first = parseJson(b, parts.headerStart, parts.headerEnd);
  const type = (parts.whole ? obj(first?.header) : first)?.msg_type;
  if (typeof type !== 'string') return 'active undecodable';
  if (!JUPYTER_TYPES.includes(type)) return 'active other';
  const content = parts.whole ? obj(first?.content) : parts.contentStart < parts.contentEnd ? parseJson(b, parts.contentStart, parts.contentEnd) : undefined;
  if (type === 'comm_msg') {
    const method = obj(content?.data)?.method;
    return `${method === 'request_states' || method === 'request_state' ? 'idle' : 'active'} comm_msg`;
  }
  if (type === 'debug_request') return `${content?.command === 'debugInfo' ? 'idle' : 'active'} debug_request`;
  const idle = ['kernel_info_request', 'comm_info_request', 'history_request', 'comm_open', 'comm_close'];
  return `${idle.includes(type) ? 'idle' : 'active'} ${type}`;
}

test('json-peek: finds the value JSON.parse finds, strings decoded alike, in any key order, whitespace and escaping', () => {
  const enc = (s: string): Buffer => Buffer.from(s, 'latin1');
  const names = JUPYTER_TYPES.map(enc);
  fc.assert(
    fc.property(kernelMessage, fc.integer(), (m, seed) => {
      const b = boundsChecked(Buffer.from(toJson(m, seeded(seed))));
      const parsed = JSON.parse(b.toString()) as Record<string, unknown>;
      const header = obj(parsed.header);
      const p = valueAt(b, 0, b.length, enc('header'), enc('msg_type'));
      if (header === undefined || !hasOwn(header, 'msg_type')) {
        assert.equal(p, -1);
        return;
      }
      const q = stringEnd(b, p, b.length);
      if (typeof header.msg_type !== 'string') {
        assert.equal(q, -1);
        assert.ok('{[-0123456789tfn'.includes(String.fromCharCode(b[p])), `a value starts at ${p}`);
        return;
      }
      assert.equal(JSON.parse(b.toString('utf8', p, q)), header.msg_type);
      assert.equal(matchString(b, p, q, names), JUPYTER_TYPES.indexOf(header.msg_type));
    }),
    RUNS,
  );
});

test('jupyter classifier: agrees with JSON.parse on generated v1, legacy text and legacy binary messages', () => {
  const jupyter = classifierFor('jupyter');
  fc.assert(
    fc.property(framedKernelMessage, ({ opcode, bytes }) => {
      assert.equal(show(jupyter.newConnection().clientMessage(opcode, boundsChecked(bytes), bytes.length, false)), jupyterReference(opcode, bytes));
    }),
    RUNS,
  );
});

test('json-peek: escaped keys and names are read as JSON.parse reads them; duplicate keys resolve to the first', () => {
  const jupyter = classifierFor('jupyter').newConnection();
  const text = (s: string): string => show(jupyter.clientMessage(1, Buffer.from(s), s.length, false));
  assert.equal(text('{"header":{"msg\\u005ftype":"kernel\\u005finfo_request"}}'), 'idle kernel_info_request');
  assert.equal(text('{"he\\u0061der" : {"msg_type":"comm_msg"}, "content":{"data":{"method":"request\\u005fstates"}}}'), 'idle comm_msg');
  assert.equal(text('{"header":{"msg_type":"execute\\"request"}}'), 'active other');
  assert.equal(text('{"header":{"msg_type":"kernel_info_request\\u0000"}}'), 'active other');
  assert.equal(text('{"header":{"msg_type":"bad \\x escape"}}'), 'active other');
  // The peeker is not a validator, and stops at the first key (JSON.parse and Python keep the last): documented, not hidden.
  assert.equal(text('{"header":{"msg_type":"kernel_info_request","msg_type":"execute_request"}}'), 'idle kernel_info_request');
});

test('json-peek: arbitrary strings and bytes never throw nor read out of bounds', () => {
  const keys = ['header', 'msg_type', 'content', 'data', 'method', 'a'].map((k) => Buffer.from(k));
  const names = JUPYTER_TYPES.map((t) => Buffer.from(t));
  const check = (b: Uint8Array, k1: number, k2: number, from: number): void => {
    const c = boundsChecked(b);
    const start = from % (b.length + 1);
    const p = valueAt(c, start, c.length, keys[k1 % keys.length], keys[k2 % keys.length]);
    assert.ok(p >= -1 && p <= b.length);
    const q = stringEnd(c, p, c.length);
    assert.ok(q === -1 || (q > p && q <= b.length));
    if (q > 0) assert.ok(matchString(c, p, q, names) >= -1);
  };
  const json = fc.tuple(kernelMessage, fc.integer()).map(([m, seed]) => Buffer.from(toJson(m, seeded(seed))));
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(), fc.nat(), check), { numRuns: 3000 });
  fc.assert(
    fc.property(
      fc.string({ unit: 'binary', maxLength: 300 }).map((s) => Buffer.from(s)),
      fc.nat(),
      fc.nat(),
      fc.nat(),
      check,
    ),
    { numRuns: 3000 },
  );
  fc.assert(fc.property(mutated(json), fc.nat(), fc.nat(), fc.nat(), check), { numRuns: 3000 });
});

// ---------------------------------------------------------------------------------------------------------------
// Classifiers end to end

test('classifiers: arbitrary and mangled messages never throw and get a valid, shared class', () => {
  const kinds = new Set(['idle', 'active']);
  const conns = (['pluto', 'jupyter', 'generic'] as const).map((k) => classifierFor(k).newConnection());
  const check = (opcode: number, b: Uint8Array): void => {
    for (const conn of conns) {
      const c = conn.clientMessage(opcode, boundsChecked(Buffer.from(b.buffer, b.byteOffset, b.length)), b.length, false);
      assert.ok(kinds.has(c.kind), c.kind);
      assert.equal(typeof c.type, 'string');
      assert.ok(Object.isFrozen(c));
    }
  };
  const opcode = fc.constantFrom(1, 2);
  fc.assert(fc.property(opcode, fc.uint8Array({ maxLength: 300 }), check), { numRuns: 3000 });
  fc.assert(fc.property(opcode, mutated(plutoMessage), check), { numRuns: 3000 });
  fc.assert(
    fc.property(mutated(framedKernelMessage.map((m) => m.bytes)), (b) => check(2, b)),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(mutated(framedKernelMessage.map((m) => m.bytes)), (b) => check(1, b)),
    { numRuns: 1000 },
  );
});
