// The live stream of a waiting page (Server-Sent Events on `GET /<app>/?wait=<ticket>`): it holds the
// visitor's place in line for exactly as long as it is open, tells the page each change of position
// or outlook, and the moment an instance is reserved for the place sends the one-time URL that
// collects it (`/<app>/?collect=<token>`: cookie set, 302 to the deep link). A ticket is held by one
// stream only; a second one, or a guessed ticket, is told `gone` and holds nothing.
//
// Events: `line` {position, reason, estimatedWaitMs, headline, place, detail}; `ready` {url};
// `gone` {url, afterMs, headline, place, detail} (the page shows it, then goes to url). Each ends
// the stream except `line`.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LineStatus, PoolApi, WaitOutcome } from '../pool/api.js';
import type { AppConfig } from '../core/config.js';
import type { Clock, TimerHandle } from '../core/clock.js';
import { errorMessage } from '../core/errors.js';
import { waitingGoneText, waitingText } from './pages.js';
import type { Log } from '../core/log.js';

/** A comment line this often keeps fronts (nginx's 60 s proxy_read_timeout) from cutting a quiet stream, and finds dead peers. */
const HEARTBEAT_MS = 15_000;

export function acceptsEventStream(req: IncomingMessage): boolean {
  const a = req.headers.accept;
  return typeof a === 'string' && a.indexOf('text/event-stream') >= 0;
}

export interface WaitingStreamsOptions {
  pool: PoolApi;
  clock: Clock;
  log?: Log;
  heartbeatMs?: number;
}

export class WaitingStreams {
  private readonly open = new Set<ServerResponse>();

  constructor(private readonly o: WaitingStreamsOptions) {}

  /** Streams open now. */
  get size(): number {
    return this.open.size;
  }

  stream(req: IncomingMessage, res: ServerResponse, app: AppConfig, ticket: string): void {
    const root = `/${app.name}/`;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      // nginx would buffer the stream and the page would learn its turn late.
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    this.open.add(res);
    const ac = new AbortController();
    let beat: TimerHandle | undefined;
    const live = (): boolean => !res.writableEnded && !res.destroyed;
    const send = (event: string, data: unknown): void => {
      if (live()) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    const heartbeat = (): void => {
      beat = this.o.clock.setTimer(this.o.heartbeatMs ?? HEARTBEAT_MS, () => {
        if (!live()) return;
        res.write(': keep-alive\n\n');
        heartbeat();
      });
    };
    heartbeat();
    res.on('close', () => {
      ac.abort();
      beat?.cancel();
      this.open.delete(res);
    });
    res.on('error', () => res.destroy());

    const onLine = (l: LineStatus): void => send('line', lineEvent(app.name, l));
    let outcome: Promise<WaitOutcome>;
    try {
      outcome = this.o.pool.wait(app.name, ticket, { kind: 'stream', signal: ac.signal, onLine });
    } catch (e) {
      outcome = Promise.reject(e);
    }
    outcome.then(
      (w) => {
        switch (w.kind) {
          case 'offer':
            // The page left in the same instant: the instance goes to the next now, not at the collect deadline.
            if (!live()) this.o.pool.decline(app.name, w.collect);
            send('ready', { url: `${root}?collect=${encodeURIComponent(w.collect)}` });
            break;
          case 'limited':
            send('gone', { url: root, afterMs: w.retryAfterMs, ...waitingGoneText(app.name, 'too-many', w.limit) });
            break;
          default:
            // gone, or (never for a stream) a hold timeout: join the line again.
            send('gone', { url: root, afterMs: 1000, ...waitingGoneText(app.name, w.kind === 'gone' && w.why === 'stopped' ? 'stopped' : 'lapsed') });
        }
        beat?.cancel();
        if (live()) res.end();
      },
      (e: unknown) => {
        this.o.log?.(`waiting stream of ${app.name} failed: ${errorMessage(e)}`, { app: app.name }, 'warn');
        send('gone', { url: root, afterMs: 2000, ...waitingGoneText(app.name, 'error') });
        beat?.cancel();
        if (live()) res.end();
      },
    );
  }

  /** Ends every stream (their places are given up). */
  close(): void {
    for (const res of this.open) res.end();
    this.open.clear();
  }
}

function lineEvent(app: string, l: LineStatus): Record<string, unknown> {
  return { position: l.position, reason: l.reason, estimatedWaitMs: l.estimatedWaitMs ?? null, ...waitingText(app, l) };
}
