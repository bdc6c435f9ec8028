// warmpool's Node flags are listed in ONE place: the shebang of bin/warmpool.ts. Every way warmpool is
// started passes them to node: the `warmpool` command (the kernel reads the shebang), `npm start` (runs
// the command), the Dockerfile's CMD (which names them because its base image may have no /usr/bin/env;
// test/node-flags.test.ts checks it names exactly these) and the benchmark's warmpool processes
// (bench/variants.ts reads them from here, so the benchmark measures warmpool as it is deployed).
//
// Why flags at all: V8 sizes its young generation from them once, at start-up (v8.setFlagsFromString is
// too late). See README, "Node flags".

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The compiled `warmpool` command whose shebang holds the flags. */
export const WARMPOOL_BIN = fileURLToPath(new URL('./warmpool.js', import.meta.url));

/**
 * The node flags of a script's first line: `#!/usr/bin/env -S node --a --b=1` → ['--a', '--b=1'];
 * `#!/usr/bin/env node` → []. Throws when the line is not a shebang that runs node.
 */
export function shebangNodeFlags(firstLine: string): string[] {
  const m = /^#!\s*(\S+)(.*)$/.exec(firstLine.trimEnd());
  if (!m) throw new Error(`not a shebang: ${JSON.stringify(firstLine)}`);
  let words = m[2]!.trim().split(/\s+/).filter(Boolean);
  if (m[1]!.endsWith('/env')) {
    if (words[0] === '-S' || words[0] === '--split-string') words = words.slice(1);
  } else {
    words = [m[1]!, ...words];
  }
  const [interp, ...flags] = words;
  if (!interp || !/(^|\/)node$/.test(interp)) throw new Error(`the shebang does not run node: ${JSON.stringify(firstLine)}`);
  if (flags.length > 0 && m[1]!.endsWith('/env') && !/^#!\s*\S+\s+(-S|--split-string)\s/.test(firstLine)) {
    throw new Error(`a shebang with node flags needs env -S (Linux passes the rest of the line as one argument): ${JSON.stringify(firstLine)}`);
  }
  return flags;
}

/** The flags warmpool is deployed with (from the shebang of the compiled `warmpool` command). */
export function warmpoolNodeFlags(bin = WARMPOOL_BIN): string[] {
  return shebangNodeFlags(readFileSync(bin, 'utf8').split('\n', 1)[0]!);
}

/** A flag's name as V8 and node compare it: `--max_semi_space_size=4` and `--max-semi-space-size` are the same flag. */
function flagName(arg: string): string {
  return arg.split('=', 1)[0]!.replace(/_/g, '-');
}

/**
 * The flags of `wanted` that node was started without, neither on its command line (execArgv) nor in
 * NODE_OPTIONS. A flag given with another value counts as given: that is the operator's choice.
 */
export function missingNodeFlags(wanted: string[], execArgv: string[], nodeOptions = ''): string[] {
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/).filter(Boolean)].map(flagName));
  return wanted.filter((f) => !given.has(flagName(f)));
}

/** What `warmpool start` prints when node was started without warmpool's flags (e.g. `node dist/bin/warmpool.js`), or undefined. */
export function missingFlagsNote(wanted: string[], execArgv: string[], nodeOptions?: string): string | undefined {
  const missing = missingNodeFlags(wanted, execArgv, nodeOptions);
  if (missing.length === 0) return undefined;
  return (
    `warmpool: note: node was started without ${missing.join(' ')} (the warmpool command's own flags): ` +
    `idle WebSocket sessions may hold more memory, or relaying large data cost more CPU (README, "Node flags", says which flag does what). ` +
    `Run the warmpool command itself, or node ${wanted.join(' ')} …/warmpool.js.`
  );
}
