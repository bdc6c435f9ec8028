// A whole warmpool for admin tests: createWarmpool() with the process runtime running the Pluto
// stand-in, the public listener and the admin listener on port 0, the traffic log on disk (so
// timelines come from the log reader), and helpers to call the admin API and enter an app.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createWarmpool, type Warmpool } from '../../index.js';
import { parseConfig } from '../../core/config.js';
import { PortAllocator } from '../../pool/ports.js';
import { ProcessRuntime } from '../../pool/runtimes/process.js';
import { CookieJar, closeServer, follow, listen, request, type Reply } from './http.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';
const SERVER = join(process.cwd(), 'dist/examples/standin/server.js');

export interface AdminWorld {
  wp: Warmpool;
  rt: ProcessRuntime;
  url: string;
  adminUrl: string;
  logs: string[];
  /** Calls the admin API with the token; body parsed as JSON. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any; reply: Reply }>;
  /** A browser's first visit to /demo/: follows redirects into the editor page; returns its cookie jar. */
  enter(app?: string): Promise<CookieJar>;
  close(): Promise<void>;
}

let seq = 0;

export async function adminWorld(o: { pool: string; env?: string; extra?: string; ports?: [number, number]; apps?: string }): Promise<AdminWorld> {
  const stateDir = mkdtempSync(join(tmpdir(), 'wp-admin-'));
  const deployment = `adm-${process.pid}-${++seq}`;
  const [from, to] = o.ports ?? [44000, 44999];
  const config = parseConfig(`
listen: { port: 0 }
deployment: ${deployment}
stateDir: ${stateDir}
ports: { from: ${from}, to: ${to} }
admin: { port: 0 }
${o.extra ?? ''}
apps:
  - name: demo
    command: [${process.execPath}, ${SERVER}]
    env: { ${o.env ?? 'STATE_BYTES: 20000'} }
    deepLink: /open?path=webapp.jl
    readiness: { log: "^READY$", timeout: 20s }
    pool: ${o.pool}
    classifier: pluto
    secret: { env: PLUTO_SECRET, inject: { query: secret } }
${o.apps ?? ''}`);
  const rt = new ProcessRuntime({ deployment, ports: new PortAllocator(from, to), stateDir, pollMs: 100 });
  const logs: string[] = [];
  const wp = await createWarmpool(config, { env: { WARMPOOL_ADMIN_TOKEN: ADMIN_TOKEN }, runtimes: { process: rt }, log: (m) => logs.push(m) });
  const pub = wp.createServer();
  const port = await listen(pub);
  const admin = wp.admin!.createServer();
  const adminPort = await listen(admin);
  const url = `http://127.0.0.1:${port}`;
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  return {
    wp,
    rt,
    url,
    adminUrl,
    logs,
    async api(method, path, body) {
      const reply = await request(`${adminUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      let json: unknown;
      try {
        json = JSON.parse(reply.text);
      } catch {
        json = undefined;
      }
      return { status: reply.status, json, reply };
    },
    async enter(app = 'demo') {
      const jar = new CookieJar();
      const { final } = await follow(`${url}/${app}/`, { jar, headers: { accept: 'text/html' } });
      if (final.status !== 200) throw new Error(`entry to /${app}/ ended with ${final.status}: ${final.text.slice(0, 200)}`);
      return jar;
    },
    async close() {
      admin.closeAllConnections();
      await wp.close(false);
      await closeServer(pub);
      await closeServer(admin);
      const left = (await rt.list()).filter((r) => r.running);
      rmSync(stateDir, { recursive: true, force: true });
      if (left.length) throw new Error(`instances left running: ${left.map((r) => r.instanceId).join(', ')}`);
    },
  };
}

/** Reads the admin event stream: next(pred) resolves with the first `state` event that satisfies pred. */
export interface StateStream {
  status: number;
  contentType: string;
  next(pred?: (s: any) => boolean, limitMs?: number): Promise<any>;
  close(): void;
}

export function openStateStream(adminUrl: string, token = ADMIN_TOKEN): Promise<StateStream> {
  return new Promise((resolve, reject) => {
    const u = new URL(`${adminUrl}/api/events`);
    const states: any[] = [];
    const waiters: (() => void)[] = [];
    import('node:http').then(({ request: req }) => {
      const r = req(
        { host: u.hostname, port: u.port, path: u.pathname, headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' }, agent: false },
        (res) => {
          let buf = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            buf += c;
            for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
              const frame = buf.slice(0, i);
              buf = buf.slice(i + 2);
              const data = frame
                .split('\n')
                .filter((l) => l.startsWith('data: '))
                .map((l) => l.slice(6))
                .join('');
              if (/^event: state$/m.test(frame) && data) {
                states.push(JSON.parse(data));
                for (const w of waiters.splice(0)) w();
              }
            }
          });
          res.on('error', () => {});
          resolve({
            status: res.statusCode!,
            contentType: String(res.headers['content-type']),
            next(pred = () => true, limitMs = 20_000) {
              return new Promise((ok, fail) => {
                const timer = setTimeout(
                  () => fail(new Error(`no matching state event within ${limitMs} ms; last: ${JSON.stringify(states.at(-1))?.slice(0, 400)}`)),
                  limitMs,
                );
                const look = () => {
                  const i = states.findIndex(pred);
                  if (i >= 0) {
                    clearTimeout(timer);
                    ok(states.splice(0, i + 1).at(-1));
                  } else waiters.push(look);
                };
                look();
              });
            },
            close() {
              r.destroy();
              res.destroy();
            },
          });
        },
      );
      r.on('error', reject);
      r.end();
    }, reject);
  });
}
