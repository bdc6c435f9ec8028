// Runs instances as Docker containers through the Engine API client in engine.ts. Labels say whose a
// container is, a rename records a claim, and engine failures become WarmpoolErrors that say what to
// do. Never pulls. An app with `warming` runs its containers at a low CPU weight until their claim is
// recorded, so notebooks executing for the pool yield to the students' instances.

import type { AppConfig } from '../../core/config.js';
import { systemClock, type Clock } from '../../core/clock.js';
import { WarmpoolError, errorMessage, isWarmpoolError } from '../../core/errors.js';
import type { PortAllocator } from '../ports.js';
import { LABEL, type ClaimMark, type InstanceRecord, type InstanceSpec, type Runtime } from '../runtime.js';
import { claimedName, containerFacts, deploymentFilter, envList, instanceLabels, instanceName, missedExits, type ContainerFacts } from './docker-labels.js';
import { Engine, EngineError, type ContainerInfo, type CreateOptions, type EngineEvent, type InspectInfo } from './engine.js';
import type { Log } from '../../core/log.js';
import { followOutput } from './follow-output.js';
import { followEvents } from './event-stream.js';

export interface DockerRuntimeOptions {
  /** Names the warmpool deployment whose containers this runtime owns (label warmpool.deployment). */
  deployment: string;
  /** Host ports for host-network instances. */
  ports: PortAllocator;
  /** Engine client; default: a new Engine() on DOCKER_HOST, else the local socket. */
  engine?: Engine;
  clock?: Clock;
  log?: Log;
}

const OPTION_KEYS = ['deployment', 'ports', 'engine', 'clock', 'log'];
const DEPLOYMENT_RE = /^[a-z0-9][a-z0-9-]{0,39}$/;
/** How many instance ids whose removal we started are remembered, to keep our own kills out of watch(). */
const REMEMBER = 4096;
/** The CPU weight of a claimed container: the engine's default (cgroup cpu shares). */
export const SERVING_CPU_SHARES = 1024;

/** What this process knows of a container; rebuilt by list() and by label lookups, never trusted over the engine. */
interface Known {
  containerId: string;
  name: string;
  /** Host-network instances: the allocator port this instance holds. */
  hostPort?: number;
  /** Its CPU weight (HostConfig.CpuShares; 0: the default); unknown when found by a list entry alone. */
  cpuShares?: number;
}

export class DockerRuntime implements Runtime {
  readonly kind = 'docker' as const;
  readonly deployment: string;
  private readonly engine: Engine;
  /** Made here (not injected): closed by close(). */
  private readonly ownEngine: boolean;
  private readonly ports: PortAllocator;
  private readonly clock: Clock;
  private readonly log: Log;
  private readonly known = new Map<string, Known>();
  /** Instances we are removing ourselves: their die/destroy events are not exits "by itself". */
  private readonly removing = new Set<string>();
  /** Stop functions of live output() and watch() streams. */
  private readonly stoppers = new Set<() => void>();
  private closed = false;

  constructor(opts: DockerRuntimeOptions) {
    if (opts === null || typeof opts !== 'object')
      throw new TypeError('DockerRuntime: expected an options object { deployment, ports, engine?, clock?, log? }');
    for (const k of Object.keys(opts)) {
      if (!OPTION_KEYS.includes(k)) throw new TypeError(`DockerRuntime: unknown option ${k}; allowed: ${OPTION_KEYS.join(', ')}`);
    }
    if (typeof opts.deployment !== 'string' || !DEPLOYMENT_RE.test(opts.deployment)) {
      throw new TypeError(`DockerRuntime: deployment is ${JSON.stringify(opts.deployment)}; expected lower-case letters, digits and dashes (at most 40)`);
    }
    if (!opts.ports || typeof opts.ports.allocate !== 'function') throw new TypeError('DockerRuntime: ports must be a PortAllocator');
    this.deployment = opts.deployment;
    this.ports = opts.ports;
    this.ownEngine = opts.engine === undefined;
    this.engine = opts.engine ?? new Engine();
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? ((msg) => console.error(`[warmpool docker] ${msg}`));
  }

