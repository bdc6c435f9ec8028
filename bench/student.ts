// Simulated students for the classroom burst, run as separate processes (the orchestrator spreads a
// class over two). Each student does what a browser does on the course link: entry → deep link →
// editor page → WebSocket → connect + the empty update_notebook → full state received, with its own
// keep-alive connection and cookie jar, following the waiting page's refresh when the pool is empty.
// The process warms its own code up against an in-process stand-in first, so the first student of a
// burst does not pay for the JIT.
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
  phases: Record<string, number>;
  waited: number;
  error?: string;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(url: string, agent: Agent, jar: Map<string, string>): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const req = request(url, { agent, headers: { Accept: 'text/html,application/xhtml+xml', ...(cookie ? { Cookie: cookie } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        for (const sc of res.headers['set-cookie'] ?? []) {
          const pair = sc.split(';')[0]!;
          const eq = pair.indexOf('=');
          const name = pair.slice(0, eq).trim();
          const value = pair.slice(eq + 1).trim();
          if (value === '' || /max-age=0/i.test(sc)) jar.delete(name);
          else jar.set(name, value);
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', reject);
    });
    req.setTimeout(120_000, () => req.destroy(new Error(`timeout on ${url}`)));
    req.on('error', reject);
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

/** One student, from the first request to the full state. */
export async function visit(s: Student): Promise<StudentResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const jar = new Map<string, string>();
  const phases: Record<string, number> = {};
  const t0 = performance.now();
  let mark = t0;
  const phase = (name: string): void => {
    const now = performance.now();
    phases[name] = now - mark;
    mark = now;
  };
  let waited = 0;
  let client: PlutoClient | undefined;
  try {
    let deep: URL;
    if (s.mode === 'proxy') {
      let url = s.base;
      let r = await get(url, agent, jar);
      // Empty pool: the waiting page refreshes itself (meta refresh) and keeps the place in line.
      while (r.status === 503) {
        const m = /http-equiv="refresh" content="(\d+);url=([^"]+)"/.exec(r.body);
        if (!m) throw new Error('503 without a refresh');
        waited++;
        await new Promise((res) => setTimeout(res, Number(m[1]) * 1000));
        url = new URL(unescapeHtml(m[2]!), url).href;
        r = await get(url, agent, jar);
      }
      if (r.status !== 302 || typeof r.headers.location !== 'string') throw new Error(`entry answered ${r.status}`);
      phase('entry');
      deep = new URL(r.headers.location, url);
    } else {
      deep = new URL(`open?path=webapp.jl&secret=${encodeURIComponent(s.secret ?? '')}`, s.base);
    }
    const r2 = await get(deep.href, agent, jar);
    if (r2.status !== 302 || typeof r2.headers.location !== 'string') throw new Error(`deep link answered ${r2.status}`);
    phase('deepLink');
    const edit = new URL(r2.headers.location, deep);
    const r3 = await get(edit.href, agent, jar);
    if (r3.status !== 200 || !r3.body.includes('<script')) throw new Error(`editor page answered ${r3.status}`);
    phase('editor');
    // The page opens its socket on the notebook root with the cookies it has (warmpool's, or Pluto's secret).
    const wsUrl = new URL('./', edit).href.replace(/^http/, 'ws');
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    client = await PlutoClient.open(wsUrl, { cookie, timeoutMs: 120_000 });
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
