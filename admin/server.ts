// The admin surface: one request handler (dashboard, JSON API, server-sent events, /metrics) behind
// a bearer token, served on a listener of its own (admin.host:admin.port), and on the public one
// under /_warmpool/admin/ only when admin.public is set. The dashboard's page, script and style are
// served without the token: they are code, and hold no data. Everything else needs it.
//
// Why its own listener: a notebook runs whatever JavaScript its student types on the public
// origin; same-origin script could read a dashboard opened there. On another port it is another
// origin, and the listener can stay on loopback or an admin network.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Clock } from '../core/clock.js';
import type { Fleet } from '../pool/fleet.js';
import { apiRequest, errorReply, stateView, type ApiContext, type ApiReply } from './api.js';
import { TokenCheck } from './auth.js';
import { DASHBOARD_CSS, dashboardHtml, dashboardScript } from './dashboard.js';
import { EventStreams } from './events.js';
import type { Metrics } from './metrics.js';
import type { FleetMonitor } from './monitor.js';
import type { Log } from '../core/log.js';

export interface AdminOptions {
  fleet: Fleet;
  monitor: FleetMonitor;
  metrics: Metrics;
  token: string;
  clock: Clock;
  logDir?: string;
  flushLog?: () => void;
  log?: Log;
  /** Server-sent events: a push at least this often, ms (default 2000). */
  pushMs?: number;
}

export interface AdminSurface {
  /**
   * Serves one request. `path` is the request target below the admin root (starting with '/', query
   * kept; '' for the root without its slash); `root` is where that root is mounted ('' or '/_warmpool/admin').
   */
  handle(req: IncomingMessage, res: ServerResponse, path: string, root?: string): void;
  /** The admin listener's server (not yet listening): every path is the admin surface's. */
  createServer(): Server;
  /** Dashboard event streams open now. */
  streams(): number;
  /** Ends the event streams and stops following the fleet. */
  close(): void;
}

const MAX_BODY = 4096;

/** What every admin answer carries: no caching, no framing, no sniffing, no referrer. */
const BASE_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};
/** The page runs only its own script and style; it talks only to its own origin. */
const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export function createAdmin(o: AdminOptions): AdminSurface {
  const check = new TokenCheck(o.token);
  const ctx: ApiContext = { fleet: o.fleet, monitor: o.monitor, logDir: o.logDir, flushLog: o.flushLog, now: () => o.clock.now() };
  const events = new EventStreams({ clock: o.clock, snapshot: () => stateView(ctx), pushMs: o.pushMs, log: o.log });
  const offChange = o.fleet.onChange(() => events.changed());

  function send(req: IncomingMessage, res: ServerResponse, status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}): void {
    res.writeHead(status, { ...BASE_HEADERS, 'content-type': type, 'content-length': Buffer.byteLength(body), ...extra });
    res.end(req.method === 'HEAD' ? undefined : body);
  }
  function json(req: IncomingMessage, res: ServerResponse, r: ApiReply): void {
    send(
      req,
      res,
      r.status,
      'application/json; charset=utf-8',
      JSON.stringify(r.body) + '\n',
      r.status === 401 ? { 'www-authenticate': 'Bearer realm="warmpool admin"' } : {},
    );
  }

  function handle(req: IncomingMessage, res: ServerResponse, path: string, root = ''): void {
    const q = path.indexOf('?');
    const p = q < 0 ? path : path.slice(0, q);
    const get = req.method === 'GET' || req.method === 'HEAD';
    if (p === '') {
      send(req, res, 308, 'text/plain; charset=utf-8', '', { location: `${root}/` });
      return;
    }
    if (get && (p === '/' || p === '/dashboard.js' || p === '/dashboard.css')) {
      if (p === '/') send(req, res, 200, 'text/html; charset=utf-8', dashboardHtml(), { 'content-security-policy': PAGE_CSP });
      else if (p === '/dashboard.js') send(req, res, 200, 'text/javascript; charset=utf-8', dashboardScript());
      else send(req, res, 200, 'text/css; charset=utf-8', DASHBOARD_CSS);
      return;
    }
    if (!check.authorizes(req.headers.authorization)) {
      // Nothing of the request is read or echoed before the token checks out.
      json(req, res, errorReply(401, 'ADMIN_UNAUTHORIZED', 'this needs the admin token: send Authorization: Bearer <WARMPOOL_ADMIN_TOKEN>'));
      req.resume();
      return;
    }
    if (p === '/metrics') {
      if (!get) return json(req, res, errorReply(405, 'BAD_REQUEST', `${req.method} is not allowed here; expected GET`));
      o.metrics.text().then(
        (text) => send(req, res, 200, o.metrics.contentType, text),
        (e: unknown) => {
          o.log?.(`admin: /metrics failed: ${(e as Error)?.stack ?? String(e)}`, undefined, 'error');
          json(req, res, errorReply(500, 'BAD_REQUEST', 'metrics could not be collected'));
        },
      );
      return;
    }
    if (p === '/api/events') {
      if (!get) return json(req, res, errorReply(405, 'BAD_REQUEST', `${req.method} is not allowed here; expected GET`));
      events.open(req, res);
      return;
    }
    if (!p.startsWith('/api/')) return json(req, res, errorReply(404, 'BAD_REQUEST', `nothing at ${p} on the admin surface`));
    readJson(req)
      .then(
        (body) => apiRequest(ctx, req.method ?? 'GET', p, body),
        (e: unknown) => errorReply(e instanceof BodyTooLarge ? 413 : 400, 'BAD_REQUEST', (e as Error).message),
      )
      .then(
        (r) => json(req, res, r),
        (e: unknown) => {
          o.log?.(`admin: ${req.method} ${p} failed: ${(e as Error)?.stack ?? String(e)}`, undefined, 'error');
          if (!res.headersSent) json(req, res, errorReply(500, 'BAD_REQUEST', "the admin request failed; see warmpool's log"));
        },
      );
  }

  return {
    handle,
    createServer() {
      const server = createServer({ headersTimeout: 20_000, requestTimeout: 60_000, maxHeaderSize: 16 * 1024 }, (req, res) => handle(req, res, req.url ?? '/'));
      // Event streams are long-lived: Node's request timeout counts only until the request is read, so they stay open.
      server.on('upgrade', (_req, socket) => socket.destroy());
      return server;
    },
    streams: () => events.size,
    close() {
      offChange();
      events.close();
    },
  };
}

class BodyTooLarge extends Error {}

/** The request body as JSON (undefined when empty); refuses more than MAX_BODY bytes and non-JSON. */
function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      // Over the limit: answered at once; the rest is read and dropped (only a token holder gets here).
      if (size > MAX_BODY) reject(new BodyTooLarge(`the request body is over ${MAX_BODY} bytes`));
      else chunks.push(c);
    });
    req.on('error', reject);
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8').trim();
      if (text === '') return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new Error('the request body is not JSON'));
      }
    });
  });
}
