// Tests for proxy/frames.ts: FrameTap fed literal RFC 6455 frames (hex, as in ws's receiver tests), split every way.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameTap, type FrameTapOptions } from '../proxy/protocol/ws-frames.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** A tap that records what it reports as short strings. */
function recorder(opts: FrameTapOptions = {}): { tap: FrameTap; events: string[] } {
  const events: string[] = [];
  const tap = new FrameTap({
    ...opts,
    onControl: (op, len) => events.push(`ctl ${op} ${len}`),
    onMessage: (op, len, payload, compressed) =>
      events.push(`msg ${op} ${len} ${payload === undefined ? '-' : payload.toString('hex')}${compressed ? ' compressed' : ''}`),
    onDesync: (reason) => events.push(`desync ${reason}`),
  });
  return { tap, events };
}

function parse(bytes: Buffer, opts: FrameTapOptions = {}): string[] {
  const { tap, events } = recorder(opts);
  tap.push(bytes);
  return events;
}

/** Builds a frame (tests only; the literal hex cases pin the format). */
function frame(o: { opcode: number; payload: Buffer; fin?: boolean; rsv1?: boolean; mask?: Buffer; len64?: boolean }): Buffer {
  const len = o.payload.length;
  const head: number[] = [(o.fin === false ? 0 : 0x80) | (o.rsv1 ? 0x40 : 0) | o.opcode];
  const m = o.mask ? 0x80 : 0;
  if (o.len64) head.push(m | 127, 0, 0, 0, 0, (len >>> 24) & 0xff, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff);
  else if (len > 0xffff) throw new Error('use len64');
  else if (len > 125) head.push(m | 126, len >> 8, len & 0xff);
  else head.push(m | len);
  const body = Buffer.from(o.payload);
  if (o.mask) {
    head.push(...o.mask);
    for (let i = 0; i < body.length; i++) body[i] ^= o.mask[i & 3];
  }
  return Buffer.concat([Buffer.from(head), body]);
}

const HELLO = Buffer.from('Hello').toString('hex');

test('unmasked single-frame text message (RFC 6455 5.7)', () => {
  assert.deepEqual(parse(hex('81 05 48 65 6c 6c 6f')), [`msg 1 5 ${HELLO}`]);
});

test('masked single-frame text message is unmasked (RFC 6455 5.7)', () => {
  assert.deepEqual(parse(hex('81 85 37 fa 21 3d 7f 9f 4d 51 58'), { requireMask: true }), [`msg 1 5 ${HELLO}`]);
});

test('masking never touches the relayed chunk', () => {
  const chunk = hex('81 85 37 fa 21 3d 7f 9f 4d 51 58');
  const copy = Buffer.from(chunk);
  parse(chunk);
  assert.deepEqual(chunk, copy);
});

test('16-bit length: 256-byte binary message, unmasked and masked', () => {
  const payload = Buffer.alloc(256, 0xab);
  assert.deepEqual(parse(Buffer.concat([hex('82 7e 01 00'), payload])), [`msg 2 256 ${payload.toString('hex')}`]);
  const masked = Buffer.concat([hex('82 fe 01 00 01 02 03 04'), Buffer.from(payload.map((b, i) => b ^ [1, 2, 3, 4][i & 3]))]);
  assert.deepEqual(parse(masked), [`msg 2 256 ${payload.toString('hex')}`]);
});

test('64-bit length: 64 KiB binary message is captured at the default limit', () => {
  const payload = Buffer.alloc(65536, 0x5a);
  const events: Array<[number, number, Buffer | undefined]> = [];
  const tap = new FrameTap({ onMessage: (op, len, p) => events.push([op, len, p]) });
  tap.push(Buffer.concat([hex('82 7f 00 00 00 00 00 01 00 00'), payload]));
  assert.equal(events.length, 1);
  assert.equal(events[0][0], 2);
  assert.equal(events[0][1], 65536);
  assert.ok(events[0][2]?.equals(payload));
});

