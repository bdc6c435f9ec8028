// Runs instances on a Docker Swarm: one service per instance (one replica, restart policy none),
// labelled like containers. Claims are service labels written by compare-and-swap (the update carries
// the Version.Index read), so several warmpool processes on one swarm never hand out one instance
// twice. Never pulls; never touches a task template after creation.

import type { AppConfig } from '../../core/config.js';
import { systemClock, type Clock, type TimerHandle } from '../../core/clock.js';
import { WarmpoolError, errorMessage, isWarmpoolError } from '../../core/errors.js';
import type { PortAllocator } from '../ports.js';
import { LABEL, type ClaimMark, type InstanceRecord, type InstanceSpec, type Runtime } from '../runtime.js';
import { deploymentFilter } from './docker-labels.js';
import { Engine, EngineError, isOutOfSequence, type EngineEvent, type ServiceInfo, type TaskInfo } from './engine.js';
import {
  SWARM_LABEL,
  latestTask,
  lostReason,
  parseClaim,
  serviceFacts,
  serviceLabels,
  serviceName,
  serviceSpec,
  taskPhase,
  withClaim,
  withRemoving,
  type ServiceFacts,
} from './swarm-labels.js';
import type { Log } from '../../core/log.js';
import { followOutput } from './follow-output.js';
import { followEvents } from './event-stream.js';

export interface SwarmRuntimeOptions {
  /** Names the warmpool deployment whose services this runtime owns (label warmpool.deployment). */
  deployment: string;
  /** Names this warmpool process among those sharing the swarm (label warmpool.replica; see config swarm.replica). */
  replica: string;
  /** Host ports for host-network instances. */
  ports: PortAllocator;
  /** Engine client (a manager node); default: a new Engine() on DOCKER_HOST, else the local socket. */
  engine?: Engine;
  clock?: Clock;
  log?: Log;
  /** Between task-list reads while a new task starts, ms (default 200). */
  pollMs?: number;
  /** watch(): the task list is read this often besides on events (a task's death on another node sends none here), ms (default 5000). */
  relistMs?: number;
  /** A task no node takes for this long fails its create with NO_SUITABLE_NODE, ms (default 60 s). */
  schedulingTimeoutMs?: number;
  /** A task not running this long after its create fails it, ms (default 5 min). */
  startTimeoutMs?: number;
}

const OPTION_KEYS = ['deployment', 'replica', 'ports', 'engine', 'clock', 'log', 'pollMs', 'relistMs', 'schedulingTimeoutMs', 'startTimeoutMs'];
const NAME_RE = /^[a-z0-9][a-z0-9-]{0,39}$/;
/** Compare-and-swap attempts before giving up on a service whose version keeps moving. */
const CAS_ATTEMPTS = 20;
/** How many instance ids are remembered in the removing/reported sets. */
const REMEMBER = 4096;
/** Service ids per GET /tasks filter (the query string stays short). */
const TASK_BATCH = 100;

/** What this process knows of a service; rebuilt by list() and by label lookups, never trusted over the engine. */
interface Known {
  serviceId: string;
  name: string;
  /** Host-network instances: the allocator port this instance holds. */
  hostPort?: number;
}

/** Counters for operators and tests: how creates and claims went on the swarm. */
export interface SwarmStats {
  creates: number;
  /** ms from POST /services/create to the task running, per create that got there. */
  createMs: number[];
  /** Claims recorded. */
  claims: number;
  /** Updates refused "out of sequence" (re-read and decided again): claims and removal marks. */
  casRetries: number;
  /** Claims lost to another replica (CLAIM_CONFLICT thrown). */
  claimConflicts: number;
}

export class SwarmRuntime implements Runtime {
  readonly kind = 'swarm' as const;
  readonly sharedClaims = true;
  readonly deployment: string;
  readonly replica: string;
  readonly stats: SwarmStats = { creates: 0, createMs: [], claims: 0, casRetries: 0, claimConflicts: 0 };
  private readonly engine: Engine;
  private readonly ownEngine: boolean;
  private readonly ports: PortAllocator;
  private readonly clock: Clock;
  private readonly log: Log;
  private readonly pollMs: number;
  private readonly relistMs: number;
  private readonly schedulingTimeoutMs: number;
  private readonly startTimeoutMs: number;
  private readonly known = new Map<string, Known>();
  /** Instances whose create is still waiting for its task: watch() leaves them to create(). */
  private readonly creating = new Set<string>();
  /** Instances we are removing ourselves: not exits "by themselves"; a create in flight gives up. */
  private readonly removing = new Set<string>();
  private readonly stoppers = new Set<() => void>();
  private closed = false;

