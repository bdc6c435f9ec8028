// The load process of the claims benchmark (bench/claims.ts): raw keep-alive sockets, so the client
// spends little of the two cores. Each visit is a browser's first one, through a front proxy that names
// the visitor in X-Forwarded-For: `GET /<app>/` without a cookie → 302 + the app's cookie (a claim),
// then the deep link with that cookie (the claim's first use, relayed to the instance). Latency of
// each request from its write to the last byte of its answer.
//
//   node dist/bench/claims-client.js  → `READY`; then stdin `RUN <json>` → `RESULT <json>` each.

import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

export interface ClaimsWork {
  port: number;
  connections: number;
  /** One visit each: the app and the visitor's address. */
  visits: { app: string; address: string }[];
}

export interface ClaimsRun {
  /** performance.timeOrigin-based wall clock: first write, last answer (ms since the epoch). */
  startMs: number;
  endMs: number;
  claimed: number;
  /** Status of entries that were not a claim, counted by status. */
  statuses: Record<string, number>;
  errors: string[];
  /** µs per entry (claims only) and per first use. */
  entryUs: number[];
  useUs: number[];
}

interface Answer {
  status: number;
  head: string;
}

/** One keep-alive connection: a request, its whole answer (Content-Length framing only), the next. */
class Conn {
  private buf: Buffer = Buffer.alloc(0);
  private pending?: { resolve: (a: Answer) => void; reject: (e: Error) => void };
  private readonly socket: Socket;
  readonly ready: Promise<void>;

  constructor(port: number) {
    this.socket = connect({ host: '127.0.0.1', port });
    this.socket.setNoDelay(true);
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', reject);
    });
    this.socket.on('data', (c: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, c]) : c;
      this.parse();
    });
    this.socket.on('error', (e) => this.fail(e));
    this.socket.on('close', () => this.fail(new Error('connection closed')));
  }

  private fail(e: Error): void {
    const p = this.pending;
    this.pending = undefined;
    p?.reject(e);
  }

  private parse(): void {
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0 || !this.pending) return;
    const head = this.buf.subarray(0, end).toString('latin1');
    const m = /\r\ncontent-length: *(\d+)/i.exec(head);
    if (!m) return this.fail(new Error(`an answer without Content-Length: ${head.split('\r\n')[0]}`));
    const total = end + 4 + Number(m[1]);
    if (this.buf.length < total) return;
    this.buf = this.buf.subarray(total);
    const p = this.pending;
    this.pending = undefined;
    p.resolve({ status: Number(head.slice(9, 12)), head });
  }

  request(text: string): Promise<Answer> {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.socket.write(text);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

const header = (head: string, name: string): string | undefined => new RegExp(`\\r\\n${name}: *([^\\r]*)`, 'i').exec(head)?.[1];

export async function runClaims(w: ClaimsWork): Promise<ClaimsRun> {
  const conns = Array.from({ length: w.connections }, () => new Conn(w.port));
  await Promise.all(conns.map((c) => c.ready));
  const r: ClaimsRun = { startMs: 0, endMs: 0, claimed: 0, statuses: {}, errors: [], entryUs: [], useUs: [] };
  let next = 0;
  const worker = async (c: Conn): Promise<void> => {
    for (let i = next++; i < w.visits.length; i = next++) {
      const v = w.visits[i]!;
      try {
        let t = performance.now();
        const a = await c.request(
          `GET /${v.app}/ HTTP/1.1\r\nHost: 127.0.0.1:${w.port}\r\nAccept: text/html,application/xhtml+xml\r\nX-Forwarded-For: ${v.address}\r\n\r\n`,
        );
        const cookie = header(a.head, 'set-cookie')?.split(';')[0];
        const location = header(a.head, 'location');
        if (a.status !== 302 || !cookie || !location) {
          r.statuses[a.status] = (r.statuses[a.status] ?? 0) + 1;
          continue;
        }
        r.entryUs.push((performance.now() - t) * 1000);
        r.claimed++;
        t = performance.now();
        const u = await c.request(
          `GET ${location} HTTP/1.1\r\nHost: 127.0.0.1:${w.port}\r\nAccept: text/html\r\nX-Forwarded-For: ${v.address}\r\nCookie: ${cookie}\r\n\r\n`,
        );
        if (u.status !== 200) r.errors.push(`first use answered ${u.status}`);
        else r.useUs.push((performance.now() - t) * 1000);
      } catch (e) {
        r.errors.push((e as Error).message);
        return;
      }
    }
  };
  r.startMs = performance.timeOrigin + performance.now();
  await Promise.all(conns.map(worker));
  r.endMs = performance.timeOrigin + performance.now();
  for (const c of conns) c.close();
  r.errors = [...new Set(r.errors)].slice(0, 5);
  return r;
}

if (process.argv[1]?.endsWith('claims-client.js')) {
  process.stdout.write('READY\n');
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (!line.startsWith('RUN ')) return;
    void runClaims(JSON.parse(line.slice(4)) as ClaimsWork).then((r) => process.stdout.write(`RESULT ${JSON.stringify(r)}\n`));
  });
}
