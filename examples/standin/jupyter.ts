// A Jupyter-Server-like stand-in: token auth, base_url kept (never stripped), the REST endpoints JupyterLab polls, and
// kernel channels in the v1 binary subprotocol or legacy JSON, with server-sent ping frames. `node dist/examples/standin/jupyter.js`.
//
// Environment (the executable; startJupyterStandin takes the same as options):
//   PORT              port to listen on (default 8888; 0 = any)
//   HOST              address to listen on (default 127.0.0.1)
//   BASE_URL          everything is served under this path, e.g. /lab1/ (default /); requests outside it get 404
//   JUPYTER_TOKEN     the token; unset: 48 hex characters are generated and printed in a URL, as Jupyter does
//   PING_INTERVAL_MS  WebSocket ping frames this often; close after 3 intervals without a pong (default 30000)

import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { randomBytes, randomUUID } from 'node:crypto';
import { WebSocketServer, WebSocket, type RawData } from 'ws';
import {
  JUPYTER_V1_SUBPROTOCOL,
  deserializeLegacy,
  deserializeV1,
  jupyterMessage,
  serializeLegacy,
  serializeV1,
  type JupyterChannel,
  type JupyterMessage,
} from './protocol.js';
import { runIfMain } from './main.js';

export interface JupyterStandinOptions {
  port?: number;
  host?: string;
  baseUrl?: string;
  /** Unset: generated and printed. */
  token?: string;
  pingIntervalMs?: number;
  out?: (line: string) => void;
  log?: (line: string) => void;
}

export interface JupyterStandinStats {
  /** Kernel messages by msg_type; `undecodable` counts garbage. */
  received: Record<string, number>;
  /** REST requests by "METHOD path-after-base". */
  rest: Record<string, number>;
  pingsSent: number;
  pongs: number;
  /** Sockets closed because no pong came for 3 intervals. */
  closedForNoPong: number;
  saves: number;
}

export interface JupyterStandinHandle {
  port: number;
  /** `http://host:port{base}` */
  url: string;
  baseUrl: string;
  token: string;
  /** A kernel that exists from the start. */
  kernelId: string;
  connections(): number;
  stats: JupyterStandinStats;
  close(): Promise<void>;
}

export const JUPYTER_SERVER_VERSION = '2.14.2';

interface Kernel {
  id: string;
  name: string;
  lastActivity: string;
  executionCount: number;
  connections: Set<WebSocket>;
  session: string;
}

export function jupyterOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): JupyterStandinOptions {
  const int = (name: string, dflt: number, min: number, max: number): number => {
    const v = env[name];
    if (v === undefined || v === '') return dflt;
    if (!/^\d+$/.test(v) || +v < min || +v > max) throw new Error(`${name}=${JSON.stringify(v)}: expected an integer from ${min} to ${max}`);
    return +v;
  };
  return {
    port: int('PORT', 8888, 0, 65535),
    host: env.HOST || '127.0.0.1',
    baseUrl: env.BASE_URL || '/',
    token: env.JUPYTER_TOKEN || undefined,
    pingIntervalMs: int('PING_INTERVAL_MS', 30_000, 1, 24 * 3600_000),
  };
}

