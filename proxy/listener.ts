// The public listener: Node's HTTP server carrying warmpool's limits on what one visitor may hold
// of the server a whole class shares — head size and head timeout (Node answers 431 and 408 itself),
// and client connections per address (a refused one gets a 429 and is closed before its bytes are
// read). Trusted proxies (an nginx front) are not counted per address: everyone comes through them.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { RelayLimits } from '../core/config.js';
import { render, writeRawAnswer } from './answers.js';
import { normalizeIp, TrustedProxies } from './forwarded.js';

export interface PublicServerOptions {
  limits: RelayLimits;
  trustedProxies: readonly string[];
  onRequest: (req: IncomingMessage, res: ServerResponse) => void;
  onUpgrade: (req: IncomingMessage, socket: Socket, head: Buffer) => void;
  /**
   * An error of the listening socket after it listens (accept failing for want of descriptors, say):
   * reported, never left to crash the process as an unhandled 'error' event.
   */
  onError: (e: NodeJS.ErrnoException) => void;
}

/** Idle keep-alive client connections are closed after this long (beyond nginx's default 60 s upstream keepalive). */
const KEEP_ALIVE_MS = 65_000;

/** Node's options for the public server, from the relay limits. */
export function serverOptions(limits: RelayLimits): {
  maxHeaderSize: number;
  headersTimeout: number;
  requestTimeout: number;
  connectionsCheckingInterval: number;
} {
  return {
    maxHeaderSize: limits.headerBytes,
    headersTimeout: limits.headerTimeoutMs,
    // Notebooks stream and hold sockets for an hour: no limit on a whole request.
    requestTimeout: 0,
    // Node checks head timeouts on this period: without it a slow head is held up to 30 s past its limit.
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.headerTimeoutMs / 4))),
  };
}

export function createPublicServer(o: PublicServerOptions): Server {
  // A connection must start its first request within the head timeout: Node's own head timeout
  // counts only from a request's first byte, so a connection that never sends one would be held.
  const server = createServer(serverOptions(o.limits), (req, res) => {
    firstRequestSeen(req.socket);
    o.onRequest(req, res);
  });
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  server.on('error', (e: NodeJS.ErrnoException) => {
    if (server.listening) o.onError(e);
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    firstRequestSeen(socket);
    o.onUpgrade(req, socket, head);
  });
  limitConnectionsPerAddress(server, o.limits.connectionsPerAddress, new TrustedProxies(o.trustedProxies), o.limits.headerTimeoutMs);
  return server;
}

/** The first request arrived: from here Node's head and keep-alive timeouts govern the connection. */
function firstRequestSeen(socket: Socket): void {
  if (socket.timeout) socket.setTimeout(0);
}

const TOO_MANY = render(
  { kind: 'too-many', message: 'too many connections from your network address at once; close some tabs and try again', retryAfterS: 5 },
  false,
);

/**
 * Admits a new connection only while its address holds fewer than `max`. Node's own connection
 * listener (which starts parsing) runs only for admitted sockets, so nothing a refused connection
 * sends is ever read as a request.
 */
function limitConnectionsPerAddress(server: Server, max: number, trust: TrustedProxies, firstByteMs: number): void {
  const perAddress = new Map<string, number>();
  const nodeListeners = server.listeners('connection') as ((s: Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    const addr = normalizeIp(socket.remoteAddress ?? '');
    // Node's server destroys a socket whose timeout fires with nobody else listening.
    socket.setTimeout(firstByteMs);
    if (trust.has(addr)) {
      for (const l of nodeListeners) l.call(server, socket);
      return;
    }
    const n = perAddress.get(addr) ?? 0;
    if (n >= max) {
      socket.on('error', () => socket.destroy());
      writeRawAnswer(socket, TOO_MANY);
      // A client that never reads its answer must not hold the socket either.
      setTimeout(() => socket.destroy(), 5_000).unref();
      return;
    }
    perAddress.set(addr, n + 1);
    socket.once('close', () => {
      const left = (perAddress.get(addr) ?? 1) - 1;
      if (left > 0) perAddress.set(addr, left);
      else perAddress.delete(addr);
    });
    for (const l of nodeListeners) l.call(server, socket);
  });
}
