// Activity classifier for Pluto.jl: names each client MsgPack message and each HTTP request, and says if a person did it.
// Facts from Pluto 0.20 (see docs/notebook-traffic.md): keepalives are ordinary binary messages, so types matter.

import { PlutoFields, QUERY_ABSENT, QUERY_NOT_STRING, WANT_QUERY, WANT_UPDATES, peekBody, peekType } from '../protocol/msgpack-peek.js';
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
  'ping',
  'current_time',
  'update_notebook',
  'complete',
  'connect',
  'reset_shared_state',
  'get_all_notebooks',
  'complete_symbols',
  'all_registered_package_names',
  'run_multiple_cells',
  'interrupt_all',
  'docs',
  'reshow_cell',
  'shutdown_notebook',
  'restart_process',
  'write_file',
  'nbpkg_available_versions',
  'pkg_update',
] as const;

const { idle: IDLE, active: ACTIVE } = messageClasses([...TYPES, 'other', 'undecodable', 'compressed', 'oversize'] as const);

// Type ids are indexes into TYPES; these are the ones with rules of their own.
const T_UPDATE_NOTEBOOK = TYPES.indexOf('update_notebook');
const T_COMPLETE = TYPES.indexOf('complete');
const T_OTHER = -2;
const T_UNREADABLE = -3;

/** For each known type: idle no matter what (true), or active (false). update_notebook and complete are decided apart. */
const ALWAYS_IDLE: readonly boolean[] = TYPES.map(
  (t) =>
    t === 'ping' ||
    t === 'current_time' ||
    t === 'connect' ||
    t === 'reset_shared_state' ||
    t === 'get_all_notebooks' ||
    t === 'complete_symbols' ||
    t === 'all_registered_package_names',
);
const RESULT_IDLE: readonly MessageClass[] = TYPES.map((t) => IDLE[t]);
const RESULT_ACTIVE: readonly MessageClass[] = TYPES.map((t) => ACTIVE[t]);
const NAME_BYTES: readonly Buffer[] = TYPES.map((t) => Buffer.from(t, 'latin1'));

const WARMUP_1 = Buffer.from('sq');
const WARMUP_2 = Buffer.from('\\sq');

function bytesEqual(b: Uint8Array, p: number, len: number, want: Uint8Array): boolean {
  if (len !== want.length) return false;
  for (let i = 0; i < len; i++) if (b[p + i] !== want[i]) return false;
  return true;
}

/** The type's index into TYPES, or T_OTHER. */
function lookupType(b: Uint8Array, p: number, len: number): number {
  for (let i = 0; i < NAME_BYTES.length; i++) if (bytesEqual(b, p, len, NAME_BYTES[i])) return i;
  return T_OTHER;
}

/**
 * Reads what classifying b needs into f: the type, then body.updates for update_notebook or body.query for complete.
 * Returns the type's index into TYPES, T_OTHER, or T_UNREADABLE (not a map with a string `type`, or a body that
 * cannot be read when the type needs it).
 */
function readMessage(b: Uint8Array, f: PlutoFields): number {
  if (!peekType(b, f)) return T_UNREADABLE;
  const t = lookupType(b, f.typeStart, f.typeEnd - f.typeStart);
  if (t === T_UPDATE_NOTEBOOK && !peekBody(b, f, WANT_UPDATES)) return T_UNREADABLE;
  if (t === T_COMPLETE && !peekBody(b, f, WANT_QUERY)) return T_UNREADABLE;
  return t;
}

/** Whether the classifier can read b (false: it counts as undecodable). Allocates its fields; a connection reuses one. */
export function readPlutoMessage(b: Uint8Array): boolean {
  return readMessage(b, new PlutoFields()) !== T_UNREADABLE;
}

class PlutoConnection implements ConnectionClassifier {
  private completes = 0;
  private sawActive = false;
  private readonly fields = new PlutoFields();

  clientMessage(_opcode: number, payload: Buffer | undefined, totalLength: number, compressed: boolean): MessageClass {
    let c = this.classify(payload, compressed);
    // Only the first bytes of a long message were read: what they do not settle is just "too long".
    if (c === ACTIVE.undecodable && payload !== undefined && payload.length < totalLength) c = ACTIVE.oversize;
    if (c.kind === 'active') this.sawActive = true;
    return c;
  }

  private classify(payload: Buffer | undefined, compressed: boolean): MessageClass {
    if (compressed) return ACTIVE.compressed;
    if (payload === undefined) return ACTIVE.oversize;
    const f = this.fields;
    const t = readMessage(payload, f);
    if (t === T_UNREADABLE) return ACTIVE.undecodable;
    if (t === T_OTHER) return ACTIVE.other;
    if (ALWAYS_IDLE[t]) return RESULT_IDLE[t];
    if (t === T_UPDATE_NOTEBOOK) return f.updates === 0 ? IDLE.update_notebook : ACTIVE.update_notebook;
    if (t === T_COMPLETE) {
      this.completes++;
      return this.completes <= 2 && !this.sawActive && this.isWarmUpQuery(payload) ? IDLE.complete : ACTIVE.complete;
    }
    return RESULT_ACTIVE[t];
  }

  /** body.query is one of the two warm-up queries, or absent. */
  private isWarmUpQuery(b: Uint8Array): boolean {
    const f = this.fields;
    if (f.queryStart === QUERY_ABSENT) return true;
    if (f.queryStart === QUERY_NOT_STRING) return false;
    const len = f.queryEnd - f.queryStart;
    return bytesEqual(b, f.queryStart, len, WARMUP_1) || bytesEqual(b, f.queryStart, len, WARMUP_2);
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
