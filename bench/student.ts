// Simulated students for the classroom burst, run as separate processes (the orchestrator spreads a
// class over two). Each student does what a browser does on the course link: entry → deep link →
// editor page → WebSocket → connect + the empty update_notebook → full state received, with its own
// keep-alive connections (up to 6, as a browser) and cookie jar. No instance free: it does what the
// waiting page's script does (proxy/pages.ts): opens the page's event stream, and on `ready` closes it
// and follows the one-time collect URL; on `gone` it goes back to the app's root after `afterMs`; a
// per-address limit page is retried after its refresh. The process warms its own code up against an
// in-process stand-in first, so the first student of a burst does not pay for the JIT.
//
//   node dist/bench/student.js  → `WARM`; then stdin lines `RUN <json>` → `RESULT <json>` each.

import { Agent, request } from 'node:http';
import { createInterface } from 'node:readline';
import { PlutoClient } from '../examples/standin/driver.js';
import { startStandin } from '../examples/standin/server.js';

export interface Student {
  /** proxy: through warmpool at base (http://host:port/<app>/); direct: the instance at base (http://host:port/) with its secret. */
  mode: 'proxy' | 'direct';
  base: string;
  secret?: string;
  offsetMs: number;
}

export interface StudentResult {
  ok: boolean;
  offsetMs: number;
  /** From the student's first request to the full state, ms. */
  totalMs: number;
  /**
   * ms per step: entry (first answer: the redirect, or the waiting page), line (waiting page → its
   * stream's `ready`, incl. any limit page waited out), collect (collect URL → redirect), deepLink,
   * editor, wsOpen, state. line and collect only for students who waited in line.
   */
  phases: Record<string, number>;
  /** Times the student met the waiting page (0: claimed at once). */
  waited: number;
  error?: string;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

const HTML = 'text/html,application/xhtml+xml';

function cookieHeader(jar: Map<string, string>): Record<string, string> {
  const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  return cookie ? { Cookie: cookie } : {};
}

function keepCookies(setCookie: string[] | undefined, jar: Map<string, string>): void {
  for (const sc of setCookie ?? []) {
    const pair = sc.split(';')[0]!;
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    if (value === '' || /max-age=0/i.test(sc)) jar.delete(name);
    else jar.set(name, value);
  }
}

function get(url: string, agent: Agent, jar: Map<string, string>): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers: { Accept: HTML, ...cookieHeader(jar) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        keepCookies(res.headers['set-cookie'], jar);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', reject);
    });
    req.setTimeout(120_000, () => req.destroy(new Error(`timeout on ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * The waiting page's EventSource: resolves with the first `ready` or `gone` event (`line` events
 * are only counted), then closes the stream as the page's script does.
 */
function waitStream(url: string, agent: Agent, jar: Map<string, string>): Promise<{ event: string; data: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers: { Accept: 'text/event-stream', 'Cache-Control': 'no-cache', ...cookieHeader(jar) } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new Error(`event stream answered ${res.statusCode}`));
      }
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (c: string) => {
        buf += c;
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if ((event === 'ready' || event === 'gone') && data !== undefined) {
            req.destroy();
            resolve({ event, data: JSON.parse(data) as Record<string, unknown> });
            return;
          }
        }
      });
      res.on('end', () => reject(new Error('event stream ended without ready or gone')));
      res.on('error', () => undefined);
    });
    req.setTimeout(300_000, () => req.destroy(new Error(`timeout on ${url}`)));
    req.on('error', (e) => reject(e));
    req.end();
  });
}

const unescapeHtml = (s: string): string =>
  s
    .replace(/&amp;/g, '&')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>');

const sleepMs = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The entry as a browser goes through it: GET /<app>/ until a redirect with the app's cookie,
 * through the waiting page's stream and collect URL when no instance is free. Returns the deep link.
 */
async function enterThroughLine(base: string, agent: Agent, jar: Map<string, string>, phase: (name: string) => void): Promise<{ deep: URL; waited: number }> {
  let url = base;
  let waited = 0;
  let first = true;
  for (let attempt = 0; attempt < 100; attempt++) {
    const r = await get(url, agent, jar);
    if (first) phase('entry');
    first = false;
    if (r.status === 302 && typeof r.headers.location === 'string') {
      const loc = new URL(r.headers.location, url);
      if (loc.pathname !== new URL(base).pathname) {
        if (waited) phase('collect');
        return { deep: loc, waited };
      }
      url = loc.href; // a lapsed collect sends the browser back to the root
      continue;
    }
    if (r.status === 429) {
      // The limit page refreshes itself after Retry-After.
      const m = /http-equiv="refresh" content="(\d+);url=([^"]+)"/.exec(r.body);
      await sleepMs(Number(m?.[1] ?? r.headers['retry-after'] ?? 1) * 1000);
      url = m ? new URL(unescapeHtml(m[2]!), url).href : base;
      continue;
    }
    const w = r.status === 503 ? /data-wait="([^"]+)"/.exec(r.body) : null;
    if (!w) throw new Error(`entry answered ${r.status}`);
    waited++;
    const e = await waitStream(new URL(unescapeHtml(w[1]!), url).href, agent, jar);
    if (e.event === 'ready') {
      phase('line');
      url = new URL(String(e.data.url), url).href;
    } else {
      await sleepMs(Number(e.data.afterMs ?? 1000));
      url = new URL(String(e.data.url ?? base), url).href;
    }
  }
  throw new Error('no instance after 100 tries');
}

/** One student, from the first request to the full state. */
export async function visit(s: Student): Promise<StudentResult> {
  // A browser opens up to 6 connections per host: the waiting page's stream takes one.
  const agent = new Agent({ keepAlive: true, maxSockets: 6 });
  const jar = new Map<string, string>();
  const phases: Record<string, number> = {};
  const t0 = performance.now();
  let mark = t0;
  const phase = (name: string): void => {
    const now = performance.now();
    phases[name] = (phases[name] ?? 0) + now - mark;
    mark = now;
  };
  let waited = 0;
  let client: PlutoClient | undefined;
  try {
    let deep: URL;
    if (s.mode === 'proxy') {
      const e = await enterThroughLine(s.base, agent, jar, phase);
      deep = e.deep;
      waited = e.waited;
    } else {
      deep = new URL(`open?path=webapp.jl&secret=${encodeURIComponent(s.secret ?? '')}`, s.base);
    }
    // The deep link answers a redirect to the editor; a warmpool entry may already have sent the
    // student straight there (apps[].resolveDeepLink), which the browser follows the same way.
    let edit = deep;
    let r3 = await get(edit.href, agent, jar);
    if (r3.status === 302 && typeof r3.headers.location === 'string') {
      phase('deepLink');
      edit = new URL(r3.headers.location, deep);
      r3 = await get(edit.href, agent, jar);
    }
    if (r3.status !== 200 || !r3.body.includes('<script')) throw new Error(`editor page ${edit.pathname} answered ${r3.status}`);
    phase('editor');
    // The page opens its socket on the notebook root with the cookies it has (warmpool's, or Pluto's secret).
    const wsUrl = new URL('./', edit).href.replace(/^http/, 'ws');
    client = await PlutoClient.open(wsUrl, { cookie: cookieHeader(jar).Cookie ?? '', timeoutMs: 120_000 });
    phase('wsOpen');
    await client.send('connect', {});
    const full = await client.send('update_notebook', { updates: [] });
    if (full.bytes < 1000) throw new Error(`state of ${full.bytes} bytes`);
    phase('state');
    return { ok: true, offsetMs: s.offsetMs, totalMs: performance.now() - t0, phases, waited };
  } catch (e) {
    return { ok: false, offsetMs: s.offsetMs, totalMs: performance.now() - t0, phases, waited, error: (e as Error).message };
  } finally {
    void client?.close().catch(() => undefined);
    agent.destroy();
  }
}

async function warmUp(): Promise<void> {
  const h = await startStandin({ port: 0, secret: 'warmup-secret', stateBytes: 200_000, out: () => {}, log: () => {} });
  for (let i = 0; i < 30; i++) await visit({ mode: 'direct', base: h.url, secret: 'warmup-secret', offsetMs: 0 });
  await h.close();
}

const isMain = process.argv[1]?.endsWith('student.js');
if (isMain) {
  await warmUp();
  process.stdout.write('WARM\n');
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (!line.startsWith('RUN ')) return;
    const { startAt, students } = JSON.parse(line.slice(4)) as { startAt: number; students: Student[] };
    void Promise.all(
      students.map(
        (s) =>
          new Promise<StudentResult>((resolve) => {
            setTimeout(() => resolve(visit(s)), Math.max(0, startAt + s.offsetMs - Date.now()));
          }),
      ),
    ).then((rs) => process.stdout.write(`RESULT ${JSON.stringify(rs)}\n`));
  });
}
