// Students for the soak benchmark, run as their own process: each session enters through warmpool as a
// browser does (GET /<app>/ → cookie and deep link, /open → /edit), opens the notebook's WebSocket, loads
// the state (connect, an empty update_notebook, the two warm-up completes), then lives on Pluto's timers
// (a ping 28 s after each pong, 18 current_time a minute) with a slider dragged now and then. Every message
// in both directions carries a per-connection `seq` (bench/soak-wire.ts): the numbers, every reply and every
// payload byte are checked here, the client's own numbering by the server, and at the end each session
// exchanges soak_end / soak_end_ack so a message lost at the tail is caught too.
//
//   node dist/bench/soak-client.js '<json>' → `STARTED`, opens sessions at `rate`/s, `RAMPED {…}`,
//   `PROGRESS {…}` every 10 s; on the stdin line `STOP` closes them at `rate`/s, prints `RESULT {…}`, exits.

import { Agent, request } from 'node:http';
import { createInterface } from 'node:readline';
import { decode, encode } from '@msgpack/msgpack';
import { WebSocket } from 'ws';
import { END, END_ACK, payloadOk, SeqCheck, type ServerSide } from './soak-wire.js';
import { Histogram } from './stats.js';

interface Args {
  port: number;
  app: string;
  /** Index of this process's first session (session names are unique across processes). */
  first: number;
  count: number;
  /** Sessions opened (and at the end closed) per second by this process. */
  rate: number;
  /** Mean time between two slider drags of one session (exponential). */
  activeMeanMs: number;
  pingMs: number;
  burstMs: number;
  burstN: number;
  replyTimeoutMs: number;
}

const a = JSON.parse(process.argv[2]!) as Args;
const NOTEBOOK_ID = '6b1e7f2a-3c4d-4e5f-8a9b-0c1d2e3f4a5b';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const errors: Record<string, number> = {};
const firstErrors: string[] = [];
function error(kind: string, detail: string): void {
  errors[kind] = (errors[kind] ?? 0) + 1;
  if (firstErrors.length < 20) firstErrors.push(`${kind}: ${detail}`);
}

const t = {
  sent: 0,
  received: 0,
  bytesSent: 0,
  bytesReceived: 0,
  sentByType: {} as Record<string, number>,
  receivedByType: {} as Record<string, number>,
  pushes: 0,
  pushBytes: 0,
  replies: 0,
  /** Server → client messages missing (gaps) or at/below a number already seen, summed over sessions. */
  lost: 0,
  back: 0,
  /** Client → server, as the server reported them in its soak_end_ack. */
  serverLost: 0,
  serverBack: 0,
  /** Sessions whose end exchange balanced exactly (every message of both directions accounted for). */
  verified: 0,
  cleanClose: 0,
};
const bump = (r: Record<string, number>, k: string): void => {
  r[k] = (r[k] ?? 0) + 1;
};
const openHist = new Histogram();
const rttHist = new Histogram();

interface Pending {
  type: string;
  at: number;
  /** The cell output the reply must show (a slider move). */
  echo?: string;
  resolve?: (m: Record<string, any>) => void;
  reject?: (e: Error) => void;
}

