// Runs before `npm start` and `npm test`: on a fresh clone, installs the locked dependencies once,
// so each of the README's two commands works on its own; and again when package.json names a
// dependency that node_modules lacks (a pull that added one). Node builtins only.
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
const named = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.devDependencies ?? {})];
const missing = named.filter((d) => !existsSync(`node_modules/${d}/package.json`));
if (!existsSync('node_modules/.package-lock.json') || missing.length > 0) {
  console.error(`warmpool: installing dependencies (npm ci)${missing.length && existsSync('node_modules') ? ` — missing: ${missing.join(', ')}` : ''}...`);
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
