// Diagnostic for the memory benchmark (not part of `npm run bench`): the same 1,000 idle Pluto tabs as
// bench/memory.ts, through one warmpool process started with the given node flags, printing a timeline of
// RSS and V8's heap spaces (new space committed size above all) once a second from before the connect
// burst to the end of the idle window.
//
//   node dist/bench/mem-probe.js [--flags '--max-semi-space-size=4'] [--sessions 1000] [--idle 60]

import { join } from 'node:path';
import { DIST, startStandinProcess } from './backends.js';
import { rssBytes, sleep, startChild, stopAll, type Child } from './procs.js';
import { control, startWarmpoolServer, waitPoolReady, WORK } from './variants.js';

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1]! : dflt;
};
const flags = opt('--flags', '').split(' ').filter(Boolean);
const sessions = Number(opt('--sessions', '1000'));
const idleS = Number(opt('--idle', '60'));
const MiB = 2 ** 20;

interface Space {
  space: string;
  size: number;
  used: number;
}

const hold = setInterval(() => undefined, 1 << 30);
const standin = await startStandinProcess({ STATE_BYTES: '200000' });
try {
  const wp = await startWarmpoolServer(
    'probe',
    {
      deployment: 'bench-probe',
      stateDir: join(WORK, 'state-probe'),
      listen: { port: 0 },
      apps: [
        {
          name: 'mem',
          runtime: 'process',
          command: ['static'],
          deepLink: '/open?path=webapp.jl',
          prefix: 'strip',
          readiness: { http: { path: '/ping', status: 200 }, timeout: '60s', interval: '50ms' },
          pool: { warm: sessions, max: sessions, parallel: 50 },
          classifier: 'pluto',
          secret: { env: 'PLUTO_SECRET', inject: { query: 'secret' } },
          idleTimeout: '1h',
          maxLifetime: '10h',
          grace: '1h',
        },
      ],
    },
    [{ host: standin.host, port: standin.port }],
    flags,
  );
  await waitPoolReady(wp.control, sessions);
  const t0 = Date.now();
  const sample = async (what: string): Promise<number> => {
    const heap = await control<Space[]>(wp.control, '/heap');
    const sz = (n: string): string => ((heap.find((h) => h.space === n)?.size ?? 0) / MiB).toFixed(1);
    const used = heap.reduce((s, h) => s + h.used, 0);
    const rss = rssBytes([wp.child.pid]);
    console.log(
      `${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s ${what.padEnd(8)} rss ${(rss / MiB).toFixed(1).padStart(6)}  new ${sz('new_space').padStart(5)}  old ${sz('old_space').padStart(5)}  lo ${sz('large_object_space').padStart(5)}  code ${sz('code_space')}  used ${(used / MiB).toFixed(1)}`,
    );
    return rss;
  };
  await sleep(3000);
  const before = await sample('before');
  let connecting = true;
  const per = Math.ceil(sessions / 2);
  const clientsP = Promise.all(
    Array.from({ length: 2 }, (_, i) =>
      startChild(
        `mem-client-${i}`,
        process.execPath,
        [
          join(DIST, 'bench/mem-client.js'),
          JSON.stringify({ mode: 'warmpool', port: wp.port, app: 'mem', count: Math.min(per, sessions - i * per), concurrency: 25 }),
        ],
        { readyMarker: 'CONNECTED', timeoutMs: 600_000 },
      ),
    ),
  );
  void clientsP.then(() => {
    connecting = false;
  });
  while (connecting) {
    await sample('connect');
    await sleep(1000);
  }
  const clients: Child[] = await clientsP;
  const rs: number[] = [];
  for (let t = 0; t < idleS; t++) {
    rs.push(await sample('idle'));
    await sleep(1000);
  }
  const late = rs.slice(rs.length / 2).sort((a, b) => a - b);
  const med = late[Math.floor(late.length / 2)]!;
  console.log(
    `RESULT flags=${flags.join(' ') || '(none)'} before ${(before / MiB).toFixed(1)} MiB, idle median ${(med / MiB).toFixed(1)}, lowest ${(late[0]! / MiB).toFixed(1)}, per session ${((med - before) / sessions / 1024).toFixed(1)} KiB (lowest ${((late[0]! - before) / sessions / 1024).toFixed(1)})`,
  );
  await Promise.all(clients.map((c) => c.stop()));
  await wp.child.stop();
} finally {
  await standin.child.stop();
  await stopAll();
  clearInterval(hold);
}
