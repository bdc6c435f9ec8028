// Claims recorded on the engine: before the visitor's answer where the engine must decide (shared
// claims, or the claim journal could not be written), else after it, retried with backoff for as
// long as the session lives, with one last attempt at stop(). Fleet.claim() says which applies when.
//
// A claim recorded after its answer is already in the journal, so its engine write (docker: a container
// rename, ~2 ms of dockerd's CPU) need not compete with the class arriving: it waits until no claim has
// come for `quietMs` (a burst is over), at most `maxDelayMs` after the first one waiting, then all
// waiting start at once. recorded() and stop() start them at once.

import type { ClaimJournal } from './claim-journal.js';
import type { Clock, TimerHandle } from '../core/clock.js';
import { errorMessage, isWarmpoolError } from '../core/errors.js';
import type { Log } from '../core/log.js';
import { retry } from '../core/retry.js';
import type { ClaimMark } from './runtime.js';
import type { Session } from './session.js';
import type { TrafficLogEntry } from './traffic-log-schema.js';
import type { Member, WarmPool } from './warm-pool.js';

export interface ClaimRecorderOptions {
  clock: Clock;
  log?: Log;
  journal?: ClaimJournal;
  /** Writes a line of the traffic log (a claim recorded after more than one attempt). */
  trafficLog: (entry: TrafficLogEntry) => void;
  /** Whether the session is still live: one that ended has its instance removed, so its claim needs no record. */
  isLive: (s: Session) => boolean;
  /** The session's instance was gone before its claim landed: end the session (its instance is released here). */
  instanceGone: (s: Session, detail: string) => void;
  /** A claim recorded after its answer waits until no other came for this long, ms (default RECORD_QUIET_MS; 0: at once). */
  quietMs?: number;
  /** ... but no longer than this after the first one waiting, ms (default RECORD_MAX_DELAY_MS). */
  maxDelayMs?: number;
}

export const RECORD_QUIET_MS = 1000;
export const RECORD_MAX_DELAY_MS = 10_000;

interface Waiting {
  pool: WarmPool;
  s: Session;
  mark: ClaimMark;
}

export class ClaimRecorder {
  /** Claims being recorded on the engine after their visitor was answered. */
  private readonly recording = new Set<Promise<void>>();
  /** Aborted by stop(): the recordings' backoff waits end, and each gets one last attempt at once. */
  private readonly stopped = new AbortController();

  private readonly quietMs: number;
  private readonly maxDelayMs: number;

  constructor(private readonly o: ClaimRecorderOptions) {
    this.quietMs = o.quietMs ?? RECORD_QUIET_MS;
    this.maxDelayMs = o.maxDelayMs ?? RECORD_MAX_DELAY_MS;
  }

  /**
   * Records a claim before its visitor is answered: on a runtime whose instances other processes may
   * claim too, or when the journal cannot be written. true: recorded, the instance is this visitor's.
   * false: another process got it first, or it is gone (dropped from this pool; the runtime leaves
   * another process's instance alone). Throws, the instance ready again, when the engine cannot say.
   */
  async beforeAnswer(pool: WarmPool, m: Member, mark: ClaimMark): Promise<boolean> {
    try {
      await pool.persistClaim(m, mark);
    } catch (e) {
      if (isWarmpoolError(e, 'CLAIM_CONFLICT') || isWarmpoolError(e, 'INSTANCE_GONE')) {
        this.o.log?.(`${pool.app.name}: ${errorMessage(e)}; trying another instance`, { app: pool.app.name }, 'warn');
        pool.release(m.id, errorMessage(e));
        return false;
      }
      pool.unclaim(m.id);
      throw e;
    }
    return m.state === 'claimed'; // else it exited while its claim was being recorded
  }

