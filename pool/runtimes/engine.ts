// A small Docker Engine API client over node:http: only the calls warmpool makes, at one pinned API
// version (API_VERSION), one keep-alive connection pool to dockerd, a timeout on every call, and
// errors that say what failed and what to do.
// Replaces dockerode: importing it cost the proxy ~23 MiB RSS (it loads gRPC, protobufjs and
// ssh2 for BuildKit and ssh:// engines, which warmpool never uses), and it opened a connection per call.

import http from 'node:http';
import { WarmpoolError, type ErrorCode } from '../../core/errors.js';
import { Demuxer, LineSplitter, demuxToString, type StreamId } from './engine-streams.js';
import type {
  ContainerInfo,
  CreateOptions,
  CreateResult,
  EngineEvent,
  Filters,
  ImageInfo,
  InspectInfo,
  ServiceCreateResult,
  ServiceInfo,
  ServiceSpec,
  SystemInfo,
  TaskInfo,
  UpdateOptions,
  UpdateResult,
  VersionInfo,
} from './engine-types.js';

export type * from './engine-types.js';

export const DEFAULT_SOCKET = '/var/run/docker.sock';
/**
 * The Engine API version every path names (`/v1.41/...`): the shapes in engine-types.ts are this
 * version's, and an engine answers a pinned path with that version's semantics whatever its own is
 * (Docker 20.10 speaks 1.41 at most; later engines still serve 1.41). From 1.30 on, service create and
 * update never query a registry for the image digest, so an offline swarm works.
 */
export const API_VERSION = '1.41';
export const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_SOCKETS = 16;
/** An idle pooled connection is closed after this long (a later call opens a new one). */
const IDLE_MS = 60_000;
/** Socket errors that mean "no engine there" (or it went away), as opposed to an engine that answered no. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTDIR', 'ENOTFOUND', 'EAI_AGAIN']);
/** A pooled connection the engine closed while idle fails the next call with these; safe to resend when idempotent. */
const STALE = new Set(['ECONNRESET', 'EPIPE']);
const IDEMPOTENT = new Set(['GET', 'HEAD', 'DELETE']);
const OPTION_KEYS = ['host', 'socketPath', 'timeoutMs', 'maxSockets', 'env', 'onCall'];

export interface EngineOptions {
  /** unix:///path, tcp://host:port or http://host:port. Default: $DOCKER_HOST, else unix:///var/run/docker.sock. */
  host?: string;
  /** Shorthand for host: unix://<socketPath>. */
  socketPath?: string;
  /** Limit for each call but streams (events, logs that follow), in ms; 0 = none. Default 30 s. */
  timeoutMs?: number;
  /** Connections open at once for ordinary calls; further calls wait for a free one. Streams get their own. */
  maxSockets?: number;
  /** Where DOCKER_HOST and DOCKER_TLS_VERIFY are read; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Told of every completed call (not streams): the route with ids elided, its duration, whether it succeeded. For metrics. */
  onCall?: (route: string, ms: number, ok: boolean) => void;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Overrides the engine's timeoutMs for this call. */
  timeoutMs?: number;
}

/** A streaming answer (events, followed logs). */
export interface EngineStream {
  /**
   * Settles when the stream is over: resolves when the engine ends it or the caller aborts; rejects
   * (EngineError) when the connection breaks.
   */
  readonly done: Promise<void>;
}

type Endpoint = { socketPath: string } | { host: string; port: number };

/** What a failed engine call was, in words and fields. Codes: ENGINE_UNREACHABLE, IMAGE_NOT_FOUND, ENGINE_ERROR. */
export class EngineError extends WarmpoolError {
  /** Method and path, e.g. "POST /containers/create". */
  readonly call: string;
  /** HTTP status, when the engine answered. */
  readonly status?: number;
  /** The engine's own words (its JSON `message`), or the socket error's. */
  readonly detail: string;
  /** Socket error code (ENOENT, ECONNREFUSED, ...), or TIMEOUT. */
  readonly errno?: string;
  /** The message without the hint. */
  readonly reason: string;

