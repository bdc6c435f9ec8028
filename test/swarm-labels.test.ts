// Table tests for the pure service <-> instance translations in pool/runtimes/swarm-labels.ts (no engine).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AppConfig } from '../core/config.js';
import type { TaskInfo } from '../pool/runtimes/engine-types.js';
import {
  SERVICE_NAME_RE,
  STOP_GRACE_NS,
  SWARM_LABEL,
  containerLabels,
  latestTask,
  lostReason,
  parseClaim,
  serviceFacts,
  serviceLabels,
  serviceName,
  serviceSpec,
  taskAddress,
  taskPhase,
  withClaim,
  withRemoving,
  type ServiceFacts,
  type ServiceLike,
} from '../pool/runtimes/swarm-labels.js';

const LABELS = {
  'warmpool.app': 'vdma',
  'warmpool.instance': 'k3x9a0b1c2',
  'warmpool.deployment': 'prod',
  'warmpool.port': '20001',
  'warmpool.created': '1700000000000',
  'warmpool.replica': 'web-1',
};

function app(over: Partial<AppConfig> = {}): AppConfig {
  return {
    name: 'vdma',
    runtime: 'swarm',
    image: 'course/vdma:2026',
    port: 0,
    env: {},
    deepLink: '/',
    resolveDeepLink: false,
    prefix: { mode: 'strip' },
    pool: { warm: 1, max: 2, parallel: 1 },
    readiness: { log: /^READY$/, timeoutMs: 1000, intervalMs: 100 },
    limits: {},
    network: 'host',
    idleTimeoutMs: 1,
    maxLifetimeMs: 1,
    graceMs: 0,
    classifier: 'pluto',
    swarm: { constraints: [], spread: [], reservations: {} },
    ...over,
  };
}

describe('labels', () => {
  test('serviceLabels: app, instance, deployment, port, creation time and the creating replica, as strings', () => {
    assert.deepEqual(
      serviceLabels({ deployment: 'prod', app: 'vdma', instanceId: 'k3x9a0b1c2', port: 20001, createdAt: 1_700_000_000_000, replica: 'web-1' }),
      LABELS,
    );
  });
  test('serviceLabels: overlay mode names its network', () => {
    assert.equal(
      serviceLabels({ deployment: 'p', app: 'a', instanceId: 'i', port: 8888, createdAt: 0, replica: 'r', network: 'nb' })['warmpool.network'],
      'nb',
    );
  });
  test('containerLabels: the instance labels, never a claim or a removal mark (those change after creation)', () => {
    const l = { ...LABELS, [SWARM_LABEL.claimSession]: 's', [SWARM_LABEL.removing]: 'r', other: 'x' };
    assert.deepEqual(containerLabels(l), LABELS);
  });
});

describe('serviceName', () => {
  const table: Array<[string, [string, string, string], string]> = [
    ['plain parts', ['prod', 'vdma', 'k3x9a0b1c2'], 'warmpool-prod-vdma-k3x9a0b1c2'],
    ['dashes stay', ['ci-7', 'my-app', 'a1'], 'warmpool-ci-7-my-app-a1'],
    [
      'too long for a service name: hashed deployment and app, instance id kept',
      ['d'.repeat(40), 'a'.repeat(40), 'k3x9a0b1c2'],
      'warmpool-ec6f6d2e8e3b-k3x9a0b1c2',
    ],
  ];
  for (const [what, [d, a, i], want] of table) {
    test(what, () => {
      const n = serviceName(d, a, i);
      assert.equal(n.replace(/-[0-9a-f]{12}-/, '-ec6f6d2e8e3b-'), want);
      assert.match(n, SERVICE_NAME_RE);
      assert.ok(n.length <= 63, `${n.length} characters`);
    });
  }
  test('hashed names differ per deployment', () => {
    assert.notEqual(serviceName('d'.repeat(40), 'a'.repeat(40), 'x1'), serviceName('e'.repeat(40), 'a'.repeat(40), 'x1'));
  });
  test('an instance id that is not letters and digits is refused', () => {
    assert.throws(() => serviceName('p', 'a', 'a.b'), /letters and digits/);
  });
});

