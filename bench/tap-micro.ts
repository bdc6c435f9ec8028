// Micro-benchmark of the client-side hot path: FrameTap + the Pluto classifier over 1e6 realistic masked frames.
// Run `node dist/bench/tap-micro.js [messages]`; prints ns/message per variant. For tuning, not a test.

import { decode, encode } from '@msgpack/msgpack';
import { FrameTap } from '../proxy/protocol/ws-frames.js';
import { plutoClassifier } from '../proxy/classify/pluto.js';
import type { MessageClass } from '../proxy/classify/types.js';

const TOTAL = Number(process.argv[2] ?? 1e6);
const NB = '5a5d9a4e-7f7c-11ef-0c1b-a1b2c3d4e5f6';

let rid = 0;
function msg(type: string, body: Record<string, unknown>, meta: Record<string, unknown> = { notebook_id: NB }): Uint8Array {
  return encode({ type, client_id: 'k3j2a', request_id: ((rid++ * 2654435761) >>> 0).toString(36), body, ...meta });
}

/** A masked client frame around a payload, as a browser sends it. */
function maskedFrame(payload: Uint8Array): Buffer {
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x82, 0x80 | len]) : Buffer.from([0x82, 0x80 | 126, len >> 8, len & 0xff]);
  const key = Buffer.from([(rid * 13) & 0xff, 0x5a, 0xc3, (rid * 7) & 0xff]);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([head, key, body]);
}

// One minute of a Pluto tab with someone dragging a slider: the keepalive burst, pings, bond updates, a few completes.
const mix: Buffer[] = [];
for (let round = 0; round < 40; round++) {
  for (let i = 0; i < 18; i++) mix.push(maskedFrame(msg('current_time', {}, {})));
  mix.push(maskedFrame(msg('ping', {}, {})));
  for (let i = 0; i < 8; i++) {
    mix.push(maskedFrame(msg('update_notebook', { updates: [{ op: 'replace', path: ['bonds', 'n', 'value'], value: round * 8 + i }] })));
  }
  mix.push(maskedFrame(msg('update_notebook', { updates: [] })));
  mix.push(maskedFrame(msg('complete', { query: 'Base.so' + round })));
  mix.push(maskedFrame(msg('run_multiple_cells', { cells: ['c1', 'c2'] })));
}
const avgLen = mix.reduce((s, f) => s + f.length, 0) / mix.length;

// Two ways the bytes arrive: one frame per socket read (a quiet tab), or frames coalesced into 16 KiB reads (a burst).
const single = mix;
const coalesced: Buffer[] = [];
{
  let acc: Buffer[] = [];
  let n = 0;
  for (const f of mix) {
    acc.push(f);
    n += f.length;
    if (n >= 16384) {
      coalesced.push(Buffer.concat(acc));
      acc = [];
      n = 0;
    }
  }
  if (acc.length) coalesced.push(Buffer.concat(acc));
}

/** The same decision made with @msgpack/msgpack's full decode, to compare with the purpose-built reader. */
function viaDecode(payload: Buffer): string {
  try {
    const m = decode(payload) as { type?: unknown; body?: { updates?: unknown } };
    if (typeof m?.type !== 'string') return 'undecodable';
    if (m.type === 'update_notebook') return Array.isArray(m.body?.updates) && m.body.updates.length === 0 ? 'idle' : 'active';
    return m.type === 'ping' || m.type === 'current_time' ? 'idle' : 'active';
  } catch {
    return 'undecodable';
  }
}

type Variant = 'tap only' | 'tap + pluto reader' | 'tap + msgpack decode';

function run(variant: Variant, chunks: Buffer[], messagesPerPass: number): number {
  let seen = 0;
  let idle = 0;
  const conn = plutoClassifier.newConnection();
  const onMessage =
    variant === 'tap only'
      ? () => {
          seen++;
        }
      : variant === 'tap + pluto reader'
        ? (op: number, len: number, payload: Buffer | undefined, compressed: boolean) => {
            seen++;
            const c: MessageClass = conn.clientMessage(op, payload, len, compressed);
            if (c.kind === 'idle') idle++;
          }
        : (_op: number, _len: number, payload: Buffer | undefined) => {
            seen++;
            if (payload !== undefined && viaDecode(payload) === 'idle') idle++;
          };
  const tap = new FrameTap({
    requireMask: true,
    onMessage,
    onDesync: (r) => {
      throw new Error(`desync: ${r}`);
    },
  });
  const passes = Math.ceil(TOTAL / messagesPerPass);
  const t0 = process.hrtime.bigint();
  for (let p = 0; p < passes; p++) for (let i = 0; i < chunks.length; i++) tap.push(chunks[i]);
  const ns = Number(process.hrtime.bigint() - t0);
  if (seen !== passes * messagesPerPass) throw new Error(`${variant}: saw ${seen} messages, expected ${passes * messagesPerPass}`);
  if (variant !== 'tap only' && idle === 0) throw new Error('nothing classified idle');
  return ns / seen;
}

console.log(`${TOTAL} masked Pluto client frames, ${mix.length} distinct, ${avgLen.toFixed(0)} bytes on average`);
const variants: Variant[] = ['tap only', 'tap + pluto reader', 'tap + msgpack decode'];
for (const [label, chunks] of [
  ['one frame per chunk', single],
  ['16 KiB chunks', coalesced],
] as const) {
  for (const v of variants) run(v, chunks, mix.length); // warm-up
  for (const v of variants) {
    const best = Math.min(run(v, chunks, mix.length), run(v, chunks, mix.length), run(v, chunks, mix.length));
    console.log(`${label.padEnd(20)} ${v.padEnd(22)} ${best.toFixed(1).padStart(7)} ns/message`);
  }
}
