// Finds one field of a JSON object in its bytes without parsing the rest: walks only the objects on the requested
// path and skips every other value by counting brackets outside strings. Used for Jupyter kernel messages.

/*
 * Kept over JSON.parse because it pays: bench/peek-micro.ts, locate + read the fields + decide, median of 7 rounds,
 * ns/message, peeker vs JSON.parse of the same parts (Node 20, shared 2-core box):
 *   v1 kernel_info_request (262 B)  339 vs 805  2.4x     text kernel_info_request (283 B)   394 vs 1262  3.2x
 *   v1 execute_request (477 B)      330 vs 785  2.4x     text execute_request (498 B)       569 vs 2010  3.5x
 *   v1 execute_request (25 KB)      323 vs 784  2.4x     text execute_request (25 KB)    25297 vs 53011  2.1x
 *   v1 comm_msg update (345 B)      478 vs 1583 3.3x     binary comm_msg + 2 KB buffer      706 vs 1672  2.4x
 *
 * Positions are byte offsets into b; `end` bounds every read, so on bytes that are not JSON the functions return -1,
 * they never throw. Not a validator: a value is found as soon as its path is, whatever follows it. Keys and strings
 * are compared as raw bytes (escapes are not decoded); a key given twice is found at its first occurrence.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Follows the key path from the object at p (whitespace allowed before it); the position of the value, or -1. */
export function valueAt(b: Uint8Array, p: number, end: number, k1: Uint8Array, k2?: Uint8Array, k3?: Uint8Array): number {
  p = findKey(b, p, end, k1);
  if (p >= 0 && k2 !== undefined) p = findKey(b, p, end, k2);
  if (p >= 0 && k3 !== undefined) p = findKey(b, p, end, k3);
  return p;
}

/** If a string starts at p, the position just after its closing quote; otherwise -1. */
export function stringEnd(b: Uint8Array, p: number, end: number): number {
  return p >= 0 && p < end && b[p] === QUOTE ? skipString(b, p, end) : -1;
}

function skipWs(b: Uint8Array, p: number, end: number): number {
  while (p < end) {
    const c = b[p];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    p++;
  }
  return p;
}

/** p is at an opening quote; returns the position after the closing one, or -1. */
function skipString(b: Uint8Array, p: number, end: number): number {
  for (p++; p < end; p++) {
    const c = b[p];
    if (c === QUOTE) return p + 1;
    if (c === BACKSLASH) p++;
  }
  return -1;
}

/** Skips one value at p (after whitespace); returns the position after it, or -1. */
function skipValue(b: Uint8Array, p: number, end: number): number {
  p = skipWs(b, p, end);
  if (p >= end) return -1;
  const c0 = b[p];
  if (c0 === QUOTE) return skipString(b, p, end);
  if (c0 === 0x7b || c0 === 0x5b) {
    let depth = 0;
    while (p < end) {
      const c = b[p];
      if (c === QUOTE) {
        p = skipString(b, p, end);
        if (p < 0) return -1;
        continue;
      }
      if (c === 0x7b || c === 0x5b) depth++;
      else if (c === 0x7d || c === 0x5d) {
        if (--depth === 0) return p + 1;
      }
      p++;
    }
    return -1;
  }
  // number, true, false, null: up to the next delimiter
  while (p < end) {
    const c = b[p];
    if (c === 0x2c || c === 0x7d || c === 0x5d || c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) break;
    p++;
  }
  return p;
}

/** The object at p (after whitespace): the position of the value of `key` (whitespace skipped), or -1. */
function findKey(b: Uint8Array, p: number, end: number, key: Uint8Array): number {
  p = skipWs(b, p, end);
  if (p >= end || b[p] !== 0x7b) return -1;
  p++;
  for (;;) {
    p = skipWs(b, p, end);
    if (p >= end || b[p] !== QUOTE) return -1; // '}' (not found) or malformed
    const ks = p;
    p = skipString(b, p, end);
    if (p < 0) return -1;
    const ke = p;
    p = skipWs(b, p, end);
    if (p >= end || b[p] !== 0x3a) return -1;
    p = skipWs(b, p + 1, end);
    if (ke - ks - 2 === key.length && bytesEqual(b, ks + 1, key)) return p;
    p = skipValue(b, p, end);
    if (p < 0) return -1;
    p = skipWs(b, p, end);
    if (p >= end) return -1;
    if (b[p] === 0x2c) p++;
    else return -1; // '}' ends the object without the key
  }
}

function bytesEqual(b: Uint8Array, p: number, want: Uint8Array): boolean {
  for (let i = 0; i < want.length; i++) if (b[p + i] !== want[i]) return false;
  return true;
}