describe('serviceSpec', () => {
  const labels = { ...LABELS };
  const env = { PORT: '20001', HOST: '127.0.0.1', PLUTO_SECRET: 's' };
  const table: Array<[string, Partial<AppConfig>, (spec: ReturnType<typeof serviceSpec>) => void]> = [
    [
      'host networking, one replica, restart none, nothing reserved or limited',
      {},
      (s) => {
        assert.deepEqual(s, {
          Name: 'n',
          Labels: LABELS,
          TaskTemplate: {
            ContainerSpec: {
              Image: 'course/vdma:2026',
              Env: ['PORT=20001', 'HOST=127.0.0.1', 'PLUTO_SECRET=s'],
              Labels: LABELS,
              StopGracePeriod: STOP_GRACE_NS,
            },
            RestartPolicy: { Condition: 'none', MaxAttempts: 0 },
            Networks: [{ Target: 'host' }],
          },
          Mode: { Replicated: { Replicas: 1 } },
        });
      },
    ],
    [
      'limits and reservations in NanoCPUs and bytes',
      { limits: { cpus: 1.5, memoryBytes: 2 * 1024 ** 3 }, swarm: { constraints: [], spread: [], reservations: { cpus: 0.25, memoryBytes: 512 * 1024 ** 2 } } },
      (s) => {
        assert.deepEqual(s.TaskTemplate.Resources, {
          Limits: { NanoCPUs: 1_500_000_000, MemoryBytes: 2 * 1024 ** 3 },
          Reservations: { NanoCPUs: 250_000_000, MemoryBytes: 512 * 1024 ** 2 },
        });
      },
    ],
    [
      'only a memory limit',
      { limits: { memoryBytes: 1024 ** 3 } },
      (s) => {
        assert.deepEqual(s.TaskTemplate.Resources, { Limits: { MemoryBytes: 1024 ** 3 } });
      },
    ],
    [
      'constraints and spread preferences',
      { swarm: { constraints: ['node.role==worker'], spread: ['node.labels.zone', 'node.labels.rack'], reservations: {} } },
      (s) => {
        assert.deepEqual(s.TaskTemplate.Placement, {
          Constraints: ['node.role==worker'],
          Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.zone' } }, { Spread: { SpreadDescriptor: 'node.labels.rack' } }],
        });
      },
    ],
    [
      'args override the image command',
      { args: ['julia', 'start.jl'] },
      (s) => {
        assert.deepEqual(s.TaskTemplate.ContainerSpec.Args, ['julia', 'start.jl']);
      },
    ],
    [
      'overlay: on that network, no virtual IP (dnsrr): warmpool dials the task',
      { port: 8888, swarm: { constraints: [], spread: [], reservations: {}, network: 'nb' } },
      (s) => {
        assert.deepEqual(s.TaskTemplate.Networks, [{ Target: 'nb' }]);
        assert.deepEqual(s.EndpointSpec, { Mode: 'dnsrr' });
      },
    ],
  ];
  for (const [what, over, check] of table) test(what, () => check(serviceSpec(app(over), { name: 'n', labels, env })));
  test('no image: refused', () => assert.throws(() => serviceSpec(app({ image: undefined }), { name: 'n', labels, env }), /no image/));
});

