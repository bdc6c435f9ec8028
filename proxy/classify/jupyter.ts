// Activity classifier for Jupyter Server (JupyterLab, Notebook 7): names each kernel message the browser sends
// and each HTTP request, and says if a person did it. Reads only the few JSON fields it needs, without JSON.parse.

import { isAssetPath, messageClasses, pathOnly } from './types.js';
import type { ActivityKind, Classifier, ConnectionClassifier, MessageClass } from './types.js';

/*
 * Kernel WebSocket ({base}api/kernels/<id>/channels), client to server. Three framings, told apart by their bytes:
 *   - text frame: legacy JSON, {"header": {"msg_type": ...}, "content": ..., "channel": ...}
 *   - binary, subprotocol v1.kernel.websocket.jupyter.org (jupyter_server kernels/connection/base.py,
 *     serialize_msg_to_ws_v1): uint64 LE n, then n uint64 LE offsets, then channel, header, parent_header,
 *     metadata, content, buffers...; part i spans [offset[i], offset[i+1]), offset[0] == 8 * (n + 1).
 *   - binary, legacy with buffers (deserialize_binary_message): uint32 BE nbufs, nbufs uint32 BE offsets
 *     (offset[0] == 4 * (nbufs + 1)); the first part is the JSON message.
 *
 * Idle (the frontend sends these by itself):
 *   kernel_info_request    on every kernel socket (re)connect and after restarts
 *   comm_info_request      the widget manager restoring widgets when a notebook opens
 *   history_request        consoles and notebook history load it when they start
 *   comm_open, comm_close  the widget manager's control comm, opened and closed at start-up
 *   comm_msg with data.method "request_states" / "request_state"   that same start-up restore (ipywidgets 8 / 7)
 *   debug_request with command "debugInfo"    the debugger sidebar probing the kernel when a notebook opens
 * Active: execute_request, comm_msg (widget changes), complete_request, inspect_request, is_complete_request,
 *   shutdown_request, interrupt_request, input_reply, other debug_requests, any other or unknown type, anything
 *   undecodable, compressed or over the capture limit.
 */

const TYPES = [
  'execute_request', 'comm_msg', 'complete_request', 'inspect_request', 'is_complete_request', 'kernel_info_request',
  'comm_info_request', 'history_request', 'comm_open', 'comm_close', 'shutdown_request', 'interrupt_request',
  'debug_request', 'input_reply',
] as const;

const { idle: IDLE, active: ACTIVE } = messageClasses([...TYPES, 'other', 'undecodable', 'compressed', 'oversize'] as const);

const ALWAYS_IDLE = new Set<string>(['kernel_info_request', 'comm_info_request', 'history_request', 'comm_open', 'comm_close']);
const IDLE_COMM_METHODS = new Set(['request_states', 'request_state']);

/** msg_type string -> result when no content rule applies. */
const BY_TYPE = new Map<string, MessageClass>(TYPES.map((t) => [t, ALWAYS_IDLE.has(t) ? IDLE[t] : ACTIVE[t]]));

const enc = (s: string): Buffer => Buffer.from(s, 'latin1');
const K_HEADER = enc('header');
const K_MSG_TYPE = enc('msg_type');
const K_CONTENT = enc('content');
const K_DATA = enc('data');
const K_METHOD = enc('method');
const K_COMMAND = enc('command');

// ---------------------------------------------------------------------------------------------------------------
// A minimal JSON field finder over bytes: walks only the objects on the requested path, skips every other value by
// counting brackets outside strings. The found string's raw bytes are left in [vStart, vEnd).

let vStart = 0;
let vEnd = 0;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

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

/** The object at p (after whitespace): returns the position of the value of `key` (whitespace skipped), or -1. */
function findKey(b: Uint8Array, p: number, end: number, key: Uint8Array): number {
  p = skipWs(b, p, end);
  if (p >= end || b[p] !== 0x7b) return -1;
  p++;
  for (;;) {
    p = skipWs(b, p, end);
    if (p >= end || b[p] !== QUOTE) return -1; // '}' (not found) or malformed
    const ks = p + 1;
    p = skipString(b, p, end);
    if (p < 0) return -1;
    const klen = p - 1 - ks;
    p = skipWs(b, p, end);
    if (p >= end || b[p] !== 0x3a) return -1;
    p = skipWs(b, p + 1, end);
    if (klen === key.length) {
      let same = true;
      for (let i = 0; i < klen; i++) {
        if (b[ks + i] !== key[i]) {
          same = false;
          break;
        }
      }
      if (same) return p;
    }
    p = skipValue(b, p, end);
    if (p < 0) return -1;
    p = skipWs(b, p, end);
    if (p >= end) return -1;
    if (b[p] === 0x2c) p++;
    else return -1; // '}' ends the object without the key
  }
}

