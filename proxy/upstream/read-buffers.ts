// The memory upstream connections read into (net's `onread`), reused instead of Node's fresh 64 KiB
// allocation per read. Those allocations are what large bodies cost beyond the bytes themselves: each
// read's buffer lives until a garbage collection (external memory pressure brings on full ones, whose
// cost grows with the heap), and glibc trims the freed heap top, so the next reads fault its pages in
// again (256 KiB responses: 25-39 page faults and ~100 µs of system time per response, measured).
//
// One shared buffer serves every connection that reads little at a time; what it delivers is copied
// before it outlives the read (the next read of any connection overwrites it). A connection that reads
// full buffers (a large body) is lent a buffer of its own, whose views are written on without a copy,
// and reads into it again only once those writes have gone out (ReadLease.pin()). Used by the HTTP
// relay's upstream connections (the WebSocket link was measured with it too: no gain, left as it was).

import { connect, type Socket } from 'node:net';

/** What one read may bring (libuv's default suggestion, and Node's). */
export const READ_BUFFER_BYTES = 64 * 1024;
/** A read at least this large: the connection is streaming, and gets a buffer of its own. */
export const LARGE_READ_BYTES = 16 * 1024;
/** Buffers lent at once (then the shared one, with copies): 64 × 64 KiB = 4 MiB at most. */
const MAX_LENT = 64;

const shared: Buffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
let lent = 0;

/** A buffer of the caller's own, or the shared one when MAX_LENT are out. */
function lendReadBuffer(): Buffer {
  if (lent >= MAX_LENT) return shared;
  lent++;
  return Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
}

/**
 * The caller no longer reads into b. It is never lent again but left to the garbage collector: a write
 * may still refer to its contents. (A lent buffer lives as long as its connection, so this is rare.)
 */
function returnReadBuffer(b: Buffer): void {
  if (b !== shared) lent--;
}

/**
 * How one socket reads: into the shared buffer, or into one lent to it while it streams. Its user
 * writes views of an own buffer on without a copy; if they are still queued when the read returns,
 * it pins the buffer and pauses the socket until they are out (so the next read cannot overwrite them).
 */
export class ReadLease {
  private buf = shared;
  private lastRead = 0;
  private pinnedBy: unknown = null;

  /** The n bytes just read into buf (the buffer this lease chose last). */
  view(n: number, buf: Uint8Array): Buffer {
    this.lastRead = n;
    const b = buf as Buffer;
    return n === b.length ? b : b.subarray(0, n);
  }

  /**
   * Whether the latest read went into this socket's own buffer: its views stay valid until the socket
   * reads again. Otherwise they are views of the shared buffer, valid only until this read returns.
   */
  get own(): boolean {
    return this.buf !== shared;
  }

  /** by still writes views of the latest read (own buffer) and has paused the socket. */
  pin(by: unknown): void {
    this.pinnedBy = by;
  }

  /**
   * After each read: chooses the buffer of the next one (see nextReadBuffer). alive: the socket may read
   * again; user: who reads from it now (null: nobody). An own buffer is kept while the socket lives,
   * through small reads too (a kept-alive connection's next head then arrives there, not copied); one
   * pinned by someone other than the user is never read into again.
   */
  afterRead(alive: boolean, user: unknown): void {
    const cur = this.buf;
    const pinnedBy = this.pinnedBy;
    this.pinnedBy = null;
    if (cur !== shared) {
      if (alive && (pinnedBy === null || pinnedBy === user)) {
        chosen = cur;
        return;
      }
      returnReadBuffer(cur);
      this.buf = shared;
    } else if (alive && user !== null && this.lastRead >= LARGE_READ_BYTES) this.buf = lendReadBuffer();
    chosen = this.buf;
  }

  /** The socket is gone: an own buffer goes back (to the garbage collector: a write may still use it). */
  end(): void {
    returnReadBuffer(this.buf);
    this.buf = shared;
  }
}

/**
 * The buffer the socket whose read just returned reads into next. Node calls the onread buffer
 * function right after each callback but without the socket, so afterRead() leaves its choice here.
 */
let chosen: Buffer = shared as Buffer;

/** For net's onread `buffer`: called as a socket is made, then right after every onread callback. */
export function nextReadBuffer(): Buffer {
  const b = chosen;
  chosen = shared;
  return b;
}

/**
 * A TCP connection to an instance (Nagle off) whose reads go through a ReadLease: onRead gets each
 * read (a view from lease.view(), then lease.afterRead() before it returns), never 'data' events.
 */
export function connectLeased(host: string, port: number, onRead: (this: Socket, n: number, buf: Uint8Array) => boolean): Socket {
  return connect({ host, port, noDelay: true, onread: { buffer: nextReadBuffer as () => Uint8Array, callback: onRead } });
}

/** Buffers lent out now (for tests). */
export function lentReadBuffers(): number {
  return lent;
}
