// Property tests for proxy/protocol/ws-frames.ts: generated frame sequences, written by a reference encoder and fed to
// FrameTap in arbitrary splits, are reported exactly and identically for every split; arbitrary bytes never throw.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DEFAULT_CAPTURE_LIMIT, FrameTap, type FrameTapOptions } from '../proxy/protocol/ws-frames.js';

// ---------------------------------------------------------------------------------------------------------------
// Reference encoder (RFC 6455 section 5.2), written plainly and apart from the parser.

interface FrameSpec {
  fin: boolean;
  rsv1: boolean;
  opcode: number;
  payload: Uint8Array;
  mask: Uint8Array | undefined;
  /** '7', '16', '64': the length field to write; '7' falls back to the smallest form that holds the length. */
  lenForm: '7' | '16' | '64';
}

function encodeFrame(f: FrameSpec): Buffer {
  const len = f.payload.length;
  const head: number[] = [(f.fin ? 0x80 : 0) | (f.rsv1 ? 0x40 : 0) | f.opcode];
  const m = f.mask ? 0x80 : 0;
  const form = f.lenForm === '64' || len > 0xffff ? '64' : f.lenForm === '16' || len > 125 ? '16' : '7';
  if (form === '7') head.push(m | len);
  else if (form === '16') head.push(m | 126, len >>> 8, len & 0xff);
  else head.push(m | 127, 0, 0, 0, 0, (len >>> 24) & 0xff, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff);
  const body = Buffer.from(f.payload);
  if (f.mask) {
    head.push(...f.mask);
    for (let i = 0; i < body.length; i++) body[i] ^= f.mask[i % 4];
  }
  return Buffer.concat([Buffer.from(head), body]);
}

// ---------------------------------------------------------------------------------------------------------------
// Generated streams: messages (maybe fragmented, with control frames between fragments), pings and pongs, maybe a close.

type Masking = 'client' | 'server' | 'mixed';

interface FrameLook {
  masked: boolean;
  key: Uint8Array;
  lenForm: '7' | '16' | '64';
}

const frameLook: fc.Arbitrary<FrameLook> = fc.record({
  masked: fc.boolean(),
  key: fc.uint8Array({ minLength: 4, maxLength: 4 }),
  lenForm: fc.constantFrom('7', '7', '16', '64'),
});

interface Control {
  opcode: number;
  payload: Uint8Array;
  look: FrameLook;
}

const control = (opcodes: number[]): fc.Arbitrary<Control> =>
  fc.record({ opcode: fc.constantFrom(...opcodes), payload: fc.uint8Array({ maxLength: 125 }), look: frameLook });

interface Message {
  opcode: number;
  payload: Uint8Array;
  compressed: boolean;
  /** Where the payload is cut into fragments (positions, taken modulo its length + 1). */
  cuts: number[];
  /** Control frames after fragment i. */
  between: Control[][];
  looks: FrameLook[];
}

/** A payload over 64 KiB (a minimal 64-bit length), filled from a seed rather than drawn byte by byte. */
const bigPayload = fc.tuple(fc.integer({ min: 65536, max: 70000 }), fc.integer()).map(([n, seed]) => {
  const b = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) b[i] = (s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 24;
  return b;
});

const message: fc.Arbitrary<Message> = fc.record({
  opcode: fc.constantFrom(1, 2),
  payload: fc.oneof(
    { weight: 30, arbitrary: fc.uint8Array({ maxLength: 130 }) },
    { weight: 10, arbitrary: fc.uint8Array({ minLength: 250, maxLength: 1200 }) }, // unmasked a word at a time from 256 bytes
    { weight: 1, arbitrary: bigPayload },
  ),
  compressed: fc.boolean(),
  cuts: fc.oneof({ weight: 2, arbitrary: fc.constant<number[]>([]) }, fc.array(fc.nat(), { maxLength: 4 })),
  between: fc.array(fc.array(control([9, 10]), { maxLength: 2 }), { maxLength: 5 }),
  looks: fc.array(frameLook, { minLength: 5, maxLength: 5 }),
});

interface Stream {
  bytes: Buffer;
  /** What the tap must report, in order. */
  events: string[];
  dataFrames: number;
  controlFrames: number;
  messages: number;
  options: FrameTapOptions;
}

const show = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Encodes items as the given side would send them, and says what a tap must report for them. */
function buildStream(items: Array<Message | Control>, close: Control | null, trailing: Uint8Array, masking: Masking, captureLimit: number | undefined): Stream {
  const frames: Buffer[] = [];
  const events: string[] = [];
  let dataFrames = 0;
  let controlFrames = 0;
  let messages = 0;
  const limit = captureLimit ?? DEFAULT_CAPTURE_LIMIT;
  const mask = (look: FrameLook): Uint8Array | undefined => (masking === 'client' || (masking === 'mixed' && look.masked) ? look.key : undefined);
  const addControl = (c: Control): void => {
    frames.push(encodeFrame({ fin: true, rsv1: false, opcode: c.opcode, payload: c.payload, mask: mask(c.look), lenForm: c.look.lenForm }));
    events.push(`ctl ${c.opcode} ${c.payload.length}`);
    controlFrames++;
  };
  for (const item of items) {
    if (!('cuts' in item)) {
      addControl(item);
      continue;
    }
    const len = item.payload.length;
    const cuts = [...new Set(item.cuts.map((c) => c % (len + 1)))].sort((a, b) => a - b);
    const bounds = [0, ...cuts, len];
    const n = bounds.length - 1;
    for (let i = 0; i < n; i++) {
      const look = item.looks[i % item.looks.length];
      frames.push(
        encodeFrame({
          fin: i === n - 1,
          rsv1: i === 0 && item.compressed,
          opcode: i === 0 ? item.opcode : 0,
          payload: item.payload.subarray(bounds[i], bounds[i + 1]),
          mask: mask(look),
          lenForm: look.lenForm,
        }),
      );
      dataFrames++;
      if (i < n - 1) for (const c of item.between[i] ?? []) addControl(c);
    }
    const captured = !item.compressed && len <= limit;
    events.push(`msg ${item.opcode} ${len} ${captured ? show(item.payload) : '-'}${item.compressed ? ' compressed' : ''}`);
    messages++;
  }
  if (close) {
    addControl(close);
    frames.push(Buffer.from(trailing)); // after a close nothing is legal: the tap ignores whatever follows
  }
  const requireMask = masking === 'client' ? true : masking === 'server' ? false : undefined;
  return { bytes: Buffer.concat(frames), events, dataFrames, controlFrames, messages, options: { requireMask, captureLimit } };
}

