// The seam between proxy/ and pool/: what the proxy may ask and tell the pool.
// The proxy observes traffic and reports it; the pool decides claims, deadlines and reaping.

import type { AppConfig } from '../core/config.js';
import type { EndReason } from '../core/end-reasons.js';
import type { ProxyEventType } from './traffic-log-schema.js';

/** Where one visitor's traffic goes. Handed to the proxy by claim() and find(). */
export interface SessionTarget {
  session: string;
  app: string;
  instanceId: string;
  host: string;
  port: number;
  /** The instance's secret, which the proxy adds to every forwarded request (never shown to visitors). */
  secret?: string;
  /**
   * The Location the app's deep link answered when this instance became ready (app.resolveDeepLink), as
   * the instance sent it: untrusted, so the proxy maps and checks it before sending a new visitor there.
   */
  deepLinkRedirect?: string;
  claimedAt: number;
  /** Live counters the proxy bumps in place on the hot path (no store write per message). */
  traffic: SessionTraffic;
}

/** Per-session accounting, mutated in place by the proxy, read by the pool, the log and the admin API. */
export interface SessionTraffic {
  requests: Record<string, number>; // "GET 2xx" -> count
  bytesIn: number; // client -> instance
  bytesOut: number; // instance -> client
  framesIn: { control: number; data: number };
  framesOut: { control: number; data: number };
  messagesIn: Record<string, number>; // by message type ("ping", "update_notebook", ...) or "data"
  messagesOut: number;
  firstSeen?: number;
  lastSeen?: number;
  /** Last user activity, stamped exactly by the proxy and never moved back: the one record of it, which the pool's deadlines read. */
  lastActive?: number;
  openConnections: number;
}

/** Why a visitor waits: what the waiting page tells them (pool/warm-pool.ts lineStatus()). */
export type WaitReason =
  /** An instance is starting (or about to) for this place. */
  | 'starting'
  /** Every instance is claimed and `max` is reached: a place frees when a session ends. */
  | 'full'
  /** This address holds queue.unusedClaimsPerAddress claims nobody has used yet. */
  | 'unused-claims'
  /** The app's claim rate (queue.claimRate) is used up for the moment. */
  | 'throttled'
  /** Instances fail to start (status().lastError says why); the place is kept. */
  | 'failing';

/** A place in line as its visitor sees it. */
export interface LineStatus {
  /** 1 = next. Among places in line (connected waiters), in order. */
  position: number;
  /** Places in line in all. */
  waiting: number;
  reason: WaitReason;
  /** Rough time until this place gets an instance, ms, when the pool can tell. */
  estimatedWaitMs?: number;
  ready: number;
  starting: number;
  claimed: number;
  max: number;
}

export type ClaimResult =
  | { kind: 'session'; target: SessionTarget }
  /**
   * No instance for this visitor now: a ticket for a place in line. The place exists only while a
   * waiter holds it: call wait() with the ticket within queue.attach (the waiting page's stream does).
   */
  | { kind: 'queued'; ticket: string; line: LineStatus }
  /** Over a per-address limit of queue: nothing is held; try again after retryAfterMs. */
  | { kind: 'limited'; why: 'unused-claims' | 'waiting-places'; limit: number; retryAfterMs: number };

/**
 * Who will hold a place: a waiting page's live stream; an API client's request held open until an
 * instance is ready (queue.hold); or a browser's own entry request, held briefly (queue.pageHold)
 * before it is answered with the waiting page.
 */
export type WaiterKind = 'stream' | 'request' | 'page';

export interface ClaimOptions {
  /** The visitor's address: per-address limits, first-use grace and the claim rate apply to visitors' claims. */
  visitor?: string;
  /** How this visitor would wait (default 'stream'): a request that would be held gets 429 over the unused-claims limit. */
  waiter?: WaiterKind;
}

export interface WaitOptions {
  kind: WaiterKind;
  /** The place lives until this aborts (the page's stream or the held request closed). */
  signal: AbortSignal;
  /** Told whenever the place's position or outlook changes. */
  onLine?: (s: LineStatus) => void;
}

