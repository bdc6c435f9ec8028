// Parsers for the Docker Engine's streaming answers, each a small state machine fed chunk by chunk:
// lines (the events stream is JSON lines) and the multiplexed stdout/stderr stream of non-TTY logs.
// Chunk boundaries fall anywhere: mid-line, mid-character, mid-header. Tested with literal bytes.

import { StringDecoder } from 'node:string_decoder';

/** A line longer than this is cut (a runaway writer must not grow memory). */
export const MAX_LINE = 64 * 1024;

/** Splits a byte stream into lines (\n or \r\n), decoding UTF-8 across chunk boundaries. */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private rest = '';

  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: Buffer | string): void {
    const text = this.rest + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
    const parts = text.split('\n');
    this.rest = parts.pop()!;
    for (const p of parts) this.onLine(p.endsWith('\r') ? p.slice(0, -1) : p);
    if (this.rest.length > MAX_LINE) {
      this.onLine(this.rest);
      this.rest = '';
    }
  }

  /** Emits what is left after the last newline (call once, at the end of the stream). */
  flush(): void {
    const last = this.rest + this.decoder.end();
    this.rest = '';
    if (last) this.onLine(last.endsWith('\r') ? last.slice(0, -1) : last);
  }
}

/** 1 = stdout, 2 = stderr (0 = stdin, never sent by logs). */
export type StreamId = 0 | 1 | 2;

/**
 * Docker's multiplexed stream (non-TTY logs and attach): frames of an 8-byte header
 * [stream, 0, 0, 0, size as uint32 big-endian] then `size` bytes of payload. A payload is handed
 * on as it arrives (a large frame may come in several pieces), never copied into one buffer.
 *
 * If the first bytes are not a valid header, the stream is taken to be raw (a TTY container, or an
 * engine that does not multiplex): everything is passed on as stdout from then on.
 */
export class Demuxer {
  private readonly header = Buffer.alloc(8);
  private headerLen = 0;
  /** Payload bytes still to come for the current frame. */
  private left = 0;
  private stream: StreamId = 1;
  private raw = false;

  constructor(
    private readonly onData: (stream: StreamId, data: Buffer) => void,
    opts: { raw?: boolean } = {},
  ) {
    this.raw = opts.raw === true;
  }

  push(chunk: Buffer): void {
    if (this.raw) {
      if (chunk.length > 0) this.onData(1, chunk);
      return;
    }
    let i = 0;
    while (i < chunk.length) {
      if (this.left > 0) {
        const n = Math.min(this.left, chunk.length - i);
        this.onData(this.stream, chunk.subarray(i, i + n));
        this.left -= n;
        i += n;
        continue;
      }
      const n = Math.min(8 - this.headerLen, chunk.length - i);
      chunk.copy(this.header, this.headerLen, i, i + n);
      this.headerLen += n;
      i += n;
      // Not a header: before the first frame, a raw (TTY) stream; later, the framing is lost.
      // Either way the rest is passed on as it is rather than sizes guessed.
      if (!this.plausible()) return this.goRaw(chunk.subarray(i));
      if (this.headerLen < 8) continue;
      this.stream = this.header[0] as StreamId;
      this.left = this.header.readUInt32BE(4);
      this.headerLen = 0;
    }
  }

  /** The header bytes seen so far could start a frame. */
  private plausible(): boolean {
    const h = this.header;
    if (this.headerLen >= 1 && h[0]! > 2) return false;
    for (let k = 1; k < Math.min(this.headerLen, 4); k++) if (h[k] !== 0) return false;
    return true;
  }

  private goRaw(rest: Buffer): void {
    this.raw = true;
    const held = Buffer.from(this.header.subarray(0, this.headerLen));
    this.headerLen = 0;
    if (held.length > 0) this.onData(1, held);
    if (rest.length > 0) this.onData(1, rest);
  }
}

/** A whole multiplexed buffer (logs without follow) as text, both streams in the order written. */
export function demuxToString(buf: Buffer): string {
  const parts: Buffer[] = [];
  new Demuxer((_s, data) => parts.push(data)).push(buf);
  return Buffer.concat(parts).toString('utf8');
}
