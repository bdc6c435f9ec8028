// The pool's own GETs to an instance: a TCP connection, a request written whole, the head read, the
// connection closed. Two uses: the readiness probe (every instance every 250 ms while it starts:
// only the status line is read) and the deep link's redirect, read once when an instance becomes
// ready (pool/deep-link.ts: the status and the Location field). Lean on purpose: node:http's client
// (an Agent per request, a ClientRequest, a parser, header objects) cost ~100 µs of CPU per probe,
// ~14 % of a claim's proxy CPU in bench/claims.ts, where each claim's refill is probed once. An
// instance's answer is untrusted: anything that is not a well-formed head within the limits is
// "no answer", never an exception.

import { connect } from 'node:net';

export interface ProbeTarget {
  host: string;
  port: number;
}

/** What an instance answered: its status, and its Location field when the head was read and had exactly one. */
export interface ProbeAnswer {
  status: number;
  location?: string;
}

/** A header value that can go on the wire as it is (no CR, LF, NUL or other control bytes). */
const SAFE_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** A request target: printable, no spaces (query values are percent-encoded by the caller). */
const SAFE_TARGET = /^\/[\x21-\x7e]*$/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** The status line's start: `HTTP/1.x NNN`. */
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})[ \r\n]/;
/** More than this before a line end is not an HTTP status line. */
const MAX_LINE = 1024;
/** More than this before the blank line is not a head worth reading (the proxy's own limit is larger; this is one field). */
const MAX_HEAD = 16 * 1024;
/** A Location value kept: visible ASCII only, as a redirect of the app's own makes. */
const LOCATION_VALUE = /^[\x21-\x7e]{1,2048}$/;

/**
 * GETs `target` from the instance; resolves with the status code, or undefined when there was no
 * well-formed status line within timeoutMs (refused, reset, silent, not HTTP). Never rejects. A header
 * or target that cannot go on the wire as it is (a token read from an instance's output with a line
 * break in it) is not sent: undefined.
 */
export async function probeStatus(to: ProbeTarget, target: string, headers: Record<string, string>, timeoutMs: number): Promise<number | undefined> {
  return (await exchange(to, target, headers, timeoutMs, statusOnly))?.status;
}

/**
 * GETs `target` and reads the whole head: the status and the one Location field (absent when there
 * is none, more than one, or one with anything but visible ASCII). Undefined as probeStatus, and also
 * when the head does not end within 16 KiB or is malformed.
 */
export function probeHead(to: ProbeTarget, target: string, headers: Record<string, string>, timeoutMs: number): Promise<ProbeAnswer | undefined> {
  return exchange(to, target, headers, timeoutMs, wholeHead);
}

/** What a reader makes of the bytes so far: an answer, no answer (undefined), or MORE to wait for. */
const MORE = Symbol('more');
type Reader = (got: string) => ProbeAnswer | undefined | typeof MORE;

function statusOnly(got: string): ProbeAnswer | undefined | typeof MORE {
  const eol = got.indexOf('\n');
  if (eol < 0) return got.length >= MAX_LINE ? undefined : MORE; // no line end in sight: not a status line
  const m = STATUS_LINE.exec(got.slice(0, eol + 1));
  return m ? { status: Number(m[1]) } : undefined;
}

function wholeHead(got: string): ProbeAnswer | undefined | typeof MORE {
  const first = statusOnly(got);
  if (first === undefined || first === MORE) return first;
  const end = got.indexOf('\r\n\r\n');
  if (end < 0) return got.length >= MAX_HEAD ? undefined : MORE;
  const lines = got.slice(0, end).split('\r\n');
  let location: string | undefined;
  let locations = 0;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0 || !TOKEN.test(line.slice(0, colon))) return undefined; // not a field line (obs-fold included)
    if (line.slice(0, colon).toLowerCase() !== 'location') continue;
    locations++;
    location = line.slice(colon + 1).trim();
  }
  return locations === 1 && LOCATION_VALUE.test(location!) ? { status: first.status, location } : { status: first.status };
}

function exchange(to: ProbeTarget, target: string, headers: Record<string, string>, timeoutMs: number, read: Reader): Promise<ProbeAnswer | undefined> {
  let head = `GET ${target} HTTP/1.1\r\nHost: ${to.host}:${to.port}\r\nConnection: close\r\n`;
  for (const [k, v] of Object.entries(headers)) {
    if (!TOKEN.test(k) || !SAFE_VALUE.test(v)) return Promise.resolve(undefined);
    head += `${k}: ${v}\r\n`;
  }
  if (!SAFE_TARGET.test(target)) return Promise.resolve(undefined);
  head += '\r\n';
  return new Promise((resolve) => {
    let got = '';
    let done = false;
    const sock = connect({ host: to.host, port: to.port });
    const finish = (answer: ProbeAnswer | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    sock.setNoDelay(true);
    sock.on('connect', () => sock.write(head));
    sock.on('data', (chunk: Buffer) => {
      got += chunk.toString('latin1');
      const r = read(got);
      if (r !== MORE) finish(r);
    });
    // Closed before a whole head: not an answer.
    sock.on('end', () => finish(undefined));
    sock.on('error', () => finish(undefined));
    sock.on('close', () => finish(undefined));
  });
}
