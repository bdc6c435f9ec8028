// Reads the few fields of a Pluto client message (a MsgPack map) that activity needs, in place and without decoding:
// `type`, `body.updates` (its length) and `body.query`. Everything else is skipped by its length headers.

/*
 * Results go into a PlutoFields the caller owns and reuses (the Pluto classifier keeps one per connection), so
 * reading a message allocates nothing. Strings are reported as byte ranges of the message, for the caller to match.
 * Every read checks its bounds: on bytes that are not MsgPack the functions return false, they never throw.
 */

/** queryStart when body.query is absent (or the body is), and when it is there but not a string. */
export const QUERY_ABSENT = -1;
export const QUERY_NOT_STRING = -2;

/** What the peek functions found in one message. */
export class PlutoFields {
  /** The `type` string's UTF-8 bytes are [typeStart, typeEnd) of the message. */
  typeStart = 0;
  typeEnd = 0;
  /** Number of elements of body.updates; -1 when it is absent or not an array. */
  updates = -1;
  /** body.query's UTF-8 bytes are [queryStart, queryEnd); queryStart is QUERY_ABSENT or QUERY_NOT_STRING otherwise. */
  queryStart = QUERY_ABSENT;
  queryEnd = 0;
}

/** peekBody: which fields of `body` to read (it stops once it has them). */
export const WANT_UPDATES = 1;
export const WANT_QUERY = 2;

const KEY_TYPE = new TextEncoder().encode('type');
const KEY_BODY = new TextEncoder().encode('body');
const KEY_UPDATES = new TextEncoder().encode('updates');
const KEY_QUERY = new TextEncoder().encode('query');

/**
 * Reads `type` into out.typeStart/typeEnd. False unless b starts with a MsgPack map that has a string `type`
 * (the first one, if repeated). Stops at `type`, which the client sends first, so the rest is never looked at;
 * bytes after the map are ignored (older Pluto clients appended a delimiter to every message).
 */
export function peekType(b: Uint8Array, out: PlutoFields): boolean {
  const v = mapValue(b, 0, b.length, KEY_TYPE);
  if (v < 0) return false;
  const len = strLength(b, v, b.length);
  if (len < 0) return false;
  out.typeStart = strData(b, v);
  out.typeEnd = out.typeStart + len;
  return true;
}

/**
 * Reads body.updates (want & WANT_UPDATES) and body.query (want & WANT_QUERY) into out; the others keep their
 * "absent" values. An absent body or field is fine; false when the message or the body map is malformed before
 * what was wanted was found, or when body is not a map.
 */
export function peekBody(b: Uint8Array, out: PlutoFields, want: number): boolean {
  out.updates = -1;
  out.queryStart = QUERY_ABSENT;
  out.queryEnd = 0;
  const end = b.length;
  const body = mapValue(b, 0, end, KEY_BODY);
  if (body === MALFORMED) return false;
  if (body === ABSENT) return true;
  if (want & WANT_UPDATES) {
    const v = mapValue(b, body, end, KEY_UPDATES);
    if (v === MALFORMED) return false;
    if (v !== ABSENT) out.updates = arrayLength(b, v, end);
  }
  if (want & WANT_QUERY) {
    const v = mapValue(b, body, end, KEY_QUERY);
    if (v === MALFORMED) return false;
    if (v !== ABSENT) {
      const len = strLength(b, v, end);
      if (len < 0) {
        out.queryStart = QUERY_NOT_STRING;
      } else {
        out.queryStart = strData(b, v);
        out.queryEnd = out.queryStart + len;
      }
    }
  }
  return true;
}

/** Reads type, body.updates and body.query: peekType, then peekBody for both. */
export function peekPlutoMessage(b: Uint8Array, out: PlutoFields): boolean {
  return peekType(b, out) && peekBody(b, out, WANT_UPDATES | WANT_QUERY);
}

// ---------------------------------------------------------------------------------------------------------------
// MsgPack navigation. Positions are byte offsets into b; `end` bounds every read.

/** mapValue results besides a position. */
const ABSENT = -1;
const MALFORMED = -2;

/**
 * The position of the value of `key` (a string key, first occurrence) in the map at p; ABSENT when the map is
 * well formed and has no such key, MALFORMED when p is not a map or the map is cut short or malformed before the key.
 * Pairs with non-string keys are skipped.
 */
function mapValue(b: Uint8Array, p: number, end: number, key: Uint8Array): number {
  let n = mapCount(b, p, end);
  if (n < 0) return MALFORMED;
  p += mapHeaderSize(b[p]);
  for (; n > 0; n--) {
    const klen = strLength(b, p, end);
    if (klen < 0) {
      p = skip(b, p, end, 2);
    } else {
      const k = strData(b, p);
      p = k + klen;
      if (klen === key.length && bytesEqual(b, k, key)) return p < end ? p : MALFORMED;
      p = skip(b, p, end, 1);
    }
    if (p < 0) return MALFORMED;
  }
  return ABSENT;
}

