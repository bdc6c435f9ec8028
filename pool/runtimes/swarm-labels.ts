// Pure translations between warmpool instances and Swarm services: the service spec, its labels, the
// claim and removal marks written by compare-and-swap, and what a service and its task say about an
// instance. No engine here, so every rule is tested table-style in test/swarm-labels.test.ts.

import { createHash } from 'node:crypto';
import type { AppConfig } from '../../core/config.js';
import { LABEL, type ClaimMark, type InstanceRecord } from '../runtime.js';
import { envList, parseEnv } from './docker-labels.js';
import type { ServiceSpec, TaskInfo, TaskState } from './engine-types.js';

/** Service labels beyond the ones every runtime uses (LABEL). */
export const SWARM_LABEL = {
  /** The warmpool replica that created the service. */
  replica: 'warmpool.replica',
  /** Overlay mode: the network whose task address warmpool dials. Absent: host networking. */
  network: 'warmpool.network',
  /** A claim: the session, its time (ms) and the replica that recorded it. Written only by compare-and-swap. */
  claimSession: 'warmpool.claim.session',
  claimAt: 'warmpool.claim.at',
  claimReplica: 'warmpool.claim.replica',
  /** The replica removing an unclaimed service: written by compare-and-swap before the delete, so no claim can land in between. */
  removing: 'warmpool.removing',
} as const;

/** Swarm's rule for service names (swarmkit validateAnnotations: a DNS label, at most 63 characters). */
export const SERVICE_NAME_RE = /^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$/;
const MAX_NAME = 63;
/** SIGTERM to SIGKILL when a service is removed: 2 s, in ns. */
export const STOP_GRACE_NS = 2_000_000_000;

/** A claim as recorded on a service: the mark and who recorded it. */
export interface SwarmClaim extends ClaimMark {
  replica: string;
}

/**
 * `warmpool-<deployment>-<app>-<instanceId>`, readable in `docker service ls`; when that is longer than
 * a service name may be, `warmpool-<hash of deployment and app>-<instanceId>`. Labels stay the truth.
 */
export function serviceName(deployment: string, app: string, instanceId: string): string {
  if (!/^[a-z0-9]+$/i.test(instanceId)) throw new RangeError(`instance id must be letters and digits, got ${JSON.stringify(instanceId)}`);
  const full = `warmpool-${deployment}-${app}-${instanceId}`;
  if (full.length <= MAX_NAME && SERVICE_NAME_RE.test(full)) return full;
  const hash = createHash('sha256').update(`${deployment}\n${app}`).digest('hex').slice(0, 12);
  const short = `warmpool-${hash}-${instanceId}`;
  if (short.length > MAX_NAME) throw new RangeError(`instance id ${instanceId} is too long for a service name`);
  return short;
}

export interface ServiceLabelInput {
  deployment: string;
  app: string;
  instanceId: string;
  /** Host networking: the allocated host port; overlay: the app's port. */
  port: number;
  createdAt: number;
  replica: string;
  /** Overlay mode: the network's name. */
  network?: string;
}

/** Labels of a new instance's service (and of its task's container, for `docker ps`). */
export function serviceLabels(p: ServiceLabelInput): Record<string, string> {
  const labels: Record<string, string> = {
    [LABEL.app]: p.app,
    [LABEL.instance]: p.instanceId,
    [LABEL.deployment]: p.deployment,
    [LABEL.port]: String(p.port),
    [LABEL.created]: String(p.createdAt),
    [SWARM_LABEL.replica]: p.replica,
  };
  if (p.network) labels[SWARM_LABEL.network] = p.network;
  return labels;
}

/** The labels a task's container carries: the instance's, without the ones that change after creation. */
export function containerLabels(service: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of [LABEL.app, LABEL.instance, LABEL.deployment, LABEL.port, LABEL.created, SWARM_LABEL.replica]) {
    if (service[k] !== undefined) out[k] = service[k]!;
  }
  return out;
}

