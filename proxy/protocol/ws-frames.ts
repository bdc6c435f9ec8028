// FrameTap: an incremental RFC 6455 frame parser for ONE direction of a relayed WebSocket.
// It watches bytes already forwarded, reports control frames and whole messages, and never throws.

/** Callbacks and limits for one tap. Callbacks are set once; the tap allocates nothing per event beyond the captured payload. */
export interface FrameTapOptions {
  /** Messages up to this many bytes are reassembled (and unmasked) and handed to onMessage; larger ones are only counted. Default 64 KiB; 0 captures nothing but empty messages. */
  captureLimit?: number;
  /**
   * Longer messages hand over their first captureLimit bytes instead of nothing (payload.length <
   * totalLength then). A classifier needs a message's type, which comes first; unmasking a 64 KiB
   * message whole to read it cost more than the relay's own work on it.
   */
  prefix?: boolean;
  /** true: every frame must be masked (client to server); false: none may be (server to client); undefined: either. A mismatch desyncs the tap. */
  requireMask?: boolean;
  /** A ping (0x9), pong (0xA) or close (0x8) frame, with its payload length. */
  onControl?: (opcode: number, length: number) => void;
  /** A whole message (opcode 1 text, 2 binary). payload is undefined when compressed or longer than captureLimit (with `prefix`: its first captureLimit bytes). */
  onMessage?: (opcode: number, totalLength: number, payload: Buffer | undefined, compressed: boolean) => void;
  /** The stream stopped making sense; the tap has stopped parsing for good. Called at most once. */
  onDesync?: (reason: string) => void;
}

export const DEFAULT_CAPTURE_LIMIT = 64 * 1024;

const EMPTY = Buffer.alloc(0);
const noop = (): void => {};

// Parser states.
const HEADER = 0;
const PAYLOAD = 1;
const CLOSED = 2; // after a close frame: nothing more is legal, so the rest is ignored quietly
const DESYNCED = 3;

// Payload runs at least this long are unmasked by words (below it the one-pass bytewise copy is faster).
const WORD_UNMASK_MIN = 256;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

// 2^53 / 2^32: a 64-bit length whose high word reaches this cannot be held exactly in a number.
const MAX_HIGH_WORD = 0x200000;

/**
 * Feed it every chunk of one direction, in order, after the chunk has been written onward.
 * It never mutates a chunk (the socket may still be flushing it); masked payloads are unmasked into the capture buffer only.
 */
export class FrameTap {
  readonly captureLimit: number;
  private readonly prefix: boolean;
  /** Frames seen, for the proxy's counters (read them when convenient: no callback per frame). */
  dataFrames = 0;
  controlFrames = 0;
  messages = 0;

  private readonly requireMask: boolean | undefined;
  private readonly onControl: (opcode: number, length: number) => void;
  private readonly onMessage: (opcode: number, totalLength: number, payload: Buffer | undefined, compressed: boolean) => void;
  private readonly onDesync: (reason: string) => void;

  private state = HEADER;
  private reason: string | undefined;

  // Header being collected (at most 2 + 8 + 4 bytes), reused for every frame.
  private readonly hdr = new Uint8Array(14);
  private hdrHave = 0;
  private hdrNeed = 2;

  // Current frame.
  private fin = false;
  private opcode = 0;
  private masked = false;
  // The frame's masking key as four numbers (no typed array per tap: a relayed socket lives for an hour).
  private mask0 = 0;
  private mask1 = 0;
  private mask2 = 0;
  private mask3 = 0;
  private frameLen = 0;
  private framePos = 0;

  // Current message (data frames from the first one to the one with FIN).
  private inMessage = false;
  private msgOpcode = 0;
  private msgCompressed = false;
  private msgLen = 0;
  private capture: Buffer | undefined; // undefined: not capturing this message
  private captureLen = 0;

