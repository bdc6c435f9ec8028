// Wire formats of Pluto's WebSocket (MsgPack maps) and Jupyter's kernel channels (v1 binary and legacy JSON),
// shared by the stand-in servers, the editor page they serve and the driver clients.

import { encode, decode } from '@msgpack/msgpack';
import { randomBytes, randomUUID } from 'node:crypto';

/** MsgPack as Pluto uses it; re-exported so other tests need not import @msgpack/msgpack themselves. */
export function msgpackEncode(value: unknown): Uint8Array {
  return encode(value);
}
export function msgpackDecode(bytes: ArrayLike<number> | ArrayBufferView | ArrayBuffer): unknown {
  return decode(bytes as ArrayLike<number>);
}

// ---------------------------------------------------------------------------------------------
// Pluto

/** The stand-in's notebook id unless NOTEBOOK_ID says otherwise; also the deep link `/edit?id=...`. */
export const DEFAULT_NOTEBOOK_ID = '6b1e7f2a-3c4d-4e5f-8a9b-0c1d2e3f4a5b';

/** Client-to-server message types the stand-in answers (Pluto 0.20 `responses[...]`). */
export const PLUTO_CLIENT_TYPES = [
  'connect',
  'ping',
  'current_time',
  'update_notebook',
  'reset_shared_state',
  'complete',
  'docs',
  'run_multiple_cells',
  'interrupt_all',
  'reshow_cell',
  'shutdown_notebook',
] as const;
export type PlutoClientType = (typeof PLUTO_CLIENT_TYPES)[number];

/** Server-to-client message types. */
export const PLUTO_SERVER_TYPES = ['👋', 'pong', 'current_time', 'notebook_diff', 'completion_result', 'doc_result'] as const;
export type PlutoServerType = (typeof PLUTO_SERVER_TYPES)[number];

/** Client to server: `{type, client_id, request_id, body, ...metadata}` (PlutoConnection.js `send`). */
export interface PlutoRequest {
  type: string;
  client_id: string;
  request_id: string;
  body: Record<string, unknown>;
  notebook_id?: string;
  cell_id?: string;
}

/** Server to client; keys absent when Pluto's UpdateMessage leaves them `nothing` (PutUpdates.jl). */
export interface PlutoUpdate {
  type: string;
  message: any;
  notebook_id?: string;
  cell_id?: string;
  initiator_id?: string;
  request_id?: string;
}

/** A Firebasey / immer patch; `path: []` replaces the whole state. */
export interface Patch {
  op: 'add' | 'replace' | 'remove';
  path: (string | number)[];
  value?: unknown;
}

/** Pluto's `get_unique_short_id`: a random uint32 in base 36. */
export function shortId(): string {
  return randomBytes(4).readUInt32LE(0).toString(36);
}

export function plutoRequest(
  type: string,
  clientId: string,
  body: Record<string, unknown> = {},
  meta: { notebook_id?: string; cell_id?: string } = {},
  requestId: string = shortId(),
): PlutoRequest {
  return { type, client_id: clientId, request_id: requestId, body, ...meta };
}

export function plutoUpdate(
  type: string,
  message: unknown,
  opts: { notebookId?: string; cellId?: string; initiator?: { client_id: string; request_id: string } } = {},
): PlutoUpdate {
  const u: PlutoUpdate = { type, message };
  if (opts.notebookId !== undefined) u.notebook_id = opts.notebookId;
  if (opts.cellId !== undefined) u.cell_id = opts.cellId;
  if (opts.initiator) {
    u.initiator_id = opts.initiator.client_id;
    u.request_id = opts.initiator.request_id;
  }
  return u;
}

/** Reads a client message; undefined for anything that is not a MsgPack map with a string `type`. */
export function parsePlutoRequest(bytes: Uint8Array): PlutoRequest | undefined {
  let v: unknown;
  try {
    v = decode(bytes);
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) return undefined;
  const m = v as Record<string, unknown>;
  if (typeof m.type !== 'string') return undefined;
  const body = m.body !== null && typeof m.body === 'object' && !Array.isArray(m.body) ? (m.body as Record<string, unknown>) : {};
  return {
    type: m.type,
    client_id: typeof m.client_id === 'string' ? m.client_id : '',
    request_id: typeof m.request_id === 'string' ? m.request_id : '',
    body,
    ...(typeof m.notebook_id === 'string' ? { notebook_id: m.notebook_id } : {}),
    ...(typeof m.cell_id === 'string' ? { cell_id: m.cell_id } : {}),
  };
}

/**
 * Applies patches to a plain-object state in place and returns it (a root replace returns the new value).
 * Self-contained on purpose: the server inlines its source into the editor page. Refuses keys that
 * would reach Object.prototype.
 */