export type WaitOutcome =
  /** An instance is reserved for this place: collect(app, collect) before expiresAt (clock ms), or it goes to the next. */
  | { kind: 'offer'; collect: string; expiresAt: number }
  /** A held request reached queue.hold (a browser's entry: queue.pageHold): the place is kept under a new ticket, for queue.attach. */
  | { kind: 'timeout'; ticket: string; line: LineStatus }
  /** Nothing held: an unknown or lapsed ticket, one another waiter holds, the waiter left, or the pool stopped. */
  | { kind: 'gone'; why: 'unknown' | 'taken' | 'left' | 'stopped' }
  | { kind: 'limited'; why: 'waiting-places'; limit: number; retryAfterMs: number };

export type CollectResult = { kind: 'session'; target: SessionTarget } | { kind: 'gone' };

/** Why a session is over (core/end-reasons.ts: the one list, with what each means). */
export type { EndReason } from '../core/end-reasons.js';

export type FindResult = { kind: 'live'; target: SessionTarget } | { kind: 'ended'; reason: EndReason; at: number } | { kind: 'unknown' };

export interface PoolApi {
  apps(): readonly AppConfig[];
  app(name: string): AppConfig | undefined;
  /** Claims a ready instance for a new session, or gives a ticket for a place in line. Throws APP_UNKNOWN, POOL_STOPPED. */
  claim(app: string, opts?: ClaimOptions): Promise<ClaimResult>;
  /**
   * Holds a place in line with a ticket from claim() (or a timeout), for as long as o.signal is not
   * aborted. A ticket is held once: a second waiter with it gets 'taken'. Resolves with an offer the
   * moment an instance is reserved for this place.
   */
  wait(app: string, ticket: string, o: WaitOptions): Promise<WaitOutcome>;
  /** Turns an offer into a session (the token is good once, until the offer's expiresAt). */
  collect(app: string, token: string): Promise<CollectResult>;
  /** An offer could not be delivered (its stream closed first): its instance goes to the next place now. */
  decline(app: string, token: string): void;
  /** Looks up a session named in a verified cookie; the instance id in the cookie must match. */
  find(session: string, instanceId: string): FindResult;
  /** Ends a session now (e.g. the visitor asked for a fresh instance). */
  end(session: string, reason: EndReason): Promise<void>;
  /**
   * The proxy saw user activity (already classified) at time `at` (clock ms) and has stamped it on the
   * session's traffic.lastActive. Only re-arms the session's deadlines: cheap; call it coalesced.
   */
  activity(session: string, at: number): void;
  connectionOpened(session: string): void;
  connectionClosed(session: string): void;
  /**
   * Something happened in a session worth a line in the traffic log ('ws-open', 'ws-close', ...).
   * Type 'request' is special: call it for every HTTP request relayed (cheap: it keeps the grace
   * period open while no socket is, and only the first one is logged, as 'first-request'). The first
   * 'request' or 'ws-open' marks a visitor's claim used (see queue.firstUse).
   */
  event(session: string, type: ProxyEventType, detail?: Record<string, unknown>): void;
  /** For `/_warmpool/healthz`: engine reachability and whether each pool can serve. Optional (test pools). */
  health?(): Promise<PoolHealth>;
}

/**
 * A pool's state for health checks. ok: ready instances; warming: none ready yet, more coming;
 * full: every instance claimed at max (visitors wait in line); draining: taking no visitors on an
 * admin's word; failing: none ready and creates are failing (lastError says why).
 */
export type PoolHealthState = 'ok' | 'warming' | 'full' | 'draining' | 'failing';

export interface PoolHealth {
  /** False (HTTP 503) when an engine is unreachable or a pool is failing; full and draining pools are reported but healthy. */
  ok: boolean;
  engines: { runtime: string; reachable: boolean; error?: string; checkedAt: number }[];
  pools: { app: string; state: PoolHealthState; canServe: boolean; ready: number; lastError?: string }[];
}
