// An entry request's "the visitor left" signal, made only when something waits on it: most entries
// are answered at once, and an AbortController with its signal for each was ~2 % of a claim's CPU
// (bench/claims.ts profile) and a kilobyte of garbage.

export class Leaving {
  private controller: AbortController | undefined;
  private left = false;
  private reason: unknown;

  /** The signal, made on first use: already aborted when the visitor left before anyone asked. */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.left) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  /** The visitor left (or the proxy is closing): aborts the signal, now or when it is made. */
  leave(reason?: unknown): void {
    if (this.left) return;
    this.left = true;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}
