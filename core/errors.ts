// Every error warmpool raises carries a code and says what failed and what to do.
// proxy/answers.ts is the one place that maps codes to HTTP statuses and pages.

export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'CONFIG_UNREADABLE'
  | 'APP_UNKNOWN'
  | 'POOL_EXHAUSTED'
  | 'POOL_STOPPED'
  | 'SESSION_UNKNOWN'
  | 'SESSION_EXPIRED'
  | 'INSTANCE_GONE'
  /** Another warmpool process sharing the engine (swarm) claimed the instance first. */
  | 'CLAIM_CONFLICT'
  /** No swarm node can take an instance's task (placement constraints, reservations) within the scheduling timeout. */
  | 'NO_SUITABLE_NODE'
  | 'INSTANCE_NOT_READY'
  | 'IMAGE_NOT_FOUND'
  | 'ENGINE_UNREACHABLE'
  | 'ENGINE_ERROR'
  | 'SPAWN_FAILED'
  | 'READINESS_TIMEOUT'
  | 'INSTANCE_EXITED'
  | 'SECRET_MISSING'
  | 'TOO_MANY'
  | 'AT_CAPACITY'
  | 'PLACE_LAPSED'
  | 'BAD_REQUEST'
  | 'ADMIN_UNAUTHORIZED';

export class WarmpoolError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;
  constructor(code: ErrorCode, message: string, opts: { hint?: string; cause?: unknown } = {}) {
    super(opts.hint ? `${message} — ${opts.hint}` : message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'WarmpoolError';
    this.code = code;
    this.hint = opts.hint;
  }
}

export function isWarmpoolError(e: unknown, code?: ErrorCode): e is WarmpoolError {
  return e instanceof WarmpoolError && (code === undefined || e.code === code);
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
