// Runs instances as Docker containers through dockerode. Labels say whose a container is, a rename
// records a claim, and engine failures become WarmpoolErrors that say what to do. Never pulls.

import { StringDecoder } from 'node:string_decoder';
import { Writable } from 'node:stream';
import Dockerode from 'dockerode';
import type { AppConfig } from '../config.js';
import { systemClock, type Clock, type TimerHandle } from '../clock.js';
import { WarmpoolError, errorMessage, isWarmpoolError } from '../errors.js';
import type { PortAllocator } from '../ports.js';
import { LABEL, type ClaimMark, type InstanceRecord, type InstanceSpec, type Runtime } from '../runtime.js';
import { claimedName, containerFacts, deploymentFilter, envList, instanceLabels, instanceName, type ContainerFacts } from './docker-labels.js';

export interface DockerRuntimeOptions {
  /** Names the warmpool deployment whose containers this runtime owns (label warmpool.deployment). */
  deployment: string;
  /** Host ports for host-network instances. */
  ports: PortAllocator;
  /** Engine client; default: the local socket (or DOCKER_HOST). */
  docker?: Dockerode;
  clock?: Clock;
  log?: (msg: string) => void;
}

const OPTION_KEYS = ['deployment', 'ports', 'docker', 'clock', 'log'];
const DEPLOYMENT_RE = /^[a-z0-9][a-z0-9-]{0,39}$/;
/** Socket errors that mean "no engine there", as opposed to an engine that answered no. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTDIR']);
const WATCH_BACKOFF = { firstMs: 250, maxMs: 10_000, healthyMs: 10_000 };
/** A line longer than this is cut (a runaway writer must not grow memory). */
const MAX_LINE = 64 * 1024;
/** How many instance ids whose removal we started are remembered, to keep our own kills out of watch(). */
const REMEMBER = 4096;

/** What this process knows of a container; rebuilt by list() and by label lookups, never trusted over the engine. */
interface Known {
  containerId: string;
  name: string;
  /** Host-network instances: the allocator port this instance holds. */
  hostPort?: number;
}

export class DockerRuntime implements Runtime {
  readonly kind = 'docker' as const;
  readonly deployment: string;
  private readonly docker: Dockerode;
  private readonly ports: PortAllocator;
  private readonly clock: Clock;
  private readonly log: (msg: string) => void;
  private readonly known = new Map<string, Known>();
  /** Instances we are removing ourselves: their die/destroy events are not exits "by itself". */
  private readonly removing = new Set<string>();
  /** Stop functions of live output() and watch() streams. */
  private readonly stoppers = new Set<() => void>();
  private closed = false;

  constructor(opts: DockerRuntimeOptions) {
    if (opts === null || typeof opts !== 'object') throw new TypeError('DockerRuntime: expected an options object { deployment, ports, docker?, clock?, log? }');
    for (const k of Object.keys(opts)) {
      if (!OPTION_KEYS.includes(k)) throw new TypeError(`DockerRuntime: unknown option ${k}; allowed: ${OPTION_KEYS.join(', ')}`);
    }
    if (typeof opts.deployment !== 'string' || !DEPLOYMENT_RE.test(opts.deployment)) {
      throw new TypeError(`DockerRuntime: deployment is ${JSON.stringify(opts.deployment)}; expected lower-case letters, digits and dashes (at most 40)`);
    }
    if (!opts.ports || typeof opts.ports.allocate !== 'function') throw new TypeError('DockerRuntime: ports must be a PortAllocator');
    this.deployment = opts.deployment;
    this.ports = opts.ports;
    this.docker = opts.docker ?? new Dockerode();
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? ((msg) => console.error(`[warmpool docker] ${msg}`));
  }