  constructor(opts: SwarmRuntimeOptions) {
    if (opts === null || typeof opts !== 'object')
      throw new TypeError('SwarmRuntime: expected an options object { deployment, replica, ports, engine?, clock?, log?, ... }');
    for (const k of Object.keys(opts)) {
      if (!OPTION_KEYS.includes(k)) throw new TypeError(`SwarmRuntime: unknown option ${k}; allowed: ${OPTION_KEYS.join(', ')}`);
    }
    for (const k of ['deployment', 'replica'] as const) {
      if (typeof opts[k] !== 'string' || !NAME_RE.test(opts[k]))
        throw new TypeError(`SwarmRuntime: ${k} is ${JSON.stringify(opts[k])}; expected lower-case letters, digits and dashes (at most 40)`);
    }
    if (!opts.ports || typeof opts.ports.allocate !== 'function') throw new TypeError('SwarmRuntime: ports must be a PortAllocator');
    for (const k of ['pollMs', 'relistMs', 'schedulingTimeoutMs', 'startTimeoutMs'] as const) {
      const v = opts[k];
      if (v !== undefined && (!Number.isFinite(v) || v <= 0)) throw new TypeError(`SwarmRuntime: ${k} is ${v}; expected ms > 0`);
    }
    this.deployment = opts.deployment;
    this.replica = opts.replica;
    this.ports = opts.ports;
    this.ownEngine = opts.engine === undefined;
    this.engine = opts.engine ?? new Engine();
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? ((msg) => console.error(`[warmpool swarm] ${msg}`));
    this.pollMs = opts.pollMs ?? 200;
    this.relistMs = opts.relistMs ?? 5000;
    this.schedulingTimeoutMs = opts.schedulingTimeoutMs ?? 60_000;
    this.startTimeoutMs = opts.startTimeoutMs ?? 300_000;
  }

  async create(app: AppConfig, spec: InstanceSpec): Promise<InstanceRecord> {
    if (!app.image) throw new WarmpoolError('CONFIG_INVALID', `app ${app.name}: runtime swarm needs an image`, { hint: 'set image: in the app config' });
    const overlay = app.swarm?.network;
    if (overlay && !(app.port > 0))
      throw new WarmpoolError('CONFIG_INVALID', `app ${app.name}: an app on overlay network ${overlay} needs the port it listens on (port: 1-65535)`);
    // Host networking: instances share their node's ports, so each gets its own and binds loopback.
    // Overlay: the app listens on app.port in its own namespace, on the task's own address.
    const port = overlay ? app.port : await this.ports.allocate();
    const env = overlay ? { PORT: String(port), HOST: '0.0.0.0', ...app.env, ...spec.env } : { ...app.env, ...spec.env, PORT: String(port), HOST: '127.0.0.1' };
    const id = spec.instanceId;
    const name = serviceName(this.deployment, app.name, id);
    const labels = serviceLabels({
      deployment: this.deployment,
      app: app.name,
      instanceId: id,
      port,
      createdAt: this.clock.now(),
      replica: this.replica,
      network: overlay,
    });
    this.creating.add(id);
    try {
      const t0 = Date.now();
      let serviceId: string;
      try {
        serviceId = (await this.engine.createService(serviceSpec(app, { name, labels, env }))).ID;
      } catch (e) {
        if (!overlay) this.ports.release(port);
        throw this.engineError(e, `create a service for app ${app.name}`);
      }
      this.stats.creates++;
      // From here on the service exists: any failure removes it, so nothing is orphaned.
      this.known.set(id, { serviceId, name, hostPort: overlay ? undefined : port });
      try {
        const rec = await this.waitRunning(app, id, serviceId, name);
        this.stats.createMs.push(Date.now() - t0);
        return rec;
      } catch (e) {
        await this.deleteService(id, serviceId).catch((err) => this.log(`could not remove failed service ${name}: ${errorMessage(err)}`));
        throw e;
      }
    } finally {
      this.creating.delete(id);
    }
  }

