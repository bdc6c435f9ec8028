// The dashboard in the browser (served as dashboard.js; compiled by tsc, no bundler). Reads the
// token from the URL fragment once (the demo's printed link) or the sign-in form, keeps it in
// sessionStorage, and sends it as an Authorization header: on the event stream too, which is read
// with fetch() rather than EventSource (which cannot send headers), so the token never appears in
// a URL, a log line or a cookie. Every value from the server is set as text, never as markup.

import type { SessionView } from '../pool/session-view.js';
import type { AppView, StateView } from './api.js';
import type { RecentEnd, RecentFailure } from './monitor.js';

const KEY = 'warmpool-admin-token';
const SVG = 'http://www.w3.org/2000/svg';
let token = sessionStorage.getItem(KEY) ?? '';
let stream: AbortController | undefined;
let retry: ReturnType<typeof setTimeout> | undefined;
let skew = 0;
const appCards = new Map<string, AppCard>();
const sessionRows = new Map<string, HTMLTableRowElement>();

const byId = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { class?: string; text?: string; title?: string } = {},
  ...kids: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (props.class) e.className = props.class;
  if (props.text !== undefined) e.textContent = props.text;
  if (props.title) e.title = props.title;
  for (const k of kids) e.append(k);
  return e;
}

function svg(tag: string, attrs: Record<string, string | number>): SVGElement {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

// ---- sign-in and the event stream ----

function init(): void {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    token = decodeURIComponent(m[1]!);
    sessionStorage.setItem(KEY, token);
    history.replaceState(null, '', location.pathname + location.search); // out of the address bar and history
  }
  byId<HTMLFormElement>('signin-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = byId<HTMLInputElement>('token').value.trim();
    sessionStorage.setItem(KEY, token);
    byId<HTMLInputElement>('token').value = '';
    void connect();
  });
  byId('signout').addEventListener('click', () => signOut());
  if (token) void connect();
  else showSignIn();
}

function showSignIn(error?: string): void {
  byId('main').hidden = true;
  byId('signout').hidden = true;
  byId('signin').hidden = false;
  const e = byId('signin-error');
  e.hidden = !error;
  e.textContent = error ?? '';
  byId('token').focus();
}

function signOut(error?: string): void {
  stream?.abort();
  clearTimeout(retry);
  token = '';
  sessionStorage.removeItem(KEY);
  setConn('off', 'signed out');
  showSignIn(error);
}

function setConn(state: 'on' | 'off' | 'wait', text: string): void {
  const c = byId('conn');
  c.className = `conn ${state}`;
  c.textContent = text;
}

async function connect(): Promise<void> {
  stream?.abort();
  clearTimeout(retry);
  const ac = new AbortController();
  stream = ac;
  setConn('wait', 'connecting');
  let res: Response;
  try {
    res = await fetch('api/events', { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' }, cache: 'no-store', signal: ac.signal });
  } catch {
    if (!ac.signal.aborted) reconnectLater();
    return;
  }
  if (res.status === 401) return signOut('That token was refused.');
  if (!res.ok || !res.body) return reconnectLater();
  byId('signin').hidden = true;
  byId('main').hidden = false;
  byId('signout').hidden = false;
  setConn('on', 'live');
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        frame(buf.slice(0, i));
        buf = buf.slice(i + 2);
      }
    }
  } catch {
    // cut off: reconnect below
  }
  if (!ac.signal.aborted) reconnectLater();
}

function reconnectLater(): void {
  setConn('off', 'reconnecting');
  retry = setTimeout(() => void connect(), 2000);
}

function frame(text: string): void {
  let event = 'message';
  let data = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('event:')) event = line.slice(6).trim();
    else if (line.startsWith('data:')) data += line.slice(5).trimStart();
  }
  if (event === 'state' && data) render(JSON.parse(data) as StateView);
}

// ---- actions ----

