// Writes a package.json and package-lock.json for the TypeScript compiler alone (typescript, @types/node
// and what they need, exactly as package-lock.json pins them) into OUT_DIR. The Dockerfile's build stage
// installs that with `npm ci` and compiles, without the rest of the dev toolchain (linter, browser
// driver, test libraries: ~120 MB it would download for nothing).
//   node scripts/compiler-lock.mjs [LOCK] OUT_DIR     LOCK defaults to ./package-lock.json
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const COMPILER = ['typescript', '@types/node'];

const args = process.argv.slice(2);
const [lockFile, out] = args.length >= 2 ? args : ['package-lock.json', args[0]];
if (!out) {
  console.error('usage: node scripts/compiler-lock.mjs [LOCK] OUT_DIR');
  process.exit(2);
}
const lock = JSON.parse(readFileSync(lockFile, 'utf8'));
const packages = lock.packages;
if (lock.lockfileVersion < 2 || !packages) {
  console.error(`${lockFile}: lockfileVersion ${lock.lockfileVersion} has no "packages" map; regenerate it with npm 7 or later`);
  process.exit(1);
}

/** Where node would find `name` from the package at lock path `from` (nested node_modules first, then up). */
function resolve(from, name) {
  for (let dir = from; ; dir = dir.replace(/\/?node_modules\/(@[^/]+\/)?[^/]+$/, '')) {
    const path = dir ? `${dir}/node_modules/${name}` : `node_modules/${name}`;
    if (packages[path]) return path;
    if (!dir) return undefined;
  }
}

const keep = new Map();
const todo = COMPILER.map((name) => ({ from: '', name, optional: false }));
while (todo.length > 0) {
  const { from, name, optional } = todo.pop();
  const path = resolve(from, name);
  if (!path) {
    // Optional platform builds of other systems are listed in the lock; one missing is not an error.
    if (optional) continue;
    console.error(`${lockFile}: no entry for ${name} (needed by ${from || 'the compiler'}); run npm install`);
    process.exit(1);
  }
  if (keep.has(path)) continue;
  const entry = packages[path];
  keep.set(path, entry);
  for (const dep of Object.keys(entry.dependencies ?? {})) todo.push({ from: path, name: dep, optional: false });
  for (const dep of Object.keys(entry.optionalDependencies ?? {})) todo.push({ from: path, name: dep, optional: true });
}

const versions = Object.fromEntries(COMPILER.map((name) => [name, packages[`node_modules/${name}`].version]));
const root = { name: 'warmpool-compiler', version: '0.0.0', private: true, devDependencies: versions };
const outLock = {
  name: root.name,
  version: root.version,
  lockfileVersion: 3,
  requires: true,
  packages: {
    '': { name: root.name, version: root.version, devDependencies: versions },
    ...Object.fromEntries([...keep].sort(([a], [b]) => a.localeCompare(b))),
  },
};
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'package.json'), `${JSON.stringify(root, null, 2)}\n`);
writeFileSync(join(out, 'package-lock.json'), `${JSON.stringify(outLock, null, 2)}\n`);
console.error(`compiler-lock: ${keep.size} package(s) for ${COMPILER.map((n) => `${n}@${versions[n]}`).join(', ')} in ${join(out, 'package-lock.json')}`);
