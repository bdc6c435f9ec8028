// Parses an instance's HTTP/1.1 response as it arrives, and frames its body per RFC 9112 §6.3:
// a state machine fed with whatever each read brings, handing body bytes on as views of the input.
// Node exposes no public response parser, and undici's copies every byte into its WASM llhttp.

/** What a parser reports to the exchange that owns it. */
export interface ResponseHandler {
  /**
   * A final head: status, reason, headers, framing are set on the parser. Final means non-1xx, or a
   * 101 answering an upgrade request (the parser then stops: what follows is the new protocol's).
   */
  onHead(p: ResponseParser): void;
  /** Body bytes (a view of the read buffer, de-chunked); `last` when this piece completes a Content-Length body. */
  onBody(chunk: Buffer, last: boolean): void;
  /** The response is complete (for a body read until close: the socket ended). */
  onEnd(): void;
}

/** A response that cannot be relayed faithfully: the instance broke HTTP/1.1. */
export class UpstreamProtocolError extends Error {
  readonly code = 'UPSTREAM_BAD_RESPONSE';
}

export type Framing = 'none' | 'length' | 'chunked' | 'close';

/** Response heads (and trailer sections) above this size are refused: a runaway or hostile instance. */
export const MAX_HEAD_BYTES = 64 * 1024;
const MAX_CHUNK_LINE = 4096;
const MAX_CHUNK_SIZE = 2 ** 48;

const enum S {
  Idle, Head, Length, Close, Upgraded,
  ChunkSize, ChunkSizeWs, ChunkExt, ChunkSizeLf, ChunkData, ChunkDataCr, ChunkDataLf,
  TrailerStart, TrailerLine, TrailerLf, EndLf,
  Done, Dead,
}

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const NO_FIELDS: readonly string[] = [];
const CR = 13;
const LF = 10;

/** tchar of RFC 9110 §5.6.2, by char code. */
const TOKEN = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TOKEN[c.charCodeAt(0)] = 1;

function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 127 || TOKEN[c] === 0) return false;
  }
  return true;
}

/** A field value without its leading and trailing SP/HTAB (not String.trim: 0xA0 is a legal value byte). */
function trimOws(s: string, from: number): string {
  let a = from;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 32 || s.charCodeAt(a) === 9)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 32 || s.charCodeAt(b - 1) === 9)) b--;
  return s.slice(a, b);
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Content-Length: one number, or a list / repeated lines all naming the same number (RFC 9110 §8.6). */
function contentLength(v: string | string[]): number {
  if (typeof v === 'string' && v.length <= 15) {
    let n = 0;
    for (let i = 0; i < v.length; i++) {
      const d = v.charCodeAt(i) - 48;
      if (d < 0 || d > 9) return contentLengthList(v);
      n = n * 10 + d;
    }
    if (v.length > 0) return n;
  }
  return contentLengthList(typeof v === 'string' ? v : v.join(','));
}

function contentLengthList(all: string): number {
  let n = -1;
  for (const part of all.split(',')) {
    const p = trimOws(part, 0);
    if (!/^\d{1,15}$/.test(p)) throw new UpstreamProtocolError(`invalid Content-Length ${JSON.stringify(all)}`);
    const x = Number(p);
    if (n >= 0 && x !== n) throw new UpstreamProtocolError(`differing Content-Length values ${JSON.stringify(all)}`);
    n = x;
  }
  return n;
}

/** Whether a header (one value or repeated lines) lists token (lower-case), as Connection and Upgrade do. */
export function hasToken(v: string | string[] | undefined, token: string): boolean {
  if (v === undefined) return false;
  if (typeof v === 'string') return listHas(v, token);
  for (const one of v) if (listHas(one, token)) return true;
  return false;
}

/** Whether a comma-separated list names token; the usual single value without splitting. */
function listHas(one: string, token: string): boolean {
  if (one.indexOf(',') < 0) return one.length >= token.length && trimOws(one, 0).toLowerCase() === token;
  for (const t of one.split(',')) if (trimOws(t, 0).toLowerCase() === token) return true;
  return false;
}

/**
 * One parser per upstream connection, restarted for each request. Body pieces are views of the
 * buffers passed to execute(): the caller must not reuse those buffers (socket 'data' chunks are fresh).
 */
export class ResponseParser {
  handler: ResponseHandler | null = null;
  // The final head, valid from onHead on.
  status = 0;
  reason = '';
  /** HTTP minor version of the response: 0 or 1. */
  minor = 1;
  /** Lower-case names; a string for a header seen once, an array when repeated (as undici gave, as downstreamHeaders takes). */
  headers: Record<string, string | string[]> = {};
  framing: Framing = 'none';
  /** Whether the connection may carry another exchange once this response is complete. */
  keepAlive = true;
  /**
   * For an upgrade request only: the final head's fields as [name, value, ...], names as the
   * instance wrote them, in its order (a 101 is relayed as written: subprotocol, extensions).
   */
  rawHeaders: readonly string[] = NO_FIELDS;