describe('claims and removal marks (compare-and-swap payloads)', () => {
  const spec = serviceSpec(app(), { name: 'n', labels: LABELS, env: {} });

  test('withClaim changes only the labels: the task template is the same object, so the task is not restarted', () => {
    const c = withClaim(spec, { session: 'Ab_-9zQ', at: 1_700_000_000_123 }, 'web-2');
    assert.equal(c.TaskTemplate, spec.TaskTemplate);
    assert.equal(c.Mode, spec.Mode);
    assert.deepEqual(c.Labels, { ...LABELS, 'warmpool.claim.session': 'Ab_-9zQ', 'warmpool.claim.at': '1700000000123', 'warmpool.claim.replica': 'web-2' });
    assert.deepEqual(spec.Labels, LABELS, 'the spec read is not changed');
  });
  test('withRemoving marks the replica removing it', () => {
    const r = withRemoving(spec, 'web-1');
    assert.equal(r.Labels?.['warmpool.removing'], 'web-1');
    assert.equal(r.TaskTemplate, spec.TaskTemplate);
  });
  test('withClaim refuses a bad time or an empty session', () => {
    assert.throws(() => withClaim(spec, { session: 's', at: -1 }, 'r'), /non-negative/);
    assert.throws(() => withClaim(spec, { session: 's', at: 1.5 }, 'r'), /non-negative/);
    assert.throws(() => withClaim(spec, { session: '', at: 1 }, 'r'), /empty/);
  });

  const claims: Array<[string, Record<string, string> | null | undefined, unknown]> = [
    [
      'a claim',
      { ...LABELS, 'warmpool.claim.session': 's1', 'warmpool.claim.at': '5', 'warmpool.claim.replica': 'web-2' },
      { session: 's1', at: 5, replica: 'web-2' },
    ],
    ['none', LABELS, undefined],
    ['null labels', null, undefined],
    ['no replica: not one warmpool wrote', { 'warmpool.claim.session': 's1', 'warmpool.claim.at': '5' }, undefined],
    ['a time that is not ms', { 'warmpool.claim.session': 's1', 'warmpool.claim.at': 'soon', 'warmpool.claim.replica': 'r' }, undefined],
  ];
  for (const [what, labels, want] of claims) test(`parseClaim: ${what}`, () => assert.deepEqual(parseClaim(labels), want));
  test('parseClaim reads what withClaim wrote', () => {
    assert.deepEqual(parseClaim(withClaim(spec, { session: 'x+/=', at: 42 }, 'r').Labels), { session: 'x+/=', at: 42, replica: 'r' });
  });
});

type T = Pick<TaskInfo, 'Status' | 'DesiredState'>;
const task = (State: string, DesiredState = 'running', extra: Partial<TaskInfo['Status']> = {}): T => ({
  DesiredState: DesiredState as TaskInfo['DesiredState'],
  Status: { State: State as TaskInfo['Status']['State'], ...extra },
});

