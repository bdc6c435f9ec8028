// The servers behind the proxies: the relay backend (HTTP 1 KiB / 256 KiB and a raw WebSocket echo,
// bench/backend-server.ts) and stand-in Pluto processes (examples/standin) for the memory benchmark.
// Each runs in its own process, so neither shares a core's event loop with a proxy.

import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { startChild, type Child } from './procs.js';

/** dist/ (the compiled project root). */
export const DIST = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface Backend {
  host: string;
  port: number;
  child: Child;
}

export async function startRelayBackend(ports = 1): Promise<Backend & { ports: number[] }> {
  const child = await startChild('backend', process.execPath, [join(DIST, 'bench/backend-server.js'), '0', String(ports)]);
  return { host: '127.0.0.1', port: child.info.port as number, ports: child.info.ports as number[], child };
}

/** A stand-in Pluto app process on a free port (STATE_BYTES etc. from env). */
export async function startStandinProcess(env: Record<string, string> = {}): Promise<Backend> {
  const child = await startChild('standin', process.execPath, [join(DIST, 'examples/standin/server.js')], {
    readyMarker: 'Go to',
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', ...env },
  });
  const m = /:(\d+)\//.exec(child.readyLine);
  if (!m) throw new Error(`standin: cannot read its port from ${JSON.stringify(child.readyLine)}`);
  return { host: '127.0.0.1', port: Number(m[1]), child };
}

/** A port nothing listens on right now (for servers that cannot report the port they got). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
