// Driver clients for tests and benchmarks: a Node PlutoClient and JupyterClient that produce the browsers' idle and
// active traffic on demand (no timers unless startIdle() is asked for), plus one round of JupyterLab's REST polls.

import { WebSocket, type RawData } from 'ws';
import { randomUUID } from 'node:crypto';
import {
  DEFAULT_NOTEBOOK_ID,
  JUPYTER_V1_SUBPROTOCOL,
  applyPatches,
  deserializeLegacy,
  deserializeV1,
  jupyterMessage,
  msgpackDecode,
  msgpackEncode,
  serializeLegacy,
  serializeV1,
  shortId,
  type JupyterChannel,
  type JupyterMessage,
  type PlutoUpdate,
} from './protocol.js';

export { msgpackEncode, msgpackDecode } from './protocol.js';

/** An error opening a socket; `status` is the HTTP status of a refused upgrade (e.g. 403). */
export class DriverError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'DriverError';
  }
}

function toWs(url: string): string {
  return url.replace(/^http(s?):/, 'ws$1:');
}

/** Opens a ws WebSocket and waits for open; a refused upgrade rejects with its status. */
function openSocket(url: string, protocols: string[], opts: ConstructorParameters<typeof WebSocket>[2]): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(toWs(url), protocols, opts);
    const fail = (e: Error) => {
      const m = /Unexpected server response: (\d+)/.exec(e.message);
      reject(new DriverError(`cannot open ${url}: ${e.message}`, m ? Number(m[1]) : undefined));
    };
    ws.once('error', fail);
    ws.once('open', () => {
      ws.off('error', fail);
      ws.on('error', () => {});
      resolve(ws);
    });
  });
}

function rawToBuffer(data: RawData): Buffer {
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
}

function bump(rec: Record<string, number>, k: string): void {
  rec[k] = (rec[k] ?? 0) + 1;
}

// ---------------------------------------------------------------------------------------------
// Pluto

export interface PlutoClientOptions {
  /** Sent as the Cookie header (e.g. warmpool's session cookie, or `secret=...`). */
  cookie?: string;
  headers?: Record<string, string>;
  origin?: string;
  notebookId?: string;
  perMessageDeflate?: boolean;
  /** How long a request waits for its reply (default 30 s). */
  timeoutMs?: number;
}

/** A server message that answered one of our requests, with the size of its frame. */
export type PlutoReply = PlutoUpdate & { bytes: number };