export function applyPatches(state: any, patches: any[]): any {
  for (const p of patches || []) {
    if (!p || !Array.isArray(p.path)) continue;
    if (p.path.length === 0) {
      if (p.op !== 'remove') state = p.value;
      continue;
    }
    if (p.path.some((k: unknown) => k === '__proto__' || k === 'constructor' || k === 'prototype')) continue;
    let o = state;
    for (let i = 0; i < p.path.length - 1; i++) {
      const k = p.path[i];
      if (o[k] === null || typeof o[k] !== 'object') o[k] = {};
      o = o[k];
    }
    const last = p.path[p.path.length - 1];
    if (p.op === 'remove') delete o[last];
    else o[last] = p.value;
  }
  return state;
}

// ---------------------------------------------------------------------------------------------
// Jupyter

export const JUPYTER_V1_SUBPROTOCOL = 'v1.kernel.websocket.jupyter.org';
export type JupyterChannel = 'shell' | 'iopub' | 'stdin' | 'control' | 'hb';

export interface JupyterHeader {
  msg_id: string;
  msg_type: string;
  username: string;
  session: string;
  date: string;
  version: string;
  [k: string]: unknown;
}

export interface JupyterMessage {
  channel: JupyterChannel | string;
  header: JupyterHeader;
  parent_header: Partial<JupyterHeader> | Record<string, never>;
  metadata: Record<string, unknown>;
  content: any;
  buffers?: Uint8Array[];
}

export function jupyterMessage(
  channel: JupyterChannel,
  msgType: string,
  content: unknown,
  opts: { session: string; parent?: JupyterHeader; username?: string } = { session: randomUUID() },
): JupyterMessage {
  return {
    channel,
    header: {
      msg_id: randomUUID(),
      msg_type: msgType,
      username: opts.username ?? 'jovyan',
      session: opts.session,
      date: new Date().toISOString(),
      version: '5.3',
    },
    parent_header: opts.parent ?? {},
    metadata: {},
    content,
  };
}

/**
 * The v1 kernel-websocket frame (jupyter_server `serialize_msg_to_ws_v1`): u64le count of offsets,
 * the offsets (u64le), then the channel name and the JSON parts header, parent_header, metadata, content, buffers.
 */
export function serializeV1(msg: JupyterMessage): Buffer {
  const parts: Buffer[] = [
    Buffer.from(JSON.stringify(msg.header)),
    Buffer.from(JSON.stringify(msg.parent_header)),
    Buffer.from(JSON.stringify(msg.metadata)),
    Buffer.from(JSON.stringify(msg.content)),
    ...(msg.buffers ?? []).map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength)),
  ];
  const channel = Buffer.from(msg.channel);
  const offsets: number[] = [8 * (1 + 1 + parts.length + 1)];
  offsets.push(offsets[0]! + channel.length);
  for (const p of parts) offsets.push(offsets[offsets.length - 1]! + p.length);
  const head = Buffer.alloc(8 * (offsets.length + 1));
  head.writeBigUInt64LE(BigInt(offsets.length), 0);
  offsets.forEach((o, i) => {
    head.writeBigUInt64LE(BigInt(o), 8 * (i + 1));
  });
  return Buffer.concat([head, channel, ...parts]);
}

/** Inverse of serializeV1; undefined for a frame that does not follow the format. */
export function deserializeV1(frame: Buffer): JupyterMessage | undefined {
  try {
    if (frame.length < 8) return undefined;
    const n = Number(frame.readBigUInt64LE(0));
    if (n < 6 || n > 1024 || frame.length < 8 * (n + 1)) return undefined;
    const offsets: number[] = [];
    for (let i = 0; i < n; i++) offsets.push(Number(frame.readBigUInt64LE(8 * (i + 1))));
    for (let i = 1; i < n; i++) if (offsets[i]! < offsets[i - 1]! || offsets[i]! > frame.length) return undefined;
    const channel = frame.subarray(offsets[0], offsets[1]).toString('utf8');
    const parts: Buffer[] = [];
    for (let i = 1; i < n - 1; i++) parts.push(frame.subarray(offsets[i], offsets[i + 1]));
    const json = (b: Buffer) => JSON.parse(b.toString('utf8'));
    const msg: JupyterMessage = {
      channel,
      header: json(parts[0]!),
      parent_header: json(parts[1]!),
      metadata: json(parts[2]!),
      content: json(parts[3]!),
    };
    if (parts.length > 4) msg.buffers = parts.slice(4).map((b) => new Uint8Array(b));
    return msg;
  } catch {
    return undefined;
  }
}

/** Legacy (no subprotocol) frames: one JSON text message with a `channel` key. */
export function serializeLegacy(msg: JupyterMessage): string {
  const { buffers: _b, ...rest } = msg;
  return JSON.stringify(rest);
}

export function deserializeLegacy(text: string): JupyterMessage | undefined {
  try {
    const m = JSON.parse(text);
    if (!m || typeof m !== 'object' || !m.header || typeof m.header.msg_type !== 'string') return undefined;
    return { channel: m.channel ?? 'shell', header: m.header, parent_header: m.parent_header ?? {}, metadata: m.metadata ?? {}, content: m.content ?? {} };
  } catch {
    return undefined;
  }
}
