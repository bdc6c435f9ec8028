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

/**
 * Response heads (and trailer sections) above this size are refused: a runaway or hostile instance.
 * A limit, not a parse rule: Node's own client stops at 16 KiB (--max-http-header-size).
 */
export const MAX_HEAD_BYTES = 64 * 1024;
const MAX_CHUNK_LINE = 4096;
const MAX_CHUNK_SIZE = 2 ** 48;

// What is refused, and why (checked against llhttp 9 in Node 20, lenient flags off, by
// test/http1-response-differential.test.ts). Everything llhttp refuses is refused here too, and so is
// everything Node's writeHead would throw on (the status, reason and fields are relayed through it).
// Refused here although llhttp accepts it, on purpose:
// - a status below 100 (writeHead throws), a version other than HTTP/1.0 and 1.1, CRLFs before a status line;
// - a reason phrase with a control byte (llhttp takes any byte but CR and LF; writeHead throws);
// - Content-Length above 2^53 - 1, a chunk size above 2^48, chunk-size lines over 4 KiB;
// - a Transfer-Encoding that is not a plain list of codings (empty elements, parameters, HTAB: llhttp's
//   reading of "chunked\t" differs from OWS trimming), or chunked other than once and last;
// - an empty chunk-extension name or value (llhttp takes `;="x"` and `;a=;b`);
// - an interim (1xx) response from HTTP/1.0 or naming close in Connection (llhttp refuses what follows).

const enum S {
  Idle,
  Head,
  Length,
  Close,
  Upgraded,
  ChunkSizeStart,
  ChunkSize,
  ExtNameStart,
  ExtName,
  ExtValueStart,
  ExtToken,
  ExtQuoted,
  ExtQuotedPair,
  ExtQuotedEnd,
  ChunkSizeLf,
  ChunkData,
  ChunkDataCr,
  ChunkDataLf,
  // Trailer states last: lineBytes counts against MAX_HEAD_BYTES from TrailerStart on.
  TrailerStart,
  TrailerName,
  TrailerValue,
  TrailerLf,
  EndLf,
  Done,
  Dead,
}

/** Transfer-Encoding as read so far: absent, a last coding other than chunked, or chunked last. */
const enum Coding {
  None,
  Other,
  Chunked,
}

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const NO_FIELDS: readonly string[] = [];
const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
const CONTENT_LENGTH = 'content-length';

/** tchar of RFC 9110 §5.6.2, by byte. */
const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TOKEN[c.charCodeAt(0)] = 1;

/**
 * Bytes allowed in a field value and a reason phrase: HTAB, SP, VCHAR, obs-text. The same set as
 * Node's checkInvalidHeaderChar (lib/_http_common.js, used by writeHead) and llhttp's strict field values.
 */
const FIELD = new Uint8Array(256);
FIELD[HTAB] = 1;
for (let c = 0x20; c <= 0x7e; c++) FIELD[c] = 1;
for (let c = 0x80; c <= 0xff; c++) FIELD[c] = 1;

/** qdtext of RFC 9110 §5.6.4 (a quoted chunk-extension value): the field bytes less DQUOTE and backslash. */
const QDTEXT = FIELD.slice();
QDTEXT[0x22] = 0;
QDTEXT[0x5c] = 0;

/** A field value without its leading and trailing SP/HTAB (not String.trim: 0xA0 is a legal value byte). */
function trimOws(s: string, from: number): string {
  let a = from;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === SP || s.charCodeAt(a) === HTAB)) a++;
  while (b > a && (s.charCodeAt(b - 1) === SP || s.charCodeAt(b - 1) === HTAB)) b--;
  return s.slice(a, b);
}