/** Follows key path from the object at p; on a string value sets [vStart, vEnd) to its raw bytes and returns true. */
function findString(b: Uint8Array, p: number, end: number, k1: Uint8Array, k2?: Uint8Array, k3?: Uint8Array): boolean {
  p = findKey(b, p, end, k1);
  if (p >= 0 && k2 !== undefined) p = findKey(b, p, end, k2);
  if (p >= 0 && k3 !== undefined) p = findKey(b, p, end, k3);
  if (p < 0 || b[p] !== QUOTE) return false;
  const q = skipString(b, p, end);
  if (q < 0) return false;
  vStart = p + 1;
  vEnd = q - 1;
  return true;
}

/** The string found last, as latin1 (all names compared against are ASCII; other bytes just won't match). */
function found(b: Buffer): string {
  return b.toString('latin1', vStart, vEnd);
}

// ---------------------------------------------------------------------------------------------------------------
// Framings. Each locates the header object and the content object as byte ranges of the payload.

let hS = 0; // header [hS, hE)
let hE = 0;
let cS = 0; // content [cS, cE), or cS = -1 when content is inside the header range (legacy JSON: whole message)
let cE = 0;

function u32le(b: Buffer, p: number): number {
  return b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24);
}

/** v1.kernel.websocket.jupyter.org. Returns false unless the offset table is consistent. */
function locateV1(b: Buffer): boolean {
  const len = b.length;
  if (len < 16 || u32le(b, 4) !== 0) return false;
  const n = u32le(b, 0) >>> 0;
  if (n < 3 || n > 0xffff || 8 * (n + 1) > len) return false;
  // offset[0] starts the channel right after the table; offsets never go back and stay inside the message.
  let prev = 8 * (n + 1);
  for (let i = 0; i < n; i++) {
    const at = 8 * (i + 1);
    const off = u32le(b, at) >>> 0;
    if (u32le(b, at + 4) !== 0 || off < prev || off > len || (i === 0 && off !== prev)) return false;
    prev = off;
  }
  // part i (0 channel, 1 header, 2 parent_header, 3 metadata, 4 content) spans [offset[i], offset[i+1])
  hS = u32le(b, 16) >>> 0;
  hE = u32le(b, 24) >>> 0;
  if (n >= 6) {
    cS = u32le(b, 40) >>> 0;
    cE = u32le(b, 48) >>> 0;
  } else {
    cS = cE = 0;
  }
  return true;
}

/** Legacy binary (a JSON message followed by buffers). */
function locateLegacyBinary(b: Buffer): boolean {
  const len = b.length;
  if (len < 8) return false;
  const nbufs = b.readUInt32BE(0);
  if (nbufs < 1 || nbufs > 0xffff || 4 * (nbufs + 1) > len) return false;
  const first = b.readUInt32BE(4);
  if (first !== 4 * (nbufs + 1)) return false;
  const next = nbufs > 1 ? b.readUInt32BE(8) : len;
  if (next < first || next > len) return false;
  hS = first;
  hE = next;
  cS = -1;
  return true;
}

function classifyKernelMessage(opcode: number, b: Buffer): MessageClass {
  let msgType: boolean;
  if (opcode === 1) {
    hS = 0;
    hE = b.length;
    cS = -1;
  } else if (!locateV1(b) && !locateLegacyBinary(b)) {
    return ACTIVE.undecodable;
  }
  if (cS < 0) msgType = findString(b, hS, hE, K_HEADER, K_MSG_TYPE); // whole message: header.msg_type
  else msgType = findString(b, hS, hE, K_MSG_TYPE);
  if (!msgType) return ACTIVE.undecodable;
  const type = found(b);
  const c = BY_TYPE.get(type);
  if (c === undefined) return ACTIVE.other;
  if (type === 'comm_msg') {
    const ok = cS < 0 ? findString(b, hS, hE, K_CONTENT, K_DATA, K_METHOD) : cS < cE && findString(b, cS, cE, K_DATA, K_METHOD);
    return ok && IDLE_COMM_METHODS.has(found(b)) ? IDLE.comm_msg : ACTIVE.comm_msg;
  }
  if (type === 'debug_request') {
    const ok = cS < 0 ? findString(b, hS, hE, K_CONTENT, K_COMMAND) : cS < cE && findString(b, cS, cE, K_COMMAND);
    return ok && found(b) === 'debugInfo' ? IDLE.debug_request : ACTIVE.debug_request;
  }
  return c;
}

