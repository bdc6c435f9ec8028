// Micro-benchmark of the client-side tap on large binary messages (not MsgPack): FrameTap + the Pluto
// classifier over 64 KiB masked frames read in 64 KiB chunks, capturing whole messages (64 KiB limit) or
// only their first 8 KiB (prefix), as ws-link.ts does. `node dist/bench/tap-large.js`; for tuning, not a test.

import { randomBytes } from 'node:crypto';
import { plutoClassifier } from '../proxy/classify/pluto.js';
import { FrameTap } from '../proxy/protocol/ws-frames.js';

function maskedFrame(payload: Buffer): Buffer {
  const len = payload.length;
  const head = Buffer.from([0x82, 0x80 | 127, 0, 0, 0, 0, (len >>> 24) & 255, (len >> 16) & 255, (len >> 8) & 255, len & 255]);
  const key = randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i]! ^= key[i & 3]!;
  return Buffer.concat([head, key, body]);
}

const stream = Buffer.concat(Array.from({ length: 16 }, () => maskedFrame(randomBytes(65536))));
const chunks: Buffer[] = [];
for (let i = 0; i < stream.length; i += 65536) chunks.push(stream.subarray(i, i + 65536));
const variants: [string, number, boolean][] = [
  ['whole (64 KiB limit)', 65536, false],
  ['prefix (first 8 KiB)', 8192, true],
];
for (let round = 0; round < 3; round++) {
  for (const [name, captureLimit, prefix] of variants) {
    const conn = plutoClassifier.newConnection();
    const tap = new FrameTap({
      requireMask: true,
      captureLimit,
      prefix,
      onMessage: (op, total, payload, comp) => conn.clientMessage(op, payload, total, comp),
    });
    const rounds = 300;
    const t0 = process.hrtime.bigint();
    for (let r = 0; r < rounds; r++) for (const c of chunks) tap.push(c);
    const us = Number(process.hrtime.bigint() - t0) / 1000 / (rounds * 16);
    console.log(`round ${round + 1}: ${name.padEnd(22)} ${us.toFixed(1)} µs per 64 KiB message`);
  }
}
