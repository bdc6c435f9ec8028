// Table tests for the pure container <-> instance translations in pool/runtimes/docker-labels.ts (no engine).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DOCKER_NAME_RE,
  claimedName,
  containerFacts,
  decodeNamePart,
  deploymentFilter,
  encodeNamePart,
  envList,
  instanceLabels,
  instanceName,
  missedExits,
  parseEnv,
  parseName,
  recordFromContainer,
  type ContainerLike,
} from '../pool/runtimes/docker-labels.js';
import type { ClaimMark, InstanceRecord } from '../pool/runtime.js';

const LABELS = {
  'warmpool.app': 'vdma',
  'warmpool.instance': 'k3x9a0b1c2',
  'warmpool.deployment': 'prod',
  'warmpool.port': '20001',
  'warmpool.created': '1700000000000',
};

describe('instanceLabels', () => {
  test('carries app, instance, deployment, port and creation time as strings', () => {
    assert.deepEqual(instanceLabels({ deployment: 'prod', app: 'vdma', instanceId: 'k3x9a0b1c2', port: 20001, createdAt: 1_700_000_000_000 }), LABELS);
  });
  test('deploymentFilter selects by the deployment label', () => {
    assert.equal(deploymentFilter('prod'), 'warmpool.deployment=prod');
  });
});

describe('names', () => {
  const names: Array<[string, [string, string, string], string]> = [
    ['plain parts', ['prod', 'vdma', 'k3x9a0b1c2'], 'warmpool-prod-vdma-k3x9a0b1c2'],
    ['dashes stay', ['ci-7', 'my-app', 'a-b'], 'warmpool-ci-7-my-app-a-b'],
    ['unsafe chars escaped', ['prod', 'vdma', 'a.b/c'], 'warmpool-prod-vdma-a.2eb.2fc'],
  ];
  for (const [what, [d, a, i], want] of names) {
    test(`instanceName: ${what}`, () => {
      const n = instanceName(d, a, i);
      assert.equal(n, want);
      assert.match(n, DOCKER_NAME_RE);
    });
  }

  const claims: Array<[string, string, ClaimMark, string]> = [
    ['base64url session', 'warmpool-prod-vdma-k3', { session: 'Ab_-9zQ', at: 1_700_000_000_123 }, 'warmpool-prod-vdma-k3.claimed-1700000000123-Ab_-9zQ'],
    ['hex session', 'warmpool-prod-vdma-k3', { session: 'deadbeef', at: 0 }, 'warmpool-prod-vdma-k3.claimed-0-deadbeef'],
    ['session with + / = (base64) escaped', 'warmpool-p-a-k3', { session: 'a+b/c=', at: 5 }, 'warmpool-p-a-k3.claimed-5-a.2bb.2fc.3d'],
    ['a second claim replaces the first', 'warmpool-p-a-k3.claimed-5-old', { session: 'new', at: 6 }, 'warmpool-p-a-k3.claimed-6-new'],
    ['leading slash (inspect Name) dropped', '/warmpool-p-a-k3', { session: 's', at: 7 }, 'warmpool-p-a-k3.claimed-7-s'],
  ];
  for (const [what, base, claim, want] of claims) {
    test(`claimedName: ${what}`, () => {
      const n = claimedName(base, claim);
      assert.equal(n, want);
      assert.match(n, DOCKER_NAME_RE);
      assert.deepEqual(parseName(n), { base: parseName(base).base, claim });
    });
  }

  test('claimedName refuses a bad time or an empty session', () => {
    assert.throws(() => claimedName('warmpool-p-a-k', { session: 's', at: -1 }), RangeError);
    assert.throws(() => claimedName('warmpool-p-a-k', { session: 's', at: 1.5 }), RangeError);
    assert.throws(() => claimedName('warmpool-p-a-k', { session: '', at: 1 }), RangeError);
  });

  const parsed: Array<[string, string, ReturnType<typeof parseName>]> = [
    ['unclaimed', '/warmpool-prod-vdma-k3', { base: 'warmpool-prod-vdma-k3' }],
    ['claimed', '/warmpool-prod-vdma-k3.claimed-42-xyz', { base: 'warmpool-prod-vdma-k3', claim: { session: 'xyz', at: 42 } }],
    ['claimed, escaped unicode session', 'w-p-a-k.claimed-1-.c3.a9t.c3.a9', { base: 'w-p-a-k', claim: { session: 'été', at: 1 } }],
    ['no time', 'w-p-a-k.claimed--xyz', { base: 'w-p-a-k.claimed--xyz' }],
    ['no session', 'w-p-a-k.claimed-42-', { base: 'w-p-a-k.claimed-42-' }],
    ['bad escape is not a claim', 'w-p-a-k.claimed-42-a.zz', { base: 'w-p-a-k.claimed-42-a.zz' }],
    ['invalid UTF-8 escape is not a claim', 'w-p-a-k.claimed-42-.ff', { base: 'w-p-a-k.claimed-42-.ff' }],
    ['upper-case hex is not ours', 'w-p-a-k.claimed-42-.2F', { base: 'w-p-a-k.claimed-42-.2F' }],
    ['nothing before the mark', '.claimed-42-xyz', { base: '.claimed-42-xyz' }],
  ];
  for (const [what, name, want] of parsed) {
    test(`parseName: ${what}`, () => assert.deepEqual(parseName(name), want));
  }

  const parts = ['', 'abc', 'A_b-9', 'a.b', 'x y', 'é', '日本', '😀', '.2e'];
  for (const p of parts) {
    test(`encodeNamePart round-trips ${JSON.stringify(p)}`, () => {
      const e = encodeNamePart(p);
      assert.match(e, /^(?:[A-Za-z0-9_-]|\.[0-9a-f]{2})*$/);
      assert.equal(decodeNamePart(e), p);
    });
  }
});

