// The relay benchmark's backend, run as its own process: HTTP answers of 1 KiB (`…/small`) and
// 256 KiB (`…/large`) on any path prefix (nginx and configurable-http-proxy keep the prefix,
// warmpool strips it), and a raw WebSocket echo server on every upgrade (no library, no copies
// beyond unmasking), so the backend is never what the WebSocket benchmark measures.
//
//   node dist/bench/backend-server.js [port] [ports]   → prints `READY {"port":N,"ports":[…]}`
//
// `ports` > 1: the same server also listens on that many ports less one (each a net listener handing
// its connections to the HTTP server), so a benchmark can give every instance a port of its own, as
// real instances have (bench/claims.ts).

import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

const SMALL = Buffer.alloc(1024, 'a');
const LARGE = Buffer.alloc(256 * 1024, 'b');
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  const body = url.includes('/large') ? LARGE : SMALL;
  req.resume();
  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;
server.requestTimeout = 0;

server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
  const s = socket as Socket;
  s.on('error', () => s.destroy());
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string') {
    s.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  const accept = createHash('sha1')
    .update(key + GUID)
    .digest('base64');
  s.setNoDelay(true);
  s.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  const echo = new Echo(s);
  if (head.length) echo.push(head);
  s.on('data', (c: Buffer) => echo.push(c));
});

/** Parses masked client frames and writes each back unmasked (FIN and opcode kept; pings answered). */
class Echo {
  private buf: Buffer | undefined;

  constructor(private readonly s: Socket) {}

  push(chunk: Buffer): void {
    const b = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
    this.buf = undefined;
    let p = 0;
    const out: Buffer[] = [];
    for (;;) {
      if (b.length - p < 2) break;
      const b0 = b[p]!;
      const b1 = b[p + 1]!;
      let len = b1 & 0x7f;
      let h = 2;
      if (len === 126) {
        if (b.length - p < 4) break;
        len = b.readUInt16BE(p + 2);
        h = 4;
      } else if (len === 127) {
        if (b.length - p < 10) break;
        len = Number(b.readBigUInt64BE(p + 2));
        h = 10;
      }
      const masked = (b1 & 0x80) !== 0;
      const need = h + (masked ? 4 : 0) + len;
      if (b.length - p < need) break;
      const payload = Buffer.allocUnsafe(len);
      if (masked) {
        const m = p + h;
        const k0 = b[m]!,
          k1 = b[m + 1]!,
          k2 = b[m + 2]!,
          k3 = b[m + 3]!;
        const src = m + 4;
        let i = 0;
        for (; i + 3 < len; i += 4) {
          payload[i] = b[src + i]! ^ k0;
          payload[i + 1] = b[src + i + 1]! ^ k1;
          payload[i + 2] = b[src + i + 2]! ^ k2;
          payload[i + 3] = b[src + i + 3]! ^ k3;
        }
        for (; i < len; i++) payload[i] = b[src + i]! ^ [k0, k1, k2, k3][i & 3]!;
      } else {
        b.copy(payload, 0, p + h, p + h + len);
      }
      p += need;
      const opcode = b0 & 0x0f;
      if (opcode === 8) {
        out.push(frameHead(0x88, len), payload);
        this.s.end(Buffer.concat(out));
        return;
      }
      const outOp = opcode === 9 ? 0x8a : opcode === 10 ? -1 : b0 & 0x8f;
      if (outOp < 0) continue;
      out.push(frameHead(outOp, len), payload);
    }
    if (p < b.length) this.buf = b.subarray(p);
    if (out.length > 0) this.s.write(Buffer.concat(out));
  }
}

function frameHead(b0: number, len: number): Buffer {
  if (len < 126) return Buffer.from([b0, len]);
  if (len < 65536) return Buffer.from([b0, 126, len >> 8, len & 0xff]);
  const h = Buffer.alloc(10);
  h[0] = b0;
  h[1] = 127;
  h.writeBigUInt64BE(BigInt(len), 2);
  return h;
}

const port = Number(process.argv[2] ?? 0);
const extra = Math.max(0, Number(process.argv[3] ?? 1) - 1);
function listenExtra(): Promise<number> {
  const l = createNetServer((sock) => server.emit('connection', sock));
  return new Promise((resolve) => l.listen(0, '127.0.0.1', () => resolve((l.address() as { port: number }).port)));
}
server.listen(port, '127.0.0.1', async () => {
  const first = (server.address() as { port: number }).port;
  const ports = [first, ...(await Promise.all(Array.from({ length: extra }, listenExtra)))];
  process.stdout.write(`READY ${JSON.stringify({ port: first, ports })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
