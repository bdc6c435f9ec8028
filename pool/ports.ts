// Hands out host ports on 127.0.0.1 for process and host-network instances, from a configured range.
// A port is skipped while this process holds it or while something else is bound to it.

import { createServer } from 'node:net';

export class PortAllocator {
  private used = new Set<number>();
  private next: number;

  constructor(
    private readonly from: number,
    private readonly to: number,
    private readonly host = '127.0.0.1',
  ) {
    this.next = from;
  }

  /** Marks a port as taken (an adopted instance's). */
  hold(port: number): void {
    this.used.add(port);
  }

  release(port: number): void {
    this.used.delete(port);
  }

  async allocate(): Promise<number> {
    const span = this.to - this.from + 1;
    for (let i = 0; i < span; i++) {
      const port = this.next;
      this.next = port >= this.to ? this.from : port + 1;
      if (this.used.has(port)) continue;
      if (await isFree(port, this.host)) {
        this.used.add(port);
        return port;
      }
    }
    throw new Error(`no free port in ${this.from}-${this.to} on ${this.host}: widen ports.from/ports.to in the config or lower pool.max`);
  }
}

function isFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}
