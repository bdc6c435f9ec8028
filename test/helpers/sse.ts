// A Server-Sent Events client for tests, as a waiting page's EventSource uses the stream: events in
// order, a wait for the next one of a kind, close (the tab is closed). No reconnects.

import { request as httpRequest, type ClientRequest, type IncomingHttpHeaders } from 'node:http';
import type { CookieJar } from './http.js';

export interface SseEvent {
  event: string;
  data: any;
}

export interface EventStream {
  status: number;
  headers: IncomingHttpHeaders;
  readonly events: SseEvent[];
  /** Comment lines seen (heartbeats). */
  comments: number;
  /** The next event of this kind (from the last one returned on), within limitMs of real time. */
  next(kind?: string, limitMs?: number): Promise<SseEvent>;
  /** Resolves when the server ended the stream (or it was closed). */
  readonly ended: Promise<void>;
  close(): void;
}

export function openEventStream(url: string, o: { jar?: CookieJar; headers?: Record<string, string> } = {}): Promise<EventStream> {
  const u = new URL(url);
  const headers: Record<string, string> = { accept: 'text/event-stream', ...(o.headers ?? {}) };
  const c = o.jar?.header(u.pathname);
  if (c) headers.cookie = c;
  return new Promise((resolve, reject) => {
    let req: ClientRequest;
    const events: SseEvent[] = [];
    const waiters = new Set<() => void>();
    let cursor = 0;
    let endedResolve!: () => void;
    const ended = new Promise<void>((r) => {
      endedResolve = r;
    });
    const wake = (): void => {
      for (const w of [...waiters]) w();
    };
    req = httpRequest({ host: u.hostname, port: u.port, path: u.pathname + u.search, headers, agent: false }, (res) => {
      let buf = '';
      const stream: EventStream = {
        status: res.statusCode!,
        headers: res.headers,
        events,
        comments: 0,
        ended,
        close: () => {
          req.destroy();
        },
        next(kind, limitMs = 20_000) {
          return new Promise((ok, fail) => {
            const check = (): boolean => {
              for (let i = cursor; i < events.length; i++) {
                if (kind === undefined || events[i]!.event === kind) {
                  cursor = i + 1;
                  done();
                  ok(events[i]!);
                  return true;
                }
              }
              return false;
            };
            const timer = setTimeout(() => {
              done();
              fail(new Error(`no '${kind ?? 'any'}' event within ${limitMs} ms; got ${JSON.stringify(events)}`));
            }, limitMs);
            const onEnd = (): void => {
              if (!check()) {
                done();
                fail(new Error(`stream ended without a '${kind ?? 'any'}' event; got ${JSON.stringify(events)}`));
              }
            };
            const w = (): void => {
              check();
            };
            function done(): void {
              clearTimeout(timer);
              waiters.delete(w);
            }
            if (check()) return;
            waiters.add(w);
            void ended.then(onEnd);
          });
        },
      };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let event = 'message';
          let data = '';
          let any = false;
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) {
              stream.comments++;
              continue;
            }
            const [k, ...rest] = line.split(':');
            const v = rest.join(':').replace(/^ /, '');
            if (k === 'event') event = v;
            if (k === 'data') {
              data += (data ? '\n' : '') + v;
              any = true;
            }
          }
          if (any) events.push({ event, data: JSON.parse(data) });
        }
        wake();
      });
      res.on('end', endedResolve);
      res.on('close', endedResolve);
      res.on('error', endedResolve);
      resolve(stream);
    });
    req.on('error', (e) => {
      endedResolve();
      reject(e);
    });
    req.end();
  });
}