  /** Reads the service's task until it runs; a task that ends, is rejected or finds no node becomes an error that says why. */
  private async waitRunning(app: AppConfig, id: string, serviceId: string, name: string): Promise<InstanceRecord> {
    const start = this.clock.now();
    let unschedulableSince: number | undefined;
    for (;;) {
      if (this.removing.has(id) || this.closed)
        throw new WarmpoolError('INSTANCE_GONE', `instance ${id} of app ${app.name} was removed while its task was starting`);
      let tasks: TaskInfo[];
      try {
        tasks = await this.engine.listTasks({ filters: { service: [serviceId] } });
      } catch (e) {
        if (statusOf(e) === 404) throw new WarmpoolError('INSTANCE_GONE', `service ${name} was removed while its task was starting`);
        throw this.engineError(e, `read the task of service ${name}`);
      }
      const task = latestTask(tasks);
      const phase = taskPhase(task);
      if (phase.phase === 'running') {
        let svc: ServiceInfo;
        try {
          svc = await this.engine.inspectService(serviceId);
        } catch (e) {
          if (statusOf(e) === 404) throw new WarmpoolError('INSTANCE_GONE', `service ${name} was removed while its task was starting`);
          throw this.engineError(e, `inspect service ${name}`);
        }
        const f = serviceFacts(svc, task, (why) => this.log(why));
        if (!f) throw new WarmpoolError('ENGINE_ERROR', `service ${name} runs but cannot be read back (see the log line above)`);
        if (f.record.running) return f.record;
        // Overlay: running, but no address on the network yet; read again.
      } else if (phase.phase === 'ended') {
        if (phase.imageMissing) {
          throw new WarmpoolError(
            'IMAGE_NOT_FOUND',
            `image ${app.image} is not on the node that took instance ${id} of app ${app.name} (${phase.detail}), and warmpool never pulls`,
            {
              hint: `every node that may run it needs the image: build or \`docker load\` it on each (npm run images builds warmpool/standin:latest), or pin the app to nodes that have it with swarm.constraints`,
            },
          );
        }
        const tail = phase.state === 'failed' || phase.state === 'complete' ? await this.tail(serviceId) : '';
        throw new WarmpoolError(
          phase.state === 'failed' || phase.state === 'complete' ? 'INSTANCE_EXITED' : 'ENGINE_ERROR',
          `instance ${id} of app ${app.name} (${app.image}): ${phase.detail}${tail ? `; its last output:\n${tail}` : ''}`,
          {
            hint:
              phase.state === 'rejected'
                ? 'the node refused the task: `docker service ps --no-trunc <service>` shows why'
                : 'run the image by hand (docker run --rm <image>) to see why',
          },
        );
      } else if (phase.unschedulable) {
        unschedulableSince ??= this.clock.now();
        if (this.clock.now() - unschedulableSince >= this.schedulingTimeoutMs) {
          throw new WarmpoolError(
            'NO_SUITABLE_NODE',
            `no swarm node can take instance ${id} of app ${app.name}: ${phase.unschedulable} (for ${this.schedulingTimeoutMs} ms)`,
            {
              hint: 'check swarm.constraints and swarm.reservations against `docker node ls` and `docker node inspect <node>` (labels, free CPU and memory), or add nodes',
            },
          );
        }
      } else unschedulableSince = undefined;
      if (this.clock.now() - start >= this.startTimeoutMs) {
        throw new WarmpoolError('ENGINE_ERROR', `the task of instance ${id} of app ${app.name} is still ${phase.state} after ${this.startTimeoutMs} ms`, {
          hint: '`docker service ps --no-trunc <service>` shows where it is stuck',
        });
      }
      await this.clock.sleep(this.pollMs);
    }
  }

