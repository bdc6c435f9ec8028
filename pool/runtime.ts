// The seam between the pool and whatever runs instances. Implementations: runtimes/process.ts
// (local child processes, the embedded default), runtimes/docker.ts (a Docker Engine) and
// runtimes/swarm.ts (a Docker Swarm: one single-replica service per instance).
// Only runtime files touch engines; the pool sees InstanceRecords.

import type { AppConfig, RuntimeKind } from '../core/config.js';

/** What the pool asks a runtime to start. */
export interface InstanceSpec {
  app: string;
  /** Short random id, unique within the deployment; also part of labels and names. */
  instanceId: string;
  /** Extra environment for this instance (its secret, base URL, ...), merged over app.env. */
  env: Record<string, string>;
}

/** A claim persisted on the engine, so a restarted warmpool knows which instances are taken. */
export interface ClaimMark {
  session: string;
  at: number;
}

/** What a runtime knows of one instance: rebuilt from the engine on every list(). */
export interface InstanceRecord {
  instanceId: string;
  app: string;
  deployment: string;
  /** Engine handle: container id, service id (swarm), or pid for processes. */
  runtimeId: string;
  /** Where the proxy reaches the app: always on loopback or a host the operator configured. */
  host: string;
  port: number;
  running: boolean;
  createdAt: number;
  /** The instance's full environment as created (holds the secret the proxy injects). */
  env: Record<string, string>;
  claim?: ClaimMark;
}

export interface Runtime {
  readonly kind: RuntimeKind;
  /**
   * Several warmpool processes may hold the same instances (swarm). markClaimed is then a
   * compare-and-swap on the engine that throws CLAIM_CONFLICT when another process claimed the
   * instance first, and the fleet awaits it before handing the instance out.
   */
  readonly sharedClaims?: boolean;
  /** Creates and starts one instance; resolves once the engine reports it running (not yet ready). */
  create(app: AppConfig, spec: InstanceSpec): Promise<InstanceRecord>;
  /** Stops and removes an instance. Idempotent: an instance already gone is not an error. */
  remove(instanceId: string): Promise<void>;
  /** Every instance of this deployment, found by label, running or not. */
  list(): Promise<InstanceRecord[]>;
  /**
   * The instance finished warming (it passed its readiness check) and now idles until claimed: it may
   * run at full CPU weight from here on (docker: its warming weight raised to 1024), so its student's
   * first requests never wait on an engine call. Optional; markClaimed does it too when this failed.
   */
  serving?(instanceId: string): Promise<void>;
  /** Persists a claim on the engine (docker: container rename; swarm: service labels, compare-and-swap; process: state file). */
  markClaimed(instanceId: string, claim: ClaimMark): Promise<void>;
  /** Calls onLine for each line the instance printed (stdout and stderr), past and future. Returns a stop function. */
  output(instanceId: string, onLine: (line: string) => void): () => void;
  /**
   * Calls onExit when an instance of this deployment stops by itself. Returns a stop function.
   * onEngineBack (optional for a runtime to call): the engine answers again after its watch broke (an
   * engine restart), so work backing off from ENGINE_UNREACHABLE may try at once.
   */
  watch(onExit: (instanceId: string, detail: string) => void, onEngineBack?: () => void): () => void;
  /** Releases engine connections and watchers (does not remove instances). */
  close(): Promise<void>;
}

/** Label keys shared by every runtime (docker labels, process state files). */
export const LABEL = {
  app: 'warmpool.app',
  instance: 'warmpool.instance',
  deployment: 'warmpool.deployment',
  port: 'warmpool.port',
  created: 'warmpool.created',
} as const;
