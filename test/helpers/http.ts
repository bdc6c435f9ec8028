// HTTP and WebSocket helpers for proxy tests: one-shot requests (no keep-alive left behind), a
// cookie jar with per-path cookies like a browser's, redirects followed by hand, WebSocket openers.

import { request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, type ClientOptions } from 'ws';

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  /** Raw header list as received (to check nothing leaked). */
  rawHeaders: string[];
  body: Buffer;
  text: string;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  /** A cookie jar: its cookies for this path are sent and Set-Cookie answers stored. */
  jar?: CookieJar;
  /** Aborting it closes the connection (a tab closed while its request is held). */
  signal?: AbortSignal;
}

/** One request on a fresh connection (agent: false), whole body read. */
export function request(url: string, o: RequestOptions = {}): Promise<Reply> {
  const u = new URL(url);
  const headers: Record<string, string | string[]> = { ...(o.headers ?? {}) };
  const jarCookie = o.jar?.header(u.pathname);
  if (jarCookie) headers.cookie = headers.cookie ? `${headers.cookie}; ${jarCookie}` : jarCookie;
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: u.hostname, port: u.port, path: u.pathname + u.search, method: o.method ?? 'GET', headers, agent: false, signal: o.signal },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          o.jar?.store(res.headers['set-cookie'], u.pathname);
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body, text: body.toString('utf8') });
        });
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

interface JarCookie {
  name: string;
  value: string;
  path: string;
}

/** A browser-like cookie jar for one host: Path scoping, Max-Age=0 deletes, most specific path first. */
export class CookieJar {
  readonly cookies: JarCookie[] = [];

  store(setCookie: string[] | undefined, requestPath: string): void {
    for (const line of setCookie ?? []) {
      const parts = line.split(';').map((s) => s.trim());
      const [nv, ...attrs] = parts;
      const eq = nv!.indexOf('=');
      const name = nv!.slice(0, eq);
      const value = nv!.slice(eq + 1);
      let path = requestPath.slice(0, requestPath.lastIndexOf('/') + 1) || '/';
      let remove = false;
      for (const a of attrs) {
        const [k, v] = a.split('=') as [string, string | undefined];
        if (k.toLowerCase() === 'path' && v) path = v;
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) remove = true;
      }
      const i = this.cookies.findIndex((c) => c.name === name && c.path === path);
      if (i >= 0) this.cookies.splice(i, 1);
      if (!remove) this.cookies.push({ name, value, path });
    }
  }

  get(name: string): string | undefined {
    return this.cookies.find((c) => c.name === name)?.value;
  }

  set(name: string, value: string, path: string): void {
    this.store([`${name}=${value}; Path=${path}`], path);
  }

  /** The Cookie header a browser would send for this path. */
  header(path: string): string {
    return this.cookies
      .filter((c) => path === c.path || path.startsWith(c.path.endsWith('/') ? c.path : c.path + '/'))
      .sort((a, b) => b.path.length - a.path.length)
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}

/** Follows redirects like a browser (relative Locations resolved), storing cookies; returns every hop. */
export async function follow(
  url: string,
  o: RequestOptions & { max?: number } = {},
): Promise<{ hops: { url: string; reply: Reply }[]; final: Reply; url: string }> {
  const hops: { url: string; reply: Reply }[] = [];
  let current = url;
  for (let i = 0; i <= (o.max ?? 10); i++) {
    const reply = await request(current, o);
    hops.push({ url: current, reply });
    if (reply.status >= 300 && reply.status < 400 && reply.headers.location) {
      current = new URL(reply.headers.location, current).toString();
      continue;
    }
    return { hops, final: reply, url: current };
  }
  throw new Error(`too many redirects from ${url}`);
}

export function listen(server: Server, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
  });
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** Opens a WebSocket; rejects with the refused status in the message ("Unexpected server response: 403"). */
export function wsOpen(url: string, o: { protocols?: string[]; headers?: Record<string, string>; jar?: CookieJar } & ClientOptions = {}): Promise<WebSocket> {
  const u = new URL(url.replace(/^http/, 'ws'));
  const headers = { ...(o.headers ?? {}) };
  const c = o.jar?.header(u.pathname);
  if (c) headers.cookie = c;
  const { protocols, jar: _jar, headers: _h, ...rest } = o;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(u.toString(), protocols ?? [], { ...rest, headers });
    ws.once('open', () => {
      ws.removeListener('error', reject);
      ws.on('error', () => undefined);
      resolve(ws);
    });
    ws.once('error', reject);
  });
}

/** Sends a raw WebSocket handshake and returns the HTTP answer (status, headers, body) of a refusal or the 101. */
export function rawUpgrade(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: u.hostname,
      port: u.port,
      path: u.pathname + u.search,
      agent: false,
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode!, headers: res.headers, body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export function wsClosed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve({ code: 1006, reason: '' });
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}