test('64-bit length one byte over the capture limit is counted, not captured', () => {
  const ev = parse(Buffer.concat([hex('82 7f 00 00 00 00 00 01 00 01'), Buffer.alloc(65537)]));
  assert.deepEqual(ev, ['msg 2 65537 -']);
});

test('64-bit length at or beyond 2^53 desyncs', () => {
  assert.deepEqual(parse(hex('82 7f 00 20 00 00 00 00 00 00')), ['desync 64-bit payload length beyond 2^53']);
  assert.deepEqual(parse(hex('82 7f 80 00 00 00 00 00 00 05')), ['desync 64-bit payload length beyond 2^53']);
  // 2^53 - 1 is still a length (the tap just waits for the bytes)
  assert.deepEqual(parse(hex('82 7f 00 1f ff ff ff ff ff ff 00')), []);
});

test('zero-length messages carry an empty payload', () => {
  assert.deepEqual(parse(hex('82 00 81 80 11 22 33 44')), ['msg 2 0 ', 'msg 1 0 ']);
});

test('fragmented message with a ping between fragments (RFC 6455 5.4, 5.7)', () => {
  const stream = hex('01 03 48 65 6c   89 05 48 65 6c 6c 6f   80 02 6c 6f');
  assert.deepEqual(parse(stream), ['ctl 9 5', `msg 1 5 ${HELLO}`]);
});

test("masked fragments are unmasked with each frame's own key", () => {
  const stream = Buffer.concat([
    frame({ opcode: 2, fin: false, payload: Buffer.from('ab'), mask: hex('01020304') }),
    frame({ opcode: 0xa, payload: Buffer.from('p'), mask: hex('05060708') }),
    frame({ opcode: 0, fin: false, payload: Buffer.from('cde'), mask: hex('0a0b0c0d') }),
    frame({ opcode: 0, payload: Buffer.from('fgh'), mask: hex('ffeeddcc') }),
  ]);
  assert.deepEqual(parse(stream, { requireMask: true }), ['ctl 10 1', `msg 2 8 ${Buffer.from('abcdefgh').toString('hex')}`]);
});

test('close frame is reported and whatever follows is ignored quietly', () => {
  // masked close, status 1000 (03 e8), then a stray text frame
  const ev = parse(hex('88 82 11 22 33 44 12 ca   81 05 48 65 6c 6c 6f'));
  assert.deepEqual(ev, ['ctl 8 2']);
});

test('two frames in one chunk, and a frame spread over three chunks', () => {
  assert.deepEqual(parse(hex('81 05 48 65 6c 6c 6f 82 02 01 02')), [`msg 1 5 ${HELLO}`, 'msg 2 2 0102']);
  const { tap, events } = recorder();
  tap.push(hex('81 85 37 fa'));
  tap.push(hex('21 3d 7f 9f'));
  tap.push(hex('4d 51 58 8a 00'));
  assert.deepEqual(events, [`msg 1 5 ${HELLO}`, 'ctl 10 0']);
});

test('every header length and mask survives being fed one byte at a time and split at every offset', () => {
  const stream = Buffer.concat([
    hex('81 85 37 fa 21 3d 7f 9f 4d 51 58'), // masked 7-bit
    hex('89 00'), // empty ping
    frame({ opcode: 2, payload: Buffer.alloc(300, 7), mask: hex('a1b2c3d4') }), // masked 16-bit
    frame({ opcode: 1, payload: Buffer.from('long'), mask: hex('01020304'), len64: true }), // masked 64-bit, small
    frame({ opcode: 2, payload: Buffer.alloc(200, 9), len64: true }), // unmasked 64-bit
    frame({ opcode: 1, fin: false, payload: Buffer.from('frag'), mask: hex('0f0f0f0f') }),
    frame({ opcode: 9, payload: Buffer.from('x'), mask: hex('00000000') }),
    frame({ opcode: 0, payload: Buffer.from('ment'), mask: hex('f0f0f0f0') }),
    hex('88 80 01 02 03 04'), // masked empty close
  ]);
  const whole = parse(stream);
  assert.equal(whole.length, 8);
  assert.equal(whole[6], `msg 1 8 ${Buffer.from('fragment').toString('hex')}`);

  const { tap, events } = recorder();
  for (let i = 0; i < stream.length; i++) tap.push(stream.subarray(i, i + 1));
  assert.deepEqual(events, whole, 'one byte at a time');

  for (let k = 0; k <= stream.length; k++) {
    const r = recorder();
    r.tap.push(stream.subarray(0, k));
    r.tap.push(stream.subarray(k));
    assert.deepEqual(r.events, whole, `split at ${k}`);
  }
});

