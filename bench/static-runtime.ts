// A Runtime whose "instances" are servers that already run (the benchmark's backend, one stand-in
// process): create() hands out a record pointing at one of them and starts nothing. It lets the
// relay and memory benchmarks put warmpool in front of exactly the backend the other proxies use,
// and claim a thousand sessions without a thousand processes. `markClaimedMs` makes the engine write
// of a claim slow (the claims benchmark shows it stays off the visitor's path).

import type { AppConfig } from '../core/config.js';
import type { ClaimMark, InstanceRecord, InstanceSpec, Runtime } from '../pool/runtime.js';

export class StaticRuntime implements Runtime {
  readonly kind = 'process' as const;
  private next = 0;

  /** targets: the servers instances are spread over (round robin). */
  constructor(
    private readonly deployment: string,
    private readonly targets: { host: string; port: number }[],
    private readonly markClaimedMs = 0,
  ) {
    if (targets.length === 0) throw new TypeError('StaticRuntime: expected at least one target');
  }

  async create(app: AppConfig, spec: InstanceSpec): Promise<InstanceRecord> {
    const t = this.targets[this.next++ % this.targets.length]!;
    return {
      instanceId: spec.instanceId,
      app: app.name,
      deployment: this.deployment,
      runtimeId: `static-${t.port}`,
      host: t.host,
      port: t.port,
      running: true,
      createdAt: Date.now(),
      env: { ...app.env, ...spec.env },
    };
  }

  async remove(): Promise<void> {}
  async list(): Promise<InstanceRecord[]> {
    return [];
  }
  async markClaimed(_id: string, _claim: ClaimMark): Promise<void> {
    if (this.markClaimedMs > 0) await new Promise((resolve) => setTimeout(resolve, this.markClaimedMs));
  }
  output(): () => void {
    return () => {};
  }
  watch(): () => void {
    return () => {};
  }
  async close(): Promise<void> {}
}