/** One HTTP GET on the session's own keep-alive connection (a browser tab's). */
function get(agent: Agent, path: string, cookie?: string): Promise<{ status: number; location?: string; setCookie: string[] }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: a.port, path, agent, headers: { Accept: 'text/html', ...(cookie ? { Cookie: cookie } : {}) } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, location: res.headers.location, setCookie: res.headers['set-cookie'] ?? [] }));
      res.on('error', reject);
    });
    req.setTimeout(a.replyTimeoutMs, () => req.destroy(new Error(`GET ${path}: no answer within ${a.replyTimeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

class Session {
  readonly clientId: string;
  private ws: WebSocket | undefined;
  private agent = new Agent({ keepAlive: true, maxSockets: 1 });
  private tx = 0;
  private readonly rx = new SeqCheck();
  private readonly pending = new Map<string, Pending>();
  private timers: NodeJS.Timeout[] = [];
  private closing = false;
  private closed: Promise<number> | undefined;
  private bond = 0;
  private done = false;
  open = false;

  constructor(readonly idx: number) {
    this.clientId = `s${idx}`;
  }

  /** Enter, follow the deep link, open the socket, load the state; then the tab's timers run. */
  async start(): Promise<void> {
    const t0 = performance.now();
    const e = await get(this.agent, `/${a.app}/`);
    const cookie = e.setCookie.find((c) => c.startsWith(`warmpool_${a.app}=`))?.split(';')[0];
    if (e.status !== 302 || !cookie || !e.location) throw new Error(`entry answered ${e.status}${cookie ? '' : ' without a cookie'}`);
    const o = await get(this.agent, e.location, cookie);
    if (o.status !== 302 || !o.location) throw new Error(`${e.location} answered ${o.status}`);
    const editPath = new URL(o.location, `http://x${e.location}`).pathname + new URL(o.location, `http://x${e.location}`).search;
    const ed = await get(this.agent, editPath, cookie);
    if (ed.status !== 200) throw new Error(`${editPath} answered ${ed.status}`);
    // Pluto's socket: new URL("./", location) of the editor page, i.e. the app root.
    const ws = new WebSocket(`ws://127.0.0.1:${a.port}/${a.app}/`, { headers: { Cookie: cookie }, perMessageDeflate: false });
    this.ws = ws;
    this.closed = new Promise<number>((resolve) =>
      ws.on('close', (code) => {
        if (this.open && !this.closing) error('unexpected-close', `session ${this.idx}: code ${code}`);
        this.open = false;
        for (const [id, p] of this.pending) {
          this.pending.delete(id);
          if (!this.closing) error('no-reply', `session ${this.idx}: ${p.type} unanswered when the socket closed`);
          p.reject?.(new Error(`socket closed before the reply to ${p.type}`));
        }
        resolve(code);
      }),
    );
    ws.on('message', (d, bin) => this.onMessage(d as Buffer, bin));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', (err) => reject(err));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade answered ${res.statusCode}`)));
    });
    ws.on('error', (err) => error('ws-error', `session ${this.idx}: ${err.message}`));
    this.open = true;
    await this.request('connect', {}, true);
    await this.request('update_notebook', { updates: [] }, true);
    await Promise.all([this.request('complete', { query: 'sq' }, true), this.request('complete', { query: '\\sq' }, true)]);
    openHist.record((performance.now() - t0) * 1000);
    this.ping();
    this.burst();
    this.timers.push(setInterval(() => this.burst(), a.burstMs));
    this.scheduleDrag();
  }

  private send(type: string, body: Record<string, unknown>, withNotebook: boolean, p: Omit<Pending, 'type' | 'at'> = {}): string {
    const seq = ++this.tx;
    const requestId = seq.toString(36);
    const bytes = encode({ type, client_id: this.clientId, request_id: requestId, body, ...(withNotebook ? { notebook_id: NOTEBOOK_ID } : {}), seq });
    this.pending.set(requestId, { type, at: performance.now(), ...p });
    t.sent++;
    t.bytesSent += bytes.length;
    bump(t.sentByType, type);
    this.ws!.send(bytes, { binary: true });
    return requestId;
  }

  /** Sends and resolves with the reply (rejects if the socket closes first; a reply too late is an error). */
  private request(type: string, body: Record<string, unknown>, withNotebook: boolean): Promise<Record<string, any>> {
    return new Promise((resolve, reject) => {
      if (!this.open || this.ws!.readyState !== WebSocket.OPEN) return reject(new Error(`cannot send ${type}: socket not open`));
      this.send(type, body, withNotebook, { resolve, reject });
    });
  }

  private onMessage(buf: Buffer, isBinary: boolean): void {
    t.received++;
    t.bytesReceived += buf.length;
    let m: Record<string, any>;
    try {
      m = decode(buf) as Record<string, any>;
      if (!isBinary || m === null || typeof m !== 'object' || typeof m.type !== 'string') throw new Error('not a Pluto message');
    } catch (e) {
      error('undecodable', `session ${this.idx}: ${(e as Error).message}`);
      return;
    }
    bump(t.receivedByType, m.type);
    const last = this.rx.last;
    const v = this.rx.see(m.seq);
    if (v === 'gap') error('gap', `session ${this.idx}: server seq ${m.seq} after ${last}`);
    if (v === 'back') error('back', `session ${this.idx}: server seq ${String(m.seq)} after ${last}`);
    if (m.type === 'notebook_diff') this.checkDiff(m);
    if (m.initiator_id === undefined) {
      t.pushes++;
      t.pushBytes += buf.length;
      return;
    }
    const p = m.initiator_id === this.clientId ? this.pending.get(m.request_id) : undefined;
    if (!p) {
      error('unmatched-reply', `session ${this.idx}: ${m.type} for ${String(m.initiator_id)}/${String(m.request_id)}`);
      return;
    }
    this.pending.delete(m.request_id);
    t.replies++;
    rttHist.record((performance.now() - p.at) * 1000);
    if (p.echo !== undefined && m.message?.patches?.[0]?.value?.body !== p.echo) {
      error('wrong-echo', `session ${this.idx}: sent x = ${p.echo}, the cell shows ${String(m.message?.patches?.[0]?.value?.body)}`);
    }
    p.resolve?.(m);
  }

  /** A full state or a push carries a payload derived from its seq: every byte is compared. */
  private checkDiff(m: Record<string, any>): void {
    const patch = m.message?.patches?.[0];
    const bytes = patch?.path?.length === 0 ? patch.value?.data : m.initiator_id === undefined ? patch?.value?.body : undefined;
    if (bytes !== undefined && !payloadOk(m.seq, bytes))
      error('payload', `session ${this.idx}: notebook_diff seq ${m.seq} (${bytes?.length} bytes) differs from what was sent`);
  }

  /** Pluto pings 28 s after each pong (PlutoConnection.js). */
  private ping(): void {
    if (this.closing) return;
    this.request('ping', {}, false).then(
      () => {
        if (!this.closing) this.timers.push(setTimeout(() => this.ping(), a.pingMs));
      },
      () => undefined,
    );
  }

  /** clock sync.js: burstN current_time, each after the previous reply; no notebook_id. */
  private async burst(): Promise<void> {
    try {
      for (let i = 0; i < a.burstN && !this.closing; i++) await this.request('current_time', {}, false);
    } catch {
      // the socket closed; counted there
    }
  }

  /** A student drags the slider: 1 to 8 update_notebook 80 ms apart, each with the value the cell must echo. */
  private scheduleDrag(): void {
    if (this.closing || a.activeMeanMs <= 0) return;
    const delay = -Math.log(1 - Math.random()) * a.activeMeanMs;
    this.timers.push(
      setTimeout(async () => {
        const moves = 1 + Math.floor(Math.random() * 8);
        for (let i = 0; i < moves && !this.closing && this.open; i++) {
          this.bond = (this.bond + 1 + Math.floor(Math.random() * 10)) % 101;
          const updates = [{ op: 'replace', path: ['bonds', 'x'], value: { value: this.bond } }];
          this.send('update_notebook', { updates }, true, { echo: String(this.bond) });
          if (i + 1 < moves) await sleep(80);
        }
        this.scheduleDrag();
      }, delay),
    );
  }

  /** Replies older than the limit are errors (and forgotten, so a late one shows up as unmatched). */
  sweep(now: number): void {
    for (const [id, p] of this.pending) {
      if (now - p.at > a.replyTimeoutMs) {
        this.pending.delete(id);
        error('no-reply', `session ${this.idx}: ${p.type} unanswered after ${a.replyTimeoutMs} ms`);
        p.reject?.(new Error(`no reply to ${p.type} within ${a.replyTimeoutMs} ms`));
      }
    }
  }

  /** The end: timers off, the replies still due awaited, soak_end / soak_end_ack balanced, then a clean close. */
  async stop(): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.closing = true;
    for (const x of this.timers) {
      clearTimeout(x);
      clearInterval(x);
    }
    this.timers = [];
    if (this.open) {
      const until = performance.now() + a.replyTimeoutMs;
      while (this.pending.size > 0 && this.open && performance.now() < until) await sleep(20);
      try {
        const ack = await this.request(END, {}, true);
        const s = ack.message as ServerSide;
        const ok =
          s.received === this.tx &&
          s.last === this.tx &&
          s.lost === 0 &&
          s.back === 0 &&
          ack.seq === s.sent &&
          this.rx.last === s.sent &&
          this.rx.received === s.sent &&
          this.rx.lost === 0 &&
          this.rx.back === 0;
        t.serverLost += s.lost;
        t.serverBack += s.back;
        // Tail losses: what the server says it got/sent against what this end sent/got.
        if (s.received < this.tx) error('lost-to-server', `session ${this.idx}: sent ${this.tx}, the server received ${s.received}`);
        if (this.rx.received < s.sent) error('lost-from-server', `session ${this.idx}: the server sent ${s.sent}, received ${this.rx.received}`);
        if (ok) t.verified++;
        else error('unbalanced', `session ${this.idx}: client tx ${this.tx} rx ${this.rx.received}/${this.rx.last}; server ${JSON.stringify(s)}`);
      } catch (e) {
        error('end', `session ${this.idx}: ${(e as Error).message}`);
      }
      // Pluto's frontend closes with 1000 "byebye"; the close handshake must complete with the server's 1000.
      this.ws!.close(1000, 'byebye');
    }
    const code = this.closed ? await this.closed : -1;
    if (code === 1000) t.cleanClose++;
    else if (this.closed) error('unclean-close', `session ${this.idx}: close code ${code}`);
    t.lost += this.rx.lost;
    t.back += this.rx.back;
    this.agent.destroy();
  }

  /** A session that could not start: whatever it opened is dropped (it counts as failed, not in the balance). */
  abort(): void {
    this.done = true;
    this.closing = true;
    this.open = false;
    for (const x of this.timers) {
      clearTimeout(x);
      clearInterval(x);
    }
    this.timers = [];
    this.ws?.terminate();
    this.agent.destroy();
  }
}

