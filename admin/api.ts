// The admin JSON API: what the dashboard and scripts read (apps, sessions, one session's timeline,
// the whole state at once) and the actions (resize, drain, resume, refresh an app; end a session).
// It reads the pool through the Fleet's views and acts through its methods; it never touches an
// instance or the proxy. Routes take a parsed request and return status and body: no sockets here.

import type { Fleet } from '../pool/fleet.js';
import { WarmpoolError, isWarmpoolError, type ErrorCode } from '../core/errors.js';
import { poolHealthState, type SessionView } from '../pool/session-view.js';
import { buildRecord, readEntries, type TrafficEntry } from '../pool/traffic-log-reader.js';
import type { Series } from './history.js';
import type { FleetMonitor, RecentEnd, RecentFailure } from './monitor.js';

export interface ApiContext {
  fleet: Fleet;
  monitor: FleetMonitor;
  /** The traffic log directory (JSON lines), for timelines; unset when the log is not on disk. */
  logDir?: string;
  /** Writes the log's gathered lines to its file now, so a timeline includes the last 100 ms. */
  flushLog?: () => void;
  now: () => number;
}

export interface AppView {
  name: string;
  runtime: string;
  health: string;
  ready: number;
  starting: number;
  claimed: number;
  /** Failed creates in a row (0 once one succeeds). */
  failed: number;
  queued: number;
  warm: number;
  max: number;
  draining: boolean;
  lastError?: string;
  nextRetryAt?: number;
  live: number;
  history: Series;
}

export interface StateView {
  now: number;
  apps: AppView[];
  sessions: SessionView[];
  recent: { ends: RecentEnd[]; failures: RecentFailure[] };
}

export interface ApiReply {
  status: number;
  body: unknown;
}

export function appsView(c: ApiContext): AppView[] {
  return c.fleet.poolsView().map((p) => ({
    name: p.app,
    runtime: c.fleet.app(p.app)?.runtime ?? 'process',
    health: poolHealthState(p, p.draining),
    ready: p.ready,
    starting: p.starting,
    claimed: p.claimed,
    failed: p.failures,
    queued: p.queued,
    warm: p.warm,
    max: p.max,
    draining: p.draining,
    lastError: p.lastError,
    nextRetryAt: p.nextRetryAt,
    live: c.fleet.liveCount(p.app),
    history: c.monitor.history.series(p.app),
  }));
}

export function stateView(c: ApiContext): StateView {
  return { now: c.now(), apps: appsView(c), sessions: c.fleet.sessionsView(), recent: c.monitor.recent() };
}

export function errorReply(status: number, code: ErrorCode, message: string): ApiReply {
  return { status, body: { error: { code, message } } };
}

const STATUS: Partial<Record<ErrorCode, number>> = { APP_UNKNOWN: 404, SESSION_UNKNOWN: 404, BAD_REQUEST: 400, ADMIN_UNAUTHORIZED: 401 };

/** Routes one authorized API request. `path` starts at `/api/` (no query); body is parsed JSON or undefined. */
export async function apiRequest(c: ApiContext, method: string, path: string, body: unknown): Promise<ApiReply> {
  try {
    return await route(c, method, path, body);
  } catch (e) {
    if (isWarmpoolError(e)) return errorReply(STATUS[e.code] ?? 500, e.code, e.message);
    throw e;
  }
}

async function route(c: ApiContext, method: string, path: string, body: unknown): Promise<ApiReply> {
  let parts: string[];
  try {
    parts = path.split('/').slice(2).map(decodeURIComponent); // after '' and 'api'
  } catch {
    throw new WarmpoolError('BAD_REQUEST', `malformed percent-encoding in ${path}`);
  }
  const get = method === 'GET' || method === 'HEAD';
  const [what, name, action, ...more] = parts;
  if (more.length) return notFound(path);
  if (what === 'state' && name === undefined) return get ? ok(stateView(c)) : wrongMethod(method, 'GET');
  if (what === 'apps') {
    if (name === undefined) return get ? ok({ apps: appsView(c) }) : wrongMethod(method, 'GET');
    if (!c.fleet.app(name)) throw new WarmpoolError('APP_UNKNOWN', `no app named ${name}`);
    if (action === undefined) return get ? ok(appsView(c).find((a) => a.name === name)) : wrongMethod(method, 'GET');
    if (method !== 'POST') return wrongMethod(method, 'POST');
    const b = (body ?? {}) as Record<string, unknown>;
    switch (action) {
      case 'resize': {
        if (typeof body !== 'object' || body === null || (b.warm === undefined && b.max === undefined)) {
          throw new WarmpoolError('BAD_REQUEST', 'resize takes a JSON body { "warm": n, "max": n } (either or both)');
        }
        return ok({ app: name, ...c.fleet.resize(name, { warm: b.warm as number | undefined, max: b.max as number | undefined }) });
      }
      case 'drain':
        c.fleet.drain(name, true);
        return ok({ app: name, draining: true });
      case 'resume':
        c.fleet.drain(name, false);
        return ok({ app: name, draining: false });
      case 'refresh':
        return ok({ app: name, replaced: c.fleet.refresh(name) });
      default:
        return notFound(path);
    }
  }
  if (what === 'sessions') {
    if (name === undefined) return get ? ok({ live: c.fleet.sessionsView(), recent: c.monitor.recent().ends }) : wrongMethod(method, 'GET');
    if (action === undefined) return get ? ok(await sessionDetail(c, name)) : wrongMethod(method, 'GET');
    if (action !== 'end') return notFound(path);
    if (method !== 'POST') return wrongMethod(method, 'POST');
    if (!c.fleet.isLive(name)) throw new WarmpoolError('SESSION_UNKNOWN', `no live session ${name}`);
    await c.fleet.end(name, 'admin');
    return ok({ session: name, ended: true });
  }
  return notFound(path);
}

/** A session: its live view (if live) and its timeline from the traffic log. */
async function sessionDetail(c: ApiContext, id: string): Promise<unknown> {
  const live = c.fleet.sessionsView().find((s) => s.id === id);
  const events: TrafficEntry[] = [];
  if (c.logDir) {
    c.flushLog?.();
    try {
      for await (const e of readEntries(c.logDir)) if (e.session === id) events.push(e);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  if (!live && events.length === 0) throw new WarmpoolError('SESSION_UNKNOWN', `no session ${id} is live or in the traffic log`);
  const { events: timeline, ...record } = events.length ? buildRecord(events) : { events };
  return { session: id, live: live ?? null, record: events.length ? record : null, timeline };
}

function ok(body: unknown): ApiReply {
  return { status: 200, body };
}

function notFound(path: string): ApiReply {
  return errorReply(404, 'BAD_REQUEST', `no admin API route ${path}`);
}

function wrongMethod(method: string, allowed: string): ApiReply {
  return errorReply(405, 'BAD_REQUEST', `${method} is not allowed here; expected ${allowed}`);
}
