// Idle Pluto tabs for the memory benchmark, run as separate processes: each session enters (through
// warmpool: GET /<app>/ for the cookie), opens the notebook's WebSocket, loads the state as the
// editor does (connect, empty update_notebook, the two warm-up completes), then produces Pluto's idle
// traffic on Pluto's own timers (a ping 28 s after each pong, a burst of 18 current_time a minute).
//
//   node dist/bench/mem-client.js '<json>'  → `CONNECTED {"open":N,"failed":M}`, then idles until SIGTERM.

import { PlutoClient } from '../examples/standin/driver.js';

interface Args {
  /** warmpool: cookie from GET /<app>/ first; plain: straight to the socket (configurable-http-proxy). */
  mode: 'warmpool' | 'plain';
  port: number;
  app: string;
  count: number;
  concurrency: number;
}

const a = JSON.parse(process.argv[2]!) as Args;
const clients: PlutoClient[] = [];
let failed = 0;
let firstError = '';

async function session(): Promise<void> {
  let cookie: string | undefined;
  if (a.mode === 'warmpool') {
    const r = await fetch(`http://127.0.0.1:${a.port}/${a.app}/`, { redirect: 'manual', headers: { Accept: 'text/html' } });
    await r.arrayBuffer();
    cookie = r.headers
      .getSetCookie()
      .find((c) => c.startsWith(`warmpool_${a.app}=`))
      ?.split(';')[0];
    if (r.status !== 302 || !cookie) throw new Error(`entry answered ${r.status}`);
  }
  const c = await PlutoClient.open(`ws://127.0.0.1:${a.port}/${a.app}/`, { cookie, timeoutMs: 120_000 });
  await c.start();
  c.startIdle();
  clients.push(c);
}

let next = 0;
await Promise.all(
  Array.from({ length: a.concurrency }, async () => {
    while (next < a.count) {
      next++;
      await session().catch((e: Error) => {
        failed++;
        firstError ||= e.message;
      });
    }
  }),
);
process.stdout.write(`CONNECTED ${JSON.stringify({ open: clients.length, failed, firstError })}\n`);
process.on('SIGTERM', () => {
  for (const c of clients) void c.terminate();
  process.exit(0);
});