describe('taskPhase', () => {
  const table: Array<[string, T | undefined, unknown]> = [
    ['no task yet', undefined, { phase: 'starting', state: 'none' }],
    ['pending, being scheduled', task('pending'), { phase: 'starting', state: 'pending' }],
    [
      'pending, no node can take it',
      task('pending', 'running', { Err: 'no suitable node (insufficient resources on 1 node)' }),
      { phase: 'starting', state: 'pending', unschedulable: 'no suitable node (insufficient resources on 1 node)' },
    ],
    ['preparing (image on the node)', task('preparing'), { phase: 'starting', state: 'preparing' }],
    ['running', task('running'), { phase: 'running', state: 'running' }],
    [
      'running but told to shut down',
      task('running', 'shutdown'),
      { phase: 'ended', state: 'running', detail: 'task running with desired state shutdown', imageMissing: false },
    ],
    [
      'failed with an exit code',
      task('failed', 'shutdown', { Err: 'task: non-zero exit (137)', ContainerStatus: { ExitCode: 137 } }),
      { phase: 'ended', state: 'failed', detail: 'task failed: task: non-zero exit (137) (exit code 137)', imageMissing: false, exitCode: 137 },
    ],
    [
      'complete (exit 0)',
      task('complete', 'shutdown', { ContainerStatus: { ExitCode: 0 } }),
      { phase: 'ended', state: 'complete', detail: 'task exited with code 0', imageMissing: false, exitCode: 0 },
    ],
    [
      'rejected: the image is not on the node',
      task('rejected', 'shutdown', { Err: 'No such image: course/vdma:2026' }),
      { phase: 'ended', state: 'rejected', detail: 'task rejected by its node: No such image: course/vdma:2026', imageMissing: true },
    ],
    [
      'rejected: something else',
      task('rejected', 'shutdown', { Err: 'invalid mount config' }),
      { phase: 'ended', state: 'rejected', detail: 'task rejected by its node: invalid mount config', imageMissing: false },
    ],
    [
      'orphaned: its node went away',
      task('orphaned', 'shutdown'),
      { phase: 'ended', state: 'orphaned', detail: 'task orphaned: its node has been unreachable too long', imageMissing: false },
    ],
    ['shut down', task('shutdown', 'shutdown'), { phase: 'ended', state: 'shutdown', detail: 'task shut down', imageMissing: false }],
  ];
  for (const [what, t, want] of table) test(what, () => assert.deepEqual(taskPhase(t), want));

  test('latestTask: the newest by creation time, then by version', () => {
    const ts = [
      { ID: 'a', CreatedAt: '2026-01-01T00:00:00.5Z', Version: { Index: 3 } },
      { ID: 'b', CreatedAt: '2026-01-01T00:00:01.25Z', Version: { Index: 2 } },
      { ID: 'c', CreatedAt: '2026-01-01T00:00:01.25Z', Version: { Index: 9 } },
    ];
    assert.equal(latestTask(ts)?.ID, 'c');
    assert.equal(latestTask([]), undefined);
  });
});

describe('serviceFacts', () => {
  const svc = (labels: Record<string, string> | null, env: string[] | null = ['PORT=20001', 'S=1']): ServiceLike => ({
    ID: 'svc123456789abc',
    Version: { Index: 42 },
    Spec: { Name: 'warmpool-prod-vdma-k3x9a0b1c2', Labels: labels, TaskTemplate: { ContainerSpec: { Env: env } } },
  });
  const running = task('running');

  test('a running host-network service: 127.0.0.1 at its port label, env from the spec', () => {
    const f = serviceFacts(svc(LABELS), running)!;
    assert.deepEqual(f.record, {
      instanceId: 'k3x9a0b1c2',
      app: 'vdma',
      deployment: 'prod',
      runtimeId: 'svc123456789abc',
      host: '127.0.0.1',
      port: 20001,
      running: true,
      createdAt: 1_700_000_000_000,
      env: { PORT: '20001', S: '1' },
    });
    assert.deepEqual(
      [f.name, f.version, f.replica, f.network, f.claim, f.removing],
      ['warmpool-prod-vdma-k3x9a0b1c2', 42, 'web-1', undefined, undefined, undefined],
    );
  });
  test('claimed and being removed', () => {
    const f = serviceFacts(
      svc({ ...LABELS, 'warmpool.claim.session': 's1', 'warmpool.claim.at': '7', 'warmpool.claim.replica': 'web-2', 'warmpool.removing': 'web-3' }),
      running,
    )!;
    assert.deepEqual(f.record.claim, { session: 's1', at: 7 });
    assert.deepEqual(f.claim, { session: 's1', at: 7, replica: 'web-2' });
    assert.equal(f.removing, 'web-3');
  });
  test('a task still starting or ended: not running', () => {
    assert.equal(serviceFacts(svc(LABELS), task('preparing'))!.record.running, false);
    assert.equal(serviceFacts(svc(LABELS), task('failed', 'shutdown'))!.record.running, false);
    assert.equal(serviceFacts(svc(LABELS), undefined)!.record.running, false);
  });
  test("overlay: the task's own address on the named network; not running until it has one", () => {
    const labels = { ...LABELS, 'warmpool.port': '8888', 'warmpool.network': 'nb' };
    const withAddr = {
      ...running,
      NetworksAttachments: [
        { Network: { ID: 'n0', Spec: { Name: 'ingress' } }, Addresses: ['10.0.0.9/24'] },
        { Network: { ID: 'n1', Spec: { Name: 'nb' } }, Addresses: ['10.0.1.5/24'] },
      ],
    };
    const f = serviceFacts(svc(labels), withAddr)!;
    assert.deepEqual([f.record.host, f.record.port, f.record.running, f.network], ['10.0.1.5', 8888, true, 'nb']);
    const none = serviceFacts(svc(labels), running)!;
    assert.deepEqual([none.record.host, none.record.running], ['', false]);
  });
  test('taskAddress matches by name or id, drops the prefix length', () => {
    const t = { NetworksAttachments: [{ Network: { ID: 'n1', Spec: { Name: 'nb' } }, Addresses: ['10.0.1.5/24'] }] };
    assert.equal(taskAddress(t, 'nb'), '10.0.1.5');
    assert.equal(taskAddress(t, 'n1'), '10.0.1.5');
    assert.equal(taskAddress(t, 'other'), undefined);
    assert.equal(taskAddress(undefined, 'nb'), undefined);
  });

  const broken: Array<[string, ServiceLike, RegExp]> = [
    ['no id', { ID: '' }, /no ID/],
    ['no labels', svc(null), /label warmpool\.app is missing/],
    ['no replica label', svc({ ...LABELS, 'warmpool.replica': '' }), /label warmpool\.replica is missing/],
    ['bad port', svc({ ...LABELS, 'warmpool.port': '0' }), /label warmpool\.port is "0"/],
    ['bad created', svc({ ...LABELS, 'warmpool.created': 'yesterday' }), /label warmpool\.created is "yesterday"/],
  ];
  for (const [what, s, why] of broken) {
    test(`skipped, saying why: ${what}`, () => {
      const reasons: string[] = [];
      assert.equal(
        serviceFacts(s, running, (r) => reasons.push(r)),
        undefined,
      );
      assert.equal(reasons.length, 1);
      assert.match(reasons[0]!, why);
    });
  }
});