const stream: fc.Arbitrary<Stream> = fc
  .tuple(
    fc.array(fc.oneof({ weight: 3, arbitrary: message }, control([9, 10])), { maxLength: 8 }),
    fc.option(control([8]), { nil: null }),
    fc.uint8Array({ maxLength: 20 }),
    fc.constantFrom<Masking>('client', 'server', 'mixed'),
    fc.option(fc.oneof(fc.nat(400), fc.constant(70000)), { nil: undefined }),
  )
  .map(([items, close, trailing, masking, limit]) => buildStream(items, close, trailing, masking, limit));

/** Cut positions (modulo the length + 1) into chunks that together are the whole. */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of [...at, bytes.length]) {
    out.push(bytes.subarray(prev, c));
    prev = c;
  }
  return out;
}

interface Run {
  events: string[];
  tap: FrameTap;
}

/** Feeds the chunks to a fresh tap, checking that none is changed by it; returns what it reported. */
function feed(chunks: Buffer[], options: FrameTapOptions): Run {
  const events: string[] = [];
  const tap = new FrameTap({
    ...options,
    onControl: (op, len) => events.push(`ctl ${op} ${len}`),
    onMessage: (op, len, payload, compressed) =>
      events.push(`msg ${op} ${len} ${payload === undefined ? '-' : show(payload)}${compressed ? ' compressed' : ''}`),
    onDesync: (reason) => events.push(`desync ${reason}`),
  });
  for (const chunk of chunks) {
    const copy = Buffer.from(chunk);
    tap.push(chunk);
    assert.ok(chunk.equals(copy), 'the tap changed a chunk it was given');
  }
  return { events, tap };
}

// ---------------------------------------------------------------------------------------------------------------

test('FrameTap reports exactly the encoded messages and control frames, for any split of the stream', () => {
  fc.assert(
    fc.property(stream, fc.array(fc.nat(), { maxLength: 12 }), (s, cuts) => {
      const whole = feed([s.bytes], s.options);
      assert.deepEqual(whole.events, s.events);
      assert.equal(whole.tap.dataFrames, s.dataFrames);
      assert.equal(whole.tap.controlFrames, s.controlFrames);
      assert.equal(whole.tap.messages, s.messages);
      assert.equal(whole.tap.desynced, false);
      assert.deepEqual(feed(split(s.bytes, cuts), s.options).events, s.events);
    }),
    { numRuns: 500 },
  );
});

test('FrameTap: one byte at a time gives the same report as one push', () => {
  const small = stream.filter((s) => s.bytes.length <= 3000);
  fc.assert(
    fc.property(small, (s) => {
      const bytes = [...Array(s.bytes.length).keys()].map((i) => s.bytes.subarray(i, i + 1));
      assert.deepEqual(feed(bytes, s.options).events, s.events);
    }),
    { numRuns: 200 },
  );
});

const anyOptions: fc.Arbitrary<FrameTapOptions> = fc.record({
  requireMask: fc.constantFrom(true, false, undefined),
  captureLimit: fc.option(fc.nat(300), { nil: undefined }),
});

/** The same report for any split, nothing after a desync or a close, and at most one desync. */
function checkArbitrary(bytes: Buffer, options: FrameTapOptions, cuts: number[]): void {
  const whole = feed([bytes], options);
  assert.deepEqual(feed(split(bytes, cuts), options).events, whole.events);
  const stop = whole.events.findIndex((e) => e.startsWith('desync ') || e.startsWith('ctl 8 '));
  assert.ok(stop === -1 || stop === whole.events.length - 1, `events after a desync or close: ${whole.events.join(', ')}`);
  assert.equal(whole.tap.desynced, stop >= 0 && whole.events[stop].startsWith('desync '));
}

test('FrameTap never throws on arbitrary bytes, changes no chunk, and reports the same for any split', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b)),
      anyOptions,
      fc.array(fc.nat(), { maxLength: 8 }),
      checkArbitrary,
    ),
    { numRuns: 3000 },
  );
});

test('FrameTap on generated streams with bytes overwritten or cut out: same report for any split, stops cleanly', () => {
  const mangled = fc
    .tuple(stream, fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 3 }), fc.array(fc.nat(), { maxLength: 2 }))
    .map(([s, edits, drop]) => {
      const b = Buffer.from(s.bytes);
      for (const [at, v] of edits) if (b.length > 0) b[at % b.length] = v;
      if (drop.length === 2 && b.length > 0) {
        const [from, to] = [drop[0] % b.length, drop[1] % b.length].sort((x, y) => x - y);
        return Buffer.concat([b.subarray(0, from), b.subarray(to)]);
      }
      return b;
    });
  fc.assert(fc.property(mangled, anyOptions, fc.array(fc.nat(), { maxLength: 8 }), checkArbitrary), { numRuns: 1000 });
});