test('a 150 MiB message streams through in 64 KiB chunks with bounded memory', () => {
  const total = 150 * 1024 * 1024;
  const chunkSize = 64 * 1024;
  const header = hex('82 ff 00 00 00 00 09 60 00 00 de ad be ef'); // masked, 64-bit length 0x09600000
  const block = Buffer.alloc(chunkSize, 0x42); // reused for every chunk: the message itself is never allocated
  const events: string[] = [];
  const tap = new FrameTap({
    requireMask: true,
    onMessage: (op, len, payload, compressed) => events.push(`msg ${op} ${len} ${payload === undefined ? '-' : 'captured'} ${compressed}`),
    onDesync: (r) => events.push(`desync ${r}`),
  });
  global.gc?.();
  const before = process.memoryUsage();
  tap.push(header);
  let sent = 0;
  while (sent < total) {
    const n = Math.min(chunkSize, total - sent);
    tap.push(n === chunkSize ? block : block.subarray(0, n));
    sent += n;
  }
  const after = process.memoryUsage();
  assert.deepEqual(events, [`msg 2 ${total} - false`]);
  // Had the tap buffered the message, external memory would have grown by ~150 MiB.
  assert.ok(after.arrayBuffers - before.arrayBuffers < 8 * 1024 * 1024, `arrayBuffers grew by ${after.arrayBuffers - before.arrayBuffers}`);
  assert.ok(after.rss - before.rss < 64 * 1024 * 1024, `rss grew by ${after.rss - before.rss}`);
});

test('a fragmented message that outgrows the capture limit stops being captured', () => {
  const stream = Buffer.concat([
    frame({ opcode: 2, fin: false, payload: Buffer.alloc(3, 1) }),
    frame({ opcode: 0, fin: false, payload: Buffer.alloc(3, 2) }),
    frame({ opcode: 0, payload: Buffer.alloc(3, 3) }),
    frame({ opcode: 2, fin: false, payload: Buffer.alloc(2, 4) }),
    frame({ opcode: 0, payload: Buffer.alloc(3, 5) }),
  ]);
  assert.deepEqual(parse(stream, { captureLimit: 5 }), ['msg 2 9 -', 'msg 2 5 0404050505']);
  // growth path: a small first fragment, then a larger continuation, still under the limit
  const grown = Buffer.concat([frame({ opcode: 2, fin: false, payload: Buffer.alloc(1, 1) }), frame({ opcode: 0, payload: Buffer.alloc(1000, 2) })]);
  const ev = parse(grown);
  assert.equal(ev.length, 1);
  assert.equal(ev[0], `msg 2 1001 01${'02'.repeat(1000)}`);
});

test('captureLimit 0 captures nothing but empty messages', () => {
  assert.deepEqual(parse(hex('82 01 ff 82 00'), { captureLimit: 0 }), ['msg 2 1 -', 'msg 2 0 ']);
});

test('RSV1 (permessage-deflate) marks the message compressed, without payload', () => {
  assert.deepEqual(parse(hex('c1 07 f2 48 cd c9 c9 07 00')), ['msg 1 7 - compressed']);
  // fragmented: RSV1 only on the first frame
  assert.deepEqual(parse(hex('42 02 f2 48   80 03 cd c9 c9')), ['msg 2 5 - compressed']);
});