  /**
   * Removes an instance's service. One claimed by another replica is left alone (its visitor's); an
   * unclaimed one is first marked removing by compare-and-swap, so a claim cannot land between our
   * look and the delete. Idempotent.
   */
  async remove(instanceId: string): Promise<void> {
    this.remember(this.removing, instanceId);
    const k = await this.find(instanceId);
    if (!k) return;
    for (let attempt = 1; ; attempt++) {
      let svc: ServiceInfo;
      try {
        svc = await this.engine.inspectService(k.serviceId);
      } catch (e) {
        if (statusOf(e) === 404) return this.forget(instanceId);
        throw this.engineError(e, `inspect service ${k.name}`);
      }
      const claim = parseClaim(svc.Spec.Labels);
      if (claim && claim.replica !== this.replica) {
        this.log(`instance ${instanceId} is claimed by warmpool replica ${claim.replica}: left to it`, { instance: instanceId });
        return this.forget(instanceId);
      }
      if (!claim && !svc.Spec.Labels?.[SWARM_LABEL.removing] && !this.creating.has(instanceId)) {
        try {
          await this.engine.updateService(svc.ID, svc.Version.Index, withRemoving(svc.Spec, this.replica));
        } catch (e) {
          if (isOutOfSequence(e) && attempt < CAS_ATTEMPTS) {
            this.stats.casRetries++;
            continue;
          }
          if (statusOf(e) === 404) return this.forget(instanceId);
          throw this.engineError(e, `mark service ${k.name} for removal`);
        }
      }
      await this.deleteService(instanceId, k.serviceId);
      return;
    }
  }

  async list(): Promise<InstanceRecord[]> {
    const all = await this.read();
    const out: InstanceRecord[] = [];
    for (const f of all) {
      // Another replica's: its sessions, and its creates still under way, are its own business.
      if (f.claim && f.claim.replica !== this.replica) continue;
      if (!f.claim && f.replica !== this.replica && f.task.phase === 'starting') continue;
      const rec = { ...f.record };
      // Being removed (by anyone): not an instance to adopt; reported stopped, so the pool removes it.
      if (f.removing) rec.running = false;
      this.learn(f);
      out.push(rec);
    }
    return out.sort((a, b) => a.createdAt - b.createdAt || (a.instanceId < b.instanceId ? -1 : 1));
  }

  /**
   * Records a claim on the service's labels if, at the version read, no claim is there. "Out of
   * sequence" means the service changed since: re-read and decide again. Throws CLAIM_CONFLICT when
   * another claim is there (another replica, or another session), INSTANCE_GONE when the service is
   * gone or being removed. The same claim already there is success (a retry after a lost answer).
   */
  async markClaimed(instanceId: string, claim: ClaimMark): Promise<void> {
    const k = await this.find(instanceId);
    if (!k) throw new WarmpoolError('INSTANCE_GONE', `instance ${instanceId} has no service in deployment ${this.deployment}`);
    for (let attempt = 1; ; attempt++) {
      let svc: ServiceInfo;
      try {
        svc = await this.engine.inspectService(k.serviceId);
      } catch (e) {
        if (statusOf(e) === 404) {
          this.forget(instanceId);
          throw new WarmpoolError('INSTANCE_GONE', `instance ${instanceId}: service ${k.name} is gone`);
        }
        throw this.engineError(e, `inspect service ${k.name}`);
      }
      const there = parseClaim(svc.Spec.Labels);
      if (there) {
        if (there.session === claim.session && there.replica === this.replica) return;
        this.stats.claimConflicts++;
        throw new WarmpoolError(
          'CLAIM_CONFLICT',
          `instance ${instanceId} was claimed first by warmpool replica ${there.replica}${there.replica === this.replica ? ' for another session' : ''}`,
        );
      }
      const removingBy = svc.Spec.Labels?.[SWARM_LABEL.removing];
      if (removingBy) throw new WarmpoolError('INSTANCE_GONE', `instance ${instanceId} is being removed by warmpool replica ${removingBy}`);
      try {
        await this.engine.updateService(svc.ID, svc.Version.Index, withClaim(svc.Spec, claim, this.replica));
        this.stats.claims++;
        return;
      } catch (e) {
        if (isOutOfSequence(e) && attempt < CAS_ATTEMPTS) {
          this.stats.casRetries++;
          continue;
        }
        if (statusOf(e) === 404) {
          this.forget(instanceId);
          throw new WarmpoolError('INSTANCE_GONE', `instance ${instanceId}: service ${k.name} is gone`);
        }
        throw this.engineError(e, `record the claim of instance ${instanceId} on service ${k.name}`);
      }
    }
  }

