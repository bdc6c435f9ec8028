// Activity classifier for Pluto.jl: names each client MsgPack message and each HTTP request, and says if a person did it.
// Facts from Pluto 0.20 (see /work/shared/NOTEBOOK-TRAFFIC.md): keepalives are ordinary binary messages, so types matter.

import { isAssetPath, messageClasses, pathOnly } from './types.js';
import type { ActivityKind, Classifier, ConnectionClassifier, MessageClass } from './types.js';

/*
 * What counts as activity on the WebSocket (client to server only):
 *   idle    ping, current_time              the open tab's keepalives (ping 28 s after each pong, 18 current_time a minute)
 *           connect, reset_shared_state     sent on every (re)connect
 *           update_notebook, updates == []  the start-up state request
 *           get_all_notebooks               the index page's own request
 *           complete_symbols,               lookup tables the editor fetches for its autocomplete; the `complete`
 *           all_registered_package_names      a person triggers is counted by itself
 *           complete (start-up)             see below
 *   active  update_notebook with updates (a slider, an edit), run_multiple_cells, interrupt_all, docs, reshow_cell,
 *           complete while typing, any other or unknown type, anything undecodable, compressed or over the capture limit.
 *
 * Start-up completes: right after the empty update_notebook the editor warms Julia's completion up with
 * `complete {query: "sq"}` and `complete {query: "\\sq"}` (Editor.js, on_establish_connection; not sent again after a
 * reconnect). A `complete` is start-up, so idle, when ALL of these hold:
 *   - it is the first or second `complete` on this WebSocket connection,
 *   - no message on this connection has been classified active before it,
 *   - its body.query is "sq" or "\\sq", or it has no query (stand-ins that omit the body).
 * Every other `complete` is a person pressing Tab: active.
 */

const TYPES = [
  'ping', 'current_time', 'update_notebook', 'complete', 'connect', 'reset_shared_state', 'get_all_notebooks',
  'complete_symbols', 'all_registered_package_names', 'run_multiple_cells', 'interrupt_all', 'docs', 'reshow_cell',
  'shutdown_notebook', 'restart_process', 'write_file', 'nbpkg_available_versions', 'pkg_update',
] as const;

const { idle: IDLE, active: ACTIVE } = messageClasses([...TYPES, 'other', 'undecodable', 'compressed', 'oversize'] as const);

// Type ids are indexes into TYPES; these are the ones with rules of their own.
const T_UPDATE_NOTEBOOK = TYPES.indexOf('update_notebook');
const T_COMPLETE = TYPES.indexOf('complete');
const T_OTHER = -2;
const T_NONE = -1;

/** For each known type: idle no matter what (true), or active (false). update_notebook and complete are decided apart. */
const ALWAYS_IDLE: readonly boolean[] = TYPES.map((t) =>
  t === 'ping' || t === 'current_time' || t === 'connect' || t === 'reset_shared_state' || t === 'get_all_notebooks' ||
  t === 'complete_symbols' || t === 'all_registered_package_names');
const RESULT_IDLE: readonly MessageClass[] = TYPES.map((t) => IDLE[t]);
const RESULT_ACTIVE: readonly MessageClass[] = TYPES.map((t) => ACTIVE[t]);
const NAME_BYTES: readonly Buffer[] = TYPES.map((t) => Buffer.from(t, 'latin1'));

const KEY_TYPE = Buffer.from('type');
const KEY_BODY = Buffer.from('body');
const KEY_UPDATES = Buffer.from('updates');
const KEY_QUERY = Buffer.from('query');
const WARMUP_1 = Buffer.from('sq');
const WARMUP_2 = Buffer.from('\\sq');

// ---------------------------------------------------------------------------------------------------------------
// A purpose-built MsgPack reader: it walks the top-level map for `type`, and `body.updates` / `body.query` when the
// type needs them, and skips everything else without decoding it. Results go to these module variables (the
// classifier is synchronous), so reading a message allocates nothing.