describe('env', () => {
  const cases: Array<[string, string[] | null | undefined, Record<string, string>]> = [
    ['simple', ['A=1', 'B=two'], { A: '1', B: 'two' }],
    ['value holds =', ['URL=http://x/?a=b'], { URL: 'http://x/?a=b' }],
    ['empty value', ['E='], { E: '' }],
    ['no = (unset) and no name are left out', ['BARE', '=x'], {}],
    ['later wins', ['A=1', 'A=2'], { A: '2' }],
    ['null', null, {}],
    ['missing', undefined, {}],
  ];
  for (const [what, lines, want] of cases) {
    test(`parseEnv: ${what}`, () => assert.deepEqual(parseEnv(lines), want));
  }
  test('envList is the inverse of parseEnv', () => {
    const env = { PORT: '20001', HOST: '127.0.0.1', Q: 'a=b' };
    assert.deepEqual(envList(env), ['PORT=20001', 'HOST=127.0.0.1', 'Q=a=b']);
    assert.deepEqual(parseEnv(envList(env)), env);
  });
});

describe('recordFromContainer', () => {
  const ID = 'f00dfeedcafe0123456789abcdef0123456789abcdef0123456789abcdef0123';
  const base: InstanceRecord = {
    instanceId: 'k3x9a0b1c2',
    app: 'vdma',
    deployment: 'prod',
    runtimeId: ID,
    host: '127.0.0.1',
    port: 20001,
    running: true,
    createdAt: 1_700_000_000_000,
    env: { PORT: '20001', SECRET: 's3' },
  };
  const hostInspect: ContainerLike = {
    Id: ID,
    Name: '/warmpool-prod-vdma-k3x9a0b1c2',
    Config: { Labels: LABELS, Env: ['PORT=20001', 'SECRET=s3'] },
    State: { Running: true, Status: 'running' },
    HostConfig: { NetworkMode: 'host' },
    NetworkSettings: { Ports: {} },
  };
  const bridgeLabels = { ...LABELS, 'warmpool.port': '8080' };
  const bridgeInspect: ContainerLike = {
    ...hostInspect,
    Config: { Labels: bridgeLabels, Env: ['PORT=8080'] },
    HostConfig: { NetworkMode: 'bridge' },
    NetworkSettings: { Ports: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '49153' }] } },
  };

  const ok: Array<[string, ContainerLike, Partial<InstanceRecord>, 'host' | 'bridge']> = [
    ['host network, inspect: port from the label', hostInspect, {}, 'host'],
    ['host network, stopped', { ...hostInspect, State: { Running: false, Status: 'exited' } }, { running: false }, 'host'],
    [
      'claimed name',
      { ...hostInspect, Name: '/warmpool-prod-vdma-k3x9a0b1c2.claimed-1700000000500-Ab_-9' },
      { claim: { session: 'Ab_-9', at: 1_700_000_000_500 } },
      'host',
    ],
    ['bridge, inspect: port from the binding', bridgeInspect, { port: 49153, env: { PORT: '8080' } }, 'bridge'],
    [
      'bridge, IPv6 binding listed first: IPv4 preferred',
      {
        ...bridgeInspect,
        NetworkSettings: {
          Ports: {
            '8080/tcp': [
              { HostIp: '::1', HostPort: '49999' },
              { HostIp: '127.0.0.1', HostPort: '49153' },
            ],
          },
        },
      },
      { port: 49153, env: { PORT: '8080' } },
      'bridge',
    ],
    [
      'bridge, custom network name counts as bridge',
      { ...bridgeInspect, HostConfig: { NetworkMode: 'warmpool-net' } },
      { port: 49153, env: { PORT: '8080' } },
      'bridge',
    ],
    [
      'bridge, stopped (no binding): port 0',
      { ...bridgeInspect, State: { Running: false }, NetworkSettings: { Ports: {} } },
      { port: 0, running: false, env: { PORT: '8080' } },
      'bridge',
    ],
    [
      'list entry, host network (no env in a list entry)',
      { Id: ID, Names: ['/warmpool-prod-vdma-k3x9a0b1c2'], Labels: LABELS, State: 'running', HostConfig: { NetworkMode: 'host' }, Ports: [] },
      { env: {} },
      'host',
    ],
    [
      'list entry, bridge',
      {
        Id: ID,
        Names: ['/warmpool-prod-vdma-k3x9a0b1c2'],
        Labels: bridgeLabels,
        State: 'running',
        HostConfig: { NetworkMode: 'bridge' },
        Ports: [{ IP: '127.0.0.1', PrivatePort: 8080, PublicPort: 49153, Type: 'tcp' }],
      },
      { port: 49153, env: {} },
      'bridge',
    ],
    [
      'list entry, exited',
      { Id: ID, Names: ['/x'], Labels: LABELS, State: 'exited', HostConfig: { NetworkMode: 'host' } },
      { running: false, env: {} },
      'host',
    ],
  ];
  for (const [what, c, diff, network] of ok) {
    test(`reads: ${what}`, () => {
      assert.deepEqual(recordFromContainer(c), { ...base, ...diff });
      assert.equal(containerFacts(c)?.network, network);
    });
  }

  const broken: Array<[string, ContainerLike, RegExp]> = [
    ['no Id', { ...hostInspect, Id: '' }, /no Id/],
    ['no labels at all', { ...hostInspect, Config: { Labels: null, Env: [] } }, /warmpool\.app/],
    ['empty app', { ...hostInspect, Config: { Labels: { ...LABELS, 'warmpool.app': '' } } }, /warmpool\.app/],
    ['no instance', { ...hostInspect, Config: { Labels: { ...LABELS, 'warmpool.instance': undefined as unknown as string } } }, /warmpool\.instance/],
    ['no deployment', { ...hostInspect, Config: { Labels: { ...LABELS, 'warmpool.deployment': '' } } }, /warmpool\.deployment/],
    ['port not a number', { ...hostInspect, Config: { Labels: { ...LABELS, 'warmpool.port': 'eighty' } } }, /warmpool\.port/],
    ['port out of range', { ...hostInspect, Config: { Labels: { ...LABELS, 'warmpool.port': '70000' } } }, /warmpool\.port/],
    ['created not a number', { ...hostInspect, Config: { Labels: { ...LABELS, 'warmpool.created': '2023-11-14' } } }, /warmpool\.created/],
    ['running bridge container without a binding', { ...bridgeInspect, NetworkSettings: { Ports: null } }, /not published/],
  ];
  for (const [what, c, why] of broken) {
    test(`skips, without throwing: ${what}`, () => {
      const reasons: string[] = [];
      assert.equal(
        recordFromContainer(c, (r) => reasons.push(r)),
        undefined,
      );
      assert.equal(reasons.length, 1);
      assert.match(reasons[0]!, why);
    });
  }

  test('skips garbage without throwing', () => {
    assert.equal(recordFromContainer({} as ContainerLike), undefined);
    assert.equal(recordFromContainer(null as unknown as ContainerLike), undefined);
  });
});

