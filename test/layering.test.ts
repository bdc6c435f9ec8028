// The seam, checked on the sources: proxy/ reaches pool/ only through pool/api.ts (types only),
// core/ imports none of pool/, proxy/, admin/, and pool/ imports neither proxy/, admin/ nor ws.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Import {
  spec: string;
  typeOnly: boolean;
  /** import('…'): loaded when that line runs, not with the file. */
  dynamic?: boolean;
}

/** Every module a source file names: static imports and re-exports (one or many lines), side-effect and dynamic imports. */
function importsOf(src: string): Import[] {
  const out: Import[] = [];
  const code = src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  for (const m of code.matchAll(/\b(import|export)\s+(type\s+)?(?:[^'";]*?\bfrom\s*)?['"]([^'"]+)['"]/g))
    out.push({ spec: m[3]!, typeOnly: m[2] !== undefined });
  for (const m of code.matchAll(/\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push({ spec: m[1]!, typeOnly: false, dynamic: true });
  return out;
}

function sources(dir: string): string[] {
  const abs = join(ROOT, dir);
  return readdirSync(abs).flatMap((name) => {
    const p = join(abs, name);
    if (statSync(p).isDirectory()) return sources(join(dir, name));
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [join(dir, name)] : [];
  });
}

/** The repository path an import names (`pool/api.ts`), or the package name for a bare specifier. */
function target(file: string, spec: string): string {
  if (!spec.startsWith('.')) return spec.startsWith('node:') ? spec : spec.split('/')[0]!;
  return relative(ROOT, resolve(ROOT, dirname(file), spec)).replace(/\.js$/, '.ts');
}

/** What is wrong with one import of one file, or undefined. */
function forbidden(file: string, imp: Import): string | undefined {
  const t = target(file, imp.spec);
  const top = file.split('/')[0];
  if (top === 'proxy') {
    if (t === 'pool/api.ts') return imp.typeOnly ? undefined : 'proxy/ may import only types from pool/api.ts (use import type)';
    if (t.startsWith('pool/')) return 'proxy/ reaches pool/ only through pool/api.ts';
    if (t.startsWith('admin/') || t.startsWith('bin/') || t === 'index.ts') return 'proxy/ does not import admin/, bin/ or index.ts';
  }
  if (top === 'core' && /^(pool|proxy|admin|bin)\/|^index\.ts$/.test(t)) return 'core/ imports neither side (pool/, proxy/, admin/, bin/)';
  if (top === 'pool' && (/^(proxy|admin|bin)\/|^index\.ts$/.test(t) || t === 'ws')) return 'pool/ never imports proxy/, admin/ or ws';
  return undefined;
}

test('the import reader finds static, multi-line, re-exported, side-effect and dynamic imports', () => {
  const src = `import a from './a.js';\nimport {\n  b,\n  c,\n} from "../b.js";\nimport type { D } from './d.js';\nexport { e } from './e.js';\nexport type { F } from './f.js';\nimport './g.js';\nconst h = await import('./h.js');\n// import x from './commented.js';\n`;
  assert.deepEqual(importsOf(src), [
    { spec: './a.js', typeOnly: false },
    { spec: '../b.js', typeOnly: false },
    { spec: './d.js', typeOnly: true },
    { spec: './e.js', typeOnly: false },
    { spec: './f.js', typeOnly: true },
    { spec: './g.js', typeOnly: false },
    { spec: './h.js', typeOnly: false, dynamic: true },
  ]);
});

test('the rules refuse what they should (so the check below can fail)', () => {
  const no = (file: string, spec: string, typeOnly = false) => assert.ok(forbidden(file, { spec, typeOnly }), `${file} → ${spec} should be refused`);
  const ok = (file: string, spec: string, typeOnly = false) => assert.equal(forbidden(file, { spec, typeOnly }), undefined, `${file} → ${spec}`);
  no('proxy/entry.ts', '../pool/warm-pool.js', true);
  no('proxy/upstream/pool.ts', '../../pool/runtimes/docker.js');
  no('proxy/answers.ts', '../pool/api.js');
  ok('proxy/answers.ts', '../pool/api.js', true);
  ok('proxy/upstream/pool.ts', '../http-relay.js');
  ok('proxy/entry.ts', '../core/errors.js');
  no('core/config.ts', '../pool/api.js', true);
  no('core/retry.ts', '../proxy/index.js');
  no('core/x.ts', '../admin/api.js');
  no('pool/fleet.ts', '../proxy/answers.js', true);
  no('pool/runtimes/docker.ts', 'ws');
  no('pool/fleet.ts', '../admin/monitor.js');
  ok('pool/fleet.ts', '../core/clock.js');
});

test('proxy/, core/ and pool/ import only across the seam', () => {
  const files = ['proxy', 'core', 'pool'].flatMap(sources);
  assert.ok(files.includes('proxy/entry.ts') && files.includes('core/config.ts') && files.includes('pool/fleet.ts'), 'found the sources');
  const wrong: string[] = [];
  for (const file of files) {
    for (const imp of importsOf(readFileSync(join(ROOT, file), 'utf8'))) {
      const why = forbidden(file, imp);
      if (why) wrong.push(`${file}: ${imp.typeOnly ? 'import type' : 'import'} '${imp.spec}': ${why}`);
    }
  }
  assert.deepEqual(wrong, []);
});

/** The chain of static, non-type imports from `from` to package `pkg`, or undefined when none leads there. */
function staticChain(from: string, pkg: string): string[] | undefined {
  const seen = new Set<string>([from]);
  const queue: string[][] = [[from]];
  while (queue.length > 0) {
    const chain = queue.shift()!;
    const file = chain.at(-1)!;
    for (const imp of importsOf(readFileSync(join(ROOT, file), 'utf8'))) {
      if (imp.typeOnly || imp.dynamic) continue;
      const t = target(file, imp.spec);
      if (t === pkg) return [...chain, t];
      if (!imp.spec.startsWith('.') || seen.has(t)) continue;
      seen.add(t);
      queue.push([...chain, t]);
    }
  }
  return undefined;
}

test('the long-running process never loads the schema library: the config is validated in a worker thread', () => {
  // The check can fail: the worker itself reaches zod.
  assert.deepEqual(staticChain('core/config-worker.ts', 'zod'), ['core/config-worker.ts', 'core/config.ts', 'zod']);
  for (const entry of ['index.ts', 'bin/warmpool.ts']) assert.equal(staticChain(entry, 'zod')?.join(' → '), undefined, `${entry} loads zod at start`);
});
