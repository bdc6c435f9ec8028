// warmpool as the benchmark runs it: its own process, the same HTTP server setup as `warmpool start`
// (bin/warmpool.ts), plus a control server on a second port (so the measured port serves nothing
// but warmpool) for the orchestrator: pool status, memory, claiming and ending sessions.
//
//   node dist/bench/warmpool-server.js '<json>'   → prints `READY {"port":N,"control":M}`
//   json: { config: <raw warmpool config>, static?: [{host, port}], markClaimedMs?: N }   (static: StaticRuntime for every app)

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8';
import { createWarmpool, type Warmpool } from '../index.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigIsolated } from '../core/config-load.js';
import { StaticRuntime } from './static-runtime.js';

interface Args {
  config: Record<string, unknown>;
  static?: { host: string; port: number }[];
  /** The static runtime's engine write of a claim takes this long. */
  markClaimedMs?: number;
}

const args = JSON.parse(process.argv[2] ?? '{}') as Args;
// Validated as `warmpool start` does it, in a worker thread (JSON is YAML): the schema library stays out of this heap.
const cfgDir = mkdtempSync(join(tmpdir(), 'warmpool-bench-config-'));
writeFileSync(join(cfgDir, 'config.yaml'), JSON.stringify(args.config));
const cfg = await loadConfigIsolated(join(cfgDir, 'config.yaml'), {});
rmSync(cfgDir, { recursive: true, force: true });
const wp: Warmpool = await createWarmpool(cfg, {
  log: (m) => process.stderr.write(`warmpool: ${m}\n`),
  env: { WARMPOOL_COOKIE_KEY: 'bench-cookie-key-0123456789abcdef' },
  ...(args.static ? { runtimes: { process: new StaticRuntime(cfg.deployment, args.static, args.markClaimedMs) } } : {}),
});

const server = wp.createServer();

const json = (res: ServerResponse, v: unknown, status = 200): void => {
  const body = JSON.stringify(v);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
};

const control = createServer((req: IncomingMessage, res: ServerResponse) => {
  req.resume();
  const u = new URL(req.url ?? '/', 'http://control');
  const app = u.searchParams.get('app') ?? cfg.apps[0]!.name;
  switch (u.pathname) {
    case '/status':
      return json(res, { pools: wp.fleet.status(), sessions: wp.fleet.liveSessions().length, openSockets: wp.openSockets() });
    case '/memory':
      return json(res, process.memoryUsage());
    case '/snapshot':
      return json(res, { file: writeHeapSnapshot(u.searchParams.get('file') ?? undefined) });
    case '/heap':
      return json(
        res,
        getHeapSpaceStatistics().map((h) => ({ space: h.space_name, size: h.space_size, used: h.space_used_size })),
      );
    case '/claim': {
      // Already-assigned instances for the port-per-student floor: claimed, then used directly. Answered
      // once the claims are on the engine, which waits for a quiet second (pool/claim-recording.ts): the
      // floor's own set-up must not land in its measured burst.
      const n = Number(u.searchParams.get('n') ?? 1);
      void Promise.all(Array.from({ length: n }, () => wp.fleet.claim(app)))
        .then(async (rs) => {
          await wp.fleet.claimsRecorded();
          return rs;
        })
        .then(
          (rs) =>
            json(
              res,
              rs.map((r) => (r.kind === 'session' ? { host: r.target.host, port: r.target.port, secret: r.target.secret } : { queued: true })),
            ),
          (e: Error) => json(res, { error: e.message }, 500),
        );
      return;
    }
    case '/end-all':
      void Promise.all(wp.fleet.liveSessions().map((s) => wp.fleet.end(s.id, 'admin'))).then(() => json(res, { ok: true }));
      return;
    default:
      return json(res, { error: 'not found' }, 404);
  }
});

const listen = (s: typeof server, port: number): Promise<number> =>
  new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve((s.address() as { port: number }).port));
  });
const port = await listen(server, cfg.port);
const controlPort = await listen(control, 0);
process.stdout.write(`READY ${JSON.stringify({ port, control: controlPort })}\n`);

let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  server.close();
  server.closeAllConnections();
  control.close();
  control.closeAllConnections();
  await wp.close(false).catch(() => undefined);
  process.exit(0); // a normal exit, so --cpu-prof writes its profile
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
