// A Pluto.jl-like notebook app for tests and benchmarks: Pluto 0.20's routes, secret, readiness behaviour and
// WebSocket traffic (see docs/notebook-traffic.md). `node dist/examples/standin/server.js`, or startStandin().
//
// Environment (the executable; startStandin takes the same as options):
//   PORT              port to listen on (default 1234; 0 = any, in-process only makes sense)
//   HOST              address to listen on (default 127.0.0.1)
//   STARTUP_DELAY_MS  simulated notebook execution time (default 0)
//   BURN_CPU_MS       after that, spend this much CPU time (not wall time) executing, before READY: under
//                     contention it takes longer, as a real notebook does (benchmarks of the warming weight;
//                     default 0 = off)
//   LISTEN_EARLY=1    listen at once and execute meanwhile, like plain `Pluto.run` (the readiness pitfall); READY is
//                     still printed when execution ends. Default: execute, print READY, then listen.
//   PLUTO_SECRET      if set, every request and WebSocket upgrade needs `?secret=` or cookie `secret` (else 403);
//                     /ping and /possible_binder_token_please are exempt, as in Pluto
//   BASE_URL          serve under this path, e.g. /demo/ (default /)
//   STATE_BYTES       size of the notebook's full state as MsgPack (default 200000)
//   PUSH_INTERVAL_MS  push a small notebook_diff this often with nobody interacting, like a timer cell (default 0 = off)
//   NOTEBOOK_ID       the notebook's uuid (default DEFAULT_NOTEBOOK_ID)
//   PRINT_TOKEN=1     print `    http://127.0.0.1:PORT{base}?token=<48 hex>` like Jupyter; without PLUTO_SECRET the
//                     token becomes the secret (and `?token=` is accepted too)
//   PER_MESSAGE_DEFLATE=1  offer permessage-deflate on the WebSocket (Pluto's HTTP.jl does not; default off)

import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { WebSocketServer, WebSocket, type RawData } from 'ws';
import { encode } from '@msgpack/msgpack';
import { DEFAULT_NOTEBOOK_ID, applyPatches, parsePlutoRequest, plutoUpdate, type Patch, type PlutoRequest, type PlutoUpdate } from './protocol.js';
import { runIfMain } from './main.js';

export interface StandinOptions {
  port?: number;
  host?: string;
  startupDelayMs?: number;
  /** CPU time to spend executing after startupDelayMs, before READY, ms (default 0). */
  burnCpuMs?: number;
  listenEarly?: boolean;
  secret?: string;
  baseUrl?: string;
  stateBytes?: number;
  pushIntervalMs?: number;
  notebookId?: string;
  printToken?: boolean;
  perMessageDeflate?: boolean;
  /** Where stdout lines go (READY, the URL lines). Default: process.stdout. */
  out?: (line: string) => void;
  /** Where diagnostics go (ignored garbage, unknown types). Default: process.stderr. */
  log?: (line: string) => void;
}

export interface StandinStats {
  /** Client messages by type; `undecodable` and `text` count garbage. */
  received: Record<string, number>;
  /** Server messages by type. */
  sent: Record<string, number>;
  upgrades: number;
  refused: number;
}

export interface StandinHandle {
  port: number;
  /** `http://host:port{base}` */
  url: string;
  notebookId: string;
  /** The secret in force (PLUTO_SECRET or the printed token), if any. */
  secret?: string;
  token?: string;
  /** Resolves when the notebook has executed (or when close() came first). */
  executed: Promise<void>;
  isExecuted(): boolean;
  /** Open WebSocket connections. */
  connections(): number;
  stats: StandinStats;
  /** Pushes one timer notebook_diff now, as PUSH_INTERVAL_MS would. */
  push(): void;
  /** Drops every WebSocket without a close frame (a restart or network blip; the page reconnects). */
  dropConnections(): void;
  close(): Promise<void>;
}

/** Fixed cell ids, so tests and the page can name cells. */
export const CELLS = {
  intro: '0b5c9c1e-0001-4d1a-9c5e-000000000001',
  data: '0b5c9c1e-0002-4d1a-9c5e-000000000002',
  slider: '0b5c9c1e-0003-4d1a-9c5e-000000000003',
  echo: '0b5c9c1e-0004-4d1a-9c5e-000000000004',
  clock: '0b5c9c1e-0005-4d1a-9c5e-000000000005',
} as const;