  async create(app: AppConfig, spec: InstanceSpec): Promise<InstanceRecord> {
    if (!app.image) throw new WarmpoolError('CONFIG_INVALID', `app ${app.name}: runtime docker needs an image`, { hint: 'set image: in the app config' });
    const hostNet = app.network === 'host';
    if (!hostNet && !(app.port > 0))
      throw new WarmpoolError('CONFIG_INVALID', `app ${app.name}: a bridge-network app needs the container port it listens on (port: 1-65535)`);
    // Host networking: instances share the host's ports, so each gets its own and must bind loopback.
    // Bridge: the app listens on app.port in its own namespace; only the published port is on the host (127.0.0.1).
    const port = hostNet ? await this.ports.allocate() : app.port;
    const env = hostNet ? { ...app.env, ...spec.env, PORT: String(port), HOST: '127.0.0.1' } : { PORT: String(port), HOST: '0.0.0.0', ...app.env, ...spec.env };
    const name = instanceName(this.deployment, app.name, spec.instanceId);
    const opts: CreateOptions = {
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
    if (app.warming) opts.HostConfig!.CpuShares = app.warming.cpuShares;
    if (!hostNet) {
      opts.ExposedPorts = { [`${port}/tcp`]: {} };
      // HostPort '' = the engine picks a free port; read back by inspect below.
      opts.HostConfig!.PortBindings = { [`${port}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: '' }] };
    }

    let containerId: string;
    try {
      containerId = (await this.engine.createContainer(name, opts)).Id;
    } catch (e) {
      if (hostNet) this.ports.release(port);
      throw this.engineError(e, `create a container for app ${app.name}`, app.image);
    }
    // From here on the container exists: any failure removes it, so nothing is orphaned.
    this.known.set(spec.instanceId, { containerId, name, hostPort: hostNet ? port : undefined, cpuShares: app.warming?.cpuShares ?? 0 });
    try {
      await this.engine.startContainer(containerId);
      const info = await this.engine.inspectContainer(containerId);
      const facts = containerFacts(info, (why) => this.log(why));
      if (!facts) throw new WarmpoolError('ENGINE_ERROR', `container ${name} started but cannot be read back (see the log line above)`);
      if (!facts.record.running) {
        const tail = await this.tail(containerId).catch(() => '');
        throw new WarmpoolError(
          'INSTANCE_EXITED',
          `instance ${spec.instanceId} of app ${app.name} (${app.image}) exited right after start with code ${info.State.ExitCode}${tail ? `; its last output:\n${tail}` : ''}`,
          {
            hint: 'run the image by hand (docker run --rm <image>) to see why',
          },
        );
      }
      return facts.record;
    } catch (e) {
      await this.remove(spec.instanceId).catch((err) =>
        this.log(`could not remove failed container ${name}: ${errorMessage(err)}`, { app: spec.app, instance: spec.instanceId }, 'warn'),
      );
      throw this.engineError(e, `start container ${name}`);
    }
  }

  async remove(instanceId: string): Promise<void> {
    this.remember(this.removing, instanceId);
    const k = await this.find(instanceId);
    if (!k) return;
    try {
      await this.engine.removeContainer(k.containerId, { force: true, volumes: true });
    } catch (e) {
      // 404: already gone. 409: a removal is already in progress (ours or someone's).
      const status = statusOf(e);
      if (status !== 404 && status !== 409) throw this.engineError(e, `remove container ${k.name}`);
    }
    this.forget(instanceId);
  }

  async list(): Promise<InstanceRecord[]> {
    let entries: ContainerInfo[];
    try {
      entries = await this.engine.listContainers({ all: true, filters: { label: [deploymentFilter(this.deployment)] } });
    } catch (e) {
      throw this.engineError(e, 'list containers');
    }
    // A list entry has no Config.Env (the secret lives there): inspect each one.
    const facts = await mapLimit(entries, 8, async (entry) => {
      let info: InspectInfo;
      try {
        info = await this.engine.inspectContainer(entry.Id);
      } catch (e) {
        if (statusOf(e) === 404) return undefined; // removed between list and inspect
        throw this.engineError(e, `inspect container ${entry.Id.slice(0, 12)}`);
      }
      const f = containerFacts(info, (why) => this.log(`skipping ${why}`));
      if (!f || f.record.deployment !== this.deployment) return undefined;
      this.learn(f).cpuShares = info.HostConfig?.CpuShares ?? 0;
      return f.record;
    });
    return facts.filter((r): r is InstanceRecord => r !== undefined).sort((a, b) => a.createdAt - b.createdAt || (a.instanceId < b.instanceId ? -1 : 1));
  }

  /** Ready: the warming CPU weight is raised to the serving one (an idle notebook uses none of it until claimed). */
  async serving(instanceId: string): Promise<void> {
    const k = await this.find(instanceId);
    if (!k) throw new WarmpoolError('INSTANCE_GONE', `instance ${instanceId} has no container in deployment ${this.deployment}`);
    await this.raiseWeight(instanceId, k);
  }

  /**
   * Records a claim: the container is raised to the serving CPU weight (if that did not happen when it
   * became ready), then renamed. In that order, so a container named claimed always runs at full
   * weight; a retry after a failure redoes what is missing (the weight update is idempotent).
   */
  async markClaimed(instanceId: string, claim: ClaimMark): Promise<void> {
    const k = await this.find(instanceId);
    if (!k) throw new WarmpoolError('INSTANCE_GONE', `instance ${instanceId} has no container in deployment ${this.deployment}`);
    await this.raiseWeight(instanceId, k);
    const name = claimedName(k.name, claim);
    try {
      await this.engine.renameContainer(k.containerId, name);
    } catch (e) {
      if (statusOf(e) === 404) {
        this.forget(instanceId);
        throw new WarmpoolError('INSTANCE_GONE', `instance ${instanceId}: container ${k.name} is gone`);
      }
      throw this.engineError(e, `rename container ${k.name} to ${name}`);
    }
    k.name = name;
  }

  private async raiseWeight(instanceId: string, k: Known): Promise<void> {
    if (k.cpuShares === undefined || (k.cpuShares !== 0 && k.cpuShares !== SERVING_CPU_SHARES)) {
      try {
        await this.engine.updateContainer(k.containerId, { CpuShares: SERVING_CPU_SHARES });
      } catch (e) {
        if (statusOf(e) === 404) {
          this.forget(instanceId);
          throw new WarmpoolError('INSTANCE_GONE', `instance ${instanceId}: container ${k.name} is gone`);
        }
        throw this.engineError(e, `raise the CPU weight of container ${k.name} to ${SERVING_CPU_SHARES}`);
      }
      k.cpuShares = SERVING_CPU_SHARES;
    }
  }

  output(instanceId: string, onLine: (line: string) => void): () => void {
    return followOutput({
      instanceId,
      stoppers: this.stoppers,
      clock: this.clock,
      kind: 'container',
      locate: async () => (await this.find(instanceId))?.containerId,
      open: (id, signal, onData) => this.engine.followLogs(id, { signal }, onData),
      onLine,
      failed: (e, opening) =>
        this.log(`output of instance ${instanceId}: ${errorMessage(opening ? this.engineError(e, 'follow logs') : e)}`, { instance: instanceId }, 'warn'),
    });
  }

  watch(onExit: (instanceId: string, detail: string) => void, onEngineBack?: () => void): () => void {
    /**
     * Engine time (s, wall clock like the engine's, not the injected Clock) to replay from after a
     * reconnect, so exits during the gap are not lost. The first connection only sees new events.
     */
    let since = 0;
    const oom = new Set<string>();
    const reported = new Set<string>();

    const report = (instanceId: string, detail: string) => {
      if (reported.has(instanceId)) return; // die then destroy, or a replayed event: once per instance
      this.remember(reported, instanceId);
      try {
        onExit(instanceId, detail);
      } catch (e) {
        this.log(`watch callback failed for instance ${instanceId}: ${errorMessage(e)}`, { instance: instanceId }, 'error');
      }
    };

    const stop = followEvents({
      engine: this.engine,
      clock: this.clock,
      query: (reconnect) => {
        if (!reconnect) since = Math.floor(Date.now() / 1000);
        return {
          since: reconnect ? since : undefined,
          filters: { type: ['container'], label: [deploymentFilter(this.deployment)], event: ['die', 'oom', 'destroy'] },
        };
      },
      onEvent: (ev: EngineEvent) => {
        if (typeof ev.time === 'number') since = ev.time;
        const attrs = ev.Actor?.Attributes ?? {};
        const instanceId = attrs[LABEL.instance];
        if (!instanceId || attrs[LABEL.deployment] !== this.deployment || this.removing.has(instanceId)) return;
        const action = ev.Action ?? ev.status;
        if (action === 'oom') this.remember(oom, instanceId);
        else if (action === 'die') report(instanceId, `exited with code ${attrs.exitCode ?? '?'}${oom.has(instanceId) ? ' (out of memory)' : ''}`);
        else if (action === 'destroy') report(instanceId, 'container removed outside warmpool');
      },
      // Reconnected: exits while the stream was down are in no replay when the engine itself restarted
      // (its event history is in memory), so ask the engine what is left of what we know.
      onConnected: (reconnect, signal) => {
        if (!reconnect) return;
        void this.recheck(report, signal);
        onEngineBack?.();
      },
      warn: (message) => this.log(message, undefined, 'warn'),
      connectError: (e) => this.engineError(e, 'follow events'),
      closed: () => this.closed,
    });
    const stopOnce = () => {
      stop();
      this.stoppers.delete(stopOnce);
    };
    this.stoppers.add(stopOnce);
    return stopOnce;
  }

  /** After the event stream was down: reports the known instances whose container exited or went meanwhile. */
  private async recheck(report: (instanceId: string, detail: string) => void, signal: AbortSignal): Promise<void> {
    let entries: ContainerInfo[];
    try {
      entries = await this.engine.listContainers({ all: true, filters: { label: [deploymentFilter(this.deployment)] } }, { signal });
    } catch (e) {
      // The stream is up again and will say when it breaks; the next reconnect checks again.
      if (!signal.aborted)
        this.log(`could not check containers after the events stream reconnected: ${errorMessage(this.engineError(e, 'list containers'))}`, undefined, 'warn');
      return;
    }
    if (signal.aborted) return;
    const known = [...this.known.keys()].filter((id) => !this.removing.has(id));
    for (const x of missedExits(known, entries)) report(x.instanceId, x.detail);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const stop of [...this.stoppers]) stop();
    if (this.ownEngine) this.engine.close();
  }

  /** The container of an instance: from memory, else by label (after a restart, or another process's create). */
  private async find(instanceId: string): Promise<Known | undefined> {
    const k = this.known.get(instanceId);
    if (k) return k;
    let entries: ContainerInfo[];
    try {
      entries = await this.engine.listContainers({
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
  private async tail(containerId: string): Promise<string> {
    return (await this.engine.logs(containerId, { tail: 20 })).trimEnd();
  }

  /** Adds what warmpool was doing to an engine failure; the image, when known, for IMAGE_NOT_FOUND. */
  private engineError(e: unknown, doing: string, image?: string): WarmpoolError {
    if (!(e instanceof EngineError)) return isWarmpoolError(e) ? e : new WarmpoolError('ENGINE_ERROR', `could not ${doing}: ${errorMessage(e)}`, { cause: e });
    if (e.code === 'IMAGE_NOT_FOUND' && image) {
      return new WarmpoolError('IMAGE_NOT_FOUND', `image ${image} is not on this Docker Engine, and warmpool never pulls`, {
        hint: `build it with \`npm run images\` (warmpool/node:20, warmpool/standin:latest), \`docker build -t ${image} <dir>\`, or load it with \`docker load -i <file>.tar\``,
        cause: e,
      });
    }
    if (e.code === 'ENGINE_UNREACHABLE') return new WarmpoolError('ENGINE_UNREACHABLE', `${e.reason} while trying to ${doing}`, { hint: e.hint, cause: e });
    return new WarmpoolError(e.code, `Docker Engine could not ${doing}: ${e.detail}${e.status ? ` (HTTP ${e.status}, ${e.call})` : ` (${e.call})`}`, {
      hint: e.hint,
      cause: e,
    });
  }
}

function statusOf(e: unknown): number | undefined {
  return e instanceof EngineError ? e.status : undefined;
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
