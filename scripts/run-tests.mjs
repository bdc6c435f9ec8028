// Runs compiled test files with node:test and prints its summary.
//   node scripts/run-tests.mjs                 every suite (what `npm test` and CI run)
//   node scripts/run-tests.mjs --unit          the fast lane: pure and manual-clock suites, no Docker,
//                                              no browser, no nginx, no child processes (`npm run test:unit`)
//   node scripts/run-tests.mjs proxy- config   files whose path contains any of the words
// Test files run one at a time: the Docker and browser suites share one engine and two cores.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { UNIT_LANE } from './lanes.mjs';

function find(dir) {
  let out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(find(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const args = process.argv.slice(2);
const unit = args.includes('--unit');
const only = args.filter((a) => a !== '--unit');
const stem = (f) => f.replace(/^.*[/\\]/, '').replace(/\.test\.js$/, '');
let files = find('dist/test')
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort();
if (unit) {
  const missing = UNIT_LANE.filter((s) => !files.some((f) => stem(f) === s));
  if (missing.length) {
    console.error(`run-tests: the unit lane names test files that do not exist: ${missing.join(', ')} (scripts/lanes.mjs)`);
    process.exit(2);
  }
  files = files.filter((f) => UNIT_LANE.includes(stem(f)));
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
