// An in-memory Runtime for the pool's state-machine tests: creates succeed or fail on demand,
// output lines and exits are emitted by the test, nothing runs.

import type { AppConfig } from '../../core/config.js';
import { WarmpoolError } from '../../core/errors.js';
import type { ClaimMark, InstanceRecord, InstanceSpec, Runtime } from '../../pool/runtime.js';

export class FakeRuntime implements Runtime {
  readonly kind = 'process' as const;
  readonly instances = new Map<string, InstanceRecord>();
  readonly removed: string[] = [];
  readonly created: string[] = [];
  /** Lines each instance has printed (replayed to late listeners, like docker logs). */
  private readonly lines = new Map<string, string[]>();
  private readonly listeners = new Map<string, Set<(l: string) => void>>();
  private readonly exitListeners = new Set<(id: string, detail: string) => void>();
  private readonly backListeners = new Set<() => void>();
  private nextPort = 30000;
  /** Set to make the next creates fail with this error. */
  failWith?: Error;
  /** Print READY as soon as created. */
  autoReady = false;
  markFails = false;
  /** When set, every instance is reached at 127.0.0.1:backendPort (a real server the test started), for tests through the proxy. */
  backendPort?: number;

  async create(app: AppConfig, spec: InstanceSpec): Promise<InstanceRecord> {
    await Promise.resolve();
    if (this.failWith) throw this.failWith;
    const rec: InstanceRecord = {
      instanceId: spec.instanceId,
      app: app.name,
      deployment: 'test',
      runtimeId: `fake-${spec.instanceId}`,
      host: '127.0.0.1',
      port: this.backendPort ?? this.nextPort++,
      running: true,
      createdAt: 0,
      env: { ...app.env, ...spec.env },
    };
    this.instances.set(spec.instanceId, rec);
    this.created.push(spec.instanceId);
    if (this.autoReady) queueMicrotask(() => this.print(spec.instanceId, 'READY'));
    return rec;
  }

  async remove(id: string): Promise<void> {
    if (this.instances.delete(id)) this.removed.push(id);
  }

  async list(): Promise<InstanceRecord[]> {
    return [...this.instances.values()];
  }

  async markClaimed(id: string, claim: ClaimMark): Promise<void> {
    if (this.markFails) throw new WarmpoolError('ENGINE_UNREACHABLE', 'fake engine down');
    const r = this.instances.get(id);
    if (!r) throw new WarmpoolError('INSTANCE_GONE', `no ${id}`);
    r.claim = claim;
  }

  output(id: string, onLine: (line: string) => void): () => void {
    for (const l of this.lines.get(id) ?? []) onLine(l);
    const set = this.listeners.get(id) ?? new Set();
    this.listeners.set(id, set);
    set.add(onLine);
    return () => set.delete(onLine);
  }

  watch(onExit: (id: string, detail: string) => void, onEngineBack?: () => void): () => void {
    this.exitListeners.add(onExit);
    if (onEngineBack) this.backListeners.add(onEngineBack);
    return () => {
      this.exitListeners.delete(onExit);
      if (onEngineBack) this.backListeners.delete(onEngineBack);
    };
  }

  /** The engine answers again after its watch broke (what the Docker runtime says when its events stream reconnects). */
  engineBack(): void {
    for (const l of this.backListeners) l();
  }

  async close(): Promise<void> {}

  /** The instance prints a line. */
  print(id: string, line: string): void {
    this.lines.set(id, [...(this.lines.get(id) ?? []), line]);
    for (const l of this.listeners.get(id) ?? []) l(line);
  }

  /** The instance dies by itself. */
  kill(id: string): void {
    const r = this.instances.get(id);
    if (r) r.running = false;
    for (const l of this.exitListeners) l(id, 'killed by test');
  }

  /** Instance ids still alive, not yet removed. */
  get live(): string[] {
    return [...this.instances.keys()];
  }
  readyAll(): void {
    for (const id of this.live) this.print(id, 'READY');
  }
}

/** Fake instances listen nowhere: the pool's TCP check after the readiness line always passes. */
export const fakePortCheck = async (): Promise<boolean> => true;
