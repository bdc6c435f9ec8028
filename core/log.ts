// warmpool's log: one function every part is handed, taking a message, the ids it is about (app,
// instance, session) and a level. createLogger() backs it with pino: JSON lines for collectors, or
// one readable line each when the output is a terminal. Tests pass a function of their own.

import { pino, type Logger } from 'pino';

export type Level = 'debug' | 'info' | 'warn' | 'error';

/** The ids a line is about, and any other structured detail. */
export interface LogFields {
  app?: string;
  instance?: string;
  session?: string;
  [key: string]: unknown;
}

/** A log line: what happened, about what, how serious (info unless said). Never throws. */
export type Log = (msg: string, fields?: LogFields, level?: Level) => void;

export interface LoggerOptions {
  /** Lines below this level are dropped. Default info (WARMPOOL_LOG_LEVEL overrides in the CLI). */
  level?: Level;
  /** JSON lines (true) or readable lines (false). Default: readable when the output is a terminal. */
  json?: boolean;
  /** Where lines go; default stderr (fd 2). */
  write?: (line: string) => void;
}

const LEVELS = new Set<Level>(['debug', 'info', 'warn', 'error']);

export function parseLevel(v: string | undefined): Level | undefined {
  return v !== undefined && LEVELS.has(v as Level) ? (v as Level) : undefined;
}

/** A pino-backed Log. Writing to a closed stderr (EPIPE) is dropped by pino's destination, never thrown. */
export function createLogger(o: LoggerOptions = {}): { log: Log; logger: Logger } {
  const json = o.json ?? !process.stderr.isTTY;
  const level = o.level ?? 'info';
  const base = { name: 'warmpool' };
  const write = o.write;
  let logger: Logger;
  if (write) {
    logger = pino({ level, base }, { write: (s: string) => write(json ? s : readable(s)) });
  } else if (json) {
    logger = pino({ level, base }, pino.destination({ dest: 2, sync: true }));
  } else {
    const dest = pino.destination({ dest: 2, sync: true });
    logger = pino({ level, base }, { write: (s: string) => dest.write(readable(s)) });
  }
  const log: Log = (msg, fields, lvl = 'info') => {
    try {
      if (fields) logger[lvl](fields, msg);
      else logger[lvl](msg);
    } catch {
      // A log line must never take anything down with it.
    }
  };
  return { log, logger };
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO ', 40: 'WARN ', 50: 'ERROR', 60: 'FATAL' };
const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg']);

/** One pino JSON line as `HH:MM:SS.mmm LEVEL message  app=… instance=… session=…`. */
export function readable(jsonLine: string): string {
  try {
    const e = JSON.parse(jsonLine) as Record<string, unknown>;
    const t = new Date(typeof e.time === 'number' ? e.time : Date.now()).toISOString().slice(11, 23);
    let out = `${t} ${LEVEL_NAMES[e.level as number] ?? 'INFO '} ${String(e.msg ?? '')}`;
    const extra: string[] = [];
    for (const [k, v] of Object.entries(e)) if (!HIDDEN.has(k)) extra.push(`${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
    if (extra.length) out += `  ${extra.join(' ')}`;
    return out + '\n';
  } catch {
    return jsonLine;
  }
}