interface Pending {
  resolve: (r: PlutoReply) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class PlutoClient {
  readonly clientId = shortId();
  readonly notebookId: string;
  /** Messages sent, by type. */
  readonly sent: Record<string, number> = {};
  /** Messages received, by type. */
  readonly received: Record<string, number> = {};
  bytesSent = 0;
  bytesReceived = 0;
  /** The notebook state as the patches built it. */
  state: any = {};
  /** Size of the last full-state notebook_diff (start or resetSharedState). */
  fullStateBytes = 0;
  /** Server messages that answer none of our requests (timer cells, other clients, execution finishing). */
  onPush?: (update: PlutoUpdate, bytes: number) => void;
  readonly closed: Promise<{ code: number; reason: string }>;

  private pending = new Map<string, Pending>();
  private idleTimers: NodeJS.Timeout[] = [];
  private readonly timeoutMs: number;

  private constructor(
    private readonly ws: WebSocket,
    opts: PlutoClientOptions,
  ) {
    this.notebookId = opts.notebookId ?? DEFAULT_NOTEBOOK_ID;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.stopIdle();
        for (const p of this.pending.values()) {
          clearTimeout(p.timer);
          p.reject(new DriverError(`socket closed (${code}) before the reply`));
        }
        this.pending.clear();
        resolve({ code, reason: reason.toString() });
      });
    });
  }

  /** Connects to the app root, e.g. `ws://127.0.0.1:8080/demo/` (http:// is accepted too). */
  static async open(url: string, opts: PlutoClientOptions = {}): Promise<PlutoClient> {
    const headers = { ...(opts.headers ?? {}), ...(opts.cookie ? { Cookie: opts.cookie } : {}) };
    const ws = await openSocket(url, [], { headers, origin: opts.origin, perMessageDeflate: opts.perMessageDeflate ?? false });
    return new PlutoClient(ws, opts);
  }

  get readyState(): number {
    return this.ws.readyState;
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    const buf = rawToBuffer(data);
    this.bytesReceived += buf.length;
    if (!isBinary) {
      bump(this.received, 'text');
      return;
    }
    let u: PlutoUpdate;
    try {
      u = msgpackDecode(buf) as PlutoUpdate;
    } catch {
      bump(this.received, 'undecodable');
      return;
    }
    if (!u || typeof u !== 'object' || typeof u.type !== 'string') {
      bump(this.received, 'undecodable');
      return;
    }
    bump(this.received, u.type);
    if (u.type === 'notebook_diff' && Array.isArray(u.message?.patches)) {
      this.state = applyPatches(u.message.response?.from_reset ? {} : this.state, u.message.patches);
    }
    const p = u.initiator_id === this.clientId && u.request_id ? this.pending.get(u.request_id) : undefined;
    if (p) {
      this.pending.delete(u.request_id!);
      clearTimeout(p.timer);
      p.resolve({ ...u, bytes: buf.length });
    } else {
      this.onPush?.(u, buf.length);
    }
  }

  /** Sends one message and resolves with the server's reply to it. */
  send(type: string, body: Record<string, unknown> = {}, meta: { notebook_id?: string } = { notebook_id: this.notebookId }): Promise<PlutoReply> {
    const requestId = shortId();
    const bytes = msgpackEncode({ type, client_id: this.clientId, request_id: requestId, body, ...meta });
    return new Promise<PlutoReply>((resolve, reject) => {
      if (this.ws.readyState !== WebSocket.OPEN) return reject(new DriverError(`cannot send ${type}: socket not open`));
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new DriverError(`no reply to ${type} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.set(requestId, { resolve, reject, timer });
      bump(this.sent, type);
      this.bytesSent += bytes.length;
      this.ws.send(bytes, { binary: true });
    });
  }

  /** Sends raw bytes as one binary frame (garbage tests). */
  sendRaw(bytes: Uint8Array | string): void {
    this.ws.send(bytes, { binary: typeof bytes !== 'string' });
  }

  /** What a tab does on load: connect, an empty update_notebook (the full state), the two warm-up completes. Returns the state's frame size. */
  async start(): Promise<number> {
    await this.send('connect', {});
    const full = await this.send('update_notebook', { updates: [] });
    this.fullStateBytes = full.bytes;
    await Promise.all([this.send('complete', { query: 'sq' }), this.send('complete', { query: '\\sq' })]);
    return full.bytes;
  }

  // idle traffic
  ping(): Promise<PlutoReply> {
    return this.send('ping', {}, {});
  }

  /** clock sync.js: n current_time requests, each after the previous reply. */
  async currentTimeBurst(n = 18): Promise<PlutoReply[]> {
    const out: PlutoReply[] = [];
    // Sent without notebook_id (pluto_actions.send passes no metadata): 55 to 85 bytes each.
    for (let i = 0; i < n; i++) out.push(await this.send('current_time', {}, {}));
    return out;
  }

  /** After a reconnect: the full state again. */
  async resetSharedState(): Promise<PlutoReply> {
    const r = await this.send('reset_shared_state', {});
    this.fullStateBytes = r.bytes;
    return r;
  }

  // active traffic
  setBond(value: unknown, name = 'x'): Promise<PlutoReply> {
    const updates = [{ op: 'replace', path: ['bonds', name], value: { value } }];
    this.state = applyPatches(this.state, updates);
    return this.send('update_notebook', { updates });
  }

  /** Edits a cell's code (an update_notebook with a cell_inputs patch). */
  editCell(cellId: string, code: string): Promise<PlutoReply> {
    // Applied locally first, as the frontend does: the server's reply carries only what it changed itself.
    const updates = [{ op: 'replace', path: ['cell_inputs', cellId, 'code'], value: code }];
    this.state = applyPatches(this.state, updates);
    return this.send('update_notebook', { updates });
  }

  runCells(cellIds?: string[]): Promise<PlutoReply> {
    return this.send('run_multiple_cells', { cells: cellIds ?? (Array.isArray(this.state.cell_order) ? this.state.cell_order : []) });
  }

  interrupt(): Promise<PlutoReply> {
    return this.send('interrupt_all', {});
  }

  complete(text: string): Promise<PlutoReply> {
    return this.send('complete', { query: text });
  }

  docs(query = 'sqrt'): Promise<PlutoReply> {
    return this.send('docs', { query });
  }

  reshowCell(cellId?: string, objectid = '0', dim = 1): Promise<PlutoReply> {
    return this.send('reshow_cell', { cell_id: cellId ?? this.state.cell_order?.[0] ?? '', objectid, dim });
  }

  /**
   * An idle open tab's own timers: ping now and `pingMs` after each pong, and every `burstMs` a burst of `burstN`
   * current_time (the first at once). Stopped by stopIdle() or close.
   */
  startIdle({ pingMs = 28_000, burstMs = 60_000, burstN = 18 }: { pingMs?: number; burstMs?: number; burstN?: number } = {}): void {
    this.stopIdle();
    const ping = () => {
      this.ping().then(
        () => {
          if (this.ws.readyState === WebSocket.OPEN && pingMs > 0) this.idleTimers.push(setTimeout(ping, pingMs));
        },
        () => undefined,
      );
    };
    ping();
    if (burstMs > 0) {
      const burst = () => {
        this.currentTimeBurst(burstN).catch(() => undefined);
      };
      burst();
      this.idleTimers.push(setInterval(burst, burstMs));
    }
  }

  stopIdle(): void {
    for (const t of this.idleTimers) {
      clearTimeout(t);
      clearInterval(t);
    }
    this.idleTimers = [];
  }

  /** Closes (Pluto's frontend closes with 1000 "byebye") and resolves when the close handshake is done. */
  close(code = 1000, reason = 'byebye'): Promise<{ code: number; reason: string }> {
    this.stopIdle();
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) this.ws.close(code, reason);
    return this.closed;
  }

  /** Drops the TCP connection without a close frame (a tab killed, a network gone). */
  terminate(): Promise<{ code: number; reason: string }> {
    this.stopIdle();
    this.ws.terminate();
    return this.closed;
  }
}

// ---------------------------------------------------------------------------------------------
// Jupyter

export interface JupyterClientOptions {
  headers?: Record<string, string>;
  /** Added to the URL as `?token=` (JupyterLab does this for the kernel socket). */
  token?: string;
  /** Offer the v1 binary subprotocol (default true, as JupyterLab 4 does). */
  subprotocol?: boolean;
  /** Answer the server's ping frames (default true); false simulates a frozen tab. */
  autoPong?: boolean;
  origin?: string;
  sessionId?: string;
  timeoutMs?: number;
}

/** What one request produced: the shell/control reply and the iopub messages with it as parent. */
export interface KernelExchange {
  request: JupyterMessage;
  reply?: JupyterMessage;
  iopub: JupyterMessage[];
}

interface KernelPending {
  ex: KernelExchange;
  needReply: boolean;
  /** Resolve on the first iopub message of this msg_type instead of status idle. */
  untilIopub?: string;
  idle: boolean;
  resolve: (e: KernelExchange) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class JupyterClient {
  readonly session: string;
  readonly sent: Record<string, number> = {};
  readonly received: Record<string, number> = {};
  /** WebSocket ping frames received from the server. */
  pingsReceived = 0;
  onMessage?: (m: JupyterMessage) => void;
  /** Called on each server ping frame (the pong goes out by itself unless autoPong is false). */
  onPing?: () => void;
  readonly closed: Promise<{ code: number; reason: string }>;
  private pending = new Map<string, KernelPending>();
  private readonly timeoutMs: number;

  private constructor(
    private readonly ws: WebSocket,
    opts: JupyterClientOptions,
    session: string,
  ) {
    this.session = session;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    ws.on('ping', () => {
      this.pingsReceived++;
      this.onPing?.();
    });
    ws.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        for (const p of this.pending.values()) {
          clearTimeout(p.timer);
          p.reject(new DriverError(`socket closed (${code}) before the reply`));
        }
        this.pending.clear();
        resolve({ code, reason: reason.toString() });
      });
    });
  }

  /** `ws://host:port{base}api/kernels/<id>/channels?session_id=<uuid>` */
  static channelsUrl(baseHttpUrl: string, kernelId: string, sessionId: string = randomUUID()): string {
    const u = new URL(`api/kernels/${encodeURIComponent(kernelId)}/channels`, baseHttpUrl.endsWith('/') ? baseHttpUrl : baseHttpUrl + '/');
    u.searchParams.set('session_id', sessionId);
    return toWs(u.toString());
  }

  /** Creates a kernel with POST api/kernels; returns its id. */
  static async createKernel(baseHttpUrl: string, headers: Record<string, string> = {}): Promise<string> {
    const r = await fetch(new URL('api/kernels', baseHttpUrl.endsWith('/') ? baseHttpUrl : baseHttpUrl + '/'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify({ name: 'python3' }),
    });
    if (r.status !== 201 && r.status !== 200) throw new DriverError(`POST api/kernels answered ${r.status}`, r.status);
    return ((await r.json()) as { id: string }).id;
  }

  /** Opens a kernel channels socket (a URL from channelsUrl, or any full ws:// URL). */
  static async open(channelsUrl: string, opts: JupyterClientOptions = {}): Promise<JupyterClient> {
    const u = new URL(toWs(channelsUrl));
    if (opts.token) u.searchParams.set('token', opts.token);
    const session = u.searchParams.get('session_id') ?? opts.sessionId ?? randomUUID();
    if (!u.searchParams.has('session_id')) u.searchParams.set('session_id', session);
    const ws = await openSocket(u.toString(), opts.subprotocol === false ? [] : [JUPYTER_V1_SUBPROTOCOL], {
      headers: opts.headers,
      origin: opts.origin,
      perMessageDeflate: false,
      autoPong: opts.autoPong ?? true,
    });
    return new JupyterClient(ws, opts, session);
  }

  /** The negotiated subprotocol: `v1.kernel.websocket.jupyter.org`, or '' for legacy JSON frames. */
  get protocol(): string {
    return this.ws.protocol;
  }

  get readyState(): number {
    return this.ws.readyState;
  }

  private onFrame(data: RawData, isBinary: boolean): void {
    const buf = rawToBuffer(data);
    const m = isBinary ? deserializeV1(buf) : deserializeLegacy(buf.toString('utf8'));
    if (!m) {
      bump(this.received, 'undecodable');
      return;
    }
    bump(this.received, m.header.msg_type);
    this.onMessage?.(m);
    const parentId = (m.parent_header as { msg_id?: string }).msg_id;
    const p = parentId ? this.pending.get(parentId) : undefined;
    if (!p) return;
    if (m.channel === 'iopub') {
      p.ex.iopub.push(m);
      if (m.header.msg_type === 'status' && m.content?.execution_state === 'idle') p.idle = true;
      if (p.untilIopub && m.header.msg_type === p.untilIopub) p.idle = true;
    } else {
      p.ex.reply = m;
    }
    if (p.idle && (!p.needReply || p.ex.reply)) {
      this.pending.delete(parentId!);
      clearTimeout(p.timer);
      p.resolve(p.ex);
    }
  }

  /** Sends one kernel message; resolves when its reply and its `status: idle` have arrived. */
  request(channel: JupyterChannel, msgType: string, content: unknown, how: { needReply?: boolean; untilIopub?: string } = {}): Promise<KernelExchange> {
    const m = jupyterMessage(channel, msgType, content, { session: this.session, username: 'jovyan' });
    return new Promise((resolve, reject) => {
      if (this.ws.readyState !== WebSocket.OPEN) return reject(new DriverError(`cannot send ${msgType}: socket not open`));
      const timer = setTimeout(() => {
        this.pending.delete(m.header.msg_id);
        reject(new DriverError(`no reply to ${msgType} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.set(m.header.msg_id, {
        ex: { request: m, iopub: [] },
        needReply: how.needReply ?? true,
        untilIopub: how.untilIopub,
        idle: false,
        resolve,
        reject,
        timer,
      });
      bump(this.sent, msgType);
      if (this.ws.protocol === JUPYTER_V1_SUBPROTOCOL) this.ws.send(serializeV1(m), { binary: true });
      else this.ws.send(serializeLegacy(m), { binary: false });
    });
  }

  /** Runs code; `text` is the execute_result's text/plain. */
  async execute(code: string): Promise<KernelExchange & { text?: string }> {
    const ex = await this.request('shell', 'execute_request', {
      code,
      silent: false,
      store_history: true,
      user_expressions: {},
      allow_stdin: false,
      stop_on_error: true,
    });
    const result = ex.iopub.find((x) => x.header.msg_type === 'execute_result');
    return { ...ex, text: result?.content?.data?.['text/plain'] };
  }

  complete(code = 'pri', cursorPos: number = code.length): Promise<KernelExchange> {
    return this.request('shell', 'complete_request', { code, cursor_pos: cursorPos });
  }

  inspect(code = 'print', cursorPos: number = code.length): Promise<KernelExchange> {
    return this.request('shell', 'inspect_request', { code, cursor_pos: cursorPos, detail_level: 0 });
  }

  kernelInfo(): Promise<KernelExchange> {
    return this.request('shell', 'kernel_info_request', {});
  }

  /** A widget message; resolves with the kernel's echo on iopub. */
  commMsg(commId: string, data: Record<string, unknown> = {}): Promise<KernelExchange> {
    return this.request('shell', 'comm_msg', { comm_id: commId, data }, { needReply: false, untilIopub: 'comm_msg' });
  }

  /** Sends a raw frame (garbage tests). */
  sendRaw(data: Uint8Array | string): void {
    this.ws.send(data, { binary: typeof data !== 'string' });
  }

  close(code = 1000): Promise<{ code: number; reason: string }> {
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) this.ws.close(code);
    return this.closed;
  }

  terminate(): Promise<{ code: number; reason: string }> {
    this.ws.terminate();
    return this.closed;
  }
}

/** JupyterLab's polls: every 10 s while visible api/kernels, api/sessions, api/terminals; every 61 s also these. */
export const JUPYTER_POLLS = ['api/kernels', 'api/sessions', 'api/terminals'] as const;
export const JUPYTER_SLOW_POLLS = ['api/kernelspecs', 'api/me'] as const;

/** One round of the frontend's REST polls; resolves with the status of each path. */
export async function pollRest(baseHttpUrl: string, headers: Record<string, string> = {}, opts: { slow?: boolean } = {}): Promise<Record<string, number>> {
  const base = baseHttpUrl.endsWith('/') ? baseHttpUrl : baseHttpUrl + '/';
  const paths: string[] = [...JUPYTER_POLLS, ...(opts.slow ? JUPYTER_SLOW_POLLS : [])];
  const statuses = await Promise.all(
    paths.map(async (p) => {
      const r = await fetch(new URL(p, base), { headers });
      await r.arrayBuffer();
      return r.status;
    }),
  );
  return Object.fromEntries(paths.map((p, i) => [p, statuses[i]!]));
}

/** A contents save (PUT api/contents/<path>), user activity in Jupyter; resolves with the status. */
export async function saveContents(baseHttpUrl: string, path: string, content: unknown, headers: Record<string, string> = {}): Promise<number> {
  const base = baseHttpUrl.endsWith('/') ? baseHttpUrl : baseHttpUrl + '/';
  const r = await fetch(new URL(`api/contents/${path.split('/').map(encodeURIComponent).join('/')}`, base), {
    method: 'PUT',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify({ type: 'notebook', format: 'json', content }),
  });
  await r.arrayBuffer();
  return r.status;
}