const CODE: Record<string, string> = {
  [CELLS.intro]: 'md"# A stand-in notebook"',
  [CELLS.data]: 'data = rand(UInt8, STATE_BYTES)',
  [CELLS.slider]: '@bind x Slider(0:100)',
  [CELLS.echo]: 'x',
  [CELLS.clock]: '@use_timer tick',
};

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PLUTO_VERSION = 'v0.20.21';

/** Reads the options from environment variables; throws naming the variable on a bad value. */
export function optionsFromEnv(env: NodeJS.ProcessEnv = process.env): StandinOptions {
  const int = (name: string, dflt: number, min: number, max: number): number => {
    const v = env[name];
    if (v === undefined || v === '') return dflt;
    if (!/^\d+$/.test(v) || +v < min || +v > max) throw new Error(`${name}=${JSON.stringify(v)}: expected an integer from ${min} to ${max}`);
    return +v;
  };
  const flag = (name: string) => env[name] === '1' || env[name] === 'true';
  return {
    port: int('PORT', 1234, 0, 65535),
    host: env.HOST || '127.0.0.1',
    startupDelayMs: int('STARTUP_DELAY_MS', 0, 0, 24 * 3600_000),
    burnCpuMs: int('BURN_CPU_MS', 0, 0, 24 * 3600_000),
    listenEarly: flag('LISTEN_EARLY'),
    secret: env.PLUTO_SECRET || undefined,
    baseUrl: env.BASE_URL || '/',
    stateBytes: int('STATE_BYTES', 200_000, 0, 1 << 30),
    pushIntervalMs: int('PUSH_INTERVAL_MS', 0, 0, 24 * 3600_000),
    notebookId: env.NOTEBOOK_ID || DEFAULT_NOTEBOOK_ID,
    printToken: flag('PRINT_TOKEN'),
    perMessageDeflate: flag('PER_MESSAGE_DEFLATE'),
  };
}

/** The UMD build of @msgpack/msgpack, served to the editor page under a content-hashed name. */
function loadMsgpackBundle(): { name: string; body: Buffer } {
  const file = createRequire(import.meta.url).resolve('@msgpack/msgpack/dist.umd/msgpack.min.js');
  const body = readFileSync(file);
  const hash = createHash('sha256').update(body).digest('hex').slice(0, 10);
  return { name: `msgpack.${hash}.min.js`, body };
}