/**
 * The spec of one instance's service: one replica, restart policy none (a restarted task has lost its
 * executed notebook: the pool replaces it instead), limits and reservations, placement, and either host
 * networking (the app binds the allocated port on 127.0.0.1, from env PORT/HOST) or an overlay network
 * with no virtual IP (dnsrr: warmpool dials the task's own address, and no IPVS drops an idle socket).
 */
export function serviceSpec(app: AppConfig, p: { name: string; labels: Record<string, string>; env: Record<string, string> }): ServiceSpec {
  if (!app.image) throw new RangeError(`app ${app.name}: no image`);
  const container: ServiceSpec['TaskTemplate']['ContainerSpec'] = {
    Image: app.image,
    Env: envList(p.env),
    Labels: containerLabels(p.labels),
    // A removed instance's session is over: SIGKILL soon after SIGTERM (Docker's 10 s default holds its port and memory).
    StopGracePeriod: STOP_GRACE_NS,
  };
  if (app.args) container.Args = [...app.args];
  const spec: ServiceSpec = {
    Name: p.name,
    Labels: { ...p.labels },
    TaskTemplate: {
      ContainerSpec: container,
      RestartPolicy: { Condition: 'none', MaxAttempts: 0 },
      Networks: [{ Target: app.swarm?.network ?? 'host' }],
    },
    Mode: { Replicated: { Replicas: 1 } },
  };
  const limits = resources(app.limits.cpus, app.limits.memoryBytes);
  const reservations = resources(app.swarm?.reservations.cpus, app.swarm?.reservations.memoryBytes);
  if (limits || reservations) {
    spec.TaskTemplate.Resources = {};
    if (limits) spec.TaskTemplate.Resources.Limits = limits;
    if (reservations) spec.TaskTemplate.Resources.Reservations = reservations;
  }
  const constraints = app.swarm?.constraints ?? [];
  const spread = app.swarm?.spread ?? [];
  if (constraints.length || spread.length) {
    spec.TaskTemplate.Placement = {};
    if (constraints.length) spec.TaskTemplate.Placement.Constraints = [...constraints];
    if (spread.length) spec.TaskTemplate.Placement.Preferences = spread.map((d) => ({ Spread: { SpreadDescriptor: d } }));
  }
  if (app.swarm?.network) spec.EndpointSpec = { Mode: 'dnsrr' };
  return spec;
}

function resources(cpus: number | undefined, memoryBytes: number | undefined): { NanoCPUs?: number; MemoryBytes?: number } | undefined {
  if (cpus === undefined && memoryBytes === undefined) return undefined;
  const r: { NanoCPUs?: number; MemoryBytes?: number } = {};
  if (cpus !== undefined) r.NanoCPUs = Math.round(cpus * 1e9);
  if (memoryBytes !== undefined) r.MemoryBytes = memoryBytes;
  return r;
}

/**
 * The spec as read, with only its labels changed: what a compare-and-swap update sends back. The task
 * template is never touched, so the running task is not restarted (swarmkit's IsTaskDirty compares
 * Spec.Task and Spec.Endpoint only).
 */
export function withLabels(spec: ServiceSpec, set: Record<string, string>, drop: readonly string[] = []): ServiceSpec {
  const labels = { ...(spec.Labels ?? {}) };
  for (const k of drop) delete labels[k];
  Object.assign(labels, set);
  return { ...spec, Labels: labels };
}

/** The spec with a claim recorded (replacing none: callers check there is none first). */
export function withClaim(spec: ServiceSpec, claim: ClaimMark, replica: string): ServiceSpec {
  if (!Number.isSafeInteger(claim.at) || claim.at < 0) throw new RangeError(`claim time must be a non-negative integer of ms, got ${claim.at}`);
  if (claim.session === '') throw new RangeError('claim session must not be empty');
  return withLabels(spec, { [SWARM_LABEL.claimSession]: claim.session, [SWARM_LABEL.claimAt]: String(claim.at), [SWARM_LABEL.claimReplica]: replica });
}

/** The spec with a removal mark: no claim can land on it after this version. */
export function withRemoving(spec: ServiceSpec, replica: string): ServiceSpec {
  return withLabels(spec, { [SWARM_LABEL.removing]: replica });
}