/** Arithmetic is evaluated (so `1+1` gives `2`); anything else comes back as a Python-style string repr. */
function evaluate(code: string): string {
  const c = code.trim();
  if (c && /^[\d\s+\-*/().%]+$/.test(c)) {
    try {
      const v = Function(`"use strict"; return (${c});`)() as unknown;
      if (typeof v === 'number') return String(v);
    } catch {
      /* fall through */
    }
  }
  return `'${c.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export async function startJupyterStandin(options: JupyterStandinOptions = {}): Promise<JupyterStandinHandle> {
  const host = options.host ?? '127.0.0.1';
  let base = options.baseUrl ?? '/';
  if (!base.startsWith('/')) throw new Error(`BASE_URL=${JSON.stringify(base)}: expected a path starting with /`);
  if (!base.endsWith('/')) base += '/';
  const generated = options.token === undefined;
  const token = options.token ?? randomBytes(24).toString('hex');
  const pingMs = options.pingIntervalMs ?? 30_000;
  const out = options.out ?? ((l: string) => process.stdout.write(l + '\n'));
  const log = options.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const stats: JupyterStandinStats = { received: {}, rest: {}, pingsSent: 0, pongs: 0, closedForNoPong: 0, saves: 0 };
  const count = (rec: Record<string, number>, k: string) => {
    rec[k] = (rec[k] ?? 0) + 1;
  };
  const iso = () => new Date().toISOString();

  const kernels = new Map<string, Kernel>();
  const newKernel = (name = 'python3'): Kernel => {
    const k: Kernel = { id: randomUUID(), name, lastActivity: iso(), executionCount: 0, connections: new Set(), session: randomUUID() };
    kernels.set(k.id, k);
    return k;
  };
  const firstKernel = newKernel();
  const kernelModel = (k: Kernel) => ({ id: k.id, name: k.name, last_activity: k.lastActivity, execution_state: 'idle', connections: k.connections.size });
  const sessions = new Map<string, { id: string; path: string; name: string; type: string; kernel: Kernel }>();
  const sessionModel = (s: { id: string; path: string; name: string; type: string; kernel: Kernel }) => ({
    id: s.id,
    path: s.path,
    name: s.name,
    type: s.type,
    kernel: kernelModel(s.kernel),
    notebook: { path: s.path, name: s.name },
  });
  const files = new Map<string, { content: unknown; type: string; format: string | null; last_modified: string; created: string }>();
  const logins = new Set<string>();
  let cookieName = 'username-standin';

  // ---- auth ----
  const authorized = (req: IncomingMessage, url: URL): 'query' | 'header' | 'cookie' | undefined => {
    if (url.searchParams.get('token') === token) return 'query';
    const auth = req.headers.authorization;
    if (auth && /^token\s+/i.test(auth) && auth.replace(/^token\s+/i, '').trim() === token) return 'header';
    const c = req.headers.cookie;
    if (c)
      for (const part of c.split(';')) {
        const i = part.indexOf('=');
        if (i > 0 && part.slice(0, i).trim() === cookieName && logins.has(part.slice(i + 1).trim())) return 'cookie';
      }
    return undefined;
  };

  // ---- kernel channels ----
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    // Choose v1 when offered (jupyter_server ZMQChannelsWebsocketConnection.select_subprotocol), else none: legacy JSON.
    handleProtocols: (protocols) => (protocols.has(JUPYTER_V1_SUBPROTOCOL) ? JUPYTER_V1_SUBPROTOCOL : false),
  });
  const sockets = new Set<WebSocket>();

  const keepAlive = (ws: WebSocket) => {
    let lastPong = Date.now();
    ws.on('pong', () => {
      lastPong = Date.now();
      stats.pongs++;
    });
    const timer = setInterval(() => {
      if (ws.readyState !== WebSocket.OPEN) return;
      // Tornado's websocket_ping_timeout: give up after 3 intervals without a pong.
      if (Date.now() - lastPong >= 3 * pingMs - Math.min(50, pingMs / 10)) {
        stats.closedForNoPong++;
        clearInterval(timer);
        ws.close();
        return;
      }
      stats.pingsSent++;
      ws.ping();
    }, pingMs);
    ws.on('close', () => clearInterval(timer));
  };

  const onKernelSocket = (ws: WebSocket, kernel: Kernel) => {
    const v1 = ws.protocol === JUPYTER_V1_SUBPROTOCOL;
    sockets.add(ws);
    kernel.connections.add(ws);
    ws.on('error', () => {});
    ws.on('close', () => {
      sockets.delete(ws);
      kernel.connections.delete(ws);
    });
    keepAlive(ws);
    const send = (m: JupyterMessage) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      kernel.lastActivity = iso();
      if (v1) ws.send(serializeV1(m), { binary: true });
      else ws.send(serializeLegacy(m), { binary: false });
    };
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      const msg = v1 ? (isBinary ? deserializeV1(buf) : undefined) : isBinary ? undefined : deserializeLegacy(buf.toString('utf8'));
      if (!msg) {
        count(stats.received, 'undecodable');
        log(`jupyter-standin: ignored an undecodable ${isBinary ? 'binary' : 'text'} frame`);
        return;
      }
      count(stats.received, msg.header.msg_type);
      try {
        answer(msg, send, kernel);
      } catch (e) {
        log(`jupyter-standin: error answering ${msg.header.msg_type}: ${(e as Error).message}`);
      }
    });
  };

  const answer = (req: JupyterMessage, send: (m: JupyterMessage) => void, kernel: Kernel) => {
    const parent = req.header;
    const msg = (channel: JupyterChannel, type: string, content: unknown) => jupyterMessage(channel, type, content, { session: kernel.session, parent });
    const replyChannel = (req.channel === 'control' ? 'control' : 'shell') as JupyterChannel;
    const busy = () => send(msg('iopub', 'status', { execution_state: 'busy' }));
    const idle = () => send(msg('iopub', 'status', { execution_state: 'idle' }));
    const reply = (type: string, content: unknown) => {
      busy();
      send(msg(replyChannel, type, content));
      idle();
    };
    const c = req.content ?? {};
    switch (parent.msg_type) {
      case 'kernel_info_request':
        reply('kernel_info_reply', {
          status: 'ok',
          protocol_version: '5.3',
          implementation: 'standin',
          implementation_version: '1.0',
          language_info: { name: 'python', version: '3.12.0', mimetype: 'text/x-python', file_extension: '.py' },
          banner: 'A Jupyter kernel stand-in',
          help_links: [],
        });
        break;
      case 'execute_request': {
        const code = typeof c.code === 'string' ? c.code : '';
        const n = c.store_history === false ? kernel.executionCount : ++kernel.executionCount;
        busy();
        send(msg('iopub', 'execute_input', { code, execution_count: n }));
        if (!c.silent && code.trim()) send(msg('iopub', 'execute_result', { execution_count: n, data: { 'text/plain': evaluate(code) }, metadata: {} }));
        send(msg(replyChannel, 'execute_reply', { status: 'ok', execution_count: n, user_expressions: {}, payload: [] }));
        idle();
        break;
      }
      case 'complete_request': {
        const code = typeof c.code === 'string' ? c.code : '';
        const pos = typeof c.cursor_pos === 'number' ? c.cursor_pos : code.length;
        const word = /\w*$/.exec(code.slice(0, pos))![0];
        const matches = ['print', 'range', 'len', 'list', 'dict', 'import'].filter((m) => m.startsWith(word));
        reply('complete_reply', { status: 'ok', matches, cursor_start: pos - word.length, cursor_end: pos, metadata: {} });
        break;
      }
      case 'inspect_request':
        reply('inspect_reply', { status: 'ok', found: true, data: { 'text/plain': `Docstring for ${String(c.code ?? '').slice(0, 40)}` }, metadata: {} });
        break;
      case 'is_complete_request':
        reply('is_complete_reply', { status: 'complete' });
        break;
      case 'history_request':
        reply('history_reply', { status: 'ok', history: [] });
        break;
      case 'comm_info_request':
        reply('comm_info_reply', { status: 'ok', comms: {} });
        break;
      case 'comm_open':
        break;
      case 'comm_msg':
        // A widget's model echoed back, as a kernel-side widget would.
        busy();
        send(msg('iopub', 'comm_msg', { comm_id: c.comm_id, data: c.data ?? {} }));
        idle();
        break;
      case 'comm_close':
        break;
      case 'interrupt_request':
        send(msg('control', 'interrupt_reply', { status: 'ok' }));
        break;
      case 'shutdown_request':
        send(msg('control', 'shutdown_reply', { status: 'ok', restart: !!c.restart }));
        break;
      default:
        log(`jupyter-standin: unknown msg_type ${JSON.stringify(parent.msg_type)}`);
    }
  };

  // ---- HTTP ----
  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = body === undefined ? '' : JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
    res.end(text);
  };
  const html = (res: ServerResponse, status: number, text: string) => {
    res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  };
  const readBody = (req: IncomingMessage) =>
    new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > 32 * 1024 * 1024) {
          reject(new Error('too large'));
          req.destroy();
        } else chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://standin');
    if (!url.pathname.startsWith(base) && url.pathname + '/' !== base) return json(res, 404, { message: 'Not Found', reason: null });
    const rel = url.pathname.slice(base.length); // '' for the base itself
    const method = req.method ?? 'GET';
    if (rel === 'api' && (method === 'GET' || method === 'HEAD')) return json(res, 200, { version: JUPYTER_SERVER_VERSION });
    if (rel === 'login')
      return html(
        res,
        200,
        `<!doctype html><title>Jupyter Server</title><form method="get" action="${base}"><input name="token" placeholder="token"><button>Log in</button></form>`,
      );

    const how = authorized(req, url);
    if (!how) {
      if (rel.startsWith('api/')) return json(res, 403, { message: 'Forbidden', reason: null });
      res.writeHead(302, { Location: `${base}login?next=${encodeURIComponent(url.pathname)}`, 'Content-Length': 0 });
      return res.end();
    }
    if (how === 'query') {
      // A token in the URL logs the browser in with a cookie, as Jupyter's login handler does.
      const v = randomBytes(16).toString('hex');
      logins.add(v);
      res.setHeader('Set-Cookie', `${cookieName}=${v}; Path=${base}; HttpOnly; SameSite=Lax`);
    }
    count(stats.rest, `${method} ${rel}`);

    if (rel === '' && method === 'GET') {
      res.writeHead(302, { Location: `${base}lab`, 'Content-Length': 0 });
      return res.end();
    }
    if ((rel === 'lab' || rel.startsWith('lab/') || rel === 'tree' || rel.startsWith('tree/')) && method === 'GET') {
      return html(res, 200, labPage(base, token));
    }
    if (!rel.startsWith('api/')) return json(res, 404, { message: 'Not Found', reason: null });
    const api = rel.slice(4);
    let m: RegExpExecArray | null;

    if (api === 'status' && method === 'GET') return json(res, 200, { connections: sockets.size, kernels: kernels.size, last_activity: iso(), started: iso() });
    if (api === 'me' && method === 'GET') {
      return json(res, 200, {
        identity: { username: 'jovyan', name: 'Jovyan', display_name: 'Jovyan', initials: 'J', avatar_url: null, color: null },
        permissions: {},
      });
    }
    if (api === 'terminals' && method === 'GET') return json(res, 200, []);
    if (api === 'kernelspecs' && method === 'GET') {
      return json(res, 200, {
        default: 'python3',
        kernelspecs: {
          python3: {
            name: 'python3',
            spec: { argv: [], display_name: 'Python 3 (stand-in)', language: 'python', metadata: {}, interrupt_mode: 'signal', env: {} },
            resources: {},
          },
        },
      });
    }
    if (api === 'kernels') {
      if (method === 'GET') return json(res, 200, [...kernels.values()].map(kernelModel));
      if (method === 'POST') {
        const body = await readBody(req).catch(() => '');
        let name = 'python3';
        try {
          name = JSON.parse(body || '{}').name || name;
        } catch {
          /* default */
        }
        return json(res, 201, kernelModel(newKernel(name)));
      }
    }
    if ((m = /^kernels\/([^/]+)(?:\/(interrupt|restart))?$/.exec(api))) {
      const k = kernels.get(m[1]!);
      if (!k) return json(res, 404, { message: `Kernel does not exist: ${m[1]}`, reason: null });
      if (!m[2] && method === 'GET') return json(res, 200, kernelModel(k));
      if (!m[2] && method === 'DELETE') {
        for (const ws of k.connections) ws.close(1000);
        kernels.delete(k.id);
        res.writeHead(204);
        return res.end();
      }
      if (m[2] && method === 'POST') {
        if (m[2] === 'restart') k.executionCount = 0;
        return m[2] === 'restart' ? json(res, 200, kernelModel(k)) : (res.writeHead(204), res.end());
      }
    }
    if (api === 'sessions') {
      if (method === 'GET') return json(res, 200, [...sessions.values()].map(sessionModel));
      if (method === 'POST') {
        let b: any = {};
        try {
          b = JSON.parse((await readBody(req)) || '{}');
        } catch {
          return json(res, 400, { message: 'Invalid JSON', reason: null });
        }
        const path = String(b.path ?? 'Untitled.ipynb');
        const existing = [...sessions.values()].find((s) => s.path === path);
        if (existing) return json(res, 201, sessionModel(existing));
        const kernel = (b.kernel?.id && kernels.get(b.kernel.id)) || newKernel(b.kernel?.name ?? 'python3');
        const s = { id: randomUUID(), path, name: String(b.name ?? path), type: String(b.type ?? 'notebook'), kernel };
        sessions.set(s.id, s);
        return json(res, 201, sessionModel(s));
      }
    }
    if ((m = /^contents(?:\/(.*))?$/.exec(api))) {
      const path = decodeURIComponent(m[1] ?? '');
      const model = (
        p: string,
        f: { content: unknown; type: string; format: string | null; last_modified: string; created: string },
        withContent: boolean,
      ) => ({
        name: p.split('/').pop() ?? p,
        path: p,
        type: f.type,
        format: withContent ? f.format : null,
        content: withContent ? f.content : null,
        created: f.created,
        last_modified: f.last_modified,
        mimetype: null,
        writable: true,
        size: JSON.stringify(f.content ?? '').length,
      });
      if (method === 'GET') {
        if (path === '') {
          return json(res, 200, {
            name: '',
            path: '',
            type: 'directory',
            format: 'json',
            content: [...files.entries()].map(([p, f]) => model(p, f, false)),
            created: iso(),
            last_modified: iso(),
            writable: true,
            mimetype: null,
          });
        }
        const f = files.get(path);
        return f
          ? json(res, 200, model(path, f, url.searchParams.get('content') !== '0'))
          : json(res, 404, { message: `No such file or directory: ${path}`, reason: null });
      }
      if (method === 'PUT' && path) {
        let b: any;
        try {
          b = JSON.parse((await readBody(req)) || '{}');
        } catch {
          return json(res, 400, { message: 'Invalid JSON', reason: null });
        }
        const old = files.get(path);
        const f = {
          content: b.content ?? null,
          type: String(b.type ?? 'file'),
          format: b.format ?? 'text',
          last_modified: iso(),
          created: old?.created ?? iso(),
        };
        files.set(path, f);
        stats.saves++;
        return json(res, old ? 200 : 201, model(path, f, false));
      }
    }
    return json(res, 404, { message: 'Not Found', reason: null });
  };

  const refuse = (socket: Duplex, status: number, text: string) => {
    const body = `${text}\n`;
    socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    socket.destroy();
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: Error) => {
      log(`jupyter-standin: ${e.message}`);
      if (!res.headersSent) json(res, 500, { message: 'Internal Server Error', reason: null });
      else res.destroy();
    });
  });
  server.on('clientError', (_e, socket) => socket.destroy());
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => {});
    const url = new URL(req.url ?? '/', 'http://standin');
    if (!url.pathname.startsWith(base)) return refuse(socket, 404, 'Not Found');
    const rel = url.pathname.slice(base.length);
    if (!authorized(req, url)) return refuse(socket, 403, 'Forbidden');
    // Tornado's check_origin: a browser's Origin must name the Host it connected to.
    const origin = req.headers.origin;
    if (origin) {
      let originHost = '';
      try {
        originHost = new URL(origin).host;
      } catch {
        /* refused below */
      }
      if (originHost !== req.headers.host) return refuse(socket, 403, 'Forbidden');
    }
    const km = /^api\/kernels\/([^/]+)\/channels$/.exec(rel);
    if (km) {
      const kernel = kernels.get(km[1]!);
      if (!kernel) return refuse(socket, 404, 'Not Found');
      return wss.handleUpgrade(req, socket, head, (ws) => onKernelSocket(ws, kernel));
    }
    if (rel === 'api/events/subscribe') {
      return wss.handleUpgrade(req, socket, head, (ws) => {
        sockets.add(ws);
        ws.on('error', () => {});
        ws.on('close', () => sockets.delete(ws));
        keepAlive(ws);
      });
    }
    return refuse(socket, 404, 'Not Found');
  });

  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8888, host, () => {
      server.off('error', reject);
      resolve((server.address() as { port: number }).port);
    });
  });
  const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  cookieName = `username-${shownHost.replace(/[.:]/g, '-')}-${port}`;
  const url = `http://${shownHost}:${port}${base}`;
  const stamp = () => new Date().toISOString().replace('T', ' ').slice(0, 23);
  out(`[I ${stamp()} ServerApp] Jupyter Server ${JUPYTER_SERVER_VERSION} is running at:`);
  // A configured token is printed as `...`, a generated one in full (what a proxy can scrape).
  out(`[I ${stamp()} ServerApp] ${url}?token=${generated ? token : '...'}`);
  out(`    ${url}?token=${generated ? token : '...'}`);

  return {
    port,
    url,
    baseUrl: base,
    token,
    kernelId: firstKernel.id,
    connections: () => sockets.size,
    stats,
    close: async () => {
      for (const ws of sockets) ws.terminate();
      wss.close();
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
    },
  };
}

