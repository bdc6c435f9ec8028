// The memory upstream connections read into (net's `onread`), reused instead of Node's fresh 64 KiB
// allocation per read. Those allocations are what large bodies cost beyond the bytes themselves: each
// read's buffer lives until a garbage collection (external memory pressure brings on full ones, whose
// cost grows with the heap), and glibc trims the freed heap top, so the next reads fault its pages in
// again (256 KiB responses: 25-39 page faults and ~100 µs of system time per response, measured).
//
// One shared buffer serves every connection that reads little at a time; what it delivers is copied
// before it outlives the read (the next read of any connection overwrites it). A connection that reads
// full buffers (a large body) is lent a buffer of its own, whose views are written on without a copy,
// and reads into it again only once those writes have gone out (see UpstreamConn.pin()).

/** What one read may bring (libuv's default suggestion, and Node's). */
export const READ_BUFFER_BYTES = 64 * 1024;
/** A read at least this large: the connection is streaming, and gets a buffer of its own. */
export const LARGE_READ_BYTES = 16 * 1024;
/** Buffers lent at once (then the shared one, with copies): 64 × 64 KiB = 4 MiB at most. */
const MAX_LENT = 64;
/** Returned buffers kept for the next lending. */
const MAX_SPARES = 16;

const shared = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
const spares: Buffer[] = [];
let lent = 0;

/** The buffer whose contents the next read of any connection may overwrite. */
export function sharedReadBuffer(): Buffer {
  return shared;
}

/** A buffer of the caller's own, or the shared one when MAX_LENT are out. */
export function lendReadBuffer(): Buffer {
  if (lent >= MAX_LENT) return shared;
  lent++;
  return spares.pop() ?? Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
}

/**
 * The caller no longer reads into b. reusable: nothing refers to its contents any more (else it is
 * left to the garbage collector, once the writes that still refer to it are done).
 */
export function returnReadBuffer(b: Buffer, reusable: boolean): void {
  if (b === shared) return;
  lent--;
  if (reusable && spares.length < MAX_SPARES) spares.push(b);
}

/** Buffers lent out now (for tests). */
export function lentReadBuffers(): number {
  return lent;
}
