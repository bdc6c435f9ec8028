// The readiness probe's one GET: a TCP connection, a request written whole, the status line read,
// the connection closed. Every instance is probed every 250 ms while it starts, so the probe is
// lean: node:http's client (an Agent per request, a ClientRequest, a parser, header objects) cost
// ~100 µs of CPU per probe, ~14 % of a claim's proxy CPU in bench/claims.ts, where each claim's
// refill is probed once. Only the status code is read; anything else about the answer is the app's.

import { connect } from 'node:net';

export interface ProbeTarget {
  host: string;
  port: number;
}

/** A header value that can go on the wire as it is (no CR, LF, NUL or other control bytes). */
const SAFE_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** A request target: printable, no spaces (query values are percent-encoded by the caller). */
const SAFE_TARGET = /^\/[\x21-\x7e]*$/;
/** The status line's start: `HTTP/1.x NNN`. */
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})[ \r\n]/;
/** More than this before a line end is not an HTTP status line. */
const MAX_LINE = 1024;

/**
 * GETs `target` from the instance; resolves with the status code, or undefined when there was no
 * well-formed status line within timeoutMs (refused, reset, silent, not HTTP). Never rejects. A header
 * or target that cannot go on the wire as it is (a token read from an instance's output with a line
 * break in it) is not sent: undefined.
 */
export function probeStatus(to: ProbeTarget, target: string, headers: Record<string, string>, timeoutMs: number): Promise<number | undefined> {
  let head = `GET ${target} HTTP/1.1\r\nHost: ${to.host}:${to.port}\r\nConnection: close\r\n`;
  for (const [k, v] of Object.entries(headers)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(k) || !SAFE_VALUE.test(v)) return Promise.resolve(undefined);
    head += `${k}: ${v}\r\n`;
  }
  if (!SAFE_TARGET.test(target)) return Promise.resolve(undefined);
  head += '\r\n';
  return new Promise((resolve) => {
    let got = '';
    let done = false;
    const sock = connect({ host: to.host, port: to.port });
    const finish = (status: number | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(status);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    sock.setNoDelay(true);
    sock.on('connect', () => sock.write(head));
    sock.on('data', (chunk: Buffer) => {
      got += chunk.toString('latin1');
      const eol = got.indexOf('\n');
      if (eol < 0) {
        if (got.length >= MAX_LINE) finish(undefined); // no line end in sight: not a status line
        return;
      }
      const m = STATUS_LINE.exec(got.slice(0, eol + 1));
      finish(m ? Number(m[1]) : undefined);
    });
    // Closed before a whole status line: not an answer.
    sock.on('end', () => finish(undefined));
    sock.on('error', () => finish(undefined));
    sock.on('close', () => finish(undefined));
  });
}
