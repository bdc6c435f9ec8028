// WebSocket load generator, run as its own process (the orchestrator starts two): raw sockets, a
// precomputed masked frame per connection, a closed loop of `window` messages in flight per
// connection, and an RTT histogram. Nothing here decodes what it receives beyond frame lengths, so
// the generator stays cheap next to what it measures.
//
//   node dist/bench/ws-client.js '<json>'  → `CONNECTED`; on the stdin line `GO`: warm up, measure,
//   print `RESULT {"msgs":…,"bytes":…,"hist":[[us,count],…],"errors":…}` and exit.

import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { encode } from '@msgpack/msgpack';
import { Histogram } from './stats.js';

interface Args {
  host: string;
  port: number;
  path: string;
  headers: Record<string, string>;
  conns: number;
  size: number;
  window: number;
  warmupS: number;
  durationS: number;
  /** pluto: a Pluto update_notebook (a slider move) padded to `size`; random: random bytes. */
  payload: 'pluto' | 'random';
}

const a = JSON.parse(process.argv[2]!) as Args;

/** A Pluto client message of exactly `size` bytes: update_notebook with a bond change, padded by a trailing key. */
function plutoPayload(size: number): Buffer {
  const base = {
    type: 'update_notebook',
    client_id: 'k3j2a9',
    request_id: 'q8x1f0',
    body: { updates: [{ op: 'replace', path: ['bonds', 'x'], value: { value: 42 } }] },
    notebook_id: '6b1e7f2a-3c4d-4e5f-8a9b-0c1d2e3f4a5b',
    pad: '',
  };
  let pad = Math.max(0, size - encode(base).length);
  for (;;) {
    const b = Buffer.from(encode({ ...base, pad: 'x'.repeat(pad) }));
    if (b.length <= size || pad === 0) return b;
    pad--;
  }
}

function maskedFrame(payload: Buffer): Buffer {
  const len = payload.length;
  const head =
    len < 126
      ? Buffer.from([0x82, 0x80 | len])
      : len < 65536
        ? Buffer.from([0x82, 0x80 | 126, len >> 8, len & 0xff])
        : Buffer.from([0x82, 0x80 | 127, 0, 0, 0, 0, (len >>> 24) & 0xff, (len >> 16) & 0xff, (len >> 8) & 0xff, len & 0xff]);
  const key = randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < len; i++) body[i] ^= key[i & 3]!;
  return Buffer.concat([head, key, body]);
}

const payload = a.payload === 'pluto' ? plutoPayload(a.size) : randomBytes(a.size);
const hist = new Histogram();
let measuring = false;
let running = false;
let msgs = 0;
let bytes = 0;
let errors = 0;

class Conn {
  private readonly frame = maskedFrame(payload);
  private readonly sent: number[] = [];
  private hdr = Buffer.alloc(10);
  private hdrHave = 0;
  private hdrNeed = 2;
  private left = 0; // payload bytes left in the current frame
  private frameLen = 0;

  constructor(readonly s: Socket) {}

  start(): void {
    for (let i = 0; i < a.window; i++) this.send();
  }

  private send(): void {
    this.sent.push(performance.now());
    this.s.write(this.frame);
  }

  onData(c: Buffer): void {
    let i = 0;
    const n = c.length;
    while (i < n) {
      if (this.left === 0 && this.hdrHave < this.hdrNeed) {
        while (this.hdrHave < this.hdrNeed && i < n) this.hdr[this.hdrHave++] = c[i++]!;
        if (this.hdrHave < this.hdrNeed) return;
        if (this.hdrNeed === 2) {
          const l7 = this.hdr[1]! & 0x7f;
          if (l7 === 126) {
            this.hdrNeed = 4;
            continue;
          }
          if (l7 === 127) {
            this.hdrNeed = 10;
            continue;
          }
          this.frameLen = l7;
        } else if (this.hdrNeed === 4) {
          this.frameLen = this.hdr.readUInt16BE(2);
        } else {
          this.frameLen = this.hdr.readUInt32BE(6);
        }
        this.left = this.frameLen;
        if (this.left === 0) this.frameDone();
        continue;
      }
      const take = Math.min(this.left, n - i);
      this.left -= take;
      i += take;
      if (this.left === 0) this.frameDone();
    }
  }

  private frameDone(): void {
    this.hdrHave = 0;
    this.hdrNeed = 2;
    const t0 = this.sent.shift();
    if (measuring && t0 !== undefined) {
      hist.record((performance.now() - t0) * 1000);
      msgs++;
      bytes += this.frameLen;
    }
    if (running) this.send();
  }
}

function open(): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: a.host, port: a.port });
    s.setNoDelay(true);
    const key = randomBytes(16).toString('base64');
    let head = `GET ${a.path} HTTP/1.1\r\nHost: ${a.host}:${a.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n`;
    for (const [k, v] of Object.entries(a.headers)) head += `${k}: ${v}\r\n`;
    s.write(head + '\r\n');
    let buf = Buffer.alloc(0);
    const onHandshake = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      s.off('data', onHandshake);
      const status = buf.subarray(0, 12).toString();
      if (!status.includes(' 101')) return reject(new Error(`handshake answered ${buf.subarray(0, end).toString().split('\r\n')[0]}`));
      const conn = new Conn(s);
      s.on('data', (d: Buffer) => conn.onData(d));
      const rest = buf.subarray(end + 4);
      if (rest.length) conn.onData(rest);
      resolve(conn);
    };
    s.on('data', onHandshake);
    s.on('error', (e) => {
      errors++;
      reject(e);
    });
    s.on('close', () => {
      if (running) errors++;
    });
  });
}

const conns: Conn[] = [];
for (let i = 0; i < a.conns; i++) conns.push(await open());
process.stdout.write('CONNECTED\n');

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line.trim() !== 'GO') return;
  running = true;
  for (const c of conns) c.start();
  setTimeout(() => {
    measuring = true;
    setTimeout(() => {
      measuring = false;
      running = false;
      process.stdout.write(`RESULT ${JSON.stringify({ msgs, bytes, hist: hist.toPairs(), errors })}\n`);
      for (const c of conns) c.s.destroy();
      setTimeout(() => process.exit(0), 50);
    }, a.durationS * 1000);
  }, a.warmupS * 1000);
});