  /** Records a claim whose visitor was answered already, in the background, once the claims around it have come (see the top). */
  record(pool: WarmPool, s: Session, mark: ClaimMark): void {
    if (this.quietMs <= 0 || this.stopped.signal.aborted) return this.start({ pool, s, mark });
    const now = this.o.clock.now();
    if (this.waiting.length === 0) this.firstWaitingAt = now;
    this.lastWaitingAt = now;
    this.waiting.push({ pool, s, mark });
    if (!this.timer) this.timer = this.o.clock.setTimer(this.quietMs, () => this.due());
  }

  /** Resolves once every claim handed out so far is recorded on the engine (or its session ended). */
  async recorded(): Promise<void> {
    this.startWaiting();
    while (this.recording.size > 0) await Promise.all([...this.recording]);
  }

  /** Gives each claim still being recorded one last attempt now, and waits for them. */
  async stop(): Promise<void> {
    this.startWaiting();
    this.stopped.abort();
    await Promise.all([...this.recording]);
  }

  private readonly waiting: Waiting[] = [];
  private firstWaitingAt = 0;
  private lastWaitingAt = 0;
  private timer: TimerHandle | undefined;

  /** The timer: start the waiting claims if the quiet time (or the longest delay) has come, else wait on. */
  private due(): void {
    this.timer = undefined;
    const now = this.o.clock.now();
    const at = Math.min(this.lastWaitingAt + this.quietMs, this.firstWaitingAt + this.maxDelayMs);
    if (now < at) this.timer = this.o.clock.setTimer(at - now, () => this.due());
    else this.startWaiting();
  }

  private startWaiting(): void {
    this.timer?.cancel();
    this.timer = undefined;
    for (const w of this.waiting.splice(0)) this.start(w);
  }

  private start(w: Waiting): void {
    const p = this.recordClaim(w.pool, w.s, w.mark);
    this.recording.add(p);
    void p.finally(() => this.recording.delete(p));
  }

  /**
   * Records a claim on the engine, retrying with backoff (500 ms, doubling up to 30 s) for as long as
   * the session lives. stop() asks for one last attempt at once (not after a backoff).
   */
  private async recordClaim(pool: WarmPool, s: Session, mark: ClaimMark): Promise<void> {
    const live = () => this.o.isLive(s); // ended meanwhile: its instance is being removed
    const ids = { app: s.app.name, instance: s.member.id, session: s.id };
    try {
      await retry(
        async (attempt) => {
          if (!live()) return;
          await pool.persistClaim(s.member, mark);
          this.o.journal?.settled(s.member.id);
          if (attempt > 1) this.o.trafficLog({ type: 'claim-recorded', session: s.id, app: s.app.name, instance: s.member.id, attempts: attempt });
        },
        {
          clock: this.o.clock,
          firstMs: 500,
          maxMs: 30_000,
          signal: this.stopped.signal,
          lastTryOnAbort: true,
          retryIf: (e) => live() && !isWarmpoolError(e, 'INSTANCE_GONE'),
          onFailure: (f) => {
            if (f.retryInMs === undefined) {
              this.o.log?.(
                `${s.app.name}: the claim of instance ${s.member.id} by session ${s.id} is not recorded on the engine (${errorMessage(f.error)}); a restarted warmpool gives it back only to that session's cookie`,
                ids,
                'error',
              );
            } else if (f.retryInMs > 0) {
              this.o.log?.(
                `${s.app.name}: could not record the claim of instance ${s.member.id} by session ${s.id} (attempt ${f.attempt}, retrying in ${f.retryInMs} ms): ${errorMessage(f.error)}`,
                { ...ids, attempt: f.attempt },
                'warn',
              );
            } // 0: stop() came while this attempt was in flight; its last try is now
          },
        },
      );
    } catch (e) {
      if (live() && isWarmpoolError(e, 'INSTANCE_GONE')) {
        this.o.journal?.settled(s.member.id);
        this.o.instanceGone(s, `its claim could not be recorded: ${errorMessage(e)}`);
        pool.release(s.member.id, 'gone before its claim was recorded');
      }
      // Otherwise the session ended meanwhile, or the last try at stop() failed (logged above).
    }
  }
}
