// Pure translations between warmpool instances and Docker containers: labels, names, claim marks.
// No engine here (engine-types.ts types only), so every rule is tested table-style in test/docker-labels.test.ts.

import type { ContainerInfo, InspectInfo } from './engine-types.js';
import { LABEL, type ClaimMark, type InstanceRecord } from '../runtime.js';

/**
 * The parts of a container this module reads. Both a `docker inspect` answer and a
 * `docker ps` (list) entry fit; fields are optional because a broken container is skipped, not fatal.
 */
export interface ContainerLike {
  Id: string;
  /** inspect: "/name" */
  Name?: string;
  /** list: ["/name"] */
  Names?: string[];
  /** list */
  Labels?: Record<string, string> | null;
  Config?: { Labels?: Record<string, string> | null; Env?: string[] | null } | null;
  /** list: "running"; inspect: { Running, Status } */
  State?: string | { Running?: boolean; Status?: string; ExitCode?: number } | null;
  /** list: "Up 3 seconds", "Exited (137) 2 seconds ago" */
  Status?: string;
  HostConfig?: { NetworkMode?: string } | null;
  /** inspect: { "8080/tcp": [{ HostIp, HostPort }] }; empty while the container is stopped. */
  NetworkSettings?: { Ports?: Record<string, Array<{ HostIp?: string; HostPort?: string }> | null> | null; Networks?: unknown } | null;
  /** list */
  Ports?: Array<{ IP?: string; PrivatePort: number; PublicPort?: number; Type?: string }> | null;
}

// Both engine shapes must stay acceptable as ContainerLike (checked by the compiler, no runtime cost).
type Assignable<T extends ContainerLike> = T;
export type _InspectFits = Assignable<InspectInfo>;
export type _ListFits = Assignable<ContainerInfo>;

/** What the runtime needs beyond the record: the container name and how its port is reached. */
export interface ContainerFacts {
  record: InstanceRecord;
  /** Without the leading slash. */
  name: string;
  network: 'host' | 'bridge';
}

export const NAME_PREFIX = 'warmpool';
const CLAIM_MARK = '.claimed-';

/** Docker's rule for container names (daemon/names.go RestrictedNameChars). */
export const DOCKER_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** Labels for a new instance's container. Immutable once created; claims go into the name instead. */
export function instanceLabels(p: { deployment: string; app: string; instanceId: string; port: number; createdAt: number }): Record<string, string> {
  return {
    [LABEL.app]: p.app,
    [LABEL.instance]: p.instanceId,
    [LABEL.deployment]: p.deployment,
    [LABEL.port]: String(p.port),
    [LABEL.created]: String(p.createdAt),
  };
}

/** Label filter that selects one deployment's containers (for list and events). */
export function deploymentFilter(deployment: string): string {
  return `${LABEL.deployment}=${deployment}`;
}

/**
 * Keeps [A-Za-z0-9_-] and writes anything else as `.hh` (UTF-8 bytes, lower-case hex), so every
 * name is a legal Docker name and `.claimed-` can never appear inside a part ('c' follows '.' only here).
 */
export function encodeNamePart(s: string): string {
  let out = '';
  for (const ch of s) {
    if (/^[A-Za-z0-9_-]$/.test(ch)) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += '.' + b.toString(16).padStart(2, '0');
  }
  return out;
}

/** Inverse of encodeNamePart; undefined for text encodeNamePart cannot have written. */
export function decodeNamePart(s: string): string | undefined {
  if (!/^(?:[A-Za-z0-9_-]|\.[0-9a-f]{2})*$/.test(s)) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '.') {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(s.charCodeAt(i));
  }
  const text = Buffer.from(bytes).toString('utf8');
  return encodeNamePart(text) === s ? text : undefined;
}

/** `warmpool-<deployment>-<app>-<instanceId>`: readable in `docker ps`; the labels stay the source of truth. */
export function instanceName(deployment: string, app: string, instanceId: string): string {
  return [NAME_PREFIX, deployment, app, instanceId].map(encodeNamePart).join('-');
}

/** The name that records a claim: `<name>.claimed-<atMs>-<session>` (replaces an earlier claim). */
export function claimedName(name: string, claim: ClaimMark): string {
  if (!Number.isSafeInteger(claim.at) || claim.at < 0) throw new RangeError(`claim time must be a non-negative integer of ms, got ${claim.at}`);
  if (claim.session === '') throw new RangeError('claim session must not be empty');
  return `${parseName(name).base}${CLAIM_MARK}${claim.at}-${encodeNamePart(claim.session)}`;
}

const CLAIM_RE = /^(.+)\.claimed-(\d{1,16})-((?:[A-Za-z0-9_-]|\.[0-9a-f]{2})+)$/;

/** Splits a container name (leading slash allowed) into its base and the claim it records, if any. */
export function parseName(name: string): { base: string; claim?: ClaimMark } {
  const n = name.startsWith('/') ? name.slice(1) : name;
  const m = CLAIM_RE.exec(n);
  if (!m) return { base: n };
  const at = Number(m[2]);
  const session = decodeNamePart(m[3]!);
  if (!Number.isSafeInteger(at) || session === undefined) return { base: n };
  return { base: m[1]!, claim: { session, at } };
}