/**
 * The lab page. Like JupyterLab it reads baseUrl and token from its page config and builds ABSOLUTE URLs from them,
 * polls the REST API, and talks to a kernel over the v1 subprotocol. Query overrides for tests (ms, 0 = off):
 * poll_ms (10000), slow_poll_ms (61000).
 */
function labPage(base: string, token: string): string {
  const config = JSON.stringify({ baseUrl: base, token, appVersion: '4.2.0' }).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>JupyterLab stand-in</title><link rel="icon" href="data:,">
<script id="jupyter-config-data" type="application/json">${config}</script>
</head><body>
<p>Status: <span id="status">starting</span> · protocol <span id="protocol"></span></p>
<p><input id="code" value="1+1"> <button id="run">Run</button> <span id="result"></span></p>
<script>
"use strict";
(() => {
const cfg = JSON.parse(document.getElementById("jupyter-config-data").textContent);
const params = new URLSearchParams(location.search);
const num = (k, d) => { const v = params.get(k); const n = v === null || v === "" ? NaN : Number(v); return Number.isFinite(n) && n >= 0 ? n : d; };
const POLL_MS = num("poll_ms", 10000), SLOW_POLL_MS = num("slow_poll_ms", 61000);
const $ = (id) => document.getElementById(id);
const stats = window.__standin = { status: "starting", polls: 0, sent: {}, received: {} };
const set_status = (s) => { stats.status = s; $("status").textContent = s; };
const api = (p, init = {}) => fetch(cfg.baseUrl + p, { ...init, headers: { Authorization: "token " + cfg.token, ...(init.headers || {}) } });
const poll = () => { if (document.visibilityState !== "visible") return; stats.polls++; ["api/kernels", "api/sessions", "api/terminals"].forEach((p) => api(p).catch(() => {})); };
const slow_poll = () => { if (document.visibilityState === "visible") ["api/kernelspecs", "api/me"].forEach((p) => api(p).catch(() => {})); };
if (POLL_MS > 0) setInterval(poll, POLL_MS);
if (SLOW_POLL_MS > 0) setInterval(slow_poll, SLOW_POLL_MS);
poll(); slow_poll();
const session = crypto.randomUUID();
const enc = new TextEncoder(), dec = new TextDecoder();
const serialize = (m) => {
  const parts = [m.header, m.parent_header, m.metadata, m.content].map((x) => enc.encode(JSON.stringify(x)));
  const ch = enc.encode(m.channel);
  const offsets = [8 * (parts.length + 3)];
  offsets.push(offsets[0] + ch.length);
  for (const p of parts) offsets.push(offsets[offsets.length - 1] + p.length);
  const total = offsets[offsets.length - 1];
  const buf = new Uint8Array(total), dv = new DataView(buf.buffer);
  dv.setBigUint64(0, BigInt(offsets.length), true);
  offsets.forEach((o, i) => dv.setBigUint64(8 * (i + 1), BigInt(o), true));
  buf.set(ch, offsets[0]);
  parts.forEach((p, i) => buf.set(p, offsets[i + 1]));
  return buf;
};
const deserialize = (ab) => {
  const dv = new DataView(ab), n = Number(dv.getBigUint64(0, true)), o = [];
  for (let i = 0; i < n; i++) o.push(Number(dv.getBigUint64(8 * (i + 1), true)));
  const part = (i) => JSON.parse(dec.decode(new Uint8Array(ab, o[i], o[i + 1] - o[i])));
  return { channel: dec.decode(new Uint8Array(ab, o[0], o[1] - o[0])), header: part(1), parent_header: part(2), metadata: part(3), content: part(4) };
};
let ws = null;
const send = (channel, msg_type, content) => {
  const m = { channel, header: { msg_id: crypto.randomUUID(), msg_type, username: "jovyan", session, date: new Date().toISOString(), version: "5.3" }, parent_header: {}, metadata: {}, content };
  stats.sent[msg_type] = (stats.sent[msg_type] || 0) + 1;
  ws.send(ws.protocol ? serialize(m) : JSON.stringify(m));
};
const open = async () => {
  const kernels = await (await api("api/kernels")).json();
  const id = kernels[0].id;
  const u = new URL(cfg.baseUrl + "api/kernels/" + id + "/channels", location.href);
  u.protocol = u.protocol.replace("http", "ws");
  u.searchParams.set("session_id", session);
  if (cfg.token) u.searchParams.set("token", cfg.token);
  ws = new WebSocket(u, ["${JUPYTER_V1_SUBPROTOCOL}"]);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => { $("protocol").textContent = ws.protocol || "legacy"; set_status("connected"); send("shell", "kernel_info_request", {}); };
  ws.onmessage = (e) => {
    const m = typeof e.data === "string" ? JSON.parse(e.data) : deserialize(e.data);
    stats.received[m.header.msg_type] = (stats.received[m.header.msg_type] || 0) + 1;
    if (m.header.msg_type === "kernel_info_reply") set_status("ready");
    if (m.header.msg_type === "execute_result") $("result").textContent = m.content.data["text/plain"];
  };
  ws.onclose = () => set_status("disconnected");
};
$("run").addEventListener("click", () => send("shell", "execute_request", { code: $("code").value, silent: false, store_history: true, user_expressions: {}, allow_stdin: false, stop_on_error: true }));
open().catch((e) => { console.error(e); set_status("failed"); });
})();
</script>
</body></html>
`;
}

// ---- executable ----
runIfMain(import.meta.url, 'jupyter-standin', () => jupyterOptionsFromEnv(), startJupyterStandin);