/** Index into TYPES, T_OTHER for an unknown string, T_NONE when absent. */
let rType = T_NONE;
/** Length of body.updates, or -1 when absent or not an array. */
let rUpdates = -1;
/** body.query: 0 absent, 1 a warm-up query, 2 anything else. */
let rQuery = 0;
/** Set by the header readers: element count of a map/array, byte length of a string. */
let hLen = 0;

/** If a string starts at p, sets hLen to its byte length and returns where its bytes start; otherwise -1. */
function strAt(b: Uint8Array, p: number, end: number): number {
  if (p >= end) return -1;
  const t = b[p];
  if (t >= 0xa0 && t <= 0xbf) {
    hLen = t & 0x1f;
    p += 1;
  } else if (t === 0xd9) {
    if (p + 2 > end) return -1;
    hLen = b[p + 1];
    p += 2;
  } else if (t === 0xda) {
    if (p + 3 > end) return -1;
    hLen = (b[p + 1] << 8) | b[p + 2];
    p += 3;
  } else if (t === 0xdb) {
    if (p + 5 > end) return -1;
    hLen = ((b[p + 1] << 24) | (b[p + 2] << 16) | (b[p + 3] << 8) | b[p + 4]) >>> 0;
    p += 5;
  } else {
    return -1;
  }
  return p + hLen <= end ? p : -1;
}

/** If a map starts at p, sets hLen to its number of pairs and returns where its first key starts; otherwise -1. */
function mapAt(b: Uint8Array, p: number, end: number): number {
  if (p >= end) return -1;
  const t = b[p];
  if (t >= 0x80 && t <= 0x8f) {
    hLen = t & 0x0f;
    return p + 1;
  }
  if (t === 0xde && p + 3 <= end) {
    hLen = (b[p + 1] << 8) | b[p + 2];
    return p + 3;
  }
  if (t === 0xdf && p + 5 <= end) {
    hLen = ((b[p + 1] << 24) | (b[p + 2] << 16) | (b[p + 3] << 8) | b[p + 4]) >>> 0;
    return p + 5;
  }
  return -1;
}

/** If an array starts at p, returns its length; otherwise -1. */
function arrayLenAt(b: Uint8Array, p: number, end: number): number {
  if (p >= end) return -1;
  const t = b[p];
  if (t >= 0x90 && t <= 0x9f) return t & 0x0f;
  if (t === 0xdc && p + 3 <= end) return (b[p + 1] << 8) | b[p + 2];
  if (t === 0xdd && p + 5 <= end) return ((b[p + 1] << 24) | (b[p + 2] << 16) | (b[p + 3] << 8) | b[p + 4]) >>> 0;
  return -1;
}