/** `KEY=VALUE` lines (Config.Env) to a map; a line without `=` (an unset variable for Docker) is left out. */
export function parseEnv(lines: readonly string[] | null | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of lines ?? []) {
    const i = line.indexOf('=');
    if (i > 0) env[line.slice(0, i)] = line.slice(i + 1);
  }
  return env;
}

export function envList(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

/** The InstanceRecord a container stands for; undefined (with onSkip told why) for a container with broken labels. */
export function recordFromContainer(c: ContainerLike, onSkip?: (reason: string) => void): InstanceRecord | undefined {
  return containerFacts(c, onSkip)?.record;
}

/**
 * Reads one container. Host networking: the app listens on the host port in label warmpool.port.
 * Bridge: warmpool.port is the container port, and the host port is its binding (0 while stopped,
 * when Docker reports no binding). A list entry carries no Config.Env: inspect for the env.
 */
export function containerFacts(c: ContainerLike, onSkip?: (reason: string) => void): ContainerFacts | undefined {
  const id = typeof c?.Id === 'string' ? c.Id : '';
  const skip = (why: string): undefined => {
    onSkip?.(`container ${id.slice(0, 12) || '(no id)'}: ${why}`);
    return undefined;
  };
  if (!id) return skip('no Id');
  const labels = c.Config?.Labels ?? c.Labels ?? {};
  const app = labels[LABEL.app];
  const instanceId = labels[LABEL.instance];
  const deployment = labels[LABEL.deployment];
  const portText = labels[LABEL.port];
  const createdText = labels[LABEL.created];
  for (const [key, value] of [
    [LABEL.app, app],
    [LABEL.instance, instanceId],
    [LABEL.deployment, deployment],
  ] as const) {
    if (typeof value !== 'string' || value === '') return skip(`label ${key} is missing or empty`);
  }
  if (typeof portText !== 'string' || !/^\d{1,5}$/.test(portText) || Number(portText) > 65535)
    return skip(`label ${LABEL.port} is ${JSON.stringify(portText)}, expected a port number`);
  if (typeof createdText !== 'string' || !/^\d{1,16}$/.test(createdText))
    return skip(`label ${LABEL.created} is ${JSON.stringify(createdText)}, expected ms since the epoch`);
  const labelPort = Number(portText);

  const rawName = c.Name ?? c.Names?.[0] ?? '';
  const name = rawName.startsWith('/') ? rawName.slice(1) : rawName;
  const { claim } = parseName(name);

  const state = c.State;
  const running = typeof state === 'string' ? state === 'running' : state?.Running === true;

  const network = c.HostConfig?.NetworkMode === 'host' ? 'host' : 'bridge';
  let port = labelPort;
  if (network === 'bridge') {
    const found = publishedPort(c, labelPort);
    if (found === undefined && running) return skip(`bridge container port ${labelPort}/tcp is not published`);
    port = found ?? 0;
  }

  const record: InstanceRecord = {
    instanceId: instanceId!,
    app: app!,
    deployment: deployment!,
    runtimeId: id,
    host: '127.0.0.1',
    port,
    running,
    createdAt: Number(createdText),
    env: parseEnv(c.Config?.Env),
  };
  if (claim) record.claim = claim;
  return { record, name, network };
}

/** The host port bound to containerPort/tcp, preferring an IPv4 binding. */
function publishedPort(c: ContainerLike, containerPort: number): number | undefined {
  const bindings = c.NetworkSettings?.Ports?.[`${containerPort}/tcp`];
  if (bindings && bindings.length > 0) {
    const b = bindings.find((x) => !x.HostIp?.includes(':')) ?? bindings[0]!;
    const p = Number(b.HostPort);
    if (Number.isInteger(p) && p > 0 && p <= 65535) return p;
  }
  const listed = c.Ports?.filter((x) => x.PrivatePort === containerPort && (x.Type ?? 'tcp') === 'tcp' && x.PublicPort);
  if (listed && listed.length > 0) return (listed.find((x) => !x.IP?.includes(':')) ?? listed[0]!).PublicPort;
  return undefined;
}

/**
 * Exits the event stream may have missed (it was down, or the engine restarted and kept no history):
 * of the instances this process knows, those whose container is no longer listed, or listed as exited
 * or dead. A container still being created or started ("created", "restarting") is not an exit.
 */
export function missedExits(known: Iterable<string>, entries: readonly ContainerLike[]): Array<{ instanceId: string; detail: string }> {
  const byInstance = new Map<string, ContainerLike>();
  for (const e of entries) {
    const id = (e.Config?.Labels ?? e.Labels)?.[LABEL.instance];
    if (id) byInstance.set(id, e);
  }
  const out: Array<{ instanceId: string; detail: string }> = [];
  for (const instanceId of known) {
    const e = byInstance.get(instanceId);
    if (!e) {
      out.push({ instanceId, detail: 'container removed outside warmpool' });
      continue;
    }
    const state = typeof e.State === 'string' ? e.State : e.State?.Status;
    if (state !== 'exited' && state !== 'dead') continue;
    const code = typeof e.State === 'object' ? e.State?.ExitCode : /^Exited \((-?\d+)\)/.exec(e.Status ?? '')?.[1];
    out.push({ instanceId, detail: `exited with code ${code ?? '?'} while the event stream was down` });
  }
  return out;
}