  output(instanceId: string, onLine: (line: string) => void): () => void {
    // Service logs come through the manager from whichever node runs the task.
    return followOutput({
      instanceId,
      stoppers: this.stoppers,
      clock: this.clock,
      kind: 'service',
      locate: async () => (await this.find(instanceId))?.serviceId,
      open: (id, signal, onData) => this.engine.followServiceLogs(id, { signal }, onData),
      onLine,
      failed: (e, opening) =>
        this.log(
          `output of instance ${instanceId}: ${errorMessage(opening ? this.engineError(e, 'follow service logs') : e)}`,
          { instance: instanceId },
          'warn',
        ),
    });
  }

  /**
   * Reports instances this process holds that are no longer its to hand out: the task ended (restart
   * policy none: for good), the service was removed, or another replica claimed or is removing it. The
   * task list is the truth; events (service updates and removals; task containers dying on this node)
   * only say when to read it, and it is read after every (re)connect and every relistMs besides, since
   * a task dying on another node sends no event here.
   */
  watch(onExit: (instanceId: string, detail: string) => void, onEngineBack?: () => void): () => void {
    let stopped = false;
    let periodic: TimerHandle | undefined;
    let reading = false;
    let again = false;
    const oom = new Set<string>();
    const reported = new Set<string>();

    const report = (instanceId: string, detail: string) => {
      if (reported.has(instanceId)) return;
      this.remember(reported, instanceId);
      try {
        onExit(instanceId, detail);
      } catch (e) {
        this.log(`watch callback failed for instance ${instanceId}: ${errorMessage(e)}`, { instance: instanceId }, 'error');
      }
    };

    const check = async () => {
      if (reading) {
        again = true;
        return;
      }
      reading = true;
      try {
        do {
          again = false;
          if (stopped || this.closed) return;
          const held = [...this.known.entries()].filter(([id]) => !this.removing.has(id) && !this.creating.has(id) && !reported.has(id));
          if (held.length === 0) continue;
          const facts = new Map((await this.read(held.map(([, k]) => k.serviceId))).map((f) => [f.record.instanceId, f]));
          for (const [id] of held) {
            if (stopped || this.removing.has(id) || this.creating.has(id)) continue;
            const why = lostReason(facts.get(id), this.replica, oom.has(id));
            if (why) report(id, why);
          }
        } while (again);
      } catch (e) {
        if (!stopped) this.log(`could not read the tasks of deployment ${this.deployment}: ${errorMessage(e)}`, undefined, 'warn');
      } finally {
        reading = false;
      }
    };

    const tick = () => {
      periodic = this.clock.setTimer(this.relistMs, () => {
        void check().finally(() => {
          if (!stopped) tick();
        });
      });
    };

    const serviceIds = () => new Set([...this.known.values()].map((k) => k.serviceId));
    const stopEvents = followEvents({
      engine: this.engine,
      clock: this.clock,
      // Service events carry only the service's name and id (no labels), so no label filter here:
      // container events are matched by their labels, service events by the ids this process holds.
      query: () => ({ filters: { type: ['service', 'container'], event: ['update', 'remove', 'die', 'oom', 'destroy'] } }),
      onEvent: (ev: EngineEvent) => {
        const attrs = ev.Actor?.Attributes ?? {};
        if (ev.Type === 'container') {
          const instanceId = attrs[LABEL.instance];
          if (!instanceId || attrs[LABEL.deployment] !== this.deployment) return;
          if ((ev.Action ?? ev.status) === 'oom') this.remember(oom, instanceId);
          void check();
        } else if (ev.Type === 'service') {
          const id = ev.Actor?.ID ?? ev.id;
          if (id && serviceIds().has(id)) void check();
        }
      },
      // Whatever happened while no stream was open: read it now.
      onConnected: (reconnect) => {
        void check();
        if (reconnect) onEngineBack?.();
      },
      warn: (message) => this.log(message, undefined, 'warn'),
      connectError: (e) => this.engineError(e, 'follow events'),
      closed: () => this.closed,
    });

    const stop = () => {
      if (stopped) return;
      stopped = true;
      stopEvents();
      periodic?.cancel();
      this.stoppers.delete(stop);
    };
    this.stoppers.add(stop);
    tick();
    return stop;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const stop of [...this.stoppers]) stop();
    if (this.ownEngine) this.engine.close();
  }

  /** Services of this deployment (or the given ids) with their newest tasks, read; broken ones skipped with a log line. */
  private async read(serviceIds?: string[]): Promise<ServiceFacts[]> {
    let services: ServiceInfo[];
    try {
      services = await this.engine.listServices({ filters: { label: [deploymentFilter(this.deployment)] } });
    } catch (e) {
      throw this.engineError(e, 'list services');
    }
    if (serviceIds) {
      const want = new Set(serviceIds);
      services = services.filter((s) => want.has(s.ID));
    }
    const tasks = new Map<string, TaskInfo[]>();
    const gone = new Set<string>();
    for (let i = 0; i < services.length; i += TASK_BATCH) {
      const ids = services.slice(i, i + TASK_BATCH).map((s) => s.ID);
      for (;;) {
        const want = ids.filter((id) => !gone.has(id));
        if (want.length === 0) break;
        try {
          for (const t of await this.engine.listTasks({ filters: { service: want } })) tasks.set(t.ServiceID, [...(tasks.get(t.ServiceID) ?? []), t]);
          break;
        } catch (e) {
          // A service removed since the list makes the whole filter 404: leave it out and ask again.
          const missing = e instanceof EngineError && e.status === 404 ? /service (\S+) not found/.exec(e.detail)?.[1] : undefined;
          if (!missing || !want.includes(missing)) throw this.engineError(e, 'list tasks');
          gone.add(missing);
        }
      }
    }
    const out: ServiceFacts[] = [];
    for (const s of services) {
      if (gone.has(s.ID)) continue;
      const f = serviceFacts(s, latestTask(tasks.get(s.ID) ?? []), (why) => this.log(`skipping ${why}`));
      if (f && f.record.deployment === this.deployment) out.push(f);
    }
    return out;
  }

  /** The service of an instance: from memory, else by label (after a restart, or another replica's create). */
  private async find(instanceId: string): Promise<Known | undefined> {
    const k = this.known.get(instanceId);
    if (k) return k;
    let services: ServiceInfo[];
    try {
      services = await this.engine.listServices({ filters: { label: [deploymentFilter(this.deployment), `${LABEL.instance}=${instanceId}`] } });
    } catch (e) {
      throw this.engineError(e, `look up instance ${instanceId}`);
    }
    const s = services[0];
    if (!s) return undefined;
    const f = serviceFacts(s, undefined, (why) => this.log(`skipping ${why}`));
    if (f) return this.learn(f);
    return { serviceId: s.ID, name: s.Spec?.Name ?? s.ID };
  }

  private learn(f: ServiceFacts): Known {
    const prev = this.known.get(f.record.instanceId);
    const k: Known = { serviceId: f.record.runtimeId, name: f.name };
    if (!f.network) {
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

  /** DELETE the service; already gone is fine. The task's container goes with it, on its node. */
  private async deleteService(instanceId: string, serviceId: string): Promise<void> {
    try {
      await this.engine.removeService(serviceId);
    } catch (e) {
      if (statusOf(e) !== 404) throw this.engineError(e, `remove service ${serviceId.slice(0, 12)}`);
    }
    this.forget(instanceId);
  }

  private remember(set: Set<string>, id: string): void {
    set.delete(id);
    set.add(id);
    if (set.size > REMEMBER) set.delete(set.values().next().value!);
  }

  /** The last lines a service's task printed, for an error message. */
  private async tail(serviceId: string): Promise<string> {
    return (await this.engine.serviceLogs(serviceId, { tail: 20 }).catch(() => '')).trimEnd();
  }

  private engineError(e: unknown, doing: string): WarmpoolError {
    if (!(e instanceof EngineError)) return isWarmpoolError(e) ? e : new WarmpoolError('ENGINE_ERROR', `could not ${doing}: ${errorMessage(e)}`, { cause: e });
    if (e.code === 'ENGINE_UNREACHABLE') return new WarmpoolError('ENGINE_UNREACHABLE', `${e.reason} while trying to ${doing}`, { hint: e.hint, cause: e });
    return new WarmpoolError(e.code, `Docker Engine could not ${doing}: ${e.detail}${e.status ? ` (HTTP ${e.status}, ${e.call})` : ` (${e.call})`}`, {
      hint: e.hint,
      cause: e,
    });
  }
}

function statusOf(e: unknown): number | undefined {
  return e instanceof EngineError ? e.status : isWarmpoolError(e) && e.cause instanceof EngineError ? e.cause.status : undefined;
}