  private state = S.Idle;
  private headOnly = false;
  private upgrade = false;
  private partial: Buffer | null = null;
  /** Content-Length bytes, or the current chunk's bytes, still to come. */
  private remaining = 0;
  /** Bytes of the current chunk-size line or trailer section. */
  private lineBytes = 0;
  private sawDigit = false;

  /**
   * Expects a new response, to a HEAD request if headOnly (no body whatever the headers say), to an
   * upgrade request (a WebSocket handshake) if upgrade: a 101 then ends the parse (see execute()).
   */
  start(handler: ResponseHandler, headOnly: boolean, upgrade = false): void {
    this.handler = handler;
    this.headOnly = headOnly;
    this.upgrade = upgrade;
    this.state = S.Head;
    this.partial = null;
    this.keepAlive = true;
  }

  /** Stops delivering anything (the exchange was torn down). */
  stop(): void {
    this.state = S.Dead;
    this.handler = null;
    this.partial = null;
  }

  /** Waiting for (more of) a response head. */
  get inHead(): boolean {
    return this.state === S.Head;
  }

  get complete(): boolean {
    return this.state === S.Done;
  }

  /** A 101 answered the upgrade request: the connection now speaks the new protocol. */
  get upgraded(): boolean {
    return this.state === S.Upgraded;
  }

  /**
   * Consumes one read and returns how much of it was HTTP: all of it, except once a 101 answered an
   * upgrade request, when buf from the returned offset on is the new protocol's first bytes. Throws
   * UpstreamProtocolError for a response that breaks HTTP/1.1 (and lets the handler's own exceptions
   * through). Bytes after a complete response make the connection unusable.
   */
  execute(buf: Buffer): number {
    const len = buf.length;
    let i = 0;
    while (i < len) {
      switch (this.state) {
        case S.Head:
          i = this.head(buf, i);
          // A response without a body is complete with its head.
          if ((this.state as S) === S.Done) this.finishMessage(i < len);
          break;
        case S.Upgraded:
          return i;
        case S.Length: {
          const n = Math.min(this.remaining, len - i);
          this.remaining -= n;
          const last = this.remaining === 0;
          if (last) this.state = S.Done;
          this.handler!.onBody(n === len ? buf : buf.subarray(i, i + n), last);
          i += n;
          if (last && this.state === S.Done) this.finishMessage(i < len);
          break;
        }
        case S.Close:
          this.handler!.onBody(i === 0 ? buf : buf.subarray(i), false);
          return len;
        case S.ChunkData: {
          const n = Math.min(this.remaining, len - i);
          this.remaining -= n;
          if (this.remaining === 0) this.state = S.ChunkDataCr;
          this.handler!.onBody(buf.subarray(i, i + n), false);
          i += n;
          break;
        }
        case S.Done:
        case S.Idle:
          // Bytes nobody asked for (after a response, or on an idle connection): this connection is done.
          this.keepAlive = false;
          return len;
        case S.Dead:
          return len;
        default:
          i = this.chunkFraming(buf, i);
      }
    }
    return len;
  }

  /**
   * The socket ended. Returns true if that completes the response (a body read until close);
   * false if the response was cut short or never began (the caller decides which).
   */
  finish(): boolean {
    if (this.state !== S.Close) return false;
    this.state = S.Done;
    this.keepAlive = false;
    this.handler?.onEnd();
    return true;
  }

  private finishMessage(more: boolean): void {
    this.state = S.Done;
    if (more) this.keepAlive = false;
    this.handler?.onEnd();
  }

  /** Finds the end of the head (possibly across reads), parses it, returns the offset after it. */
  private head(buf: Buffer, i: number): number {
    let data = buf;
    let start = i;
    let from = i;
    const prior = this.partial;
    if (prior) {
      data = Buffer.concat([prior, i === 0 ? buf : buf.subarray(i)]);
      start = 0;
      from = Math.max(0, prior.length - 3);
    }
    const end = data.indexOf(CRLFCRLF, from);
    if (end < 0) {
      if (data.length - start > MAX_HEAD_BYTES) throw new UpstreamProtocolError(`response head larger than ${MAX_HEAD_BYTES} bytes`);
      // A head using bare LF line ends would never match CRLFCRLF: refuse it now, not at 64 KiB.
      const lf = data.indexOf(LF, from);
      if (lf >= 0) this.checkLineEnds(data.toString('latin1', start), 0);
      this.partial = start === 0 && data !== buf ? data : Buffer.from(data.subarray(start));
      return buf.length;
    }
    if (end + 4 - start > MAX_HEAD_BYTES) throw new UpstreamProtocolError(`response head larger than ${MAX_HEAD_BYTES} bytes`);
    this.partial = null;
    const consumed = prior ? i + (end + 4 - prior.length) : end + 4;
    this.parseHead(data.toString('latin1', start, end));
    return consumed;
  }

