// The floor of the claims benchmark (bench/claims.ts): the least a Node program does for the same wire
// work as warmpool's entry, with none of warmpool's decisions. One node:http listener, as warmpool's.
// A first visit (`GET /<app>/`, no cookie) takes the next of the app's instances, makes a random session
// id, signs it with HMAC-SHA256 into a cookie and answers 302 to the deep link. A request with a cookie
// is checked (the HMAC again), and relayed to its instance on a fresh TCP connection (each claim is a new
// instance; the connection that instance's port had before is closed, as warmpool's upstream pool does)
// with the secret added to the query; the answer (Content-Length framing, as the backend's) is copied
// back. No pool, no per-address limits, no journal, no traffic log, no activity.
//
//   node dist/bench/bare-claims-server.js '{"host":"127.0.0.1","ports":[…],"apps":["c0",…],"deepLink":"/open?path=webapp.jl"}'
//   → prints `READY {"port":N}`

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';

interface Options {
  host: string;
  ports: number[];
  apps: string[];
  deepLink: string;
}

const o = JSON.parse(process.argv[2] ?? '{}') as Options;
const KEY = randomBytes(32);
const SECRET = randomBytes(16).toString('hex');
const sessions = new Map<string, number>();
const open = new Map<number, Socket>();
let next = 0;

const sign = (id: string): string => createHmac('sha256', KEY).update(id).digest('base64url');

function cookieSession(req: IncomingMessage, app: string): number | undefined {
  const c = req.headers.cookie;
  const prefix = `wp_${app}=`;
  const at = c?.indexOf(prefix) ?? -1;
  if (!c || at < 0) return undefined;
  const v = c.slice(at + prefix.length).split(';')[0]!;
  const dot = v.indexOf('.');
  const id = v.slice(0, dot);
  const mac = Buffer.from(v.slice(dot + 1));
  const want = Buffer.from(sign(id));
  if (mac.length !== want.length || !timingSafeEqual(mac, want)) return undefined;
  return sessions.get(id);
}

function relay(req: IncomingMessage, res: ServerResponse, port: number, rest: string): void {
  open.get(port)?.destroy();
  const up = connect({ host: o.host, port });
  open.set(port, up);
  up.setNoDelay(true);
  const path = `${rest}${rest.includes('?') ? '&' : '?'}secret=${SECRET}`;
  up.write(`GET ${path} HTTP/1.1\r\nHost: ${o.host}:${port}\r\nAccept: ${req.headers.accept ?? '*/*'}\r\n\r\n`);
  let buf: Buffer = Buffer.alloc(0);
  const onData = (c: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, c]) : c;
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = buf.subarray(0, end).toString('latin1');
    const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    if (buf.length < end + 4 + len) return;
    up.off('data', onData);
    res.writeHead(Number(head.slice(9, 12)), { 'content-type': 'application/octet-stream', 'content-length': len });
    res.end(buf.subarray(end + 4, end + 4 + len));
  };
  up.on('data', onData);
  up.on('error', () => {
    if (!res.headersSent) res.writeHead(502, { 'content-length': 0 }).end();
  });
}

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  const slash = url.indexOf('/', 1);
  const app = url.slice(1, slash < 0 ? undefined : slash);
  if (!o.apps.includes(app) || slash < 0) {
    res.writeHead(404, { 'content-length': 0 }).end();
    return;
  }
  const rest = url.slice(slash);
  const port = cookieSession(req, app);
  if (port !== undefined) return relay(req, res, port, rest);
  const id = randomBytes(16).toString('base64url');
  sessions.set(id, o.ports[next++ % o.ports.length]!);
  res.writeHead(302, {
    location: `/${app}${o.deepLink}`,
    'set-cookie': `wp_${app}=${id}.${sign(id)}; Path=/${app}/; HttpOnly; SameSite=Lax`,
    'content-length': 0,
  });
  res.end();
});
server.keepAliveTimeout = 120_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`READY ${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