/** Skips `count` whole values starting at p (iteratively: nesting depth costs nothing). Returns the end, or -1 if malformed or cut short. */
function skip(b: Uint8Array, p: number, end: number, count: number): number {
  while (count > 0) {
    if (p >= end) return -1;
    const t = b[p];
    count--;
    if (t <= 0x7f || t >= 0xe0) p += 1; // fixint
    else if (t <= 0x8f) { count += 2 * (t & 0x0f); p += 1; } // fixmap
    else if (t <= 0x9f) { count += t & 0x0f; p += 1; } // fixarray
    else if (t <= 0xbf) p += 1 + (t & 0x1f); // fixstr
    else {
      switch (t) {
        case 0xc0: case 0xc2: case 0xc3: p += 1; break; // nil, false, true
        case 0xcc: case 0xd0: p += 2; break;
        case 0xcd: case 0xd1: p += 3; break;
        case 0xca: case 0xce: case 0xd2: p += 5; break;
        case 0xcb: case 0xcf: case 0xd3: p += 9; break;
        case 0xd4: p += 3; break; // fixext 1..16: type byte + data
        case 0xd5: p += 4; break;
        case 0xd6: p += 6; break;
        case 0xd7: p += 10; break;
        case 0xd8: p += 18; break;
        case 0xc4: case 0xd9: // bin8, str8
          if (p + 2 > end) return -1;
          p += 2 + b[p + 1];
          break;
        case 0xc5: case 0xda: // bin16, str16
          if (p + 3 > end) return -1;
          p += 3 + ((b[p + 1] << 8) | b[p + 2]);
          break;
        case 0xc6: case 0xdb: // bin32, str32
          if (p + 5 > end) return -1;
          p += 5 + (((b[p + 1] << 24) | (b[p + 2] << 16) | (b[p + 3] << 8) | b[p + 4]) >>> 0);
          break;
        case 0xc7: // ext8: length, type, data
          if (p + 2 > end) return -1;
          p += 3 + b[p + 1];
          break;
        case 0xc8:
          if (p + 3 > end) return -1;
          p += 4 + ((b[p + 1] << 8) | b[p + 2]);
          break;
        case 0xc9:
          if (p + 5 > end) return -1;
          p += 6 + (((b[p + 1] << 24) | (b[p + 2] << 16) | (b[p + 3] << 8) | b[p + 4]) >>> 0);
          break;
        case 0xdc: // array16, array32, map16, map32
          if (p + 3 > end) return -1;
          count += (b[p + 1] << 8) | b[p + 2];
          p += 3;
          break;
        case 0xdd:
          if (p + 5 > end) return -1;
          count += ((b[p + 1] << 24) | (b[p + 2] << 16) | (b[p + 3] << 8) | b[p + 4]) >>> 0;
          p += 5;
          break;
        case 0xde:
          if (p + 3 > end) return -1;
          count += 2 * ((b[p + 1] << 8) | b[p + 2]);
          p += 3;
          break;
        case 0xdf:
          if (p + 5 > end) return -1;
          count += 2 * (((b[p + 1] << 24) | (b[p + 2] << 16) | (b[p + 3] << 8) | b[p + 4]) >>> 0);
          p += 5;
          break;
        default: // 0xc1 is never used
          return -1;
      }
    }
  }
  return p <= end ? p : -1;
}

function bytesEqual(b: Uint8Array, p: number, len: number, want: Uint8Array): boolean {
  if (len !== want.length) return false;
  for (let i = 0; i < len; i++) if (b[p + i] !== want[i]) return false;
  return true;
}

function lookupType(b: Uint8Array, p: number, len: number): number {
  for (let i = 0; i < NAME_BYTES.length; i++) if (bytesEqual(b, p, len, NAME_BYTES[i])) return i;
  return T_OTHER;
}

/** Whether classifying this type needs body (update_notebook: body.updates; complete: body.query). */
function needsBody(type: number): boolean {
  return type === T_UPDATE_NOTEBOOK || type === T_COMPLETE;
}

/** Reads body (a map at p): sets rUpdates and rQuery. Returns the end of body, or -1. */
function readBody(b: Uint8Array, p: number, end: number): number {
  p = mapAt(b, p, end);
  if (p < 0) return -1;
  for (let n = hLen; n > 0; n--) {
    const k = strAt(b, p, end);
    if (k < 0) {
      p = skip(b, p, end, 2);
    } else {
      const klen = hLen;
      p = k + klen;
      if (bytesEqual(b, k, klen, KEY_UPDATES)) {
        rUpdates = arrayLenAt(b, p, end);
        if (rType === T_UPDATE_NOTEBOOK && rUpdates >= 0) return end; // all we need: don't walk the patches
        p = skip(b, p, end, 1);
      } else if (bytesEqual(b, k, klen, KEY_QUERY)) {
        const s = strAt(b, p, end);
        if (s >= 0) {
          rQuery = bytesEqual(b, s, hLen, WARMUP_1) || bytesEqual(b, s, hLen, WARMUP_2) ? 1 : 2;
          if (rType === T_COMPLETE) return end;
          p = s + hLen;
        } else {
          rQuery = 2;
          p = skip(b, p, end, 1);
        }
      } else {
        p = skip(b, p, end, 1);
      }
    }
    if (p < 0) return -1;
  }
  return p;
}