function normalizeBase(b: string): string {
  if (!b.startsWith('/')) throw new Error(`BASE_URL=${JSON.stringify(b)}: expected a path starting with /`);
  return b.endsWith('/') ? b : b + '/';
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/**
 * Spends `ms` of this process's CPU time (user + system, not wall time) in slices of at most 20 ms,
 * yielding to the event loop between them, until done or stop() says so.
 */
function burnCpu(ms: number, stop: () => boolean): Promise<void> {
  const start = process.cpuUsage();
  const used = () => {
    const u = process.cpuUsage(start);
    return (u.user + u.system) / 1000;
  };
  return new Promise((resolve) => {
    let sink = 0;
    const slice = () => {
      if (stop()) return resolve();
      const until = performance.now() + 20;
      while (performance.now() < until) {
        for (let i = 0; i < 10_000; i++) sink = (sink * 31 + i) % 1_000_003;
        if (used() >= ms) return resolve();
      }
      setImmediate(slice);
    };
    slice();
  });
}

function binHeader(len: number): number {
  return len < 256 ? 2 : len < 65536 ? 3 : 5;
}

export async function startStandin(options: StandinOptions = {}): Promise<StandinHandle> {
  const host = options.host ?? '127.0.0.1';
  const base = normalizeBase(options.baseUrl ?? '/');
  const notebookId = options.notebookId ?? DEFAULT_NOTEBOOK_ID;
  if (!UUID_RE.test(notebookId)) throw new Error(`NOTEBOOK_ID=${JSON.stringify(notebookId)}: expected a uuid`);
  const stateBytes = options.stateBytes ?? 200_000;
  const delay = options.startupDelayMs ?? 0;
  const burnMs = options.burnCpuMs ?? 0;
  const pushEvery = options.pushIntervalMs ?? 0;
  const out = options.out ?? ((l: string) => process.stdout.write(l + '\n'));
  const log = options.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const token = options.printToken ? randomBytes(24).toString('hex') : undefined;
  const secret = options.secret ?? token;
  const asset = loadMsgpackBundle();
  const stats: StandinStats = { received: {}, sent: {}, upgrades: 0, refused: 0 };

  // ---- the notebook state (Pluto's notebook_to_js, trimmed) ----
  let executed = false;
  let counter = 0;
  let tick = 0;
  const now = () => Date.now() / 1000;
  const output = (body: unknown, mime = 'text/plain') => ({
    body,
    mime,
    rootassignee: null,
    last_run_timestamp: now(),
    persist_js_state: false,
    has_pluto_hook_features: false,
  });
  const result = (id: string) => ({
    cell_id: id,
    depends_on_disabled_cells: false,
    output: output(''),
    published_object_keys: [],
    queued: true,
    running: false,
    errored: false,
    runtime: null as number | null,
    logs: [],
    depends_on_skipped_cells: false,
  });
  const order = Object.values(CELLS) as string[];
  const state: Record<string, any> = {
    pluto_version: PLUTO_VERSION,
    notebook_id: notebookId,
    path: '/home/pluto/webapp.jl',
    shortpath: 'webapp.jl',
    in_temp_dir: false,
    process_status: 'starting',
    last_save_time: now(),
    last_hot_reload_time: 0,
    cell_inputs: Object.fromEntries(
      order.map((id) => [id, { cell_id: id, code: CODE[id], code_folded: false, metadata: { disabled: false, show_logs: true, skip_as_script: false } }]),
    ),
    cell_results: Object.fromEntries(order.map((id) => [id, result(id)])),
    cell_order: order,
    published_objects: {},
    bonds: {},
    metadata: {},
    nbpkg: {
      enabled: false,
      waiting_for_permission: false,
      restart_recommended_msg: null,
      restart_required_msg: null,
      installed_versions: {},
      terminal_outputs: {},
      install_time_ns: null,
      busy_packages: [],
      instantiated: true,
    },
    status_tree: null,
    cell_dependencies: {},
    cell_execution_order: order,
  };

  /** Runs the notebook: outputs appear, the data cell grows so the whole state encodes to stateBytes. */
  const runNotebook = () => {
    for (const id of order) Object.assign(state.cell_results[id], { queued: false, running: false, runtime: 1_000_000 });
    state.cell_results[CELLS.intro].output = output('<h1>A stand-in notebook</h1>', 'text/html');
    state.cell_results[CELLS.slider].output = output('<input type="range" min="0" max="100">', 'text/html');
    state.cell_results[CELLS.echo].output = output('missing');
    state.cell_results[CELLS.clock].output = output('tick 0');
    state.bonds = { x: { value: null } };
    state.process_status = 'ready';
    state.cell_results[CELLS.data].output = output(new Uint8Array(0), 'application/octet-stream');
    const rest = encode(state).length - 2; // without the empty bin's 2 header bytes
    let len = 0;
    for (const h of [2, 3, 5]) {
      const l = stateBytes - rest - h;
      if (l >= 0 && binHeader(l) === h) {
        len = l;
        break;
      }
    }
    // Random bytes: a compressing hop must not shrink the state to nothing.
    state.cell_results[CELLS.data].output.body = new Uint8Array(randomBytes(len));
  };

  // ---- WebSocket ----
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: options.perMessageDeflate ?? false, maxPayload: 64 * 1024 * 1024 });
  const clients = new Set<WebSocket>();
  const count = (rec: Record<string, number>, k: string) => {
    rec[k] = (rec[k] ?? 0) + 1;
  };

  const sendTo = (ws: WebSocket, u: PlutoUpdate, bytes?: Uint8Array) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    count(stats.sent, u.type);
    ws.send(bytes ?? encode(u), { binary: true });
  };
  const broadcast = (u: PlutoUpdate) => {
    const bytes = encode(u);
    for (const ws of clients) sendTo(ws, u, bytes);
  };
  const diff = (patches: Patch[], response: unknown, initiator?: PlutoRequest) =>
    plutoUpdate('notebook_diff', { counter: ++counter, patches, response }, { notebookId, initiator });
  const fullState = (req: PlutoRequest, response: unknown) => diff([{ op: 'replace', path: [], value: state }], response, req);
  const cellPatch = (id: string, key: string): Patch => ({ op: 'replace', path: ['cell_results', id, key], value: state.cell_results[id][key] });

  const onUpdateNotebook = (ws: WebSocket, req: PlutoRequest) => {
    const updates = req.body.updates;
    if (!Array.isArray(updates) || updates.length === 0) {
      sendTo(ws, fullState(req, { update_went_well: '👍' }));
      return;
    }
    const ok = updates.every(
      (p: any) =>
        p &&
        ['add', 'replace', 'remove'].includes(p.op) &&
        Array.isArray(p.path) &&
        p.path.length >= 1 &&
        ['cell_inputs', 'cell_order', 'bonds', 'metadata', 'path', 'in_temp_dir', 'process_status'].includes(p.path[0]),
    );
    if (!ok) {
      sendTo(ws, diff([], { update_went_well: '👎', why_not: 'failed to match path', should_i_tell_the_user: false }, req));
      return;
    }
    applyPatches(state, updates);
    const serverPatches: Patch[] = [];
    if (updates.some((p: any) => p.path[0] === 'bonds' && p.path[1] === 'x')) {
      // The cell `x` reruns and shows the new value: the server's echo.
      state.cell_results[CELLS.echo].output = output(String(state.bonds?.x?.value ?? 'missing'));
      state.cell_results[CELLS.echo].runtime = 20_000;
      serverPatches.push(cellPatch(CELLS.echo, 'output'), cellPatch(CELLS.echo, 'runtime'));
    }
    // Pluto diffs each client's copy: the initiator already has its own patches, the others get them too.
    const mine = encode(diff(serverPatches, { update_went_well: '👍' }, req));
    const theirs = diff([...(updates as Patch[]), ...serverPatches], null, req);
    for (const c of clients) {
      if (c === ws) {
        count(stats.sent, 'notebook_diff');
        if (c.readyState === WebSocket.OPEN) c.send(mine, { binary: true });
      } else sendTo(c, theirs);
    }
  };

  const onMessage = (ws: WebSocket, data: RawData, isBinary: boolean) => {
    if (!isBinary) {
      count(stats.received, 'text');
      log('standin: ignored a text frame');
      return;
    }
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    const req = parsePlutoRequest(buf);
    if (!req) {
      count(stats.received, 'undecodable');
      log(`standin: ignored an undecodable message of ${buf.length} bytes`);
      return;
    }
    count(stats.received, req.type);
    const nbOk = req.notebook_id === notebookId;
    const needNotebook = () => {
      if (!nbOk) log(`standin: ${req.type} without a known notebook_id (${String(req.notebook_id)}): Notebook request called without a notebook`);
      return nbOk;
    };
    const reply = (type: string, message: unknown, withNotebook = false) =>
      sendTo(ws, plutoUpdate(type, message, { initiator: req, notebookId: withNotebook ? notebookId : undefined }));
    switch (req.type) {
      case 'connect':
        reply('👋', {
          notebook_exists: nbOk,
          options: SESSION_OPTIONS,
          version_info: { pluto: PLUTO_VERSION, julia: '1.11.7', dismiss_update_notification: false },
        });
        break;
      case 'ping':
        reply('pong', {});
        break;
      case 'current_time':
        reply('current_time', { time: now() });
        break;
      case 'update_notebook':
        if (needNotebook()) onUpdateNotebook(ws, req);
        break;
      case 'reset_shared_state':
        if (needNotebook()) sendTo(ws, fullState(req, { from_reset: true }));
        break;
      case 'complete': {
        if (!needNotebook()) break;
        const q = typeof req.body.query === 'string' ? req.body.query : '';
        const word = /[\w\\]*$/.exec(q)![0];
        const names = ['sqrt', 'sq', 'sum', 'string', 'Slider', 'data', 'x'].filter((n) => n.startsWith(word.replace(/^\\/, '')));
        reply(
          'completion_result',
          { start: q.length - word.length, stop: q.length, results: names.map((n) => [n, 'function', true, false, null, null]), too_long: false },
          true,
        );
        break;
      }
      case 'docs': {
        if (!needNotebook()) break;
        const q = typeof req.body.query === 'string' ? req.body.query : '';
        reply(
          'doc_result',
          { status: '👍', doc: `<div class="pluto-docs-binding"><span>${q.replace(/[<>&"]/g, '')}</span><p>No documentation found.</p></div>` },
          true,
        );
        break;
      }
      case 'run_multiple_cells': {
        if (!needNotebook()) break;
        const ids = (Array.isArray(req.body.cells) ? req.body.cells : []).filter((id: unknown) => typeof id === 'string' && state.cell_results[id]);
        const patches: Patch[] = [];
        for (const id of ids as string[]) {
          state.cell_results[id].runtime = 10_000 + (counter % 1000);
          state.cell_results[id].output.last_run_timestamp = now();
          patches.push(cellPatch(id, 'runtime'), cellPatch(id, 'output'));
        }
        broadcast(diff(patches, null, req));
        break;
      }
      case 'interrupt_all':
        // Pluto answers nothing here; the stand-in acknowledges with an empty diff so drivers can await it.
        if (needNotebook()) reply('notebook_diff', { counter: ++counter, patches: [], response: null }, true);
        break;
      case 'reshow_cell': {
        if (!needNotebook()) break;
        const id = typeof req.body.cell_id === 'string' && state.cell_results[req.body.cell_id] ? req.body.cell_id : CELLS.data;
        // Pluto sends this one without the initiator ("send to all clients, why not"); kept here so drivers can await it.
        broadcast(diff([cellPatch(id, 'output')], null, req));
        break;
      }
      case 'shutdown_notebook':
        break;
      default:
        log(`standin: unknown message type ${JSON.stringify(req.type)}`);
    }
  };

  wss.on('connection', (ws) => {
    clients.add(ws);
    ws.on('error', () => {});
    ws.on('close', () => clients.delete(ws));
    ws.on('message', (data, isBinary) => {
      try {
        onMessage(ws, data, isBinary);
      } catch (e) {
        log(`standin: error handling a message: ${(e as Error).message}`);
      }
    });
  });

  // ---- HTTP ----
  const authorized = (req: IncomingMessage, url: URL): boolean => {
    if (secret === undefined) return true;
    if (url.searchParams.get('secret') === secret) return true;
    if (token !== undefined && url.searchParams.get('token') === token) return true;
    return cookieValue(req.headers.cookie, 'secret') === secret;
  };

  const send = (res: ServerResponse, status: number, body: string | Uint8Array, type = 'text/plain; charset=utf-8', headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), ...headers });
    res.end(body);
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const url = new URL(req.url ?? '/', 'http://standin');
    if (!url.pathname.startsWith(base)) return send(res, 404, 'Not found!');
    const path = '/' + url.pathname.slice(base.length);
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    if (path === '/ping') return send(res, 200, 'OK!');
    if (path === '/possible_binder_token_please') return send(res, 200, '');
    if (!authorized(req, url)) return send(res, 403, 'Not yet authenticated. Open the link that was printed in the terminal where you launched Pluto.');
    // Pluto sets the secret cookie on authenticated responses (Authentication.jl add_set_secret_cookie!).
    if (secret !== undefined) res.setHeader('Set-Cookie', `secret=${secret}; SameSite=Strict; HttpOnly`);
    const id = url.searchParams.get('id');
    if (method === 'POST' && path !== '/open') return send(res, 404, 'Not found!');
    switch (path) {
      case '/':
        return send(res, 200, indexPage(notebookId), 'text/html; charset=utf-8');
      case '/open':
        if (!url.searchParams.get('path')) return send(res, 400, 'Bad query');
        res.writeHead(302, { Location: `./edit?id=${notebookId}`, 'Content-Length': 0 });
        return res.end();
      case '/edit':
        return send(res, 200, editorPage(asset.name), 'text/html; charset=utf-8');
      case '/auth-check':
        return send(res, 200, 'OK!');
      case '/statefile':
        if (id !== notebookId) return send(res, 404, 'Notebook not found');
        return send(res, 200, encode(state), 'application/x-msgpack');
      case '/notebookfile':
        if (id !== notebookId) return send(res, 404, 'Notebook not found');
        return send(res, 200, notebookFile(order), 'text/julia; charset=utf-8');
      case '/notebookexport':
        if (id !== notebookId) return send(res, 404, 'Notebook not found');
        return send(res, 200, `<!doctype html><title>webapp.jl</title><h1>A stand-in notebook (export)</h1>`, 'text/html; charset=utf-8');
      case '/notebooklist':
        return send(
          res,
          200,
          JSON.stringify([{ notebook_id: notebookId, path: state.path, shortpath: state.shortpath, process_status: state.process_status }]),
          'application/json',
        );
      case '/shutdown':
        if (id !== notebookId) return send(res, 404, 'Notebook not found');
        return send(res, 200, 'OK!');
      case '/' + asset.name:
        return send(res, 200, asset.body, 'text/javascript; charset=utf-8', { 'Cache-Control': 'public, max-age=2592000, immutable' });
      default:
        return send(res, 404, 'Not found!');
    }
  };

  const refuse = (socket: Duplex, status: number, text: string) => {
    stats.refused++;
    const body = `${text}\n`;
    socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    socket.destroy();
  };

  const server: Server = createServer(handle);
  server.on('clientError', (_e, socket) => socket.destroy());
  // Pluto accepts an upgrade on any path: route by the Upgrade header, not the path.
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => {});
    const url = new URL(req.url ?? '/', 'http://standin');
    if (!authorized(req, url)) return refuse(socket, 403, 'Forbidden');
    stats.upgrades++;
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  // ---- lifecycle ----
  let execTimer: NodeJS.Timeout | undefined;
  let pushTimer: NodeJS.Timeout | undefined;
  let closed = false;
  let markExecuted!: () => void;
  const executedP = new Promise<void>((r) => (markExecuted = r));

  const push = () => {
    if (!executed) return;
    tick++;
    state.cell_results[CELLS.clock].output = output(`tick ${tick}`);
    broadcast(diff([cellPatch(CELLS.clock, 'output')], null));
  };

  const execute = () =>
    new Promise<void>((resolve) => {
      const done = () => {
        if (closed) return resolve();
        runNotebook();
        executed = true;
        // Clients that connected early see the results arrive as one big diff, as in Pluto.
        if (clients.size)
          broadcast(
            diff(
              [
                { op: 'replace', path: ['process_status'], value: 'ready' },
                { op: 'replace', path: ['cell_results'], value: state.cell_results },
                { op: 'replace', path: ['bonds'], value: state.bonds },
              ],
              null,
            ),
          );
        out('READY');
        if (pushEvery > 0) pushTimer = setInterval(push, pushEvery);
        markExecuted();
        resolve();
      };
      execTimer = setTimeout(() => {
        execTimer = undefined;
        if (closed || burnMs === 0) return done();
        void burnCpu(burnMs, () => closed).then(done);
      }, delay);
    });

  const listen = () =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 1234, host, () => {
        server.off('error', reject);
        resolve((server.address() as { port: number }).port);
      });
    });

  let port: number;
  if (options.listenEarly) {
    port = await listen();
    void execute();
  } else {
    await execute();
    port = await listen();
  }
  const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const url = `http://${shownHost}:${port}${base}`;
  // Pluto prints its URL with the secret; a proxy may read the secret from here.
  out(`Go to ${url}${options.secret !== undefined ? `?secret=${options.secret}` : ''} in your browser to start writing ~ have fun!`);
  if (token !== undefined) out(`    ${url}?token=${token}`);

  return {
    port,
    url,
    notebookId,
    secret,
    token,
    executed: executedP,
    isExecuted: () => executed,
    connections: () => clients.size,
    stats,
    push,
    dropConnections: () => {
      for (const ws of clients) ws.terminate();
    },
    close: async () => {
      if (closed) return;
      closed = true;
      if (execTimer) {
        clearTimeout(execTimer);
        execTimer = undefined;
        markExecuted();
      }
      if (pushTimer) clearInterval(pushTimer);
      for (const ws of clients) ws.terminate();
      wss.close();
      await new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      });
    },
  };
}