  constructor(code: ErrorCode, reason: string, f: { call: string; detail: string; status?: number; errno?: string; hint?: string; cause?: unknown }) {
    super(code, reason, { hint: f.hint, cause: f.cause });
    this.call = f.call;
    this.status = f.status;
    this.detail = f.detail;
    this.errno = f.errno;
    this.reason = reason;
  }
}

/** Reads DOCKER_HOST the way the docker CLI does, for the schemes this client speaks. */
export function parseDockerHost(value: string | undefined, env: NodeJS.ProcessEnv = {}): Endpoint {
  if (value === undefined || value === '') return { socketPath: DEFAULT_SOCKET };
  const bad = (why: string) =>
    new WarmpoolError('CONFIG_INVALID', `DOCKER_HOST=${value}: ${why}`, {
      hint: 'use unix:///path/to/docker.sock or tcp://host:port (plain HTTP); for a remote engine over ssh, forward its socket (ssh -nNL /tmp/docker.sock:/var/run/docker.sock user@host) and set DOCKER_HOST=unix:///tmp/docker.sock',
    });
  const m = /^([a-z]+):\/\/(.*)$/.exec(value);
  if (!m) throw bad('expected a URL such as unix:///var/run/docker.sock or tcp://127.0.0.1:2375');
  const [, scheme, rest] = m as unknown as [string, string, string];
  if (scheme === 'unix') {
    if (!rest.startsWith('/')) throw bad('a unix socket path must be absolute (unix:///path)');
    return { socketPath: rest };
  }
  if (scheme === 'tcp' || scheme === 'http') {
    const tls = env.DOCKER_TLS_VERIFY;
    if (tls !== undefined && tls !== '' && tls !== '0') throw bad('DOCKER_TLS_VERIFY is set, and warmpool speaks plain HTTP only (no TLS client certificates)');
    let url: URL;
    try {
      url = new URL(`http://${rest}`);
    } catch {
      throw bad('not a host:port');
    }
    if (!url.hostname) throw bad('no host');
    return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port ? Number(url.port) : 2375 };
  }
  throw bad(`scheme ${scheme}:// is not supported`);
}

export class Engine {
  /** Where the engine is, in words: "unix socket /var/run/docker.sock" or "http://host:port". */
  readonly where: string;
  /** The Engine API version in every request path. */
  readonly apiVersion = API_VERSION;
  readonly timeoutMs: number;
  private readonly endpoint: Endpoint;
  /** Ordinary calls: a keep-alive pool, so a burst of renames reuses a few connections. */
  private readonly agent: http.Agent;
  /** Streams hold their connection for as long as they run: kept out of the pool, so they never starve it. */
  private readonly streamAgent: http.Agent;
  private readonly onCall?: (route: string, ms: number, ok: boolean) => void;

