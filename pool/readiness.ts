// Decides when a freshly started instance may be handed out: an HTTP probe (path + status) or a
// line of its output matching a pattern; for images that make up their own token, also waits
// until the token has been read from the output. Times out on the injected clock.

import { connect } from 'node:net';
import type { AppConfig } from '../core/config.js';
import type { Clock } from '../core/clock.js';
import { WarmpoolError } from '../core/errors.js';
import { probeStatus } from './http-probe.js';
import type { InstanceRecord, Runtime } from './runtime.js';

export interface ReadyInfo {
  /** The secret the proxy injects: the generated one, or the token read from the output. */
  secret?: string;
}

/**
 * Resolves when the instance is ready; rejects with READINESS_TIMEOUT, INSTANCE_EXITED (via
 * `exited`), or when `signal` aborts (the pool gave up on it).
 */
export async function waitReady(
  app: AppConfig,
  rec: InstanceRecord,
  runtime: Runtime,
  clock: Clock,
  signal: AbortSignal,
  /** Whether the instance's port accepts connections; tests without real ports replace it. */
  portCheck: (rec: InstanceRecord) => Promise<boolean> = portOpen,
): Promise<ReadyInfo> {
  const r = app.readiness;
  const generated = app.secret?.env ? rec.env[app.secret.env] : undefined;
  let token: string | undefined = generated;
  let logSeen = false;
  const needToken = !!app.secret?.fromOutput;
  const wake = new Set<() => void>();
  const poke = () => {
    for (const w of wake) w();
  };

  const stopOutput =
    needToken || r.log
      ? runtime.output(rec.instanceId, (line) => {
          if (r.log && !logSeen && r.log.test(line)) {
            logSeen = true;
            poke();
          }
          if (needToken && token === undefined) {
            const m = app.secret!.fromOutput!.exec(line);
            if (m && m[1]) {
              token = m[1];
              poke();
            }
          }
        })
      : () => {};

  const deadline = clock.now() + r.timeoutMs;
  try {
    for (;;) {
      if (signal.aborted) throw signal.reason ?? new Error('aborted');
      const tokenOk = !needToken || token !== undefined;
      // A log line can come before the app listens (Pluto's start script prints READY, then serves).
      let probeOk = r.log ? logSeen && (await portCheck(rec)) : false;
      if (r.http && tokenOk) probeOk = await httpProbe(rec, r.http.path, r.http.status, app, token);
      if (probeOk && tokenOk) return { secret: token };
      const left = deadline - clock.now();
      if (left <= 0) {
        const what = r.http ? `GET ${r.http.path} answering ${r.http.status}` : `an output line matching ${r.log}`;
        throw new WarmpoolError(
          'READINESS_TIMEOUT',
          `instance ${rec.instanceId} of app ${app.name} not ready after ${r.timeoutMs} ms (waited for ${what}${needToken && !token ? ' and a token in the output' : ''})`,
          {
            hint: 'check the app starts on the port warmpool gives it (env PORT) and raise apps[].readiness.timeout if the notebook needs longer',
          },
        );
      }
      // Sleep on the clock until the next probe, or until an output line wakes us.
      await new Promise<void>((resolve) => {
        const t = clock.setTimer(Math.min(r.intervalMs, left), done);
        const onAbort = () => done();
        signal.addEventListener('abort', onAbort, { once: true });
        wake.add(done);
        function done() {
          t.cancel();
          wake.delete(done);
          signal.removeEventListener('abort', onAbort);
          resolve();
        }
      });
    }
  } finally {
    stopOutput();
  }
}

/** A GET of `path` as the proxy would send it: the secret injected as app.secret.inject says, the prefix kept in base-url mode. */
export function instanceRequest(path: string, app?: AppConfig, secret?: string): { target: string; headers: Record<string, string> } {
  let p = path;
  const headers: Record<string, string> = {};
  const inj = app?.secret?.inject;
  if (secret && inj) {
    if (inj.query) p += (p.includes('?') ? '&' : '?') + `${encodeURIComponent(inj.query)}=${encodeURIComponent(secret)}`;
    if (inj.header) headers[inj.header] = inj.headerFormat.replace('{secret}', secret);
    if (inj.cookie) headers.cookie = `${inj.cookie}=${secret}`;
  }
  if (app?.prefix.mode === 'base-url') p = `/${app.name}${p}`;
  return { target: p, headers };
}

/** One GET to the instance; true when the status matches. Network errors and non-HTTP answers mean "not yet". */
export async function httpProbe(rec: InstanceRecord, path: string, status: number, app?: AppConfig, secret?: string, timeoutMs = 2000): Promise<boolean> {
  const { target, headers } = instanceRequest(path, app, secret);
  return (await probeStatus(rec, target, headers, timeoutMs)) === status;
}

/** True when the instance's port accepts a TCP connection (a log line may come before the app listens). */
export function portOpen(rec: InstanceRecord, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: rec.host, port: rec.port, timeout: timeoutMs });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.once('connect', () => done(true));
    sock.once('timeout', () => done(false));
    sock.once('error', () => done(false));
  });
}