// Pluto's ServerSession options as the 👋 message carries them (about 1 KB).
const SESSION_OPTIONS = {
  server: {
    root_url: null,
    base_url: '/',
    host: '127.0.0.1',
    port: null,
    launch_browser: false,
    dismiss_update_notification: false,
    show_file_system: true,
    notebook_path_suggestion: '/home/pluto/',
    disable_writing_notebook_files: false,
    auto_reload_from_file: false,
    auto_reload_from_file_cooldown: 0.4,
    auto_reload_from_file_ignore_pkg: false,
    notebook: null,
    init_with_file_viewer: false,
    simulated_lag: 0,
    simulated_pkg_lag: 0,
    injected_javascript_data_url: 'data:text/javascript;base64,',
    on_event: 'function',
    enable_ai_editor_features: true,
    history_file: null,
  },
  security: { require_secret_for_open_links: true, require_secret_for_access: true, warn_about_untrusted_code: true },
  evaluation: {
    run_notebook_on_load: true,
    workspace_use_distributed: true,
    workspace_use_distributed_stdlib: null,
    lazy_workspace_creation: false,
    capture_stdout: true,
    workspace_custom_startup_expr: null,
  },
  compiler: {
    compile: null,
    pkgimages: null,
    compiled_modules: null,
    sysimage: null,
    sysimage_native_code: null,
    banner: null,
    optimize: null,
    math_mode: null,
    startup_file: 'no',
    history_file: 'no',
    threads: 'roughly the number of physical cores',
    heap_size_hint: null,
  },
};