/** s[from, to) as a field value, OWS trimmed; refused if it holds a byte writeHead would throw on. */
function fieldValue(s: string, from: number, to: number, what: string): string {
  let a = to;
  let b = from;
  for (let k = from; k < to; k++) {
    const c = s.charCodeAt(k);
    if (FIELD[c] === 0) {
      if (c === CR || c === LF) throw new UpstreamProtocolError(`bare CR or LF in ${what}`);
      throw new UpstreamProtocolError(`byte 0x${c.toString(16).padStart(2, '0')} in ${what} (allowed: HTAB, SP, VCHAR, obs-text)`);
    }
    if (c !== SP && c !== HTAB) {
      if (a === to) a = k;
      b = k + 1;
    }
  }
  return a < b ? s.slice(a, b) : '';
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * A Content-Length value s[from, to) as llhttp reads it: OWS, one or more digits, then only SP (a
 * trailing HTAB, a list such as "5, 5", a sign are refused). Not above 2^53 - 1 (llhttp allows 2^64 - 1).
 */
function contentLength(s: string, from: number, to: number): number {
  let k = from;
  while (k < to && (s.charCodeAt(k) === SP || s.charCodeAt(k) === HTAB)) k++;
  const first = k;
  let n = 0;
  for (; k < to; k++) {
    const d = s.charCodeAt(k) - 48;
    if (d < 0 || d > 9) break;
    n = n * 10 + d;
    if (n > Number.MAX_SAFE_INTEGER) throw new UpstreamProtocolError('Content-Length above 2^53 - 1');
  }
  let end = k;
  while (end < to && s.charCodeAt(end) === SP) end++;
  if (k === first || end !== to)
    throw new UpstreamProtocolError(`invalid Content-Length ${JSON.stringify(s.slice(from, Math.min(to, from + 40)))} (one decimal number)`);
  return n;
}

/**
 * Folds one Transfer-Encoding line s[from, to) into what earlier lines said. Codings are plain tokens
 * separated by commas and SP (leading OWS aside); chunked, if present, comes once and last (RFC 9112 §6.1).
 */
function transferCoding(s: string, from: number, to: number, before: Coding): Coding {
  let coding = before;
  let k = from;
  while (k < to && (s.charCodeAt(k) === SP || s.charCodeAt(k) === HTAB)) k++;
  for (;;) {
    const a = k;
    while (k < to && TOKEN[s.charCodeAt(k)] === 1) k++;
    const b = k;
    while (k < to && s.charCodeAt(k) === SP) k++;
    if (a === b || (k < to && s.charCodeAt(k) !== 44) /* , */) {
      throw new UpstreamProtocolError(`Transfer-Encoding ${JSON.stringify(s.slice(from, Math.min(to, from + 80)))} is not a list of codings`);
    }
    if (coding === Coding.Chunked) throw new UpstreamProtocolError('Transfer-Encoding with a coding after chunked');
    coding = b - a === 7 && s.slice(a, b).toLowerCase() === 'chunked' ? Coding.Chunked : Coding.Other;
    if (k === to) return coding;
    k++;
    while (k < to && s.charCodeAt(k) === SP) k++;
  }
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
  /**
   * Lower-case names; a string for a header seen once, an array when repeated (as undici gave, as
   * downstreamHeaders takes). No prototype: `constructor` or `__proto__` is a header like any other.
   */
  headers: Record<string, string | string[]> = Object.create(null);
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
  /** A head begun in earlier reads: its first partialLength bytes (room to grow, so a trickled head is not copied per byte). */
  private partial: Buffer | null = null;
  private partialLength = 0;
  /** Content-Length bytes, or the current chunk's bytes, still to come. */
  private remaining = 0;
  /** Bytes of the current chunk-size line or trailer section. */
  private lineBytes = 0;
  /** Bytes of "content-length" the current trailer name has matched so far, -1 once it cannot. */
  private trailerName = -1;

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
    this.partialLength = 0;
    this.keepAlive = true;
  }

  /** Stops delivering anything (the exchange was torn down). */
  stop(): void {
    this.state = S.Dead;
    this.handler = null;
    this.partial = null;
    this.partialLength = 0;
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
    const before = this.partialLength;
    // The head so far: this read from i on, or the kept bytes with this read appended.
    const data = before > 0 ? this.keep(buf, i) : buf;
    const start = before > 0 ? 0 : i;
    const from = before > 0 ? Math.max(0, before - 3) : i;
    const end = data.indexOf(CRLFCRLF, from);
    if (end < 0) {
      if (data.length - start > MAX_HEAD_BYTES) throw new UpstreamProtocolError(`response head larger than ${MAX_HEAD_BYTES} bytes`);
      // A head using bare LF line ends would never match CRLFCRLF: refuse it now, not at 64 KiB.
      checkLineEnds(data, start, from);
      if (before === 0) this.keep(buf, i);
      return buf.length;
    }
    if (end + 4 - start > MAX_HEAD_BYTES) throw new UpstreamProtocolError(`response head larger than ${MAX_HEAD_BYTES} bytes`);
    this.partial = null;
    this.partialLength = 0;
    this.parseHead(data.toString('latin1', start, end));
    return before > 0 ? i + (end + 4 - before) : end + 4;
  }

  /** Appends buf[i..] to the partial head, growing its room by doubling; returns the head so far. */
  private keep(buf: Buffer, i: number): Buffer {
    const need = this.partialLength + buf.length - i;
    let p = this.partial;
    if (!p || p.length < need) {
      const grown = Buffer.allocUnsafe(Math.max(need, Math.min(2 * (p?.length ?? 0), MAX_HEAD_BYTES + 4), 256));
      if (p) p.copy(grown, 0, 0, this.partialLength);
      p = this.partial = grown;
    }
    buf.copy(p, this.partialLength, i);
    this.partialLength = need;
    return p.subarray(0, need);
  }

  private parseHead(s: string): void {
    let eol = s.indexOf('\r\n');
    if (eol < 0) eol = s.length;
    this.statusLine(s, eol);
    const headers: Record<string, string | string[]> = Object.create(null);
    const raw: string[] | null = this.upgrade ? [] : null;
    let length = -1;
    let coding = Coding.None;
    let pos = eol + 2;
    while (pos < s.length) {
      let next = s.indexOf('\r\n', pos);
      if (next < 0) next = s.length;
      const colon = fieldNameEnd(s, pos, next);
      const rawName = s.slice(pos, colon);
      const name = rawName.toLowerCase();
      let value = fieldValue(s, colon + 1, next, `the value of header ${rawName.slice(0, 80)}`);
      if (name === CONTENT_LENGTH) {
        // One Content-Length line only: llhttp refuses a second one even with the same number.
        if (length >= 0) throw new UpstreamProtocolError('more than one Content-Length');
        length = contentLength(s, colon + 1, next);
        value = String(length); // "007" relayed as "7"
      } else if (name === 'transfer-encoding') {
        coding = transferCoding(s, colon + 1, next, coding);
      }
      raw?.push(rawName, value);
      const had = headers[name];
      if (had === undefined) headers[name] = value;
      else if (typeof had === 'string') headers[name] = [had, value];
      else had.push(value);
      pos = next + 2;
    }
    // Both framings at once: which one an intermediary believes is how responses get smuggled.
    if (length >= 0 && coding !== Coding.None) throw new UpstreamProtocolError('Content-Length together with Transfer-Encoding');
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
      // llhttp refuses anything after a head that closes the connection; "close" anywhere in
      // Connection stays on the safe side of its token rules (HTTP/1.0 has no 1xx at all).
      const conn = headers['connection'];
      if (this.minor === 0 || (conn !== undefined && (typeof conn === 'string' ? conn : conn.join(',')).toLowerCase().includes('close'))) {
        throw new UpstreamProtocolError('interim (1xx) response that closes the connection');
      }
      return;
    }
    this.headers = headers;
    if (raw) this.rawHeaders = raw;
    this.frame(headers, length, coding);
    if (this.framing === 'none') this.state = S.Done;
    this.handler!.onHead(this);
  }

  private statusLine(s: string, eol: number): void {
    // HTTP-version SP 3DIGIT SP [reason]; HTTP/1.0 and 1.1 only (the request said HTTP/1.1). llhttp
    // takes 000-099 too, but writeHead throws below 100.
    if (eol < 12 || !s.startsWith('HTTP/1.') || s.charCodeAt(8) !== SP)
      throw new UpstreamProtocolError(`malformed status line ${JSON.stringify(s.slice(0, Math.min(eol, 80)))}`);
    const m = s.charCodeAt(7) - 48;
    const d0 = s.charCodeAt(9) - 48;
    const d1 = s.charCodeAt(10) - 48;
    const d2 = s.charCodeAt(11) - 48;
    if ((m !== 0 && m !== 1) || d0 < 1 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9 || (eol > 12 && s.charCodeAt(12) !== SP)) {
      throw new UpstreamProtocolError(`malformed status line ${JSON.stringify(s.slice(0, Math.min(eol, 80)))}`);
    }
    this.minor = m;
    this.status = d0 * 100 + d1 * 10 + d2;
    // Kept as written, leading and trailing spaces included (as Node's statusMessage is).
    if (eol > 13) fieldValue(s, 13, eol, 'the reason phrase');
    this.reason = eol > 13 ? s.slice(13, eol) : '';
  }

  /** RFC 9112 §6.3, in its order; length and coding come checked from parseHead (never both). */
  private frame(h: Record<string, string | string[]>, length: number, coding: Coding): void {
    const conn = h['connection'];
    this.keepAlive = this.minor === 1 ? !hasToken(conn, 'close') : hasToken(conn, 'keep-alive') && !hasToken(conn, 'close');
    if (this.headOnly || this.status === 204 || this.status === 304) {
      this.framing = 'none';
      return;
    }
    if (coding !== Coding.None) {
      if (this.minor === 0) this.keepAlive = false;
      if (coding === Coding.Chunked) {
        this.framing = 'chunked';
        this.state = S.ChunkSizeStart;
        this.remaining = 0;
        this.lineBytes = 0;
      } else {
        // A final coding other than chunked: the body runs until the connection closes.
        this.framing = 'close';
        this.state = S.Close;
        this.keepAlive = false;
      }
      return;
    }
    if (length >= 0) {
      if (length === 0) {
        this.framing = 'none';
        return;
      }
      this.framing = 'length';
      this.state = S.Length;
      this.remaining = length;
      return;
    }
    this.framing = 'close';
    this.state = S.Close;
    this.keepAlive = false;
  }

  /**
   * Chunk-size lines, the CRLF after each chunk, trailers: byte by byte (a few bytes per chunk).
   * chunk = 1*HEXDIG *( ";" token [ "=" ( token / quoted-string ) ] ) CRLF, no whitespace anywhere
   * (llhttp refuses "5 " and "5; a"); trailer fields are checked as header fields and dropped.
   */
  private chunkFraming(buf: Buffer, i: number): number {
    const len = buf.length;
    while (i < len) {
      const c = buf[i]!;
      switch (this.state) {
        case S.ChunkSizeStart:
        case S.ChunkSize: {
          const v = hexValue(c);
          if (v >= 0) {
            this.remaining = this.remaining * 16 + v;
            this.state = S.ChunkSize;
            if (this.remaining > MAX_CHUNK_SIZE) throw new UpstreamProtocolError('chunk size above 2^48');
          } else if (this.state === S.ChunkSizeStart) {
            throw new UpstreamProtocolError('chunk size missing');
          } else if (c === CR) this.state = S.ChunkSizeLf;
          else if (c === 59 /* ; */) this.state = S.ExtNameStart;
          else throw new UpstreamProtocolError('invalid byte after a chunk size');
          break;
        }
        case S.ExtNameStart:
          if (TOKEN[c] === 0) throw new UpstreamProtocolError('chunk extension without a name');
          this.state = S.ExtName;
          break;
        case S.ExtName:
          if (TOKEN[c] === 1) break;
          if (c === CR) this.state = S.ChunkSizeLf;
          else if (c === 59) this.state = S.ExtNameStart;
          else if (c === 61 /* = */) this.state = S.ExtValueStart;
          else throw new UpstreamProtocolError('invalid byte in a chunk extension name');
          break;
        case S.ExtValueStart:
          if (c === 34 /* " */) this.state = S.ExtQuoted;
          else if (TOKEN[c] === 1) this.state = S.ExtToken;
          else throw new UpstreamProtocolError('chunk extension without a value after =');
          break;
        case S.ExtToken:
          if (TOKEN[c] === 1) break;
          if (c === CR) this.state = S.ChunkSizeLf;
          else if (c === 59) this.state = S.ExtNameStart;
          else throw new UpstreamProtocolError('invalid byte in a chunk extension value');
          break;
        case S.ExtQuoted:
          if (c === 34) this.state = S.ExtQuotedEnd;
          else if (c === 92 /* \ */) this.state = S.ExtQuotedPair;
          else if (QDTEXT[c] === 0) throw new UpstreamProtocolError('invalid byte in a quoted chunk extension value');
          break;
        case S.ExtQuotedPair:
          if (FIELD[c] === 0) throw new UpstreamProtocolError('invalid quoted-pair in a chunk extension value');
          this.state = S.ExtQuoted;
          break;
        case S.ExtQuotedEnd:
          if (c === CR) this.state = S.ChunkSizeLf;
          else if (c === 59) this.state = S.ExtNameStart;
          else throw new UpstreamProtocolError('invalid byte after a quoted chunk extension value');
          break;
        case S.ChunkSizeLf:
          if (c !== LF) throw new UpstreamProtocolError('chunk size line not ended by CRLF');
          this.lineBytes = 0;
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
          this.state = S.ChunkSizeStart;
          this.lineBytes = 0;
          break;
        case S.TrailerStart:
          if (c === CR) this.state = S.EndLf;
          else if (TOKEN[c] === 1) {
            this.state = S.TrailerName;
            this.trailerName = (c | 0x20) === 99 /* c */ ? 1 : -1;
          } else if (c === SP || c === HTAB) throw new UpstreamProtocolError('whitespace at the start of a trailer line (obs-fold?)');
          else throw new UpstreamProtocolError('invalid trailer field name');
          break;
        case S.TrailerName:
          if (TOKEN[c] === 1) {
            // c | 0x20 lower-cases letters and maps no other tchar onto a letter or "-".
            const k = this.trailerName;
            this.trailerName = k >= 0 && k < CONTENT_LENGTH.length && (c | 0x20) === CONTENT_LENGTH.charCodeAt(k) ? k + 1 : -1;
          } else if (c === 58 /* : */) {
            if (this.trailerName === CONTENT_LENGTH.length) throw new UpstreamProtocolError('Content-Length in the trailer section of a chunked body');
            this.state = S.TrailerValue;
          } else throw new UpstreamProtocolError('invalid trailer field name');
          break;
        case S.TrailerValue:
          if (c === CR) this.state = S.TrailerLf;
          else if (FIELD[c] === 0)
            throw new UpstreamProtocolError(
              c === LF
                ? 'bare LF in the trailer section'
                : `byte 0x${c.toString(16).padStart(2, '0')} in a trailer field value (allowed: HTAB, SP, VCHAR, obs-text)`,
            );
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

/**
 * Where the field name starting at pos ends (at its colon), checked: tchar only, not empty, no
 * whitespace before the colon (RFC 9112 §5.1; llhttp refuses "Name : v"), no obs-fold.
 */
function fieldNameEnd(s: string, pos: number, next: number): number {
  let k = pos;
  while (k < next && TOKEN[s.charCodeAt(k)] === 1) k++;
  if (k < next && s.charCodeAt(k) === 58 /* : */ && k > pos) return k;
  const c = s.charCodeAt(k);
  const line = JSON.stringify(s.slice(pos, Math.min(next, pos + 80)));
  if (k === pos && (c === SP || c === HTAB)) throw new UpstreamProtocolError('obsolete line folding in the response head');
  if (k === pos && c === 58) throw new UpstreamProtocolError(`header line with an empty name: ${line}`);
  if (k > pos && (c === SP || c === HTAB)) throw new UpstreamProtocolError(`whitespace between a header name and its colon: ${line}`);
  if (k === next) throw new UpstreamProtocolError(`header line without a colon: ${line}`);
  throw new UpstreamProtocolError(`invalid header name in ${line}`);
}

/** Refuses a bare LF among the head bytes data[start..] that arrived from `from` on (the rest was checked before). */
function checkLineEnds(data: Buffer, start: number, from: number): void {
  for (let k = data.indexOf(LF, from); k >= 0; k = data.indexOf(LF, k + 1)) {
    if (k === start || data[k - 1] !== CR) throw new UpstreamProtocolError('bare LF in the response head');
  }
}
