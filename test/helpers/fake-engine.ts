// A fake Docker Engine: a real HTTP server on a unix socket in a temp dir, answering what a test
// scripts, for what the real engine cannot show on demand (a hang, a 500, events cut mid-line).
// It counts accepted connections (to see keep-alive reuse) and the requests it got.

import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface FakeRequest {
  method: string;
  /** Path without the query and without the API version prefix (`/v1.41`). */
  path: string;
  /** The API version the request named (`1.41`), or undefined for an unversioned path. */
  version?: string;
  query: URLSearchParams;
  body: string;
}

export type FakeHandler = (req: FakeRequest, res: ServerResponse, raw: IncomingMessage) => void;

export interface FakeEngine {
  socketPath: string;
  /** Every request received, in order. */
  requests: FakeRequest[];
  /** Connections accepted so far. */
  connections(): number;
  /** Connections open now. */
  openConnections(): number;
  /** Replaces the handler (default: 404 with an engine-style JSON message). */
  handle(h: FakeHandler): void;
  close(): Promise<void>;
}

/** Answers like the engine: JSON with a status. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export async function startFakeEngine(handler?: FakeHandler): Promise<FakeEngine> {
  const dir = mkdtempSync(join(tmpdir(), 'warmpool-fake-engine-'));
  const socketPath = join(dir, 'docker.sock');
  const requests: FakeRequest[] = [];
  const sockets = new Set<Socket>();
  let accepted = 0;
  let h: FakeHandler = handler ?? ((req, res) => sendJson(res, 404, { message: `page not found: ${req.method} ${req.path}` }));
  const server: Server = createServer((raw, res) => {
    const chunks: Buffer[] = [];
    raw.on('data', (c: Buffer) => chunks.push(c));
    raw.on('end', () => {
      const url = new URL(raw.url ?? '/', 'http://engine');
      const m = /^\/v(\d+\.\d+)(\/.*)$/.exec(url.pathname);
      const req: FakeRequest = {
        method: raw.method ?? 'GET',
        path: m ? m[2]! : url.pathname,
        version: m?.[1],
        query: url.searchParams,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      requests.push(req);
      h(req, res, raw);
    });
  });
  server.on('connection', (s: Socket) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  return {
    socketPath,
    requests,
    connections: () => accepted,
    openConnections: () => sockets.size,
    handle: (next) => {
      h = next;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