describe('missedExits (after the event stream was down)', () => {
  const entry = (instance: string, State: string, Status: string): ContainerLike => ({
    Id: `c-${instance}`,
    Names: [`/warmpool-prod-vdma-${instance}`],
    Labels: { ...LABELS, 'warmpool.instance': instance },
    State,
    Status,
  });
  const rows: Array<[string, string[], ContainerLike[], Array<{ instanceId: string; detail: string }>]> = [
    ['all running: nothing', ['a', 'b'], [entry('a', 'running', 'Up 3 minutes'), entry('b', 'running', 'Up 1 second')], []],
    [
      'exited, with its code from the list entry',
      ['a', 'b'],
      [entry('a', 'running', 'Up 3 minutes'), entry('b', 'exited', 'Exited (137) 4 seconds ago')],
      [{ instanceId: 'b', detail: 'exited with code 137 while the event stream was down' }],
    ],
    ['dead, no code', ['a'], [entry('a', 'dead', 'Dead')], [{ instanceId: 'a', detail: 'exited with code ? while the event stream was down' }]],
    ['gone from the engine', ['a'], [], [{ instanceId: 'a', detail: 'container removed outside warmpool' }]],
    [
      'still being created or restarted: not an exit',
      ['a', 'b'],
      [entry('a', 'created', 'Created'), entry('b', 'restarting', 'Restarting (1) 1 second ago')],
      [],
    ],
    ['containers it does not know are left alone', [], [entry('z', 'exited', 'Exited (0) 1 hour ago')], []],
  ];
  for (const [what, known, entries, want] of rows) {
    test(what, () => assert.deepEqual(missedExits(known, entries), want));
  }

  test('reads an inspect answer too (State object, exit code)', () => {
    const inspected: ContainerLike = {
      Id: 'c',
      Name: '/x',
      Config: { Labels: { ...LABELS, 'warmpool.instance': 'a' } },
      State: { Running: false, Status: 'exited', ExitCode: 3 },
    };
    assert.deepEqual(missedExits(['a'], [inspected]), [{ instanceId: 'a', detail: 'exited with code 3 while the event stream was down' }]);
  });
});
