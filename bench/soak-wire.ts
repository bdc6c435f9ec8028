// The soak benchmark's wire: Pluto's MsgPack messages with one extra key, `seq`, numbered per WebSocket
// connection and per direction from 1, so the receiver can tell a lost message (a gap) from a reordered
// or repeated one. Binary payloads (full state, pushes) are slices of one pseudo-random block both ends
// derive from the same seed, so the receiver can check every byte without a checksum.

/** A message's order number as the receiver sees it. */
export type SeqVerdict = 'ok' | 'gap' | 'back';

/** Tracks one direction of one connection at the receiver. */
export class SeqCheck {
  /** Highest sequence number received. */
  last = 0;
  received = 0;
  /** Messages skipped over (sum of gap sizes). */
  lost = 0;
  /** Messages that came with a number at or below one already seen (reordered or repeated). */
  back = 0;

  see(seq: unknown): SeqVerdict {
    this.received++;
    if (typeof seq !== 'number' || !Number.isInteger(seq) || seq <= this.last) {
      this.back++;
      return 'back';
    }
    const gap = seq - this.last - 1;
    this.last = seq;
    if (gap > 0) {
      this.lost += gap;
      return 'gap';
    }
    return 'ok';
  }
}

const BLOCK_BYTES = 512 * 1024;

/** The shared block: xorshift32 from a fixed seed, the same in every process. */
export const BLOCK: Buffer = (() => {
  const b = Buffer.allocUnsafe(BLOCK_BYTES);
  let x = 0x9e3779b9;
  for (let i = 0; i < BLOCK_BYTES; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b.writeUInt32LE(x, i);
  }
  return b;
})();

/** Largest payload a message carries (a full notebook state or a big push). */
export const MAX_PAYLOAD = BLOCK_BYTES / 2;

/** The payload of message `seq` of length `len`: a slice of BLOCK at an offset derived from seq. */
export function payloadFor(seq: number, len: number): Buffer {
  if (len > MAX_PAYLOAD) throw new RangeError(`payload of ${len} bytes: at most ${MAX_PAYLOAD}`);
  const off = (seq * 7919) % (BLOCK_BYTES - len + 1);
  return BLOCK.subarray(off, off + len);
}

/** True when bytes is exactly what payloadFor(seq, bytes.length) gives. */
export function payloadOk(seq: number, bytes: unknown): boolean {
  if (!(bytes instanceof Uint8Array) || bytes.length > MAX_PAYLOAD) return false;
  const want = payloadFor(seq, bytes.length);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).equals(want);
}

/** The client's last message: everything before it must have arrived; the server answers `soak_end_ack`. */
export const END = 'soak_end';
export const END_ACK = 'soak_end_ack';

/** What the server reports about a connection in its `soak_end_ack` (and in its totals). */
export interface ServerSide {
  /** Client messages received, the highest client seq, gaps and backward numbers seen by the server. */
  received: number;
  last: number;
  lost: number;
  back: number;
  /** Server messages sent on this connection, the ack included (the ack's seq). */
  sent: number;
}