  async create(app: AppConfig, spec: InstanceSpec): Promise<InstanceRecord> {
    if (!app.image) throw new WarmpoolError('CONFIG_INVALID', `app ${app.name}: runtime docker needs an image`, { hint: 'set image: in the app config' });
    const hostNet = app.network === 'host';
    if (!hostNet && !(app.port > 0)) throw new WarmpoolError('CONFIG_INVALID', `app ${app.name}: a bridge-network app needs the container port it listens on (port: 1-65535)`);
    // Host networking: instances share the host's ports, so each gets its own and must bind loopback.
    // Bridge: the app listens on app.port in its own namespace; only the published port is on the host (127.0.0.1).
    const port = hostNet ? await this.ports.allocate() : app.port;
    const env = hostNet
      ? { ...app.env, ...spec.env, PORT: String(port), HOST: '127.0.0.1' }
      : { PORT: String(port), HOST: '0.0.0.0', ...app.env, ...spec.env };
    const name = instanceName(this.deployment, app.name, spec.instanceId);
    const opts: Dockerode.ContainerCreateOptions = {
      name,
      Image: app.image,
      Env: envList(env),
      Labels: instanceLabels({ deployment: this.deployment, app: app.name, instanceId: spec.instanceId, port, createdAt: this.clock.now() }),
      HostConfig: {
        NetworkMode: hostNet ? 'host' : 'bridge',
        RestartPolicy: { Name: 'no' },
      },
    };
    if (app.args) opts.Cmd = app.args;
    if (app.limits.cpus !== undefined) opts.HostConfig!.NanoCpus = Math.round(app.limits.cpus * 1e9);
    if (app.limits.memoryBytes !== undefined) opts.HostConfig!.Memory = app.limits.memoryBytes;
    if (!hostNet) {
      opts.ExposedPorts = { [`${port}/tcp`]: {} };
      // HostPort '' = the engine picks a free port; read back by inspect below.
      opts.HostConfig!.PortBindings = { [`${port}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: '' }] };
    }

    let container: Dockerode.Container;
    try {
      container = await this.docker.createContainer(opts);
    } catch (e) {
      if (hostNet) this.ports.release(port);
      throw this.engineError(e, `create a container for app ${app.name}`, app.image);
    }
    // From here on the container exists: any failure removes it, so nothing is orphaned.
    this.known.set(spec.instanceId, { containerId: container.id, name, hostPort: hostNet ? port : undefined });
    try {
      await container.start();
      const info = await container.inspect();
      const facts = containerFacts(info, (why) => this.log(why));
      if (!facts) throw new WarmpoolError('ENGINE_ERROR', `container ${name} started but cannot be read back (see the log line above)`);
      if (!facts.record.running) {
        const tail = await this.tail(container).catch(() => '');
        throw new WarmpoolError('INSTANCE_EXITED', `instance ${spec.instanceId} of app ${app.name} (${app.image}) exited right after start with code ${info.State.ExitCode}${tail ? `; its last output:\n${tail}` : ''}`, {
          hint: 'run the image by hand (docker run --rm <image>) to see why',
        });
      }
      return facts.record;
    } catch (e) {
      await this.remove(spec.instanceId).catch((err) => this.log(`could not remove failed container ${name}: ${errorMessage(err)}`));
      throw isWarmpoolError(e) ? e : this.engineError(e, `start container ${name}`);
    }
  }

  async remove(instanceId: string): Promise<void> {
    this.remember(this.removing, instanceId);
    const k = await this.find(instanceId);
    if (!k) return;
    try {
      await this.docker.getContainer(k.containerId).remove({ force: true, v: true });
    } catch (e) {
      // 404: already gone. 409: a removal is already in progress (ours or someone's).
      const status = statusOf(e);
      if (status !== 404 && status !== 409) throw this.engineError(e, `remove container ${k.name}`);
    }
    this.forget(instanceId);
  }

  async list(): Promise<InstanceRecord[]> {
    let entries: Dockerode.ContainerInfo[];
    try {
      entries = await this.docker.listContainers({ all: true, filters: { label: [deploymentFilter(this.deployment)] } });
    } catch (e) {
      throw this.engineError(e, 'list containers');
    }
    // A list entry has no Config.Env (the secret lives there): inspect each one.
    const facts = await mapLimit(entries, 8, async (entry) => {
      let info: Dockerode.ContainerInspectInfo;
      try {
        info = await this.docker.getContainer(entry.Id).inspect();
      } catch (e) {
        if (statusOf(e) === 404) return undefined; // removed between list and inspect
        throw this.engineError(e, `inspect container ${entry.Id.slice(0, 12)}`);
      }
      const f = containerFacts(info, (why) => this.log(`skipping ${why}`));
      if (!f || f.record.deployment !== this.deployment) return undefined;
      this.learn(f);
      return f.record;
    });
    return facts.filter((r): r is InstanceRecord => r !== undefined).sort((a, b) => a.createdAt - b.createdAt || (a.instanceId < b.instanceId ? -1 : 1));
  }

  async markClaimed(instanceId: string, claim: ClaimMark): Promise<void> {
    const k = await this.find(instanceId);
    if (!k) throw new WarmpoolError('INSTANCE_GONE', `instance ${instanceId} has no container in deployment ${this.deployment}`);
    const name = claimedName(k.name, claim);
    try {
      await this.docker.getContainer(k.containerId).rename({ name });
    } catch (e) {
      if (statusOf(e) === 404) {
        this.forget(instanceId);
        throw new WarmpoolError('INSTANCE_GONE', `instance ${instanceId}: container ${k.name} is gone`);
      }
      throw this.engineError(e, `rename container ${k.name} to ${name}`);
    }
    k.name = name;
  }

  output(instanceId: string, onLine: (line: string) => void): () => void {
    const abort = new AbortController();
    let stopped = false;
    const emit = (line: string) => { if (!stopped) onLine(line); };
    const stop = () => {
      if (stopped) return;
      stopped = true;
      abort.abort();
      this.stoppers.delete(stop);
    };
    this.stoppers.add(stop);
    void (async () => {
      const k = await this.find(instanceId);
      if (!k) throw new WarmpoolError('INSTANCE_GONE', `no container for instance ${instanceId}`);
      if (stopped) return;
      // follow + no `since`: everything printed so far, then what comes.
      const stream = await this.docker.getContainer(k.containerId).logs({ follow: true, stdout: true, stderr: true, abortSignal: abort.signal });
      if (stopped) return destroy(stream);
      // stdout and stderr each get their own splitter, so their lines never mix mid-line.
      const out = new LineSplitter(emit);
      const err = new LineSplitter(emit);
      this.docker.modem.demuxStream(stream, out.writable(), err.writable());
      stream.on('error', (e: Error) => { if (!stopped) this.log(`output of instance ${instanceId}: ${errorMessage(e)}`); });
      stream.on('end', () => { out.flush(); err.flush(); this.stoppers.delete(stop); });
    })().catch((e) => {
      if (!stopped) this.log(`output of instance ${instanceId}: ${errorMessage(isWarmpoolError(e) ? e : this.engineError(e, 'follow logs'))}`);
    });
    return stop;
  }

  watch(onExit: (instanceId: string, detail: string) => void): () => void {
    let stopped = false;
    let abort: AbortController | undefined;
    let timer: TimerHandle | undefined;
    let failures = 0;
    /**
     * Engine time (s, wall clock like the engine's, not the injected Clock) to replay from after a
     * reconnect, so exits during the gap are not lost. The first connection only sees new events.
     */
    let since: number | undefined;
    let first = true;
    const oom = new Set<string>();
    const reported = new Set<string>();

    const report = (instanceId: string, detail: string) => {
      if (reported.has(instanceId)) return; // die then destroy, or a replayed event: once per instance
      this.remember(reported, instanceId);
      try {
        onExit(instanceId, detail);
      } catch (e) {
        this.log(`watch callback failed for instance ${instanceId}: ${errorMessage(e)}`);
      }
    };

    const onEvent = (line: string) => {
      let ev: DockerEvent;
      try {
        ev = JSON.parse(line) as DockerEvent;
      } catch {
        this.log(`docker events: not JSON: ${line.slice(0, 200)}`);
        return;
      }
      if (typeof ev.time === 'number') since = ev.time;
      const attrs = ev.Actor?.Attributes ?? {};
      const instanceId = attrs[LABEL.instance];
      if (!instanceId || attrs[LABEL.deployment] !== this.deployment || this.removing.has(instanceId)) return;
      const action = ev.Action ?? ev.status;
      if (action === 'oom') this.remember(oom, instanceId);
      else if (action === 'die') report(instanceId, `exited with code ${attrs.exitCode ?? '?'}${oom.has(instanceId) ? ' (out of memory)' : ''}`);
      else if (action === 'destroy') report(instanceId, 'container removed outside warmpool');
    };

    const retry = (why: string) => {
      if (stopped || this.closed) return;
      const delay = Math.min(WATCH_BACKOFF.maxMs, WATCH_BACKOFF.firstMs * 2 ** failures);
      failures++;
      this.log(`docker events stream ${why}; reconnecting in ${delay} ms`);
      timer = this.clock.setTimer(delay, () => { timer = undefined; void connect(); });
    };

    const connect = async () => {
      if (stopped || this.closed) return;
      abort = new AbortController();
      const signal = abort.signal;
      const opts: Dockerode.GetEventsOptions = first ? {} : { since };
      if (first) since = Math.floor(Date.now() / 1000);
      first = false;
      let stream: NodeJS.ReadableStream;
      try {
        stream = await this.docker.getEvents({
          ...opts,
          filters: { type: ['container'], label: [deploymentFilter(this.deployment)], event: ['die', 'oom', 'destroy'] },
          abortSignal: signal,
        });
      } catch (e) {
        if (!signal.aborted) retry(`failed: ${errorMessage(this.engineError(e, 'follow events'))}`);
        return;
      }
      if (signal.aborted) return destroy(stream);
      const connectedAt = this.clock.now();
      const lines = new LineSplitter(onEvent);
      let ended = false;
      const end = (why: string) => {
        if (ended) return;
        ended = true;
        if (signal.aborted) return;
        if (this.clock.now() - connectedAt >= WATCH_BACKOFF.healthyMs) failures = 0;
        retry(why);
      };
      stream.on('data', (chunk: Buffer) => lines.push(chunk));
      stream.on('error', (e: Error) => end(`failed: ${errorMessage(e)}`));
      stream.on('end', () => end('ended'));
      stream.on('close', () => end('closed'));
    };

    const stop = () => {
      if (stopped) return;
      stopped = true;
      abort?.abort();
      timer?.cancel();
      this.stoppers.delete(stop);
    };
    this.stoppers.add(stop);
    void connect();
    return stop;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const stop of [...this.stoppers]) stop();
  }

  /** The container of an instance: from memory, else by label (after a restart, or another process's create). */
  private async find(instanceId: string): Promise<Known | undefined> {
    const k = this.known.get(instanceId);
    if (k) return k;
    let entries: Dockerode.ContainerInfo[];
    try {
      entries = await this.docker.listContainers({
        all: true,
        filters: { label: [deploymentFilter(this.deployment), `${LABEL.instance}=${instanceId}`] },
      });
    } catch (e) {
      throw this.engineError(e, `look up instance ${instanceId}`);
    }
    const entry = entries[0];
    if (!entry) return undefined;
    const f = containerFacts(entry, (why) => this.log(`skipping ${why}`));
    if (f) return this.learn(f);
    const name = (entry.Names?.[0] ?? '').replace(/^\//, '');
    return { containerId: entry.Id, name };
  }

  private learn(f: ContainerFacts): Known {
    const prev = this.known.get(f.record.instanceId);
    const k: Known = { containerId: f.record.runtimeId, name: f.name };
    if (f.network === 'host') {
      k.hostPort = f.record.port;
      if (prev?.hostPort !== f.record.port) this.ports.hold(f.record.port); // adopted: keep its port out of allocate()
    }
    this.known.set(f.record.instanceId, k);
    return k;
  }

  private forget(instanceId: string): void {
    const k = this.known.get(instanceId);
    if (k?.hostPort !== undefined) this.ports.release(k.hostPort);
    this.known.delete(instanceId);
  }

  /** Adds to a set that forgets its oldest entries past REMEMBER. */
  private remember(set: Set<string>, id: string): void {
    set.delete(id);
    set.add(id);
    if (set.size > REMEMBER) set.delete(set.values().next().value!);
  }

  /** The last lines a (dead) container printed, for an error message. */
  private async tail(container: Dockerode.Container): Promise<string> {
    const buf = await container.logs({ follow: false, stdout: true, stderr: true, tail: 20 });
    return demuxBuffer(buf).trimEnd();
  }

  private where(): string {
    const m = this.docker.modem as unknown as { socketPath?: string; host?: string; port?: string | number; protocol?: string };
    return m.socketPath ? `unix socket ${m.socketPath}` : `${m.protocol ?? 'http'}://${m.host}:${m.port}`;
  }

  /** Turns a dockerode failure into a WarmpoolError that says what failed and what to do. */
  private engineError(e: unknown, doing: string, image?: string): WarmpoolError {
    if (isWarmpoolError(e)) return e;
    const code = (e as NodeJS.ErrnoException | undefined)?.code;
    if (code && UNREACHABLE.has(code)) {
      const hint =
        code === 'EACCES' ? 'permission denied on the socket: run warmpool as root or as a member of the docker group'
        : code === 'ENOENT' || code === 'ENOTDIR' ? 'no socket there: is dockerd running? Start it (systemctl start docker, or dockerd &) or point DOCKER_HOST at the engine'
        : 'is dockerd running? Start it (systemctl start docker, or dockerd &) or point DOCKER_HOST at the engine';
      return new WarmpoolError('ENGINE_UNREACHABLE', `Docker Engine unreachable at ${this.where()} (${code}) while trying to ${doing}`, { hint, cause: e });
    }
    const status = statusOf(e);
    const text = engineMessage(e);
    if (image && status === 404 && /no such image/i.test(text)) {
      return new WarmpoolError('IMAGE_NOT_FOUND', `image ${image} is not on this Docker Engine, and warmpool never pulls`, {
        hint: `build it with \`npm run images\` (warmpool/node:20, warmpool/standin:latest), \`docker build -t ${image} <dir>\`, or load it with \`docker load -i <file>.tar\``,
        cause: e,
      });
    }
    return new WarmpoolError('ENGINE_ERROR', `Docker Engine could not ${doing}: ${text}${status ? ` (HTTP ${status})` : ''}`, { cause: e });
  }
}

interface DockerEvent {
  status?: string;
  Action?: string;
  time?: number;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

function statusOf(e: unknown): number | undefined {
  const s = (e as { statusCode?: unknown } | undefined)?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

function engineMessage(e: unknown): string {
  const json = (e as { json?: { message?: unknown } } | undefined)?.json;
  if (json && typeof json.message === 'string') return json.message;
  return errorMessage(e).trim();
}

function destroy(stream: NodeJS.ReadableStream): void {
  (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
}

/** Docker's multiplexed log format (8-byte header: stream, 0, 0, 0, size) read from a whole buffer. */
export function demuxBuffer(buf: Buffer): string {
  let out = '';
  let i = 0;
  while (i + 8 <= buf.length) {
    const type = buf[i]!;
    if (type > 2 || buf[i + 1] !== 0 || buf[i + 2] !== 0 || buf[i + 3] !== 0) return out + buf.subarray(i).toString('utf8'); // not multiplexed (tty)
    const size = buf.readUInt32BE(i + 4);
    out += buf.subarray(i + 8, i + 8 + size).toString('utf8');
    i += 8 + size;
  }
  return out;
}

/** Splits a byte stream into lines (\n or \r\n), decoding UTF-8 across chunk boundaries. */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private rest = '';

  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: Buffer | string): void {
    const text = this.rest + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
    const parts = text.split('\n');
    this.rest = parts.pop()!;
    for (const p of parts) this.onLine(p.endsWith('\r') ? p.slice(0, -1) : p);
    if (this.rest.length > MAX_LINE) {
      this.onLine(this.rest);
      this.rest = '';
    }
  }

  flush(): void {
    const last = this.rest + this.decoder.end();
    this.rest = '';
    if (last) this.onLine(last.endsWith('\r') ? last.slice(0, -1) : last);
  }

  writable(): Writable {
    return new Writable({ write: (chunk: Buffer, _enc, cb) => { this.push(chunk); cb(); } });
  }
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