  constructor(opts: EngineOptions = {}) {
    if (opts === null || typeof opts !== 'object')
      throw new TypeError('Engine: expected an options object { host?, socketPath?, timeoutMs?, maxSockets?, env? }');
    for (const k of Object.keys(opts)) {
      if (!OPTION_KEYS.includes(k)) throw new TypeError(`Engine: unknown option ${k}; allowed: ${OPTION_KEYS.join(', ')}`);
    }
    if (opts.host !== undefined && opts.socketPath !== undefined) throw new TypeError('Engine: give host or socketPath, not both');
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) throw new TypeError(`Engine: timeoutMs is ${opts.timeoutMs}; expected ms >= 0 (0 = no limit)`);
    const maxSockets = opts.maxSockets ?? DEFAULT_MAX_SOCKETS;
    if (!Number.isInteger(maxSockets) || maxSockets < 1) throw new TypeError(`Engine: maxSockets is ${opts.maxSockets}; expected an integer >= 1`);
    const env = opts.env ?? process.env;
    this.endpoint = opts.socketPath !== undefined ? { socketPath: opts.socketPath } : parseDockerHost(opts.host ?? env.DOCKER_HOST, env);
    this.where = 'socketPath' in this.endpoint ? `unix socket ${this.endpoint.socketPath}` : `http://${this.endpoint.host}:${this.endpoint.port}`;
    this.timeoutMs = timeoutMs;
    this.agent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, timeout: IDLE_MS });
    this.streamAgent = new http.Agent({ keepAlive: false });
    this.onCall = opts.onCall;
  }

  /** GET /_ping: resolves when the engine answers. */
  async ping(o?: CallOptions): Promise<void> {
    await this.send('GET', '/_ping', o);
  }

  version(o?: CallOptions): Promise<VersionInfo> {
    return this.json('GET', '/version', o);
  }

  listContainers(q: { all?: boolean; filters?: Filters } = {}, o?: CallOptions): Promise<ContainerInfo[]> {
    return this.json('GET', `/containers/json${query({ all: q.all, filters: q.filters })}`, o);
  }

  inspectContainer(id: string, o?: CallOptions): Promise<InspectInfo> {
    return this.json('GET', `/containers/${enc(id)}/json`, o);
  }

  createContainer(name: string, body: CreateOptions, o?: CallOptions): Promise<CreateResult> {
    return this.json('POST', `/containers/create${query({ name })}`, { ...o, body });
  }

  /** Starting a running container is not an error (304). */
  async startContainer(id: string, o?: CallOptions): Promise<void> {
    await this.send('POST', `/containers/${enc(id)}/start`, o);
  }

  /** Changes a container's resources (CPU weight) in place: a running container keeps running. */
  updateContainer(id: string, body: UpdateOptions, o?: CallOptions): Promise<UpdateResult> {
    return this.json('POST', `/containers/${enc(id)}/update`, { ...o, body });
  }

  async renameContainer(id: string, name: string, o?: CallOptions): Promise<void> {
    await this.send('POST', `/containers/${enc(id)}/rename${query({ name })}`, o);
  }

  /** Default signal SIGKILL. */
  async killContainer(id: string, signal?: string, o?: CallOptions): Promise<void> {
    await this.send('POST', `/containers/${enc(id)}/kill${query({ signal })}`, o);
  }

  /** SIGTERM, then SIGKILL after `t` s (engine default 10). Stopping a stopped container is not an error (304). */
  async stopContainer(id: string, q: { t?: number } = {}, o?: CallOptions): Promise<void> {
    // The engine answers only once the container is down: allow the grace period on top of the limit.
    const limit = o?.timeoutMs ?? this.timeoutMs;
    const timeoutMs = limit === 0 ? 0 : limit + (q.t ?? 10) * 1000;
    await this.send('POST', `/containers/${enc(id)}/stop${query({ t: q.t })}`, { ...o, timeoutMs });
  }

  /** force: kill first if running; volumes: remove its anonymous volumes too. */
  async removeContainer(id: string, q: { force?: boolean; volumes?: boolean } = {}, o?: CallOptions): Promise<void> {
    await this.send('DELETE', `/containers/${enc(id)}${query({ force: q.force, v: q.volumes })}`, o);
  }

  inspectImage(name: string, o?: CallOptions): Promise<ImageInfo> {
    // An image reference keeps its / and : (the engine routes /images/{name:.*}/json).
    return this.json('GET', `/images/${name.split('/').map(enc).join('/').replace(/%3A/gi, ':')}/json`, o);
  }

  /**
   * What a container printed so far, stdout and stderr in the order written (demultiplexed).
   * `tty`: the container has a TTY (its logs are not multiplexed); default: told by the stream itself.
   */
  async logs(id: string, q: { tail?: number; stdout?: boolean; stderr?: boolean; tty?: boolean } = {}, o?: CallOptions): Promise<string> {
    const body = await this.send('GET', `/containers/${enc(id)}/logs${query({ stdout: q.stdout ?? true, stderr: q.stderr ?? true, tail: q.tail })}`, o);
    return q.tty ? body.toString('utf8') : demuxToString(body);
  }

  /**
   * Everything a container printed, then what it prints, until it stops or `signal` aborts.
   * onData gets each piece with its stream (1 stdout, 2 stderr); a piece may end mid-line.
   */
  followLogs(id: string, q: { tail?: number; tty?: boolean; signal?: AbortSignal }, onData: (stream: StreamId, data: Buffer) => void): Promise<EngineStream> {
    return this.followDemuxed(`/containers/${enc(id)}`, q, onData);
  }

  /**
   * The engine's event stream: onEvent per event, from `since` (unix s; default: only new events)
   * until `signal` aborts. A line that is not JSON goes to onInvalid.
   */
  events(
    q: { filters?: Filters; since?: number; signal?: AbortSignal },
    onEvent: (ev: EngineEvent) => void,
    onInvalid?: (line: string) => void,
  ): Promise<EngineStream> {
    const lines = new LineSplitter((line) => {
      if (line.trim() === '') return;
      let ev: unknown;
      try {
        ev = JSON.parse(line);
      } catch {
        onInvalid?.(line);
        return;
      }
      if (ev !== null && typeof ev === 'object') onEvent(ev as EngineEvent);
      else onInvalid?.(line);
    });
    return this.stream(
      'GET',
      `/events${query({ since: q.since, filters: q.filters })}`,
      q.signal,
      (chunk) => lines.push(chunk),
      () => lines.flush(),
    );
  }

  /** GET /info: the engine's state, its swarm membership included. */
  info(o?: CallOptions): Promise<SystemInfo> {
    return this.json('GET', '/info', o);
  }

  // ---- Swarm: services, tasks, service logs (a manager node answers these; others 503) ----

  createService(spec: ServiceSpec, o?: CallOptions): Promise<ServiceCreateResult> {
    return this.json('POST', '/services/create', { ...o, body: spec });
  }

  inspectService(id: string, o?: CallOptions): Promise<ServiceInfo> {
    return this.json('GET', `/services/${enc(id)}`, o);
  }

  listServices(q: { filters?: Filters } = {}, o?: CallOptions): Promise<ServiceInfo[]> {
    return this.json('GET', `/services${query({ filters: q.filters })}`, o);
  }

  /**
   * Replaces a service's spec, if its version is still `version` (the Version.Index read with it). A
   * stale version is refused with HTTP 500 "update out of sequence" (see isOutOfSequence): re-read and
   * decide again. Send back the whole spec as read, changed only where meant.
   */
  async updateService(id: string, version: number, spec: ServiceSpec, o?: CallOptions): Promise<void> {
    if (!Number.isSafeInteger(version) || version < 0) throw new RangeError(`updateService: version must be the Version.Index read, got ${version}`);
    await this.send('POST', `/services/${enc(id)}/update${query({ version })}`, { ...o, body: spec });
  }

  /** Removes a service and (asynchronously, on their nodes) its tasks' containers. */
  async removeService(id: string, o?: CallOptions): Promise<void> {
    await this.send('DELETE', `/services/${enc(id)}`, o);
  }

  /** Filters: service (ids or names), desired-state, node, label, id, name. */
  listTasks(q: { filters?: Filters } = {}, o?: CallOptions): Promise<TaskInfo[]> {
    return this.json('GET', `/tasks${query({ filters: q.filters })}`, o);
  }

  /** What a service's tasks printed so far (multiplexed like container logs, on any node). */
  async serviceLogs(id: string, q: { tail?: number } = {}, o?: CallOptions): Promise<string> {
    const body = await this.send('GET', `/services/${enc(id)}/logs${query({ stdout: true, stderr: true, tail: q.tail })}`, o);
    return demuxToString(body);
  }

  /** Everything a service's tasks printed, then what they print, until `signal` aborts (see followLogs). */
  followServiceLogs(id: string, q: { tail?: number; signal?: AbortSignal }, onData: (stream: StreamId, data: Buffer) => void): Promise<EngineStream> {
    return this.followDemuxed(`/services/${enc(id)}`, q, onData);
  }

  /** `<object>/logs`, followed: its multiplexed stream split per stdout/stderr (raw when the container has a TTY). */
  private followDemuxed(
    object: string,
    q: { tail?: number; tty?: boolean; signal?: AbortSignal },
    onData: (stream: StreamId, data: Buffer) => void,
  ): Promise<EngineStream> {
    const demux = new Demuxer(onData, { raw: q.tty === true });
    return this.stream(
      'GET',
      `${object}/logs${query({ follow: true, stdout: true, stderr: true, tail: q.tail })}`,
      q.signal,
      (chunk) => demux.push(chunk),
      () => undefined,
    );
  }

  /** Closes pooled and streaming connections. Calls in flight fail; the engine may be used again after. */
  close(): void {
    this.agent.destroy();
    this.streamAgent.destroy();
  }

  private async json<T>(method: string, path: string, o?: CallOptions & { body?: unknown }): Promise<T> {
    const body = await this.send(method, path, o);
    try {
      return JSON.parse(body.toString('utf8')) as T;
    } catch (e) {
      throw new EngineError(
        'ENGINE_ERROR',
        `Docker Engine at ${this.where} answered ${callName(method, path)} with something that is not JSON: ${preview(body)}`,
        { call: callName(method, path), detail: 'not JSON', cause: e },
      );
    }
  }

  /** One request and its whole answer, within the call's time limit; resent once if a pooled connection had gone stale. */
  private send(method: string, path: string, o: CallOptions & { body?: unknown } = {}): Promise<Buffer> {
    const call = callName(method, path);
    const timeoutMs = o.timeoutMs ?? this.timeoutMs;
    const payload = o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
    const signal = o.signal;
    const started = performance.now();
    return new Promise<Buffer>((resolve, reject) => {
      if (signal?.aborted) return reject(abortReason(signal));
      let req: http.ClientRequest | undefined;
      let timer: NodeJS.Timeout | undefined;
      let settled = false;
      const finish = (err: unknown, body?: Buffer) => {
        if (settled) return;
        settled = true;
        this.observed(method, path, started, !err);
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (err) {
          req?.destroy();
          reject(err);
        } else resolve(body!);
      };
      const onAbort = () => finish(abortReason(signal!));
      const attempt = (mayResend: boolean) => {
        const r = (req = this.request(method, path, this.agent, payload));
        r.on('response', (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (e) => finish(this.socketError(call, e)));
          res.on('end', () => {
            const body = Buffer.concat(chunks);
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 400) finish(undefined, body);
            else finish(this.statusError(call, status, body));
          });
        });
        r.on('error', (e: NodeJS.ErrnoException) => {
          if (settled) return;
          if (mayResend && r.reusedSocket && STALE.has(e.code ?? '') && IDEMPOTENT.has(method)) return attempt(false);
          finish(this.socketError(call, e));
        });
        r.end(payload);
      };
      if (timeoutMs > 0) timer = setTimeout(() => finish(this.timeoutError(call, timeoutMs)), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      attempt(true);
    });
  }

  /**
   * A request whose answer streams: resolves once the engine answered 2xx, then feeds onChunk. The
   * answer's head must come within the engine's timeout (a hung engine is reported, and the caller
   * reopens); the stream itself has no time limit.
   */
  private stream(method: string, path: string, signal: AbortSignal | undefined, onChunk: (c: Buffer) => void, onEnd: () => void): Promise<EngineStream> {
    const call = callName(method, path);
    return new Promise<EngineStream>((resolve, reject) => {
      if (signal?.aborted) return reject(abortReason(signal));
      const req = this.request(method, path, this.streamAgent);
      let answered = false;
      let endStream: ((err?: unknown) => void) | undefined;
      const limit = this.timeoutMs;
      const headTimer =
        limit > 0
          ? setTimeout(() => {
              if (answered) return;
              answered = true; // later errors from the destroyed request are not a second answer
              signal?.removeEventListener('abort', onAbort);
              req.destroy();
              reject(this.timeoutError(call, limit));
            }, limit)
          : undefined;
      const onAbort = () => {
        clearTimeout(headTimer);
        req.destroy();
        if (!answered) reject(abortReason(signal!));
        else endStream?.();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (e) => {
        if (signal?.aborted) return;
        if (!answered) {
          clearTimeout(headTimer);
          signal?.removeEventListener('abort', onAbort);
          reject(this.socketError(call, e));
        } else endStream?.(this.socketError(call, e));
      });
      req.on('response', (res) => {
        clearTimeout(headTimer);
        if (answered) {
          res.destroy();
          return;
        } // too late: already reported as a timeout
        answered = true;
        const status = res.statusCode ?? 0;
        if (status < 200 || status >= 300) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', () => undefined);
          res.on('end', () => {
            signal?.removeEventListener('abort', onAbort);
            reject(this.statusError(call, status, Buffer.concat(chunks)));
          });
          return;
        }
        let ended = false;
        const done = new Promise<void>((resolveDone, rejectDone) => {
          endStream = (err?: unknown) => {
            if (ended) return;
            ended = true;
            signal?.removeEventListener('abort', onAbort);
            res.destroy();
            if (err && !signal?.aborted) rejectDone(err);
            else resolveDone();
          };
        });
        done.catch(() => undefined); // the caller may look at done late (or never): not an unhandled rejection
        res.on('data', (c: Buffer) => {
          if (!ended) onChunk(c);
        });
        res.on('end', () => {
          if (ended) return;
          onEnd();
          endStream!();
        });
        res.on('error', (e) => endStream!(this.socketError(call, e)));
        res.on('close', () =>
          endStream!(
            new EngineError('ENGINE_UNREACHABLE', `Docker Engine at ${this.where} closed ${call} mid-stream`, {
              call,
              detail: 'closed mid-stream',
              errno: 'ECONNRESET',
              hint: 'is dockerd restarting? The stream is reopened by the caller',
            }),
          ),
        );
        resolve({ done });
      });
      req.end();
    });
  }

  private request(method: string, path: string, agent: http.Agent, payload?: Buffer): http.ClientRequest {
    const headers: http.OutgoingHttpHeaders = { accept: 'application/json' };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    return http.request({ ...this.endpoint, method, path: `/v${API_VERSION}${path}`, agent, headers });
  }

  /** Reports one call to onCall (never letting a metrics hook break a call). */
  private observed(method: string, path: string, started: number, ok: boolean): void {
    if (!this.onCall) return;
    try {
      this.onCall(callRoute(method, path), performance.now() - started, ok);
    } catch {
      // A metrics hook must not break an engine call.
    }
  }

  private socketError(call: string, e: NodeJS.ErrnoException): EngineError {
    const code = e.code ?? '';
    if (UNREACHABLE.has(code)) {
      const hint =
        code === 'EACCES'
          ? 'permission denied on the socket: run warmpool as root or as a member of the docker group'
          : code === 'ENOENT' || code === 'ENOTDIR'
            ? 'no socket there: is dockerd running? Start it (systemctl start docker, or dockerd &) or point DOCKER_HOST at the engine'
            : 'is dockerd running? Start it (systemctl start docker, or dockerd &) or point DOCKER_HOST at the engine';
      return new EngineError('ENGINE_UNREACHABLE', `Docker Engine unreachable at ${this.where} (${code}) on ${call}`, {
        call,
        detail: e.message,
        errno: code,
        hint,
        cause: e,
      });
    }
    return new EngineError('ENGINE_ERROR', `Docker Engine at ${this.where} failed ${call}: ${e.message}`, {
      call,
      detail: e.message,
      errno: code || undefined,
      cause: e,
    });
  }

  private timeoutError(call: string, ms: number): EngineError {
    return new EngineError('ENGINE_UNREACHABLE', `Docker Engine at ${this.where} did not answer ${call} within ${ms} ms`, {
      call,
      detail: `no answer within ${ms} ms`,
      errno: 'TIMEOUT',
      hint: 'is dockerd hung or overloaded? `docker info` shows whether it answers; restart dockerd if it does not',
    });
  }

  private statusError(call: string, status: number, body: Buffer): EngineError {
    let detail = preview(body);
    try {
      const j = JSON.parse(body.toString('utf8')) as { message?: unknown };
      if (typeof j?.message === 'string') detail = j.message;
    } catch {
      /* not JSON: the text itself */
    }
    if (status === 404 && /no such image/i.test(detail)) {
      return new EngineError('IMAGE_NOT_FOUND', `${detail} (${call}, HTTP 404)`, {
        call,
        status,
        detail,
        hint: 'warmpool never pulls: build the image (docker build -t <image> <dir>) or load it (docker load -i <file>.tar) on this engine',
      });
    }
    if (status === 400 && /client version .* is too new/i.test(detail)) {
      return new EngineError(
        'ENGINE_ERROR',
        `Docker Engine at ${this.where} is older than the Engine API ${API_VERSION} warmpool speaks: ${detail} (${call})`,
        {
          call,
          status,
          detail,
          hint: `upgrade the engine to Docker 20.10 or later (\`docker version\` shows its API version, which must be at least ${API_VERSION})`,
        },
      );
    }
    if (status === 503 && /not a swarm manager|not part of a swarm/i.test(detail)) {
      return new EngineError('ENGINE_ERROR', `Docker Engine at ${this.where} is not a swarm manager: ${detail} (${call})`, {
        call,
        status,
        detail,
        hint: 'runtime swarm needs a manager node: `docker swarm init --advertise-addr <address>` on a single host, or point DOCKER_HOST at a manager',
      });
    }
    return new EngineError('ENGINE_ERROR', `Docker Engine refused ${call}: ${detail} (HTTP ${status})`, { call, status, detail });
  }
}