/** The claim a service's labels record; undefined when none, or when the labels are not one warmpool wrote. */
export function parseClaim(labels: Record<string, string> | null | undefined): SwarmClaim | undefined {
  const session = labels?.[SWARM_LABEL.claimSession];
  const at = labels?.[SWARM_LABEL.claimAt];
  const replica = labels?.[SWARM_LABEL.claimReplica];
  if (!session || !at || !replica || !/^\d{1,16}$/.test(at)) return undefined;
  return { session, at: Number(at), replica };
}

/** Where a task is in its life, as the runtime decides on it. */
export type TaskPhase =
  | { phase: 'starting'; state: TaskState | 'none' /** Set while the scheduler finds no node: its reason. */; unschedulable?: string }
  | { phase: 'running'; state: 'running' }
  | { phase: 'ended'; state: TaskState; detail: string; imageMissing: boolean; exitCode?: number };

const STARTING: ReadonlySet<string> = new Set(['new', 'allocated', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting']);

/** The newest of a service's tasks (with restart policy none there is one; history may keep more). */
export function latestTask<T extends Pick<TaskInfo, 'CreatedAt' | 'Version'>>(tasks: readonly T[]): T | undefined {
  let best: T | undefined;
  for (const t of tasks) {
    if (!best) {
      best = t;
      continue;
    }
    const a = Date.parse(t.CreatedAt) || 0;
    const b = Date.parse(best.CreatedAt) || 0;
    if (a > b || (a === b && (t.Version?.Index ?? 0) > (best.Version?.Index ?? 0))) best = t;
  }
  return best;
}

/** What a task's state means for its instance. No task yet: starting (the orchestrator makes it right after create). */
export function taskPhase(task: Pick<TaskInfo, 'Status' | 'DesiredState'> | undefined): TaskPhase {
  if (!task) return { phase: 'starting', state: 'none' };
  const state = task.Status?.State;
  const err = task.Status?.Err?.trim();
  const code = task.Status?.ContainerStatus?.ExitCode;
  const stopping = task.DesiredState !== undefined && task.DesiredState !== 'running';
  if (state === 'running' && !stopping) return { phase: 'running', state };
  if (STARTING.has(state) && !stopping) {
    const p: TaskPhase = { phase: 'starting', state };
    if (state === 'pending' && err && /no suitable node/i.test(err)) p.unschedulable = err;
    return p;
  }
  const imageMissing = !!err && /no such image|pull access denied|manifest unknown|not found: manifest/i.test(err);
  let detail: string;
  switch (state) {
    case 'complete':
      detail = `task exited with code ${code ?? 0}`;
      break;
    case 'failed':
      detail = `task failed${err ? `: ${err}` : ''}${code ? ` (exit code ${code})` : ''}`;
      break;
    case 'rejected':
      detail = `task rejected by its node${err ? `: ${err}` : ''}`;
      break;
    case 'orphaned':
      detail = 'task orphaned: its node has been unreachable too long';
      break;
    case 'remove':
      detail = 'task being removed';
      break;
    case 'shutdown':
      detail = 'task shut down';
      break;
    default:
      detail = `task ${state ?? 'in an unknown state'} with desired state ${task.DesiredState}`;
  }
  const out: TaskPhase = { phase: 'ended', state: state ?? 'shutdown', detail, imageMissing };
  if (typeof code === 'number' && (state === 'failed' || state === 'complete')) out.exitCode = code;
  return out;
}

/** The parts of a service (inspect or list entry) this module reads; optional because a broken one is skipped, not fatal. */
export interface ServiceLike {
  ID: string;
  Version?: { Index: number };
  Spec?: {
    Name?: string;
    Labels?: Record<string, string> | null;
    TaskTemplate?: { ContainerSpec?: { Env?: string[] | null } | null } | null;
  } | null;
}

export interface ServiceFacts {
  record: InstanceRecord;
  /** The service's name. */
  name: string;
  version: number;
  /** The replica that created it. */
  replica: string;
  /** Overlay mode: the network's name; undefined: host networking. */
  network?: string;
  claim?: SwarmClaim;
  /** The replica removing it, when one marked it so. */
  removing?: string;
  task: TaskPhase;
}

/**
 * Reads one service and its newest task. Host networking: the app listens on 127.0.0.1 at the port
 * label. Overlay: at the port label on the task's own address on that network ('' until it runs).
 */
export function serviceFacts(
  s: ServiceLike,
  task: Pick<TaskInfo, 'Status' | 'DesiredState' | 'NetworksAttachments'> | undefined,
  onSkip?: (reason: string) => void,
): ServiceFacts | undefined {
  const id = typeof s?.ID === 'string' ? s.ID : '';
  const skip = (why: string): undefined => {
    onSkip?.(`service ${id.slice(0, 12) || '(no id)'}: ${why}`);
    return undefined;
  };
  if (!id) return skip('no ID');
  const labels = s.Spec?.Labels ?? {};
  const app = labels[LABEL.app];
  const instanceId = labels[LABEL.instance];
  const deployment = labels[LABEL.deployment];
  const replica = labels[SWARM_LABEL.replica];
  for (const [key, value] of [
    [LABEL.app, app],
    [LABEL.instance, instanceId],
    [LABEL.deployment, deployment],
    [SWARM_LABEL.replica, replica],
  ] as const) {
    if (typeof value !== 'string' || value === '') return skip(`label ${key} is missing or empty`);
  }
  const portText = labels[LABEL.port];
  const createdText = labels[LABEL.created];
  if (typeof portText !== 'string' || !/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535)
    return skip(`label ${LABEL.port} is ${JSON.stringify(portText)}, expected a port number`);
  if (typeof createdText !== 'string' || !/^\d{1,16}$/.test(createdText))
    return skip(`label ${LABEL.created} is ${JSON.stringify(createdText)}, expected ms since the epoch`);
  const network = labels[SWARM_LABEL.network] || undefined;
  const phase = taskPhase(task);
  const host = network ? (taskAddress(task, network) ?? '') : '127.0.0.1';
  const claim = parseClaim(labels);
  const record: InstanceRecord = {
    instanceId: instanceId!,
    app: app!,
    deployment: deployment!,
    runtimeId: id,
    host,
    port: Number(portText),
    running: phase.phase === 'running' && host !== '',
    createdAt: Number(createdText),
    env: parseEnv(s.Spec?.TaskTemplate?.ContainerSpec?.Env),
  };
  if (claim) record.claim = { session: claim.session, at: claim.at };
  const facts: ServiceFacts = { record, name: s.Spec?.Name ?? '', version: s.Version?.Index ?? 0, replica: replica!, task: phase };
  if (network) facts.network = network;
  if (claim) facts.claim = claim;
  const removing = labels[SWARM_LABEL.removing];
  if (removing) facts.removing = removing;
  return facts;
}

/** A task's own address on a network ("10.0.1.5/24" → "10.0.1.5"), by the network's name or id. */
export function taskAddress(task: Pick<TaskInfo, 'NetworksAttachments'> | undefined, network: string): string | undefined {
  for (const a of task?.NetworksAttachments ?? []) {
    if (a.Network?.Spec?.Name !== network && a.Network?.ID !== network) continue;
    const addr = a.Addresses?.[0];
    if (addr) return addr.replace(/\/\d+$/, '');
  }
  return undefined;
}

/**
 * Why an instance this replica holds is no longer its to hand out, or undefined while it is: its service
 * is gone, another replica claimed or is removing it, or its task ended (restart policy none: for good).
 */
export function lostReason(f: ServiceFacts | undefined, replica: string, oom = false): string | undefined {
  if (!f) return 'service removed outside warmpool';
  if (f.claim && f.claim.replica !== replica) return `claimed by warmpool replica ${f.claim.replica}`;
  if (f.removing && f.removing !== replica) return `being removed by warmpool replica ${f.removing}`;
  if (f.task.phase === 'ended') return `${f.task.detail}${oom ? ' (out of memory)' : ''}`;
  return undefined;
}
