// Runs before `npm start` and `npm test`: on a fresh clone, installs the locked dependencies once,
// so each of the README's two commands works on its own. Node builtins only.
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

if (!existsSync('node_modules/.package-lock.json') || !existsSync('node_modules/typescript')) {
  console.error('warmpool: installing dependencies (npm ci)...');
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