async function act(path: string, body: unknown, done: string): Promise<void> {
  let r: Response;
  try {
    r = await fetch(path, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body ?? {}),
    });
  } catch (e) {
    return notice(`${path}: ${(e as Error).message}`, true);
  }
  if (r.status === 401) return signOut('That token was refused.');
  const j = (await r.json().catch(() => ({}))) as { error?: { message?: string } };
  if (!r.ok) notice(j.error?.message ?? `${path}: HTTP ${r.status}`, true);
  else notice(done, false);
}

let noticeTimer: ReturnType<typeof setTimeout> | undefined;
function notice(text: string, error: boolean): void {
  const n = byId('notice');
  n.textContent = text;
  n.className = error ? 'error' : '';
  n.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(
    () => {
      n.hidden = true;
    },
    error ? 10_000 : 4000,
  );
}

// ---- rendering ----

function render(s: StateView): void {
  skew = s.now - Date.now();
  const seen = new Set<string>();
  const apps = byId('apps');
  for (const a of s.apps) {
    seen.add(a.name);
    let card = appCards.get(a.name);
    if (!card) {
      card = new AppCard(a.name);
      appCards.set(a.name, card);
      apps.append(card.root);
    }
    card.update(a);
  }
  for (const [name, c] of appCards)
    if (!seen.has(name)) {
      c.root.remove();
      appCards.delete(name);
    }
  renderSessions(s.sessions);
  renderEnds(s.recent.ends);
  renderFailures(s.recent.failures);
}

class AppCard {
  readonly root: HTMLDivElement;
  private readonly badge = el('span', { class: 'badge' });
  private readonly counts = el('div', { class: 'counts' });
  private readonly bar = svg('svg', { class: 'bar', viewBox: '0 0 300 14', preserveAspectRatio: 'none', height: 14 }) as SVGSVGElement;
  private readonly spark = svg('svg', { class: 'spark', viewBox: '0 0 300 40', preserveAspectRatio: 'none', height: 40 }) as SVGSVGElement;
  private readonly lastError = el('div', { class: 'lasterror' });
  private readonly drainBtn = el('button', { class: 'drain' });
  private readonly warm = el('input');
  private readonly max = el('input');
  private draining = false;

  constructor(private readonly name: string) {
    this.root = el('div', { class: 'app' });
    this.root.dataset.app = name;
    for (const [i, label] of [
      [this.warm, 'warm'],
      [this.max, 'max'],
    ] as const) {
      i.type = 'number';
      i.min = label === 'warm' ? '0' : '1';
      i.className = label;
      i.title = label === 'warm' ? 'ready instances to keep warm' : 'most instances at once';
    }
    const refresh = el('button', { class: 'refresh', text: 'Refresh', title: 'replace every ready, unclaimed instance (claimed ones are not touched)' });
    refresh.type = 'button';
    refresh.addEventListener('click', () => {
      if (confirm(`Replace every unclaimed instance of ${name}? Sessions in use are not touched.`))
        void act(`api/apps/${encodeURIComponent(name)}/refresh`, {}, `${name}: replacing unclaimed instances`);
    });
    this.drainBtn.type = 'button';
    this.drainBtn.addEventListener('click', () => {
      if (this.draining) void act(`api/apps/${encodeURIComponent(name)}/resume`, {}, `${name}: taking visitors again`);
      else if (confirm(`Drain ${name}? New visitors are turned away; sessions in use go on.`))
        void act(`api/apps/${encodeURIComponent(name)}/drain`, {}, `${name}: draining`);
    });
    const apply = el('button', { class: 'resize', text: 'Resize' });
    apply.type = 'button';
    apply.addEventListener('click', () => {
      const body: { warm?: number; max?: number } = {};
      if (this.warm.value !== '') body.warm = Number(this.warm.value);
      if (this.max.value !== '') body.max = Number(this.max.value);
      if (body.warm === undefined && body.max === undefined) return notice('Type a warm target or a max first.', true);
      void act(`api/apps/${encodeURIComponent(name)}/resize`, body, `${name}: resized`).then(() => {
        this.warm.value = '';
        this.max.value = '';
      });
    });
    this.root.append(
      el('div', { class: 'top' }, el('span', { class: 'name', text: name }), this.badge),
      this.counts,
      this.bar,
      el('div', { class: 'legend' }, el('span', { text: 'last hour: claims (bars), live (line)' }), el('span', { class: 'spark-total' })),
      this.spark,
      this.lastError,
      el('div', { class: 'actions' }, 'warm', this.warm, 'max', this.max, apply, refresh, this.drainBtn),
    );
  }

