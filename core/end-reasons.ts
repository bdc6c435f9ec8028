// Why a session ends: the one list the pool, the "session ended" page, the traffic log, `warmpool
// sessions` and the admin metrics all take their reasons from. A reason added here must get a page
// text (proxy/answers.ts, checked by the compiler and test/end-reasons.test.ts).

/** Each reason, in the order tables list them, with what it means to an operator. */
export const END_REASONS = [
  { reason: 'idle', reaped: true, what: 'no user activity for idleTimeout' },
  { reason: 'lifetime', reaped: true, what: 'maxLifetime passed since the claim' },
  { reason: 'grace', reaped: true, what: 'no connection open for grace' },
  { reason: 'instance-exited', reaped: false, what: 'its instance stopped, or was removed outside warmpool' },
  { reason: 'admin', reaped: false, what: 'an administrator ended it' },
  { reason: 'shutdown', reaped: false, what: 'warmpool stopped and removed its instances' },
  { reason: 'fresh-requested', reaped: false, what: 'the visitor asked for a fresh instance' },
  { reason: 'lost', reaped: false, what: "its instance was gone when a restarted warmpool adopted the engine's state" },
  { reason: 'unused', reaped: true, what: 'no request used the claim within queue.firstUse; its instance went back to the pool as ready' },
] as const;

/** Why a session is over, kept for the "session ended" page and the traffic log. */
export type EndReason = (typeof END_REASONS)[number]['reason'];

/** The reasons' names, in table order. */
export const END_REASON_NAMES: readonly EndReason[] = END_REASONS.map((r) => r.reason);

export function isEndReason(v: unknown): v is EndReason {
  return typeof v === 'string' && (END_REASON_NAMES as readonly string[]).includes(v);
}
