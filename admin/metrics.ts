// Prometheus metrics for the admin listener's /metrics, with prom-client. Most series are read at
// scrape time (collect callbacks) from state that already exists: the pools' counts, the live
// sessions' traffic counters, the monitor's totals (counted from traffic log entries), the proxy's
// open sockets. Only the wait in line is observed as it happens (a histogram cannot be rebuilt).
// Counters read from state are reset and set to their totals on each scrape: they only grow,
// because ended sessions' counts move from the live sessions into the monitor's totals.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Fleet } from '../pool/fleet.js';
import { END_REASONS } from '../core/end-reasons.js';
import type { FleetMonitor } from './monitor.js';

export interface MetricsOptions {
  fleet: Fleet;
  monitor: FleetMonitor;
  /** Sockets the proxy holds open (client and upstream). */
  openSockets: () => number;
  /** Default process metrics (CPU, memory, event loop lag, ...). Default true. */
  processMetrics?: boolean;
}

export interface Metrics {
  readonly registry: Registry;
  readonly contentType: string;
  text(): Promise<string>;
  close(): void;
}

const split = (key: string): [string, string] => {
  const i = key.indexOf('\0');
  return [key.slice(0, i), key.slice(i + 1)];
};

export function createMetrics(o: MetricsOptions): Metrics {
  const { fleet, monitor } = o;
  const registry = new Registry();
  if (o.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];

  new Gauge({
    name: 'warmpool_pool_instances',
    help: 'Instances per app and state (ready, starting, claimed).',
    labelNames: ['app', 'state'],
    registers,
    collect() {
      this.reset();
      for (const p of fleet.poolsView()) for (const state of ['ready', 'starting', 'claimed'] as const) this.set({ app: p.app, state }, p[state]);
    },
  });
  new Gauge({
    name: 'warmpool_pool_target',
    help: 'Ready instances each app keeps warm, and the most it may run (kind: warm, max).',
    labelNames: ['app', 'kind'],
    registers,
    collect() {
      this.reset();
      for (const p of fleet.poolsView()) {
        this.set({ app: p.app, kind: 'warm' }, p.warm);
        this.set({ app: p.app, kind: 'max' }, p.max);
      }
    },
  });
  new Gauge({
    name: 'warmpool_pool_waiting',
    help: 'Visitors waiting in line per app.',
    labelNames: ['app'],
    registers,
    collect() {
      this.reset();
      for (const p of fleet.poolsView()) this.set({ app: p.app }, p.queued);
    },
  });
  new Gauge({
    name: 'warmpool_pool_draining',
    help: "1 while an app takes no new visitors on an admin's word.",
    labelNames: ['app'],
    registers,
    collect() {
      this.reset();
      for (const p of fleet.poolsView()) this.set({ app: p.app }, p.draining ? 1 : 0);
    },
  });
  new Gauge({
    name: 'warmpool_pool_failures_in_a_row',
    help: 'Failed instance creates since the last success, per app.',
    labelNames: ['app'],
    registers,
    collect() {
      this.reset();
      for (const p of fleet.poolsView()) this.set({ app: p.app }, p.failures);
    },
  });
  new Gauge({
    name: 'warmpool_sessions_live',
    help: 'Live sessions per app.',
    labelNames: ['app'],
    registers,
    collect() {
      this.reset();
      for (const a of fleet.apps()) this.set({ app: a.name }, fleet.liveCount(a.name));
    },
  });
  new Gauge({
    name: 'warmpool_open_sockets',
    help: 'Sockets the proxy holds open: relayed WebSockets (both sides), HTTP exchanges in flight, kept-alive upstream connections.',
    registers,
    collect() {
      this.set(o.openSockets());
    },
  });

  new Counter({
    name: 'warmpool_claims_total',
    help: 'Instances handed to visitors, per app; waited: whether the visitor waited in line first.',
    labelNames: ['app', 'waited'],
    registers,
    collect() {
      this.reset();
      for (const [k, n] of monitor.claims) {
        const [app, waited] = split(k);
        this.inc({ app, waited }, n);
      }
    },
  });
  const wait = new Histogram({
    name: 'warmpool_wait_in_line_seconds',
    help: "Time from a visitor's place in line to their instance, per app.",
    labelNames: ['app'],
    registers,
    buckets: [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300],
  });
  const offWait = monitor.onWait((app, ms) => wait.observe({ app }, ms / 1000));
  const engineCalls = new Histogram({
    name: 'warmpool_engine_call_seconds',
    help: 'Docker Engine API calls by route (ids elided) and outcome (ok, error): how long the engine takes to answer warmpool.',
    labelNames: ['call', 'outcome'],
    registers,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  });
  const offEngine = monitor.onEngineCall((route, ms, ok) => engineCalls.observe({ call: route, outcome: ok ? 'ok' : 'error' }, ms / 1000));
  new Counter({
    name: 'warmpool_sessions_ended_total',
    help: `Sessions ended per app and reason (${END_REASONS.filter((r) => r.reaped)
      .map((r) => r.reason)
      .join(', ')}: reaped; ${END_REASONS.filter((r) => !r.reaped)
      .map((r) => r.reason)
      .join(', ')}).`,
    labelNames: ['app', 'reason'],
    registers,
    collect() {
      this.reset();
      for (const [k, n] of monitor.ends) {
        const [app, reason] = split(k);
        this.inc({ app, reason }, n);
      }
    },
  });
  new Counter({
    name: 'warmpool_session_events_total',
    help: 'Traffic log entries per app and type (claimed, first-request, ws-open, ws-close, idle, active-again, ended, ...).',
    labelNames: ['app', 'type'],
    registers,
    collect() {
      this.reset();
      for (const [k, n] of monitor.events) {
        const [app, type] = split(k);
        this.inc({ app, type }, n);
      }
    },
  });
  new Counter({
    name: 'warmpool_create_failures_total',
    help: 'Instance creates that failed (image missing, readiness timeout, exit while starting, ...), per app.',
    labelNames: ['app'],
    registers,
    collect() {
      this.reset();
      for (const a of fleet.apps()) this.inc({ app: a.name }, monitor.createFailures.get(a.name) ?? 0);
    },
  });

  // Relayed traffic: ended sessions (the monitor's totals) plus live ones (their counters now).
  const traffic = () => {
    const per = new Map<string, { bytesIn: number; bytesOut: number; messagesIn: Record<string, number>; messagesOut: number; requests: number }>();
    for (const a of fleet.apps()) {
      const t = monitor.endedTraffic.get(a.name);
      per.set(a.name, {
        bytesIn: t?.bytesIn ?? 0,
        bytesOut: t?.bytesOut ?? 0,
        messagesIn: { ...t?.messagesIn },
        messagesOut: t?.messagesOut ?? 0,
        requests: t?.requests ?? 0,
      });
    }
    for (const s of fleet.liveSessions()) {
      const p = per.get(s.app.name);
      if (!p) continue;
      const t = s.target.traffic;
      p.bytesIn += t.bytesIn;
      p.bytesOut += t.bytesOut;
      p.messagesOut += t.messagesOut;
      for (const [k, n] of Object.entries(t.messagesIn)) p.messagesIn[k] = (p.messagesIn[k] ?? 0) + n;
      for (const n of Object.values(t.requests)) p.requests += n;
    }
    return per;
  };
  new Counter({
    name: 'warmpool_relayed_bytes_total',
    help: 'Bytes relayed per app; direction in: visitor to instance, out: instance to visitor.',
    labelNames: ['app', 'direction'],
    registers,
    collect() {
      this.reset();
      for (const [app, t] of traffic()) {
        this.inc({ app, direction: 'in' }, t.bytesIn);
        this.inc({ app, direction: 'out' }, t.bytesOut);
      }
    },
  });
  new Counter({
    name: 'warmpool_relayed_messages_total',
    help: 'WebSocket messages relayed per app and direction.',
    labelNames: ['app', 'direction'],
    registers,
    collect() {
      this.reset();
      for (const [app, t] of traffic()) {
        let n = 0;
        for (const v of Object.values(t.messagesIn)) n += v;
        this.inc({ app, direction: 'in' }, n);
        this.inc({ app, direction: 'out' }, t.messagesOut);
      }
    },
  });
  new Counter({
    name: 'warmpool_activity_messages_total',
    help: "Visitor messages by the type the app's classifier gave them (update_notebook, ping, execute_request, data, ...): what tells a person from a keepalive.",
    labelNames: ['app', 'type'],
    registers,
    collect() {
      this.reset();
      for (const [app, t] of traffic()) for (const [type, n] of Object.entries(t.messagesIn)) this.inc({ app, type }, n);
    },
  });
  new Counter({
    name: 'warmpool_relayed_requests_total',
    help: 'HTTP requests relayed per app.',
    labelNames: ['app'],
    registers,
    collect() {
      this.reset();
      for (const [app, t] of traffic()) this.inc({ app }, t.requests);
    },
  });

  return {
    registry,
    contentType: registry.contentType,
    text: () => registry.metrics(),
    close() {
      offWait();
      offEngine();
      registry.clear();
    },
  };
}
