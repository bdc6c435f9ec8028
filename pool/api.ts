// The seam between proxy/ and pool/: what the proxy may ask and tell the pool.
// The proxy observes traffic and reports it; the pool decides claims, deadlines and reaping.

import type { AppConfig } from './config.js';

/** Where one visitor's traffic goes. Handed to the proxy by claim() and find(). */
export interface SessionTarget {
  session: string;
  app: string;
  instanceId: string;
  host: string;
  port: number;
  /** The instance's secret, which the proxy adds to every forwarded request (never shown to visitors). */
  secret?: string;
  claimedAt: number;
  /** Live counters the proxy bumps in place on the hot path (no store write per message). */
  traffic: SessionTraffic;
}

/** Per-session accounting, mutated in place by the proxy, read by the pool, the log and the admin API. */
export interface SessionTraffic {
  requests: Record<string, number>;   // "GET 2xx" -> count
  bytesIn: number;                     // client -> instance
  bytesOut: number;                    // instance -> client
  framesIn: { control: number; data: number };
  framesOut: { control: number; data: number };
  messagesIn: Record<string, number>;  // by message type ("ping", "update_notebook", ...) or "data"
  messagesOut: number;
  firstSeen?: number;
  lastSeen?: number;
  lastActive?: number;
  openConnections: number;
}

export type ClaimResult =
  | { kind: 'session'; target: SessionTarget }
  /** No ready instance: the visitor holds a ticket and place in line; ask again with the ticket. */
  | { kind: 'queued'; ticket: string; position: number; retryAfterMs: number };

/** Why a session is over, kept for the "session ended" page and the traffic log. */
/** `lost`: a claimed instance found gone when a restarted warmpool adopted its engine's state. */
export type EndReason = 'idle' | 'lifetime' | 'grace' | 'instance-exited' | 'admin' | 'shutdown' | 'fresh-requested' | 'lost';

export type FindResult =
  | { kind: 'live'; target: SessionTarget }
  | { kind: 'ended'; reason: EndReason; at: number }
  | { kind: 'unknown' };

export interface PoolApi {
  apps(): readonly AppConfig[];
  app(name: string): AppConfig | undefined;
  /** Claims a ready instance for a new session, or queues the visitor. Throws APP_UNKNOWN, POOL_STOPPED. */
  claim(app: string, opts?: { ticket?: string; visitor?: string }): Promise<ClaimResult>;
  /** Looks up a session named in a verified cookie; the instance id in the cookie must match. */
  find(session: string, instanceId: string): FindResult;
  /** Ends a session now (e.g. the visitor asked for a fresh instance). */
  end(session: string, reason: EndReason): Promise<void>;
  /** The proxy saw user activity (already classified) at time `at` (clock ms). Cheap; call it coalesced. */
  activity(session: string, at: number): void;
  connectionOpened(session: string): void;
  connectionClosed(session: string): void;
  /**
   * Something happened in a session worth a line in the traffic log ('ws-open', 'ws-close', ...).
   * Type 'request' is special: call it for every HTTP request relayed (cheap: it keeps the grace
   * period open while no socket is, and only the first one is logged, as 'first-request').
   */
  event(session: string, type: string, detail?: Record<string, unknown>): void;
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
