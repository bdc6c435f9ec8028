// The traffic log's entries, one type per kind of line: what the fleet writes through
// pool/accounting.ts (its own decisions, and what the proxy reports through PoolApi.event), and what
// pool/traffic-log-reader.ts, `warmpool sessions` and admin/monitor.ts read back. Every line also
// carries `t` (clock ms).

import type { EndReason } from '../core/end-reasons.js';

/** What a session did, written when it ends (or when warmpool stops and keeps it for the next run). */
export interface TrafficSummary {
  claimedAt: number;
  durationMs: number;
  lastActive: number;
  /** Estimated active time (gaps between activities up to the idle-notice interval), ms. */
  activeMs: number;
  /** "GET 2xx" -> count. */
  requests: Record<string, number>;
  bytesIn: number;
  bytesOut: number;
  framesIn: { control: number; data: number };
  framesOut: { control: number; data: number };
  /** By message type ("ping", "update_notebook", ...) or "data". */
  messagesIn: Record<string, number>;
  messagesOut: number;
}

type Entry<T extends string, More = unknown> = { type: T; session: string; app: string } & More;

/** The fleet's own entries. */
export type FleetEntry =
  | Entry<'claimed', { instance: string; visitor?: string; waitedInLine: boolean }>
  /** A claimed instance adopted after a restart (claimedAt: from its engine record, or now when restored from a cookie). */
  | Entry<'restored', { instance: string; claimedAt: number; detail?: string }>
  /** A claim recorded on the engine after more than one attempt. */
  | Entry<'claim-recorded', { instance: string; attempts: number }>
  /** No user activity for the idle-notice interval, since this time. */
  | Entry<'idle', { since: number }>
  | Entry<'active-again'>
  /** A visitor's claim no request used within queue.firstUse: its instance went back to the pool. */
  | Entry<'returned-unused', { instance: string; visitor?: string; detail: string }>
  | Entry<'instance-exited', { detail: string }>
  /** warmpool stopped and kept the session's instance for the next run. */
  | Entry<'suspended', { summary: TrafficSummary }>
  /** deadline and late (ms after it) for reasons the reaper decides; no summary for a session lost at a restart. */
  | Entry<'ended', { instance: string; reason: EndReason; deadline?: number; late?: number; summary?: TrafficSummary; detail?: string }>;

/** What the proxy reports (PoolApi.event). 'request' is not logged as such: only a session's first one, as 'first-request'. */
export const PROXY_EVENT_TYPES = ['request', 'first-request', 'ws-open', 'ws-close', 'upstream-error'] as const;
export type ProxyEventType = (typeof PROXY_EVENT_TYPES)[number];

/** The proxy's entries: its event type and the details it gives (paths without queries, codes, counts). */
export type ProxyEntry = Entry<Exclude<ProxyEventType, 'request'>, { [detail: string]: unknown }>;

/** One line of the traffic log, before its `t`. */
export type TrafficLogEntry = FleetEntry | ProxyEntry;

export type TrafficLogEntryType = TrafficLogEntry['type'];