  private checkLineEnds(s: string, from: number): void {
    for (let k = s.indexOf('\n', from); k >= 0; k = s.indexOf('\n', k + 1)) {
      if (k === 0 || s.charCodeAt(k - 1) !== CR) throw new UpstreamProtocolError('bare LF in the response head');
    }
  }

  private parseHead(s: string): void {
    let eol = s.indexOf('\r\n');
    if (eol < 0) eol = s.length;
    this.statusLine(s, eol);
    const headers: Record<string, string | string[]> = {};
    const raw: string[] | null = this.upgrade ? [] : null;
    let pos = eol + 2;
    while (pos < s.length) {
      let next = s.indexOf('\r\n', pos);
      if (next < 0) next = s.length;
      const c0 = s.charCodeAt(pos);
      if (c0 === 32 || c0 === 9) throw new UpstreamProtocolError('obsolete line folding in the response head');
      const colon = s.indexOf(':', pos);
      if (colon < 0 || colon > next) throw new UpstreamProtocolError(`header line without a colon: ${JSON.stringify(s.slice(pos, Math.min(next, pos + 80)))}`);
      const rawName = s.slice(pos, colon);
      if (!isToken(rawName)) throw new UpstreamProtocolError(`invalid header name ${JSON.stringify(rawName.slice(0, 80))}`);
      const line = s.slice(colon + 1, next);
      if (line.indexOf('\n') >= 0 || line.indexOf('\r') >= 0) throw new UpstreamProtocolError('bare CR or LF in the response head');
      const name = rawName.toLowerCase();
      const value = trimOws(line, 0);
      raw?.push(rawName, value);
      const had = headers[name];
      if (had === undefined) {
        if (name !== '__proto__') headers[name] = value;
      } else if (typeof had === 'string') headers[name] = [had, value];
      else had.push(value);
      pos = next + 2;
    }
    if (this.status === 101 && this.upgrade) {
      // The protocol switched: no body, no further HTTP on this connection.
      this.headers = headers;
      this.rawHeaders = raw!;
      this.framing = 'none';
      this.keepAlive = false;
      this.state = S.Upgraded;
      this.handler!.onHead(this);
      return;
    }
    if (this.status < 200) {
      // Interim (100 Continue, 103 Early Hints): skipped, the final response follows. Node's server
      // has already answered the visitor's Expect itself.
      if (this.status === 101) throw new UpstreamProtocolError('101 Switching Protocols to a request that asked for no upgrade');
      return;
    }
    this.headers = headers;
    if (raw) this.rawHeaders = raw;
    this.frame(headers);
    if (this.framing === 'none') this.state = S.Done;
    this.handler!.onHead(this);
  }

  private statusLine(s: string, eol: number): void {
    // HTTP-version SP 3DIGIT SP [reason]; HTTP/1.0 and 1.1 only (the request said HTTP/1.1).
    if (eol < 12 || !s.startsWith('HTTP/1.') || s.charCodeAt(8) !== 32) throw new UpstreamProtocolError(`malformed status line ${JSON.stringify(s.slice(0, Math.min(eol, 80)))}`);
    const m = s.charCodeAt(7) - 48;
    const d0 = s.charCodeAt(9) - 48;
    const d1 = s.charCodeAt(10) - 48;
    const d2 = s.charCodeAt(11) - 48;
    if ((m !== 0 && m !== 1) || d0 < 1 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9 || (eol > 12 && s.charCodeAt(12) !== 32)) {
      throw new UpstreamProtocolError(`malformed status line ${JSON.stringify(s.slice(0, Math.min(eol, 80)))}`);
    }
    this.minor = m;
    this.status = d0 * 100 + d1 * 10 + d2;
    this.reason = eol > 13 ? s.slice(13, eol) : '';
    if (this.reason.indexOf('\n') >= 0 || this.reason.indexOf('\r') >= 0) throw new UpstreamProtocolError('bare CR or LF in the status line');
  }

