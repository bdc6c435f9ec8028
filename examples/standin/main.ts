// Runs a stand-in as an executable: options from the environment, stop on SIGTERM/SIGINT,
// clear exits (2: bad environment, 1: could not start). Shared by server.ts and jupyter.ts.

import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

export function runIfMain<O>(moduleUrl: string, name: string, fromEnv: () => O, start: (o: O) => Promise<{ close(): Promise<void> }>): void {
  let isMain = false;
  try {
    isMain = process.argv[1] !== undefined && moduleUrl === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    isMain = false;
  }
  if (!isMain) return;
  let opts: O;
  try {
    opts = fromEnv();
  } catch (e) {
    process.stderr.write(`${name}: ${(e as Error).message}\n`);
    process.exit(2);
  }
  start(opts).then(
    (h) => {
      const stop = () => {
        void h.close().then(() => process.exit(0));
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    },
    (e: Error) => {
      process.stderr.write(`${name}: ${e.message}\n`);
      process.exit(1);
    },
  );
}
