// The soak benchmark's notebook servers, one process listening on many ports (one per pool instance,
// as real instances each have their own): Pluto's HTTP entry (`/ping`, `/open` → `./edit?id=`, `/edit`)
// and a Pluto-like WebSocket on any path (NOTEBOOK-TRAFFIC.md) whose every message carries a per-connection
// `seq` (bench/soak-wire.ts). It checks the client's numbering, answers as Pluto does (👋, the full state,
// pong, current_time, notebook_diff, completion_result) and pushes notebook_diffs of its own, now and then
// a large one, as a notebook with a timer or a long-running cell does.
//
//   node dist/bench/soak-backend.js '<json>'   → `READY {"ports":[…]}`
//   json: { ports: N, stateBytes, pushMeanMs, bigPushShare }
//   stdin `STATS` → `STATS {…}` (totals over every connection so far)

import { createServer, type Server } from 'node:http';
import { createInterface } from 'node:readline';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { decode, encode } from '@msgpack/msgpack';
import { END, END_ACK, MAX_PAYLOAD, payloadFor, SeqCheck, type ServerSide } from './soak-wire.js';

interface Args {
  ports: number;
  stateBytes: number;
  /** Mean time between two server pushes on one connection (exponential); 0 = no pushes. */
  pushMeanMs: number;
  /** Share of pushes that are large (64 to 256 KiB) rather than small (200 B to 8 KiB). */
  bigPushShare: number;
}