const sessions: Session[] = [];
let failed = 0;

async function rampUp(): Promise<void> {
  const t0 = performance.now();
  const starts: Promise<void>[] = [];
  for (let i = 0; i < a.count; i++) {
    const due = t0 + (i * 1000) / a.rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const s = new Session(a.first + i);
    sessions.push(s);
    starts.push(
      s.start().catch((e: Error) => {
        failed++;
        error('start', `session ${s.idx}: ${e.message}`);
        s.abort();
      }),
    );
  }
  await Promise.all(starts);
}

async function rampDown(): Promise<void> {
  const t0 = performance.now();
  const stops: Promise<void>[] = [];
  for (let i = 0; i < sessions.length; i++) {
    const wait = t0 + (i * 1000) / a.rate - performance.now();
    if (wait > 0) await sleep(wait);
    stops.push(sessions[i]!.stop());
  }
  await Promise.all(stops);
}

const snapshot = () => ({
  open: sessions.filter((s) => s.open).length,
  failed,
  ...t,
  errors,
  errorCount: Object.values(errors).reduce((x, y) => x + y, 0),
});

const sweeper = setInterval(() => {
  const now = performance.now();
  for (const s of sessions) s.sweep(now);
}, 1000);
const progress = setInterval(() => process.stdout.write(`PROGRESS ${JSON.stringify(snapshot())}\n`), 10_000);
let stopping = false;
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'STOP' || stopping) return;
  stopping = true;
  const t0 = performance.now();
  void rampDown().then(() => {
    clearInterval(sweeper);
    clearInterval(progress);
    const r = { ...snapshot(), closeMs: performance.now() - t0, firstErrors, openHist: openHist.toPairs(), rttHist: rttHist.toPairs() };
    process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
    setTimeout(() => process.exit(0), 50);
  });
});

process.stdout.write('STARTED\n');
const r0 = performance.now();
await rampUp();
process.stdout.write(`RAMPED ${JSON.stringify({ ...snapshot(), rampMs: performance.now() - r0, openHist: openHist.toPairs(), firstErrors })}\n`);
