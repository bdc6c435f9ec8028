// Activity classifier for Jupyter Server (JupyterLab, Notebook 7): names each kernel message the browser sends
// and each HTTP request, and says if a person did it, from the few JSON fields protocol/json-peek.ts finds.

import { matchString, stringEnd, valueAt } from '../protocol/json-peek.js';
import { KernelParts, locateKernelParts } from '../protocol/kernel-ws-msg.js';
import { isAssetPath, messageClasses, pathOnly } from './types.js';
import type { ActivityKind, Classifier, ConnectionClassifier, MessageClass } from './types.js';

/*
 * Kernel WebSocket ({base}api/kernels/<id>/channels), client to server: the framings are in protocol/kernel-ws-msg.ts.
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

/** The kernel message types this classifier names (bench/peek-micro.ts reads them too). */
export const JUPYTER_MESSAGE_TYPES = [
  'execute_request',
  'comm_msg',
  'complete_request',
  'inspect_request',
  'is_complete_request',
  'kernel_info_request',
  'comm_info_request',
  'history_request',
  'comm_open',
  'comm_close',
  'shutdown_request',
  'interrupt_request',
  'debug_request',
  'input_reply',
] as const;

const { idle: IDLE, active: ACTIVE } = messageClasses([...JUPYTER_MESSAGE_TYPES, 'other', 'undecodable', 'compressed', 'oversize'] as const);

/** Types that are never a person at work, whatever their content. */
export const ALWAYS_IDLE: ReadonlySet<string> = new Set<string>(['kernel_info_request', 'comm_info_request', 'history_request', 'comm_open', 'comm_close']);

const enc = (s: string): Buffer => Buffer.from(s, 'latin1');
/** Type names as bytes, for matching in place; the result for each when no content rule applies. */
const TYPE_NAMES: readonly Uint8Array[] = JUPYTER_MESSAGE_TYPES.map(enc);
const BY_TYPE: readonly MessageClass[] = JUPYTER_MESSAGE_TYPES.map((t) => (ALWAYS_IDLE.has(t) ? IDLE[t] : ACTIVE[t]));
const T_COMM_MSG = JUPYTER_MESSAGE_TYPES.indexOf('comm_msg');
const T_DEBUG_REQUEST = JUPYTER_MESSAGE_TYPES.indexOf('debug_request');
const IDLE_COMM_METHODS: readonly Uint8Array[] = [enc('request_states'), enc('request_state')];
const IDLE_DEBUG_COMMANDS: readonly Uint8Array[] = [enc('debugInfo')];

const K_HEADER = enc('header');
const K_MSG_TYPE = enc('msg_type');
const K_CONTENT = enc('content');
const K_DATA = enc('data');
const K_METHOD = enc('method');
const K_COMMAND = enc('command');

const NOT_A_STRING = -2;

/** Which of names the string value at p (from valueAt, or -1) is: its index, -1 for none, NOT_A_STRING. */
function matchAt(b: Buffer, p: number, end: number, names: readonly Uint8Array[]): number {
  const q = stringEnd(b, p, end);
  return q < 0 ? NOT_A_STRING : matchString(b, p, q, names);
}

class JupyterConnection implements ConnectionClassifier {
  private readonly parts = new KernelParts();

  clientMessage(opcode: number, payload: Buffer | undefined, totalLength: number, compressed: boolean): MessageClass {
    if (compressed) return ACTIVE.compressed;
    if (payload === undefined) return ACTIVE.oversize;
    const c = this.classify(opcode, payload);
    // Only the first bytes of a long message were read: what they do not settle is just "too long".
    return c === ACTIVE.undecodable && payload.length < totalLength ? ACTIVE.oversize : c;
  }

  private classify(opcode: number, b: Buffer): MessageClass {
    const m = this.parts;
    if (!locateKernelParts(opcode, b, m)) return ACTIVE.undecodable;
    const hS = m.headerStart;
    const hE = m.headerEnd;
    const t = matchAt(b, m.whole ? valueAt(b, hS, hE, K_HEADER, K_MSG_TYPE) : valueAt(b, hS, hE, K_MSG_TYPE), hE, TYPE_NAMES);
    if (t === NOT_A_STRING) return ACTIVE.undecodable;
    if (t < 0) return ACTIVE.other;
    if (t === T_COMM_MSG) return this.content(b, IDLE_COMM_METHODS, K_DATA, K_METHOD) >= 0 ? IDLE.comm_msg : ACTIVE.comm_msg;
    if (t === T_DEBUG_REQUEST) return this.content(b, IDLE_DEBUG_COMMANDS, K_COMMAND) >= 0 ? IDLE.debug_request : ACTIVE.debug_request;
    return BY_TYPE[t];
  }

  /** Which of names the string at content.k1[.k2] is (matchAt), in the whole message or the v1 content part. */
  private content(b: Buffer, names: readonly Uint8Array[], k1: Uint8Array, k2?: Uint8Array): number {
    const m = this.parts;
    if (m.whole) return matchAt(b, valueAt(b, m.headerStart, m.headerEnd, K_CONTENT, k1, k2), m.headerEnd, names);
    const { contentStart: cS, contentEnd: cE } = m;
    return cS < cE ? matchAt(b, valueAt(b, cS, cE, k1, k2), cE, names) : NOT_A_STRING;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP. Jupyter keeps its base URL in every path, so the route starts at the first segment that names one of its
// top-level handlers; an optional known baseUrl is cut first, which avoids misreading an app prefix such as /lab/.

/** Top-level route segments of Jupyter Server, JupyterLab, Notebook 7 and Voila. */
const ROOTS = new Set([
  'api',
  'lab',
  'tree',
  'notebooks',
  'edit',
  'doc',
  'consoles',
  'terminals',
  'files',
  'view',
  'nbconvert',
  'voila',
  'retro',
  'login',
  'logout',
  'static',
  'nbextensions',
  'custom',
  'kernelspecs',
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
    newConnection: () => new JupyterConnection(),
    http: (method, path, status) => jupyterHttp(base, method, path, status),
  };
}

export const jupyterClassifier: Classifier = createJupyterClassifier();