/**
 * Reads what classification needs from one client message into rType, rUpdates, rQuery.
 * Returns false when the message is not a MsgPack map with a string `type`. Bytes after the map are ignored
 * (older Pluto clients appended a delimiter to every message).
 */
export function readPlutoMessage(b: Uint8Array): boolean {
  rType = T_NONE;
  rUpdates = -1;
  rQuery = 0;
  const end = b.length;
  let p = mapAt(b, 0, end);
  if (p < 0) return false;
  let bodySeen = false;
  for (let n = hLen; n > 0; n--) {
    const k = strAt(b, p, end);
    if (k < 0) {
      p = skip(b, p, end, 2);
    } else {
      const klen = hLen;
      p = k + klen;
      if (bytesEqual(b, k, klen, KEY_TYPE)) {
        const s = strAt(b, p, end);
        if (s < 0) return false;
        rType = lookupType(b, s, hLen);
        if (bodySeen || !needsBody(rType)) return true; // the client sends `type` first: most messages stop here
        p = s + hLen;
      } else if (bytesEqual(b, k, klen, KEY_BODY)) {
        bodySeen = true;
        p = readBody(b, p, end);
        if (rType !== T_NONE) return p >= 0;
      } else {
        p = skip(b, p, end, 1);
      }
    }
    if (p < 0) return false;
  }
  return rType !== T_NONE;
}

// ---------------------------------------------------------------------------------------------------------------

class PlutoConnection implements ConnectionClassifier {
  private completes = 0;
  private sawActive = false;

  clientMessage(_opcode: number, payload: Buffer | undefined, _totalLength: number, compressed: boolean): MessageClass {
    const c = this.classify(payload, compressed);
    if (c.kind === 'active') this.sawActive = true;
    return c;
  }

  private classify(payload: Buffer | undefined, compressed: boolean): MessageClass {
    if (compressed) return ACTIVE.compressed;
    if (payload === undefined) return ACTIVE.oversize;
    if (!readPlutoMessage(payload)) return ACTIVE.undecodable;
    const t = rType;
    if (t === T_OTHER) return ACTIVE.other;
    if (ALWAYS_IDLE[t]) return RESULT_IDLE[t];
    if (t === T_UPDATE_NOTEBOOK) return rUpdates === 0 ? IDLE.update_notebook : ACTIVE.update_notebook;
    if (t === T_COMPLETE) {
      this.completes++;
      return this.completes <= 2 && !this.sawActive && rQuery !== 2 ? IDLE.complete : ACTIVE.complete;
    }
    return RESULT_ACTIVE[t];
  }
}

/** Last path segments that are the page's own chatter, never a person: health checks and the binder token probe. */
const IDLE_ROUTES = new Set(['ping', 'auth-check', 'possible_binder_token_please', 'notebooklist']);

/**
 * HTTP: errors, the WebSocket upgrade (101), HEAD/OPTIONS, static assets and IDLE_ROUTES are idle; everything else
 * (the index, /edit, /open, /new, /sample/*, /notebookexport, /notebookfile, /statefile, uploads, unknown routes) is
 * a page load or an action. Pluto's routes are one segment at the app root, so the LAST segment is matched: this
 * works whether or not the path still carries the app prefix.
 */
function plutoHttp(method: string, path: string, status: number): ActivityKind {
  if (status >= 400 || status === 101) return 'idle';
  if (method === 'HEAD' || method === 'OPTIONS') return 'idle';
  const p = pathOnly(path);
  if (isAssetPath(p)) return 'idle';
  const last = p.slice(p.lastIndexOf('/') + 1);
  return IDLE_ROUTES.has(last) ? 'idle' : 'active';
}

export const plutoClassifier: Classifier = {
  name: 'pluto',
  newConnection: () => new PlutoConnection(),
  http: plutoHttp,
};