function notebookFile(order: string[]): string {
  const cells = order.map((id) => `# ╔═╡ ${id}\n${CODE[id]}\n`).join('\n');
  return `### A Pluto.jl notebook ###\n# ${PLUTO_VERSION}\n\nusing Markdown\nusing InteractiveUtils\n\n${cells}\n# ╔═╡ Cell order:\n${order.map((id) => `# ╠═${id}`).join('\n')}\n`;
}

function indexPage(notebookId: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Pluto.jl stand-in</title><link rel="icon" href="data:,"></head>
<body><h1>Pluto.jl stand-in</h1>
<ul><li><a href="./open?path=webapp.jl">open webapp.jl</a></li><li><a href="./edit?id=${notebookId}">running: webapp.jl</a></li></ul>
</body></html>
`;
}

/**
 * The editor page: connects exactly as Pluto's frontend does (PlutoConnection.js, Editor.js, clock sync.js).
 * Query parameters override the idle timers for tests (milliseconds; 0 turns a timer off): ping_ms (28000),
 * burst_ms (60000), burst_n (18), reconnect_ms (500), retry_ms (5000).
 */
function editorPage(assetName: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>webapp.jl 🎈 Pluto.jl stand-in</title>
<link rel="icon" href="data:,">
<script src="./${assetName}"></script>
</head><body>
<p>Status: <span id="status">connecting</span></p>
<p>State: <span id="state-bytes">0</span> bytes</p>
<p><label>x <input id="bond" type="range" min="0" max="100" value="0"></label> = <span id="bond-value"></span></p>
<pre id="clock"></pre>
<script>
"use strict";
(() => {
const ECHO_CELL = ${JSON.stringify(CELLS.echo)};
const CLOCK_CELL = ${JSON.stringify(CELLS.clock)};
${applyPatches.toString()}
const params = new URLSearchParams(location.search);
const notebook_id = params.get("id");
const num = (k, d) => { const v = params.get(k); const n = v === null || v === "" ? NaN : Number(v); return Number.isFinite(n) && n >= 0 ? n : d; };
const PING_MS = num("ping_ms", 28000);       // ping 28 s after each pong (PlutoConnection.js)
const BURST_MS = num("burst_ms", 60000);     // clock sync: 16 warm-up + 2 current_time, every 60 s
const BURST_N = num("burst_n", 18);
const RECONNECT_MS = num("reconnect_ms", 500);
const RETRY_MS = num("retry_ms", 5000);
const short_id = () => crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
const client_id = short_id();
const $ = (id) => document.getElementById(id);
const stats = window.__standin = { status: "connecting", sent: {}, received: {}, state_bytes: 0, connections: 0 };
let ws = null, state = {}, got_full = false, pending = new Map(), timers = [];

const set_status = (s) => { stats.status = s; $("status").textContent = s; };
const ws_address = () => {
  const u = new URL("./", location.href);
  u.protocol = u.protocol.replace("http", "ws");
  const s = params.get("secret");
  if (s !== null) u.searchParams.set("secret", s);
  return String(u);
};
const send = (type, body = {}, metadata = {}) => new Promise((resolve, reject) => {
  if (!ws || ws.readyState !== WebSocket.OPEN) return reject(new Error("not connected"));
  const request_id = short_id();
  pending.set(request_id, resolve);
  stats.sent[type] = (stats.sent[type] || 0) + 1;
  ws.send(MessagePack.encode({ type, client_id, request_id, body, ...metadata }));
});
const render = () => {
  const echo = state && state.cell_results && state.cell_results[ECHO_CELL];
  $("bond-value").textContent = echo && echo.output ? String(echo.output.body) : "";
  const clock = state && state.cell_results && state.cell_results[CLOCK_CELL];
  $("clock").textContent = clock && clock.output ? String(clock.output.body) : "";
  if (ws && got_full && state.process_status === "ready") set_status("ready");
};
const on_message = (sock, e) => {
  if (sock !== ws || typeof e.data === "string") return;
  let u;
  try { u = MessagePack.decode(new Uint8Array(e.data)); } catch (err) { console.error("Failed to unpack message", err); return; }
  u.__bytes = e.data.byteLength;
  stats.received[u.type] = (stats.received[u.type] || 0) + 1;
  if (u.type === "notebook_diff" && u.message && Array.isArray(u.message.patches)) {
    state = applyPatches(u.message.response && u.message.response.from_reset ? {} : state, u.message.patches);
  }
  if (u.initiator_id === client_id && u.request_id && pending.has(u.request_id)) {
    const r = pending.get(u.request_id);
    pending.delete(u.request_id);
    r(u);
  }
  render();
};
const ping = (sock) => {
  send("ping").then(() => { if (sock === ws && PING_MS > 0) timers.push(setTimeout(() => ping(sock), PING_MS)); }).catch(() => undefined);
};
const clock_sync = async (sock) => {
  try { for (let i = 0; i < BURST_N && sock === ws; i++) await send("current_time"); } catch (e) {}
};
const on_open = async (sock, is_reconnect) => {
  set_status("connected");
  stats.connections++;
  try {
    const hello = await send("connect", {}, { notebook_id });
    if (!hello.message.notebook_exists) { set_status("no such notebook"); return; }
    ping(sock);
    if (BURST_MS > 0) { clock_sync(sock); timers.push(setInterval(() => clock_sync(sock), BURST_MS)); }
    let full;
    if (is_reconnect) {
      full = await send("reset_shared_state", {}, { notebook_id });
    } else {
      full = await send("update_notebook", { updates: [] }, { notebook_id });
      // Editor.js warms Julia's completion up right after the first state.
      send("complete", { query: "sq" }, { notebook_id }).catch(() => undefined);
      send("complete", { query: "\\\\sq" }, { notebook_id }).catch(() => undefined);
    }
    stats.state_bytes = full.__bytes;
    $("state-bytes").textContent = String(full.__bytes);
    got_full = true;
    render();
  } catch (e) {}
};
let opened_before = false;
const connect = () => {
  set_status("connecting");
  fetch("possible_binder_token_please").catch(() => undefined);
  const sock = new WebSocket(ws_address());
  sock.binaryType = "arraybuffer";
  ws = sock;
  let has_been_open = false;
  sock.onopen = () => { has_been_open = true; const re = opened_before; opened_before = true; on_open(sock, re); };
  sock.onmessage = (e) => on_message(sock, e);
  sock.onclose = () => {
    if (sock !== ws) return;
    ws = null;
    got_full = false;
    timers.forEach((t) => { clearTimeout(t); clearInterval(t); });
    timers = [];
    pending.clear();
    set_status("disconnected");
    setTimeout(connect, has_been_open ? RECONNECT_MS : RETRY_MS);
  };
};
$("bond").addEventListener("input", (e) => {
  const value = Number(e.target.value);
  const updates = [{ op: "replace", path: ["bonds", "x"], value: { value } }];
  state = applyPatches(state, updates);
  send("update_notebook", { updates }, { notebook_id }).catch(() => undefined);
});
connect();
})();
</script>
</body></html>
`;
}

// ---- executable ----
runIfMain(import.meta.url, 'standin', () => optionsFromEnv(), startStandin);
