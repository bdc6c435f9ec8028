// The claim journal: one line per claim, appended to a file in stateDir before the instance is
// handed out, so a warmpool killed before the engine records a claim (its first use: a rename, a
// state file) still knows at its next start which instances it handed out, and to which session.
// The engine stays the authority; the journal covers the window between the answer and the record.
// One file per deployment (0600), compacted at start and whenever it grows past compactBytes.
//
// Durability: each line is one write(2) on an O_APPEND descriptor, without fsync. It survives any end
// of the warmpool process (SIGKILL, a crash, an OOM kill), which is what the window is about; a power
// loss of the host may lose the last lines, and with them, on that host, the instances themselves.

import { closeSync, fchmodSync, fstatSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../core/errors.js';
import type { Log } from '../core/log.js';

/** One claim: the instance, the session it was handed to, the app, when (clock ms). */
export interface JournalClaim {
  instance: string;
  session: string;
  app: string;
  at: number;
}

export interface ClaimJournalOptions {
  /** Rewrite the file with only the claims still needed once it is this large. Default 4 MiB. */
  compactBytes?: number;
  log?: Log;
}

const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

export class ClaimJournal {
  /** What the file said when opened: claims of earlier runs that were not given back, by instance. */
  readonly earlier: ReadonlyMap<string, JournalClaim>;
  /** Claims still needed: not yet recorded on the engine, given back or removed. What compaction keeps. */
  private readonly live = new Map<string, JournalClaim>();
  private fd: number;
  private bytes: number;
  private readonly compactBytes: number;
  private readonly log: Log;
  /** A failed write is logged once until one succeeds again. */
  private failing = false;
  private closed = false;

  /** The journal of one deployment in stateDir (a private folder the caller made). */
  static forDeployment(stateDir: string, deployment: string, o: ClaimJournalOptions = {}): ClaimJournal {
    return new ClaimJournal(join(stateDir, `claims-${deployment}.jsonl`), o);
  }

  constructor(
    readonly path: string,
    o: ClaimJournalOptions = {},
  ) {
    this.compactBytes = o.compactBytes ?? 4 * 1024 * 1024;
    this.log = o.log ?? (() => {});
    const { claims, skipped } = replay(readIfThere(path));
    if (skipped > 0) this.log(`claim journal ${path}: ${skipped} unreadable line(s) skipped (a write cut short by a crash?)`, undefined, 'warn');
    this.earlier = new Map(claims);
    for (const [k, c] of claims) this.live.set(k, c);
    this.fd = openSync(path, 'a', 0o600);
    fchmodSync(this.fd, 0o600); // an older file keeps its mode on open: tighten it
    this.bytes = fstatSync(this.fd).size;
  }

  /**
   * Appends a claim. Call before the instance is handed out. false when the line could not be written
   * (disk full, I/O error): the caller must then record the claim on the engine before answering.
   */
  claimed(c: JournalClaim): boolean {
    if (!this.append(claimLine(c))) return false;
    this.live.set(c.instance, c);
    if (this.bytes >= this.compactBytes) this.compact();
    return true;
  }

  /** A claim went back to the pool unused (nothing reached the instance): it may be handed out again. */
  returned(instance: string, at: number): void {
    if (!this.live.delete(instance)) return;
    this.append(`{"t":${at},"returned":${JSON.stringify(instance)}}\n`);
  }

  /** The claim no longer needs the journal: recorded on the engine, or its instance removed. */
  settled(instance: string): void {
    this.live.delete(instance);
  }

  /** Claims the journal still carries for this run. */
  claims(): JournalClaim[] {
    return [...this.live.values()];
  }

  /**
   * Rewrites the file with the claims still needed (those keep() accepts, default all): a new file,
   * synced, renamed over the old one. Synchronous, so no append falls between the two.
   */
  compact(keep: (c: JournalClaim) => boolean = () => true): void {
    if (this.closed) return;
    for (const [k, c] of this.live) if (!keep(c)) this.live.delete(k);
    const text = [...this.live.values()].map(claimLine).join('');
    const tmp = `${this.path}.tmp`;
    try {
      const fd = openSync(tmp, 'w', 0o600);
      try {
        fchmodSync(fd, 0o600);
        if (text) writeSync(fd, text);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.path);
      closeSync(this.fd);
      this.fd = openSync(this.path, 'a', 0o600);
      this.bytes = Buffer.byteLength(text);
    } catch (e) {
      this.log(`claim journal ${this.path}: could not compact it (${errorMessage(e)}); appending to the old file`, undefined, 'warn');
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }

  private append(line: string): boolean {
    if (this.closed) return false;
    try {
      this.bytes += writeSync(this.fd, line);
      if (this.failing) this.log(`claim journal ${this.path}: writable again`);
      this.failing = false;
      return true;
    } catch (e) {
      if (!this.failing)
        this.log(
          `claim journal ${this.path}: cannot append (${errorMessage(e)}); claims are recorded on the engine before their visitor is answered until it can`,
          undefined,
          'error',
        );
      this.failing = true;
      return false;
    }
  }
}

function claimLine(c: JournalClaim): string {
  return `{"t":${c.at},"claimed":${JSON.stringify(c.instance)},"session":${JSON.stringify(c.session)},"app":${JSON.stringify(c.app)}}\n`;
}

function readIfThere(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw e;
  }
}

/** The claims a journal's text leaves standing (the last word per instance), and how many lines made no sense. Pure. */
export function replay(text: string): { claims: Map<string, JournalClaim>; skipped: number } {
  const claims = new Map<string, JournalClaim>();
  let skipped = 0;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line) as Record<string, unknown>;
    } catch {
      skipped++;
      continue;
    }
    const at = o?.t;
    if (typeof at !== 'number' || !Number.isFinite(at)) {
      skipped++;
      continue;
    }
    if (typeof o.returned === 'string' && ID_RE.test(o.returned)) {
      claims.delete(o.returned);
    } else if (
      typeof o.claimed === 'string' &&
      ID_RE.test(o.claimed) &&
      typeof o.session === 'string' &&
      ID_RE.test(o.session) &&
      typeof o.app === 'string' &&
      ID_RE.test(o.app)
    ) {
      claims.set(o.claimed, { instance: o.claimed, session: o.session, app: o.app, at });
    } else skipped++;
  }
  return { claims, skipped };
}
