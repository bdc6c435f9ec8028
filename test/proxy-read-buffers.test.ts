// The upstream connections' read buffers (proxy/upstream/read-buffers.ts, UpstreamConn.nextBuffer):
// a connection that streams is lent a buffer of its own; views of a read an exchange pinned are never
// overwritten by another connection's reads; every lent buffer comes back when its connection is gone.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { UpstreamPool, type ConnUser, type UpstreamConn, type UpstreamError } from '../proxy/upstream/pool.js';
import { lentReadBuffers } from '../proxy/upstream/read-buffers.js';

/** Body bytes of request `seed`: a pattern that differs between requests at every offset. */
function body(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * 7 + seed * 13 + (i >> 8)) & 0xff;
  return b;
}

/** An instance that answers `GET /<size>/<seed>` with body(size, seed), keeping connections alive. */
async function instance(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    let pending = '';
    s.on('data', (d: Buffer) => {
      pending += d.toString('latin1');
      for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
        const [size, seed] = pending.slice(0, end).split(' ')[1]!.slice(1).split('/').map(Number);
        pending = pending.slice(end + 4);
        s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`);
        s.write(body(size!, seed!));
      }
    });
  });
  const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * An exchange as the relay runs one: each read's body views are checked at once; views of an own
 * buffer are kept from the last read (pinned, as a write still queued would keep them) and copied,
 * to be compared again later.
 */
class Keeper implements ConnUser {
  conn: UpstreamConn | null = null;
  got = 0;
  ownReads = 0;
  kept: { view: Buffer; copy: Buffer }[] = [];
  readonly done: Promise<void>;
  private finish!: () => void;
  private fail!: (e: Error) => void;

  constructor(
    private readonly size: number,
    private readonly seed: number,
  ) {
    this.done = new Promise((resolve, reject) => {
      this.finish = resolve;
      this.fail = reject;
    });
  }

  onConn(conn: UpstreamConn): void {
    this.conn = conn;
    conn.send(`GET /${this.size}/${this.seed} HTTP/1.1\r\nHost: x\r\n\r\n`, false);
  }
  onHead(): void {}
  onBody(chunk: Buffer, last: boolean): void {
    const want = body(this.size, this.seed).subarray(this.got, this.got + chunk.length);
    if (!chunk.equals(want)) this.fail(new Error(`seed ${this.seed}: wrong bytes at ${this.got}`));
    this.got += chunk.length;
    if (this.conn!.ownBuffer) {
      this.ownReads++;
      if (last) {
        this.kept.push({ view: chunk, copy: Buffer.from(chunk) });
        this.conn!.pin();
      }
    }
  }
  onEnd(): void {
    this.conn!.release();
    this.finish();
  }
  onConnError(err: UpstreamError): void {
    this.fail(err);
  }
  onUpstreamDrain(): void {}
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

test('a streaming connection reads into a buffer of its own; pinned views stay intact while other connections read; all come back', async () => {
  const inst = await instance();
  cleanups.push(() => inst.close());
  const before = lentReadBuffers();
  const pool = new UpstreamPool('127.0.0.1', inst.port, 'inst-1', { connectTimeoutMs: 5000, headersTimeoutMs: 5000, idleMs: 60_000, maxConnections: 8 });
  cleanups.push(() => pool.destroy());
  const keepers: Keeper[] = [];
  let seed = 1;
  for (let round = 0; round < 4; round++) {
    // Several connections at once, large and small answers: the shared buffer and lent ones in turn.
    const batch = [256 * 1024, 700_000, 100, 65_536, 3000, 1_000_000].map((size) => new Keeper(size, seed++));
    for (const k of batch) pool.acquire(k);
    await Promise.all(batch.map((k) => k.done));
    keepers.push(...batch);
  }
  const large = keepers.filter((k) => k.got >= 256 * 1024);
  assert.ok(
    large.every((k) => k.ownReads > 0),
    'every large answer was read (in part) into a buffer of its connection',
  );
  const kept = keepers.flatMap((k) => k.kept);
  assert.ok(kept.length > 0, 'some exchanges ended on a read into their own buffer');
  for (const { view, copy } of kept) assert.ok(view.equals(copy), 'a pinned read was not overwritten by any later read');
  assert.ok(lentReadBuffers() - before <= pool.open, 'buffers are lent only to open connections');
  pool.destroy();
  assert.equal(lentReadBuffers(), before, 'every lent buffer came back');
});