describe('lostReason: what watch() reports for an instance this replica holds', () => {
  const base = serviceFacts({ ID: 's', Version: { Index: 1 }, Spec: { Name: 'n', Labels: LABELS } }, task('running'))!;
  const f = (over: Partial<ServiceFacts>): ServiceFacts => ({ ...base, ...over });
  const table: Array<[string, ServiceFacts | undefined, boolean, string | undefined]> = [
    ['running, unclaimed: still ours', base, false, undefined],
    ['claimed by this replica: still ours', f({ claim: { session: 's', at: 1, replica: 'web-1' } }), false, undefined],
    ['service gone', undefined, false, 'service removed outside warmpool'],
    ['claimed by another replica', f({ claim: { session: 's', at: 1, replica: 'web-2' } }), false, 'claimed by warmpool replica web-2'],
    ['being removed by another replica', f({ removing: 'web-2' }), false, 'being removed by warmpool replica web-2'],
    ['being removed by this one: its own removal, not reported', f({ removing: 'web-1' }), false, undefined],
    [
      'task ended',
      f({ task: taskPhase(task('failed', 'shutdown', { Err: 'task: non-zero exit (137)', ContainerStatus: { ExitCode: 137 } })) }),
      false,
      'task failed: task: non-zero exit (137) (exit code 137)',
    ],
    [
      'task ended after an out-of-memory kill',
      f({ task: taskPhase(task('failed', 'shutdown', { Err: 'task: non-zero exit (137)', ContainerStatus: { ExitCode: 137 } })) }),
      true,
      'task failed: task: non-zero exit (137) (exit code 137) (out of memory)',
    ],
    ['task still starting: not lost', f({ task: taskPhase(task('preparing')) }), false, undefined],
  ];
  for (const [what, facts, oom, want] of table) test(what, () => assert.equal(lostReason(facts, 'web-1', oom), want));
});