const connection: ConnectionClassifier = {
  clientMessage(opcode: number, payload: Buffer | undefined, _totalLength: number, compressed: boolean): MessageClass {
    if (compressed) return ACTIVE.compressed;
    if (payload === undefined) return ACTIVE.oversize;
    return classifyKernelMessage(opcode, payload);
  },
};

// ---------------------------------------------------------------------------------------------------------------
// HTTP. Jupyter keeps its base URL in every path, so the route starts at the first segment that names one of its
// top-level handlers; an optional known baseUrl is cut first, which avoids misreading an app prefix such as /lab/.

/** Top-level route segments of Jupyter Server, JupyterLab, Notebook 7 and Voila. */
const ROOTS = new Set([
  'api', 'lab', 'tree', 'notebooks', 'edit', 'doc', 'consoles', 'terminals', 'files', 'view', 'nbconvert', 'voila',
  'retro', 'login', 'logout', 'static', 'nbextensions', 'custom', 'kernelspecs',
]);
const ASSET_ROOTS = new Set(['static', 'nbextensions', 'custom', 'kernelspecs']);

/**
 * Idle: every GET of an API (the frontend polls kernels, sessions, terminals every 10 s, kernelspecs and me every
 * 61 s, the file browser re-lists its directory, settings and translations load at start), PUT of JupyterLab's
 * workspace (it saves its layout by itself), static assets. Active: any other API write (contents saves, renames,
 * deletes, checkpoints; kernel start, restart, interrupt, shutdown; sessions; terminals; settings), page loads.
 */
function apiRule(method: string, resource: string | undefined): ActivityKind {
  if (method === 'GET') return 'idle';
  if (method === 'PUT' && resource === 'workspaces') return 'idle';
  return 'active';
}

function jupyterHttp(baseUrl: string | undefined, method: string, path: string, status: number): ActivityKind {
  if (status >= 400 || status === 101) return 'idle';
  if (method === 'HEAD' || method === 'OPTIONS') return 'idle';
  let p = pathOnly(path);
  let i = 0;
  let seg: string[];
  if (baseUrl !== undefined && p.startsWith(baseUrl)) {
    p = p.slice(baseUrl.length);
    seg = p.split('/');
    while (i < seg.length && seg[i] === '') i++;
    if (i < seg.length && !ROOTS.has(seg[i])) i = seg.length;
  } else {
    seg = p.split('/');
    while (i < seg.length && !ROOTS.has(seg[i])) i++;
  }
  if (i === seg.length) {
    // No Jupyter route: the base URL itself (redirects to lab or tree) or something unknown.
    return isAssetPath(p) ? 'idle' : 'active';
  }
  const root = seg[i];
  if (root === 'api') return apiRule(method, seg[i + 1]);
  if (ASSET_ROOTS.has(root)) return 'idle';
  if (root === 'lab') {
    const next = seg[i + 1];
    if (next === 'api') return apiRule(method, seg[i + 2]); // jupyterlab_server: settings, workspaces, translations, themes
    if (next === 'extensions' || next === 'static') return 'idle';
  }
  return 'active'; // a page load, a file download or export, a login
}

export interface JupyterClassifierOptions {
  /** The server's base_url (e.g. "/vdma/"), when known: cut from the front of paths before matching. */
  baseUrl?: string;
}

export function createJupyterClassifier(opts: JupyterClassifierOptions = {}): Classifier {
  const base = opts.baseUrl === undefined || opts.baseUrl === '' || opts.baseUrl === '/' ? undefined : opts.baseUrl.replace(/\/*$/, '/');
  return {
    name: 'jupyter',
    newConnection: () => connection, // stateless: one object for every connection
    http: (method, path, status) => jupyterHttp(base, method, path, status),
  };
}

export const jupyterClassifier: Classifier = createJupyterClassifier();