  constructor(opts: FrameTapOptions = {}) {
    const limit = opts.captureLimit ?? DEFAULT_CAPTURE_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw new RangeError(`FrameTap: captureLimit must be a non-negative integer, got ${String(opts.captureLimit)}`);
    }
    this.captureLimit = limit;
    this.prefix = opts.prefix === true && limit > 0;
    this.requireMask = opts.requireMask;
    this.onControl = opts.onControl ?? noop;
    this.onMessage = opts.onMessage ?? noop;
    this.onDesync = opts.onDesync ?? noop;
  }

  /** True once the tap has given up on this stream. */
  get desynced(): boolean {
    return this.state === DESYNCED;
  }

  /** Why the tap desynced, if it did. */
  get desyncReason(): string | undefined {
    return this.reason;
  }

  /** Parses one chunk. Never throws, whatever the bytes or the callbacks do. */
  push(chunk: Buffer): void {
    if (this.state >= CLOSED) return;
    try {
      this.parse(chunk);
    } catch (e) {
      // Only a throwing callback can get here: stop parsing rather than disturb the relay.
      this.desync(`callback threw: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private parse(chunk: Buffer): void {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.state === HEADER) {
        // Copy header bytes until the whole header is in; its length is known after byte 2 (and grows at most once).
        const hdr = this.hdr;
        while (this.hdrHave < this.hdrNeed && i < n) hdr[this.hdrHave++] = chunk[i++];
        if (this.hdrHave < this.hdrNeed) return;
        if (this.hdrNeed === 2) {
          const len7 = hdr[1] & 0x7f;
          const need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (hdr[1] & 0x80 ? 4 : 0);
          if (need > 2) {
            this.hdrNeed = need;
            continue;
          }
        }
        if (!this.startFrame()) return;
        if (this.frameLen === 0 && !this.endFrame()) return;
        continue;
      }
      if (this.state !== PAYLOAD) return; // CLOSED or DESYNCED by a frame end or a callback
      // Payload: skip it, or copy (and unmask) it into the capture buffer.
      const take = Math.min(this.frameLen - this.framePos, n - i);
      if (this.capture !== undefined && this.opcode < 8 && this.captureLen < this.captureLimit) this.copyOut(chunk, i, take);
      this.framePos += take;
      i += take;
      if (this.framePos === this.frameLen && !this.endFrame()) return;
    }
  }

  /** Validates the collected header and sets up the frame. Returns false when the tap desynced. */
  private startFrame(): boolean {
    const hdr = this.hdr;
    const b0 = hdr[0];
    const b1 = hdr[1];
    const fin = (b0 & 0x80) !== 0;
    const rsv1 = (b0 & 0x40) !== 0;
    const opcode = b0 & 0x0f;
    const masked = (b1 & 0x80) !== 0;
    const len7 = b1 & 0x7f;

    if (b0 & 0x30) return this.desync('RSV2 or RSV3 set');
    if (this.requireMask !== undefined && masked !== this.requireMask) {
      return this.desync(this.requireMask ? 'unmasked frame where masking is required' : 'masked frame where none is allowed');
    }

    let len: number;
    let p = 2;
    if (len7 === 126) {
      len = (hdr[2] << 8) | hdr[3];
      p = 4;
    } else if (len7 === 127) {
      const hi = ((hdr[2] << 24) | (hdr[3] << 16) | (hdr[4] << 8) | hdr[5]) >>> 0;
      const lo = ((hdr[6] << 24) | (hdr[7] << 16) | (hdr[8] << 8) | hdr[9]) >>> 0;
      if (hi >= MAX_HIGH_WORD) return this.desync('64-bit payload length beyond 2^53');
      len = hi * 0x100000000 + lo;
      p = 10;
    } else {
      len = len7;
    }

    if (opcode >= 8) {
      if (opcode > 0xa) return this.desync(`reserved control opcode 0x${opcode.toString(16)}`);
      if (!fin) return this.desync('fragmented control frame');
      if (len > 125) return this.desync('control frame payload over 125 bytes');
      if (rsv1) return this.desync('RSV1 on a control frame');
    } else if (opcode === 0) {
      if (!this.inMessage) return this.desync('continuation frame without a message to continue');
      if (rsv1) return this.desync('RSV1 on a continuation frame');
    } else if (opcode === 1 || opcode === 2) {
      if (this.inMessage) return this.desync('new data frame before the previous message ended');
      this.inMessage = true;
      this.msgOpcode = opcode;
      this.msgCompressed = rsv1;
      this.msgLen = 0;
      this.captureLen = 0;
      // Capture only what can be decoded and fits. A single-frame message gets an exact buffer; a fragmented one grows.
      if (rsv1 || (len > this.captureLimit && !this.prefix)) this.capture = undefined;
      else if (len === 0) this.capture = EMPTY;
      else if (len > this.captureLimit) this.capture = Buffer.allocUnsafe(this.captureLimit);
      else this.capture = Buffer.allocUnsafe(fin ? len : Math.min(this.captureLimit, Math.max(len, 256)));
    } else {
      return this.desync(`reserved data opcode 0x${opcode.toString(16)}`);
    }

    if (masked) {
      this.mask0 = hdr[p];
      this.mask1 = hdr[p + 1];
      this.mask2 = hdr[p + 2];
      this.mask3 = hdr[p + 3];
    }
    this.fin = fin;
    this.opcode = opcode;
    this.masked = masked;
    this.frameLen = len;
    this.framePos = 0;
    this.hdrHave = 0;
    this.hdrNeed = 2;
    if (opcode < 8) {
      this.dataFrames++;
      this.msgLen += len;
      if (this.capture !== undefined && this.captureLen + len > this.captureLimit && !this.prefix) this.capture = undefined;
    } else {
      this.controlFrames++;
    }
    this.state = PAYLOAD;
    return true;
  }

  /** Appends payload bytes of a data frame to the capture buffer, unmasking them on the way. */
  private copyOut(chunk: Buffer, from: number, count: number): void {
    let buf = this.capture as Buffer;
    const at = this.captureLen;
    // A prefix capture stops at the limit (startFrame checked it otherwise).
    if (at + count > this.captureLimit) count = this.captureLimit - at;
    if (at + count > buf.length) {
      // Fragmented message outgrew its buffer; the limit was checked in startFrame, so this stays <= captureLimit.
      const grown = Buffer.allocUnsafe(Math.min(this.captureLimit, Math.max(buf.length * 2, at + (this.frameLen - this.framePos))));
      buf.copy(grown, 0, 0, at);
      buf = this.capture = grown;
    }
    const end = at + count;
    if (!this.masked) {
      chunk.copy(buf, at, from, from + count);
    } else if (count >= WORD_UNMASK_MIN) {
      // Long runs: memcpy, then unmask in place a 32-bit word at a time (64 KiB: about 4x faster than bytewise).
      chunk.copy(buf, at, from, from + count);
      this.unmaskInPlace(buf, at, end);
    } else {
      // Copy and unmask in one pass, four bytes a step (about 3x faster than copy-then-xor on 100-byte messages).
      // The mask index follows the position within the frame, not the chunk.
      const m = this.framePos;
      const k0 = this.maskAt(m);
      const k1 = this.maskAt(m + 1);
      const k2 = this.maskAt(m + 2);
      const k3 = this.maskAt(m + 3);
      let j = at;
      let s = from;
      for (const end4 = end - 3; j < end4; j += 4, s += 4) {
        buf[j] = chunk[s] ^ k0;
        buf[j + 1] = chunk[s + 1] ^ k1;
        buf[j + 2] = chunk[s + 2] ^ k2;
        buf[j + 3] = chunk[s + 3] ^ k3;
      }
      if (j < end) buf[j++] = chunk[s++] ^ k0;
      if (j < end) buf[j++] = chunk[s++] ^ k1;
      if (j < end) buf[j] = chunk[s] ^ k2;
    }
    this.captureLen = end;
  }

  /** The mask byte for payload position pos of the current frame. */
  private maskAt(pos: number): number {
    switch (pos & 3) {
      case 0:
        return this.mask0;
      case 1:
        return this.mask1;
      case 2:
        return this.mask2;
      default:
        return this.mask3;
    }
  }

  /** XORs buf[from, end) with the mask, the bytes being payload positions framePos onwards. */
  private unmaskInPlace(buf: Buffer, from: number, end: number): void {
    let j = from;
    let pos = this.framePos;
    // Bytewise up to a 4-byte aligned address, words in the middle, bytewise for the tail.
    while (j < end && ((buf.byteOffset + j) & 3) !== 0) buf[j++] ^= this.maskAt(pos++);
    const words = LITTLE_ENDIAN ? (end - j) >>> 2 : 0;
    if (words > 0) {
      const w = new Uint32Array(buf.buffer, buf.byteOffset + j, words);
      const key = this.maskAt(pos) | (this.maskAt(pos + 1) << 8) | (this.maskAt(pos + 2) << 16) | (this.maskAt(pos + 3) << 24);
      for (let i = 0; i < words; i++) w[i] ^= key;
      j += words * 4;
      pos += words * 4;
    }
    while (j < end) buf[j++] ^= this.maskAt(pos++);
  }

  /** The current frame's payload is complete. Returns false when the tap stopped (close, desync). */
  private endFrame(): boolean {
    const opcode = this.opcode;
    this.state = HEADER;
    if (opcode >= 8) {
      if (opcode === 8) this.state = CLOSED;
      this.onControl(opcode, this.frameLen);
      return this.state === HEADER;
    }
    if (!this.fin) return true;
    const cap = this.capture;
    const payload = cap === undefined ? undefined : cap.length === this.captureLen ? cap : cap.subarray(0, this.captureLen);
    this.inMessage = false;
    this.capture = undefined;
    this.messages++;
    this.onMessage(this.msgOpcode, this.msgLen, payload, this.msgCompressed);
    return this.state === HEADER;
  }

  private desync(reason: string): false {
    if (this.state === DESYNCED) return false;
    this.state = DESYNCED;
    this.reason = reason;
    this.capture = undefined;
    try {
      this.onDesync(reason);
    } catch {
      // A failing observer must not reach the relay.
    }
    return false;
  }
}
