// A proxy in its own process (for tests that lower its open-files limit) in front of one instance
// at the port given (in another process, so the limit is the proxy's alone).
// Prints `READY <proxy port> <cookie header>`, log lines as `LOG <json>`, relay failures as `EVENT <json>`.

import { FakePool, appConfig, proxyForPool, enterApp } from './fake-pool.js';

const port = Number(process.argv[2]);
const pool = new FakePool([appConfig('hold')]);
pool.addInstance('hold', { port });
const event = pool.event.bind(pool);
pool.event = (session, type, detail) => {
  if (type === 'upstream-error') console.log(`EVENT ${JSON.stringify(detail)}`);
  event(session, type, detail);
};
const p = await proxyForPool(pool, { log: (m: string, f?: unknown) => console.log(`LOG ${JSON.stringify({ m, f })}`), headersTimeoutMs: 60_000 });
// The entry answers by itself (no instance request): a session to use.
const jar = await enterApp(p, 'hold');
console.log(`READY ${p.port} ${jar.header('/hold/')}`);