  /** RFC 9112 §6.3, in its order. */
  private frame(h: Record<string, string | string[]>): void {
    const conn = h['connection'];
    this.keepAlive = this.minor === 1 ? !hasToken(conn, 'close') : hasToken(conn, 'keep-alive') && !hasToken(conn, 'close');
    const te = h['transfer-encoding'];
    const cl = h['content-length'];
    if (this.headOnly || this.status === 204 || this.status === 304) {
      this.framing = 'none';
      if (cl !== undefined && typeof cl !== 'string') h['content-length'] = cl[0]!; // describes the body not sent
      return;
    }
    if (te !== undefined) {
      // Content-Length beside Transfer-Encoding is ignored, and the connection not trusted further.
      if (cl !== undefined) {
        delete h['content-length'];
        this.keepAlive = false;
      }
      if (this.minor === 0) this.keepAlive = false;
      const all = typeof te === 'string' ? te : te.join(',');
      const codings = all.split(',');
      if (trimOws(codings[codings.length - 1]!, 0).toLowerCase() === 'chunked') {
        this.framing = 'chunked';
        this.state = S.ChunkSize;
        this.remaining = 0;
        this.lineBytes = 0;
        this.sawDigit = false;
      } else {
        this.framing = 'close';
        this.state = S.Close;
        this.keepAlive = false;
      }
      return;
    }
    if (cl !== undefined) {
      const n = contentLength(cl);
      if (typeof cl !== 'string') h['content-length'] = String(n);
      else if (cl.length !== String(n).length) h['content-length'] = String(n); // "5, 5" → "5"
      if (n === 0) {
        this.framing = 'none';
        return;
      }
      this.framing = 'length';
      this.state = S.Length;
      this.remaining = n;
      return;
    }
    this.framing = 'close';
    this.state = S.Close;
    this.keepAlive = false;
  }

  /** Chunk-size lines, the CRLF after each chunk, trailers: byte by byte (a few bytes per chunk). */
  private chunkFraming(buf: Buffer, i: number): number {
    const len = buf.length;
    while (i < len) {
      const c = buf[i]!;
      switch (this.state) {
        case S.ChunkSize: {
          const v = hexValue(c);
          if (v >= 0) {
            this.remaining = this.remaining * 16 + v;
            this.sawDigit = true;
            if (this.remaining > MAX_CHUNK_SIZE) throw new UpstreamProtocolError('chunk size too large');
          } else if (!this.sawDigit) {
            throw new UpstreamProtocolError('chunk size missing');
          } else if (c === CR) this.state = S.ChunkSizeLf;
          else if (c === 59 /* ; */) this.state = S.ChunkExt;
          else if (c === 32 || c === 9) this.state = S.ChunkSizeWs;
          else throw new UpstreamProtocolError('invalid chunk size');
          break;
        }
        case S.ChunkSizeWs:
          if (c === CR) this.state = S.ChunkSizeLf;
          else if (c === 59) this.state = S.ChunkExt;
          else if (c !== 32 && c !== 9) throw new UpstreamProtocolError('invalid chunk size');
          break;
        case S.ChunkExt:
          // Chunk extensions are ignored (RFC 9112 §7.1.1), but not bare line ends in them.
          if (c === CR) this.state = S.ChunkSizeLf;
          else if (c === LF) throw new UpstreamProtocolError('bare LF in a chunk extension');
          break;
        case S.ChunkSizeLf:
          if (c !== LF) throw new UpstreamProtocolError('chunk size line not ended by CRLF');
          this.lineBytes = 0;
          this.sawDigit = false;
          if (this.remaining === 0) {
            this.state = S.TrailerStart;
          } else {
            this.state = S.ChunkData;
            return i + 1;
          }
          break;
        case S.ChunkDataCr:
          if (c !== CR) throw new UpstreamProtocolError('chunk data not followed by CRLF');
          this.state = S.ChunkDataLf;
          break;
        case S.ChunkDataLf:
          if (c !== LF) throw new UpstreamProtocolError('chunk data not followed by CRLF');
          this.state = S.ChunkSize;
          this.lineBytes = 0;
          break;
        case S.TrailerStart:
          if (c === CR) this.state = S.EndLf;
          else if (c === LF) throw new UpstreamProtocolError('bare LF in the trailer section');
          else this.state = S.TrailerLine;
          break;
        case S.TrailerLine:
          // Trailer fields are consumed, not forwarded.
          if (c === CR) this.state = S.TrailerLf;
          else if (c === LF) throw new UpstreamProtocolError('bare LF in the trailer section');
          break;
        case S.TrailerLf:
          if (c !== LF) throw new UpstreamProtocolError('trailer line not ended by CRLF');
          this.state = S.TrailerStart;
          break;
        case S.EndLf:
          if (c !== LF) throw new UpstreamProtocolError('chunked body not ended by CRLF');
          this.finishMessage(i + 1 < len);
          return len;
        default:
          return i;
      }
      i++;
      if (++this.lineBytes > (this.state >= S.TrailerStart ? MAX_HEAD_BYTES : MAX_CHUNK_LINE)) {
        throw new UpstreamProtocolError('chunk size line or trailer section too long');
      }
    }
    return i;
  }
}