/**
 * A service update refused because the version it carried is no longer the service's (someone updated
 * it since it was read, or swarmkit did: the index also moves on internal changes). HTTP 500, not 409
 * (moby#30794).
 */
export function isOutOfSequence(e: unknown): boolean {
  return e instanceof EngineError && e.status === 500 && /update out of sequence/i.test(e.detail);
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

/** "?a=1&filters=%7B...%7D": booleans as 1/0 (the engine's form), objects as JSON; undefined left out. */
function query(params: Record<string, string | number | boolean | Filters | undefined>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    const text = typeof v === 'boolean' ? (v ? '1' : '0') : typeof v === 'object' ? JSON.stringify(v) : String(v);
    parts.push(`${k}=${encodeURIComponent(text)}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

/** "POST /containers/abc/start": the call without its query (filters can be long). */
/** `POST /v1.41/containers/3f2a…/rename?name=x` → `POST /containers/{id}/rename`: a metrics label of bounded cardinality. */
export function callRoute(method: string, path: string): string {
  const q = path.indexOf('?');
  const parts = (q < 0 ? path : path.slice(0, q)).split('/');
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) {
    const seg = parts[i]!;
    if (i === 1 && /^v\d+\.\d+$/.test(seg)) continue;
    const prev = out[out.length - 1];
    const named = prev === 'containers' || prev === 'services' || prev === 'tasks' || prev === 'networks' || prev === 'images' || prev === 'nodes';
    out.push(named && !/^(json|create|prune)$/.test(seg) ? '{id}' : seg);
  }
  return `${method} /${out.join('/')}`;
}

function callName(method: string, path: string): string {
  const q = path.indexOf('?');
  return `${method} ${q < 0 ? path : path.slice(0, q)}`;
}

function preview(body: Buffer): string {
  const text = body.toString('utf8').trim();
  return text.length > 300 ? `${text.slice(0, 300)}…` : text || '(empty body)';
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}