test('garbage desyncs once, never throws, and stops parsing', () => {
  const cases: Array<[string, string]> = [
    ['83 00', 'reserved data opcode 0x3'],
    ['8b 00', 'reserved control opcode 0xb'],
    ['80 00', 'continuation frame without a message to continue'],
    ['89 7e 00 7e', 'control frame payload over 125 bytes'],
    ['09 00', 'fragmented control frame'],
    ['a1 00', 'RSV2 or RSV3 set'],
    ['91 00', 'RSV2 or RSV3 set'],
    ['c9 00', 'RSV1 on a control frame'],
    ['01 01 41   c0 01 41', 'RSV1 on a continuation frame'],
    ['01 01 41   81 01 41', 'new data frame before the previous message ended'],
  ];
  for (const [bytes, reason] of cases) {
    const { tap, events } = recorder();
    assert.doesNotThrow(() => tap.push(hex(bytes)));
    assert.doesNotThrow(() => tap.push(hex('81 05 48 65 6c 6c 6f')));
    assert.deepEqual(events, [`desync ${reason}`], bytes);
    assert.equal(tap.desynced, true);
    assert.equal(tap.desyncReason, reason);
  }
});

test('text instead of frames (an HTTP request where frames were expected) desyncs', () => {
  const ev = parse(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  assert.equal(ev.length, 1);
  assert.match(ev[0], /^desync /);
});

test('requireMask: unmasked client frame or masked server frame desyncs', () => {
  assert.deepEqual(parse(hex('81 01 41'), { requireMask: true }), ['desync unmasked frame where masking is required']);
  assert.deepEqual(parse(hex('81 81 00 00 00 00 41'), { requireMask: false }), ['desync masked frame where none is allowed']);
});

test('a throwing callback desyncs the tap instead of reaching the relay', () => {
  const reasons: string[] = [];
  const tap = new FrameTap({
    onMessage: () => {
      throw new Error('classifier bug');
    },
    onDesync: (r) => {
      reasons.push(r);
      throw new Error('observer bug too');
    },
  });
  assert.doesNotThrow(() => tap.push(hex('81 01 41 81 01 42')));
  assert.deepEqual(reasons, ['callback threw: classifier bug']);
  assert.equal(tap.desynced, true);
});

test('frame counters', () => {
  const { tap } = recorder();
  tap.push(hex('01 03 48 65 6c   89 05 48 65 6c 6c 6f   80 02 6c 6f   8a 00'));
  assert.equal(tap.dataFrames, 2);
  assert.equal(tap.controlFrames, 2);
  assert.equal(tap.messages, 1);
});

test('invalid captureLimit is rejected up front', () => {
  assert.throws(() => new FrameTap({ captureLimit: -1 }), /captureLimit/);
  assert.throws(() => new FrameTap({ captureLimit: 1.5 }), /captureLimit/);
});

test('with prefix, a message over the capture limit hands over its first captureLimit bytes, unmasked, single or fragmented', () => {
  const mask = hex('01 02 03 04');
  const stream = Buffer.concat([
    frame({ opcode: 2, payload: Buffer.from('0102030405060708090a', 'hex'), mask }),
    frame({ opcode: 2, fin: false, payload: Buffer.alloc(3, 1), mask }),
    frame({ opcode: 0, fin: false, payload: Buffer.alloc(3, 2), mask }),
    frame({ opcode: 0, payload: Buffer.alloc(3, 3), mask }),
    frame({ opcode: 1, payload: Buffer.from('ab'), mask }),
  ]);
  const want = ['msg 2 10 0102030405', 'msg 2 9 0101010202', 'msg 1 2 6162'];
  assert.deepEqual(parse(stream, { captureLimit: 5, prefix: true }), want);
  // Split at every byte: the same prefixes.
  const { tap, events } = recorder({ captureLimit: 5, prefix: true });
  for (let i = 0; i < stream.length; i++) tap.push(stream.subarray(i, i + 1));
  assert.deepEqual(events, want);
  // Without prefix, the same stream captures only what fits.
  assert.deepEqual(parse(stream, { captureLimit: 5 }), ['msg 2 10 -', 'msg 2 9 -', 'msg 1 2 6162']);
});
