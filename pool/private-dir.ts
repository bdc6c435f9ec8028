// Folders only warmpool may read: the state directory (cookie key, process state files holding each
// instance's secret, instance output) is 0700, whatever an earlier version or umask left.

import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { WarmpoolError } from '../core/errors.js';

/** Creates `dir` (and missing parents) mode 0700, or tightens an existing one of warmpool's to 0700. */
export function privateDir(dir: string, field = 'stateDir'): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const mode = statSync(dir).mode;
  if ((mode & 0o077) === 0) return;
  // A shared folder (/tmp) is not warmpool's to close: anyone may also plant files in it.
  if (mode & 0o1002) {
    throw new WarmpoolError('CONFIG_INVALID', `${field} ${dir} is a shared folder (mode ${(mode & 0o7777).toString(8)}), writable by other users`, {
      hint: `point ${field} at a folder of warmpool's own, e.g. ${dir.replace(/\/+$/, '')}/warmpool`,
    });
  }
  try {
    chmodSync(dir, 0o700);
  } catch (e) {
    throw new WarmpoolError('CONFIG_INVALID', `${field} ${dir} cannot be made private (mode 0700): ${(e as Error).message}`, {
      hint: `point ${field} at a folder warmpool's user owns`,
    });
  }
}