  update(a: AppView): void {
    this.draining = a.draining;
    this.badge.textContent = a.health;
    this.badge.className = `badge ${a.health}`;
    this.counts.replaceChildren(
      el('b', { class: 'k-ready ready', text: String(a.ready) }),
      ' ready · ',
      el('b', { class: 'k-starting starting', text: String(a.starting) }),
      ' starting · ',
      el('b', { class: 'k-claimed claimed', text: String(a.claimed) }),
      ' claimed',
      el('span', { class: 'targets', text: `  —  target ${a.warm} warm, max ${a.max}` }),
      a.queued ? el('span', { text: ` · ${a.queued} waiting` }) : '',
      a.failed ? el('span', { class: 'error', text: ` · ${a.failed} failed in a row` }) : '',
    );
    this.warm.placeholder = String(a.warm);
    this.max.placeholder = String(a.max);
    this.drainBtn.textContent = a.draining ? 'Resume' : 'Drain';
    this.lastError.textContent = a.lastError ? `last error: ${a.lastError}` : '';
    this.lastError.title = a.lastError ?? '';
    this.drawBar(a);
    this.drawSpark(a);
  }

  private drawBar(a: AppView): void {
    const scale = 300 / Math.max(1, a.max, a.ready + a.starting + a.claimed);
    let x = 0;
    const kids: SVGElement[] = [svg('rect', { x: 0, y: 0, width: 300, height: 14, fill: '#eef1f6' })];
    for (const [n, color, what] of [
      [a.claimed, '#3b6fd8', 'claimed'],
      [a.ready, '#2e9d5b', 'ready'],
      [a.starting, '#e3a008', 'starting'],
    ] as const) {
      if (n > 0) {
        const r = svg('rect', { x: x * scale, y: 0, width: n * scale, height: 14, fill: color });
        r.append(Object.assign(svg('title', {}), { textContent: `${n} ${what}` }));
        kids.push(r);
      }
      x += n;
    }
    const target = Math.min(a.max, a.claimed + a.warm) * scale;
    kids.push(svg('line', { x1: target, x2: target, y1: 0, y2: 14, stroke: '#1d2330', 'stroke-width': 2, 'stroke-dasharray': '3 2' }));
    this.bar.replaceChildren(...kids);
  }

  private drawSpark(a: AppView): void {
    const { claims, active } = a.history;
    const n = claims.length;
    const top = Math.max(1, ...claims, ...active);
    const w = 300 / n;
    const y = (v: number) => 38 - (v / top) * 34;
    const kids: SVGElement[] = [];
    claims.forEach((c, i) => {
      if (c > 0) kids.push(svg('rect', { x: i * w + 0.5, y: y(c), width: Math.max(1, w - 1), height: 38 - y(c), fill: '#9db6ec' }));
    });
    kids.push(svg('polyline', { points: active.map((v, i) => `${(i + 0.5) * w},${y(v)}`).join(' '), fill: 'none', stroke: '#2e9d5b', 'stroke-width': 1.5 }));
    this.spark.replaceChildren(...kids);
    const total = claims.reduce((x, c) => x + c, 0);
    (this.root.querySelector('.spark-total') as HTMLElement).textContent = `${total} claims, peak ${Math.max(0, ...active)} live`;
  }
}