const a = JSON.parse(process.argv[2] ?? '{}') as Args;
const NOTEBOOK_ID = '6b1e7f2a-3c4d-4e5f-8a9b-0c1d2e3f4a5b';
const ECHO_CELL = '0b5c9c1e-0004-4d1a-9c5e-000000000004';
const CLOCK_CELL = '0b5c9c1e-0005-4d1a-9c5e-000000000005';
// About the size of Pluto's 👋 (the session options, ~1 KB).
const HELLO_OPTIONS = {
  server: { base_url: '/', launch_browser: false, notebook_path_suggestion: '/home/pluto/' },
  security: { require_secret_for_access: false },
  pad: 'o'.repeat(800),
};
const EDIT_PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>webapp.jl 🎈 Pluto.jl</title></head><body>${'<div class="cell"></div>'.repeat(120)}</body></html>`;

const totals = {
  opened: 0,
  closed: 0,
  closedWith1000: 0,
  ended: 0,
  msgsIn: 0,
  msgsOut: 0,
  bytesIn: 0,
  bytesOut: 0,
  pushes: 0,
  bigPushes: 0,
  /** Client messages the server saw missing or out of order, summed over connections. */
  lost: 0,
  back: 0,
  undecodable: 0,
  unknown: 0,
  /** Client messages that arrived after the client's soak_end (must be none). */
  afterEnd: 0,
  httpRequests: 0,
};

class Conn {
  readonly rx = new SeqCheck();
  tx = 0;
  counter = 0;
  ended = false;
  private pushTimer: NodeJS.Timeout | undefined;

  constructor(readonly ws: WebSocket) {}

  send(m: Record<string, unknown>): void {
    m.seq = ++this.tx;
    const bytes = encode(m);
    totals.msgsOut++;
    totals.bytesOut += bytes.length;
    this.ws.send(bytes, { binary: true });
  }

  reply(req: Record<string, any>, type: string, message: unknown, withNotebook = false): void {
    this.send({ type, message, initiator_id: req.client_id, request_id: req.request_id, ...(withNotebook ? { notebook_id: NOTEBOOK_ID } : {}) });
  }

  onMessage(data: RawData, isBinary: boolean): void {
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    totals.msgsIn++;
    totals.bytesIn += buf.length;
    let req: Record<string, any>;
    try {
      req = decode(buf) as Record<string, any>;
      if (!isBinary || req === null || typeof req !== 'object' || typeof req.type !== 'string') throw new Error('not a Pluto message');
    } catch {
      totals.undecodable++;
      return;
    }
    if (this.ended) totals.afterEnd++;
    if (this.rx.see(req.seq) === 'back') totals.back++;
    switch (req.type) {
      case 'connect':
        this.reply(req, '👋', {
          notebook_exists: req.notebook_id === NOTEBOOK_ID,
          options: HELLO_OPTIONS,
          version_info: { pluto: 'v0.20.21', julia: '1.11.7' },
        });
        break;
      case 'ping':
        this.reply(req, 'pong', {});
        break;
      case 'current_time':
        this.reply(req, 'current_time', { time: Date.now() / 1000 });
        break;
      case 'update_notebook': {
        const updates = req.body?.updates;
        if (!Array.isArray(updates) || updates.length === 0) {
          // The whole state in one frame; its bytes are checked by the client against this message's seq.
          const seq = this.tx + 1;
          this.reply(
            req,
            'notebook_diff',
            {
              counter: ++this.counter,
              patches: [
                {
                  op: 'replace',
                  path: [],
                  value: { notebook_id: NOTEBOOK_ID, process_status: 'ready', data: payloadFor(seq, Math.min(a.stateBytes, MAX_PAYLOAD)) },
                },
              ],
              response: { update_went_well: '👍' },
            },
            true,
          );
          this.schedulePush();
          break;
        }
        // A slider moved: the cell showing `x` reruns; the reply carries its new output (the client checks the echo).
        const value = updates[0]?.value?.value;
        this.reply(
          req,
          'notebook_diff',
          {
            counter: ++this.counter,
            patches: [{ op: 'replace', path: ['cell_results', ECHO_CELL, 'output'], value: { body: String(value), mime: 'text/plain' } }],
            response: { update_went_well: '👍' },
          },
          true,
        );
        break;
      }
      case 'complete':
        this.reply(req, 'completion_result', { start: 0, stop: 2, results: [['sqrt', 'function', true, false, null, null]], too_long: false }, true);
        break;
      case END: {
        this.ended = true;
        this.stopPushes();
        totals.ended++;
        // The ack is the last message on this connection; its seq is `sent`.
        const side: ServerSide = { received: this.rx.received, last: this.rx.last, lost: this.rx.lost, back: this.rx.back, sent: this.tx + 1 };
        this.reply(req, END_ACK, side);
        break;
      }
      default:
        totals.unknown++;
    }
  }

  schedulePush(): void {
    if (a.pushMeanMs <= 0 || this.ended || this.pushTimer) return;
    const delay = -Math.log(1 - Math.random()) * a.pushMeanMs;
    this.pushTimer = setTimeout(() => {
      this.pushTimer = undefined;
      if (this.ended || this.ws.readyState !== this.ws.OPEN) return;
      const big = Math.random() < a.bigPushShare;
      const len = big ? 64 * 1024 + Math.floor(Math.random() * 192 * 1024) : 200 + Math.floor(Math.random() * 8 * 1024);
      totals.pushes++;
      if (big) totals.bigPushes++;
      // A push: no initiator; the payload is checked by the client against this message's seq.
      this.send({
        type: 'notebook_diff',
        message: {
          counter: ++this.counter,
          patches: [
            { op: 'replace', path: ['cell_results', CLOCK_CELL, 'output'], value: { body: payloadFor(this.tx + 1, len), mime: 'application/octet-stream' } },
          ],
          response: null,
        },
        notebook_id: NOTEBOOK_ID,
      });
      this.schedulePush();
    }, delay);
  }

  stopPushes(): void {
    clearTimeout(this.pushTimer);
    this.pushTimer = undefined;
  }
}

const conns = new Set<Conn>();
/** Client messages lost on connections already closed (open ones are summed at STATS). */
let closedLost = 0;
function sumLost(): number {
  let n = closedLost;
  for (const c of conns) n += c.rx.lost;
  return n;
}

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
wss.on('connection', (ws) => {
  const c = new Conn(ws);
  conns.add(c);
  totals.opened++;
  ws.on('error', () => undefined);
  ws.on('message', (d, bin) => c.onMessage(d, bin));
  ws.on('close', (code) => {
    c.stopPushes();
    conns.delete(c);
    closedLost += c.rx.lost;
    totals.closed++;
    if (code === 1000) totals.closedWith1000++;
  });
});

function newServer(): Server {
  const s = createServer((req, res) => {
    req.resume();
    totals.httpRequests++;
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8', headers: Record<string, string> = {}): void => {
      res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), ...headers });
      res.end(body);
    };
    if (path === '/ping') return send(200, 'OK!');
    if (path === '/open') return send(302, '', 'text/plain', { Location: `./edit?id=${NOTEBOOK_ID}` });
    if (path === '/edit') return send(200, EDIT_PAGE, 'text/html; charset=utf-8');
    return send(404, 'Not found!');
  });
  // Pluto accepts an upgrade on any path.
  s.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  s.on('clientError', (_e, socket) => socket.destroy());
  return s;
}

const servers: Server[] = [];
const ports: number[] = [];
for (let i = 0; i < a.ports; i++) {
  const s = newServer();
  servers.push(s);
  ports.push(
    await new Promise<number>((resolve, reject) => {
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve((s.address() as { port: number }).port));
    }),
  );
}
process.stdout.write(`READY ${JSON.stringify({ ports })}\n`);

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'STATS') process.stdout.write(`STATS ${JSON.stringify({ ...totals, lost: sumLost(), open: conns.size })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