/** The number of pairs of the map at p, or -1 if there is none (or its header is cut short). */
function mapCount(b: Uint8Array, p: number, end: number): number {
  if (p >= end) return -1;
  const t = b[p];
  if (t >= 0x80 && t <= 0x8f) return t & 0x0f;
  if (t === 0xde && p + 3 <= end) return u16(b, p + 1);
  if (t === 0xdf && p + 5 <= end) return u32(b, p + 1);
  return -1;
}

function mapHeaderSize(t: number): number {
  return t <= 0x8f ? 1 : t === 0xde ? 3 : 5;
}

/** The byte length of the string at p, or -1 if there is none or its bytes run past end. */
function strLength(b: Uint8Array, p: number, end: number): number {
  if (p >= end) return -1;
  const t = b[p];
  let len: number;
  let data: number;
  if (t >= 0xa0 && t <= 0xbf) {
    len = t & 0x1f;
    data = p + 1;
  } else if (t === 0xd9 && p + 2 <= end) {
    len = b[p + 1];
    data = p + 2;
  } else if (t === 0xda && p + 3 <= end) {
    len = u16(b, p + 1);
    data = p + 3;
  } else if (t === 0xdb && p + 5 <= end) {
    len = u32(b, p + 1);
    data = p + 5;
  } else {
    return -1;
  }
  return data + len <= end ? len : -1;
}

/** Where the bytes of the string at p start (p is a string: strLength said so). */
function strData(b: Uint8Array, p: number): number {
  const t = b[p];
  return t <= 0xbf ? p + 1 : t === 0xd9 ? p + 2 : t === 0xda ? p + 3 : p + 5;
}

/** The length of the array at p, or -1 if there is none. Its elements are not checked. */
function arrayLength(b: Uint8Array, p: number, end: number): number {
  if (p >= end) return -1;
  const t = b[p];
  if (t >= 0x90 && t <= 0x9f) return t & 0x0f;
  if (t === 0xdc && p + 3 <= end) return u16(b, p + 1);
  if (t === 0xdd && p + 5 <= end) return u32(b, p + 1);
  return -1;
}

/** Skips `count` whole values from p (iteratively: nesting depth costs nothing). Returns the end, or -1 if malformed or cut short. */
function skip(b: Uint8Array, p: number, end: number, count: number): number {
  while (count > 0) {
    if (p >= end) return -1;
    const t = b[p];
    count--;
    if (t <= 0x7f || t >= 0xe0)
      p += 1; // fixint
    else if (t <= 0x8f) {
      count += 2 * (t & 0x0f);
      p += 1;
    } // fixmap
    else if (t <= 0x9f) {
      count += t & 0x0f;
      p += 1;
    } // fixarray
    else if (t <= 0xbf)
      p += 1 + (t & 0x1f); // fixstr
    else {
      switch (t) {
        case 0xc0:
        case 0xc2:
        case 0xc3:
          p += 1;
          break; // nil, false, true
        case 0xcc:
        case 0xd0:
          p += 2;
          break;
        case 0xcd:
        case 0xd1:
          p += 3;
          break;
        case 0xca:
        case 0xce:
        case 0xd2:
          p += 5;
          break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
          p += 9;
          break;
        case 0xd4:
          p += 3;
          break; // fixext 1..16: type byte + data
        case 0xd5:
          p += 4;
          break;
        case 0xd6:
          p += 6;
          break;
        case 0xd7:
          p += 10;
          break;
        case 0xd8:
          p += 18;
          break;
        case 0xc4:
        case 0xd9: // bin8, str8
          if (p + 2 > end) return -1;
          p += 2 + b[p + 1];
          break;
        case 0xc5:
        case 0xda: // bin16, str16
          if (p + 3 > end) return -1;
          p += 3 + u16(b, p + 1);
          break;
        case 0xc6:
        case 0xdb: // bin32, str32
          if (p + 5 > end) return -1;
          p += 5 + u32(b, p + 1);
          break;
        case 0xc7: // ext8: length, type, data
          if (p + 2 > end) return -1;
          p += 3 + b[p + 1];
          break;
        case 0xc8:
          if (p + 3 > end) return -1;
          p += 4 + u16(b, p + 1);
          break;
        case 0xc9:
          if (p + 5 > end) return -1;
          p += 6 + u32(b, p + 1);
          break;
        case 0xdc: // array16, array32, map16, map32
          if (p + 3 > end) return -1;
          count += u16(b, p + 1);
          p += 3;
          break;
        case 0xdd:
          if (p + 5 > end) return -1;
          count += u32(b, p + 1);
          p += 5;
          break;
        case 0xde:
          if (p + 3 > end) return -1;
          count += 2 * u16(b, p + 1);
          p += 3;
          break;
        case 0xdf:
          if (p + 5 > end) return -1;
          count += 2 * u32(b, p + 1);
          p += 5;
          break;
        default: // 0xc1 is never used
          return -1;
      }
    }
  }
  return p <= end ? p : -1;
}

function u16(b: Uint8Array, p: number): number {
  return (b[p] << 8) | b[p + 1];
}

function u32(b: Uint8Array, p: number): number {
  return ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
}

/** Whether b[p, p + want.length) equals want (the caller checked the length). */
function bytesEqual(b: Uint8Array, p: number, want: Uint8Array): boolean {
  for (let i = 0; i < want.length; i++) if (b[p + i] !== want[i]) return false;
  return true;
}