function renderSessions(list: SessionView[]): void {
  const body = byId('sessions').querySelector('tbody')!;
  const seen = new Set<string>();
  for (const s of [...list].sort((a, b) => a.claimedAt - b.claimedAt)) {
    seen.add(s.id);
    let tr = sessionRows.get(s.id);
    if (!tr) {
      tr = el('tr');
      tr.dataset.session = s.id;
      const end = el('button', { class: 'danger end', text: 'End' });
      end.type = 'button';
      const id = s.id;
      end.addEventListener('click', () => {
        if (confirm(`End session ${id.slice(0, 8)}? Its student gets the "session ended" page.`))
          void act(`api/sessions/${encodeURIComponent(id)}/end`, {}, `session ${id.slice(0, 8)} ended`);
      });
      for (let i = 0; i < 8; i++) tr.append(el('td'));
      tr.append(el('td', {}, end));
      sessionRows.set(s.id, tr);
    }
    const cells = tr.children;
    const set = (i: number, text: string, title?: string) => {
      const c = cells[i] as HTMLElement;
      c.textContent = text;
      if (title) c.title = title;
    };
    (cells[0] as HTMLElement).className = 'id';
    set(0, s.id.slice(0, 8), s.id);
    set(1, s.app);
    set(2, ago(s.claimedAt), new Date(s.claimedAt).toISOString());
    set(3, ago(s.lastActive), new Date(s.lastActive).toISOString());
    set(4, `${until(s.endsAt)} (${s.endsBy})`, `idle deadline ${new Date(s.idleDeadline).toISOString()}`);
    set(5, String(s.openConnections));
    set(6, `${bytes(s.bytesIn)} / ${bytes(s.bytesOut)}`);
    set(
      7,
      `${s.messagesIn} / ${s.messagesOut}`,
      Object.entries(s.messagesInByType)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', '),
    );
    tr.className = s.idle ? 'idle' : '';
    body.append(tr); // in claim order
  }
  for (const [id, tr] of sessionRows)
    if (!seen.has(id)) {
      tr.remove();
      sessionRows.delete(id);
    }
  byId('live-count').textContent = `(${list.length})`;
  byId('no-sessions').hidden = list.length > 0;
}

function renderEnds(ends: RecentEnd[]): void {
  const rows = ends.slice(0, 30).map((e) => {
    const tr = el(
      'tr',
      {},
      el('td', { text: ago(e.at), title: new Date(e.at).toISOString() }),
      el('td', { class: 'id', text: e.session.slice(0, 8), title: e.session }),
      el('td', { text: e.app }),
      el('td', {
        class: e.reason === 'instance-exited' || e.reason === 'lost' ? 'error' : '',
        text: e.reason + (e.lateMs ? ` (+${Math.round(e.lateMs)} ms)` : ''),
      }),
      el('td', { text: e.durationMs !== undefined ? span(e.durationMs) : '–' }),
      el('td', { text: `${bytes(e.bytesIn)} / ${bytes(e.bytesOut)}` }),
    );
    tr.dataset.session = e.session;
    return tr;
  });
  byId('ends')
    .querySelector('tbody')!
    .replaceChildren(...rows);
  byId('no-ends').hidden = ends.length > 0;
}

function renderFailures(list: RecentFailure[]): void {
  byId('failures').replaceChildren(
    ...list.slice(0, 20).map((f) => el('li', {}, el('b', { text: `${f.app} ` }), el('span', { class: 'hint', text: `${ago(f.at)}: ` }), f.error)),
  );
  byId('no-failures').hidden = list.length > 0;
}

// ---- formatting ----

function span(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

function ago(t: number): string {
  return `${span(Date.now() + skew - t)} ago`;
}

function until(t: number): string {
  return `in ${span(t - (Date.now() + skew))}`;
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

init();
