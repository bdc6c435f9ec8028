// Runs in a worker thread (core/config-load.ts): reads and validates the config file with the schema
// library, posts the result, and ends. The schema (zod and its locales: ~10 MiB of RSS, 5 MiB of
// heap) lives and dies with this thread; the long-running process gets plain data.

import { parentPort, workerData } from 'node:worker_threads';
import { loadConfig } from './config.js';
import { errorMessage, isWarmpoolError } from './errors.js';

export type ConfigReply = { ok: true; config: ReturnType<typeof loadConfig> } | { ok: false; code?: string; message: string; hint?: string };

const { path, env } = workerData as { path: string; env: NodeJS.ProcessEnv };
let reply: ConfigReply;
try {
  reply = { ok: true, config: loadConfig(path, env) };
} catch (e) {
  reply = isWarmpoolError(e) ? { ok: false, code: e.code, message: e.message, hint: e.hint } : { ok: false, message: errorMessage(e) };
}
parentPort!.postMessage(reply);
