// Config validation: defaults, env overrides, and errors that name the field, the value and what
// is allowed. Table-driven.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULT_PROCESS_USERS,
  DEFAULT_QUEUE,
  DEFAULT_RELAY_LIMITS,
  loadConfig,
  parseConfig,
  parseDuration,
  parseBytes,
  replicaFromHost,
} from '../core/config.js';

const minimal = `
apps:
  - name: demo
    command: [node, server.js]
`;

test('a minimal config gets sensible defaults', () => {
  const c = parseConfig(minimal);
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.port, 8080);
  assert.equal(c.deployment, 'default');
  const a = c.apps[0]!;
  assert.equal(a.runtime, 'process');
  assert.deepEqual(a.pool, { warm: 2, max: 10, parallel: 4 });
  assert.deepEqual(a.prefix, { mode: 'strip' });
  assert.equal(a.idleTimeoutMs, 20 * 60_000);
  assert.equal(a.maxLifetimeMs, 90 * 60_000);
  assert.deepEqual(a.readiness.http, { path: '/', status: 200 });
});

test("resolveDeepLink: on for classifier pluto (its /open answers the open notebook's edit link), off otherwise, as set when set", () => {
  const app = (extra: string) => parseConfig(`${minimal}${extra}`).apps[0]!.resolveDeepLink;
  assert.equal(app(''), false);
  assert.equal(app('    classifier: jupyter\n'), false);
  assert.equal(app('    classifier: pluto\n'), true);
  assert.equal(app('    classifier: pluto\n    resolveDeepLink: false\n'), false);
  assert.equal(app('    resolveDeepLink: true\n'), true);
});

test('a full docker app parses', () => {
  const c = parseConfig(`
listen: { host: 0.0.0.0, port: 9000 }
deployment: class-a
landing: { redirect: https://example.org/course }
trustedProxies: [127.0.0.1]
apps:
  - name: vdma
    runtime: docker
    image: warmpool/standin:latest
    network: bridge
    port: 1234
    env: { STATE_BYTES: 5000, DEBUG: true }
    deepLink: /open?path=webapp.jl
    prefix: { baseUrlEnv: BASE_URL }
    pool: { warm: 5, max: 60, parallel: 8 }
    readiness: { log: "^READY$", timeout: 10m }
    limits: { cpus: 1.5, memory: 1g }
    idleTimeout: 15m
    maxLifetime: 1h15m
    grace: 90s
    classifier: pluto
    secret: { env: PLUTO_SECRET, inject: { query: secret } }
`);
  const a = c.apps[0]!;
  assert.equal(c.port, 9000);
  assert.equal(c.landingRedirect, 'https://example.org/course');
  assert.deepEqual(a.env, { STATE_BYTES: '5000', DEBUG: 'true' });
  assert.deepEqual(a.limits, { cpus: 1.5, memoryBytes: 1024 ** 3 });
  assert.equal(a.maxLifetimeMs, 75 * 60_000);
  assert.equal(a.graceMs, 90_000);
  assert.equal(a.readiness.log?.source, '^READY$');
  assert.deepEqual(a.prefix, { mode: 'base-url', env: 'BASE_URL' });
  assert.equal(a.secret?.inject.query, 'secret');
  assert.equal(a.warming, undefined, 'one CPU weight unless warming is set');
  assert.equal(a.pool.refillPerSecond, undefined, 'creates unpaced unless refillPerSecond is set');
});

test('warming weight and refill pace parse', () => {
  const c = parseConfig(`
apps:
  - name: vdma
    runtime: docker
    image: warmpool/standin:latest
    pool: { warm: 10, max: 60, parallel: 4, refillPerSecond: 0.5 }
    warming: { cpuShares: 128 }
`);
  assert.deepEqual(c.apps[0]!.pool, { warm: 10, max: 60, parallel: 4, refillPerSecond: 0.5 });
  assert.deepEqual(c.apps[0]!.warming, { cpuShares: 128 });
});

test('WARMPOOL_HOST and WARMPOOL_PORT override the file', () => {
  const c = parseConfig(minimal, 'x', { WARMPOOL_HOST: '0.0.0.0', WARMPOOL_PORT: '9999' });
  assert.deepEqual([c.host, c.port], ['0.0.0.0', 9999]);
  assert.throws(() => parseConfig(minimal, 'x', { WARMPOOL_PORT: 'eighty' }), /WARMPOOL_PORT \(env\) is "eighty"; expected an integer/);
});

test('a swarm app parses: placement, reservations, overlay network; swarm replica and scheduling timeout', () => {
  const c = parseConfig(`
swarm: { replica: web-1, schedulingTimeout: 2m }
apps:
  - name: vdma
    runtime: swarm
    image: course/vdma:2026
    args: [julia, start.jl]
    limits: { cpus: 1, memory: 2g }
    swarm:
      constraints: [node.role==worker, "node.labels.pool != gpu"]
      spread: [node.labels.zone]
      reservations: { cpus: 0.5, memory: 1g }
  - name: lab
    runtime: swarm
    image: course/lab:1
    port: 8888
    swarm: { network: notebooks }
`);
  assert.deepEqual(c.swarm, { replica: 'web-1', schedulingTimeoutMs: 120_000 });
  const [a, b] = c.apps;
  assert.equal(a!.runtime, 'swarm');
  assert.equal(a!.network, 'host');
  assert.equal(a!.port, 0, 'host networking: an allocated port');
  assert.deepEqual(a!.args, ['julia', 'start.jl']);
  assert.deepEqual(a!.swarm, {
    constraints: ['node.role==worker', 'node.labels.pool != gpu'],
    spread: ['node.labels.zone'],
    reservations: { cpus: 0.5, memoryBytes: 1024 ** 3 },
    network: undefined,
  });
  assert.deepEqual(b!.swarm, { constraints: [], spread: [], reservations: { cpus: undefined, memoryBytes: undefined }, network: 'notebooks' });
  assert.equal(b!.port, 8888);
  assert.equal(parseConfig(minimal).apps[0]!.swarm, undefined, 'no swarm block for other runtimes');
});

test('swarm replica: WARMPOOL_REPLICA, else the host name made a name', () => {
  assert.equal(parseConfig(minimal, 'x', { WARMPOOL_REPLICA: 'edge-2' }).swarm?.replica, 'edge-2');
  assert.equal(parseConfig(`swarm: { replica: a }\n${minimal}`, 'x', { WARMPOOL_REPLICA: 'edge-2' }).swarm?.replica, 'a', 'the file wins');
  assert.match(parseConfig(minimal).swarm!.replica, /^[a-z0-9][a-z0-9-]{0,39}$/);
  assert.equal(parseConfig(minimal).swarm!.schedulingTimeoutMs, 60_000);
  for (const [host, want] of [
    ['Web01.example.org', 'web01-example-org'],
    ['--x--', 'x'],
    ['', 'warmpool'],
    ['a'.repeat(50), 'a'.repeat(40)],
  ] as const) {
    assert.equal(replicaFromHost(host), want, host);
  }
  assert.throws(
    () => parseConfig(minimal, 'x', { WARMPOOL_REPLICA: 'Bad Name' }),
    /WARMPOOL_REPLICA \(env\) or the host name is "Bad Name"; expected lower-case letters/,
  );
});

const bad: [string, string, RegExp][] = [
  ['unknown top-level key', `colour: red\n${minimal}`, /colour is "red"; unknown key; allowed keys here: listen, deployment/],
  ['no apps', 'listen: { port: 1 }', /apps is missing; expected a non-empty list of apps/],
  ['unknown app key', `apps:\n  - name: demo\n    command: [x]\n    wram: 3`, /apps\[0\]\.wram is 3; unknown key/],
  ['bad name', `apps:\n  - name: Demo App\n    command: [x]`, /apps\[0\]\.name is "Demo App"; expected lower-case letters/],
  ['duplicate names', `apps:\n  - name: a\n    command: [x]\n  - name: a\n    command: [y]`, /apps\[1\]\.name is "a"; app names must be unique/],
  ['bad runtime', `apps:\n  - name: a\n    runtime: swarmy\n    command: [x]`, /apps\[0\]\.runtime is "swarmy"; allowed: process, docker/],
  ['docker without image', `apps:\n  - name: a\n    runtime: docker`, /apps\[0\]\.image is missing/],
  ['process without command', `apps:\n  - name: a`, /apps\[0\]\.command is missing; expected a non-empty list/],
  ['max below warm', `apps:\n  - name: a\n    command: [x]\n    pool: { warm: 5, max: 3 }`, /apps\[0\]\.pool\.max is 3; must be at least pool\.warm \(5\)/],
  ['negative warm', `apps:\n  - name: a\n    command: [x]\n    pool: { warm: -1 }`, /apps\[0\]\.pool\.warm is -1; expected an integer from 0 to 1000/],
  ['bad duration', `apps:\n  - name: a\n    command: [x]\n    idleTimeout: soon`, /apps\[0\]\.idleTimeout is "soon"; expected a duration like 90s/],
  ['bad memory', `apps:\n  - name: a\n    command: [x]\n    limits: { memory: lots }`, /apps\[0\]\.limits\.memory is "lots"; expected a size like 512m/],
  ['bad regex', `apps:\n  - name: a\n    command: [x]\n    readiness: { log: "(" }`, /apps\[0\]\.readiness\.log is "\("; expected a regular expression/],
  ['both probes', `apps:\n  - name: a\n    command: [x]\n    readiness: { log: R, http: { path: / } }`, /apps\[0\]\.readiness .*choose one of http or log/],
  [
    'bad deep link',
    `apps:\n  - name: a\n    command: [x]\n    deepLink: open?path=x`,
    /apps\[0\]\.deepLink is "open\?path=x"; expected a path starting with \//,
  ],
  [
    'secret without inject',
    `apps:\n  - name: a\n    command: [x]\n    secret: { env: S, inject: {} }`,
    /apps\[0\]\.secret\.inject is \{\}; expected at least one of query, header, cookie/,
  ],
  [
    'token pattern without group',
    `apps:\n  - name: a\n    command: [x]\n    secret: { fromOutput: "token=\\\\w+", inject: { query: token } }`,
    /fromOutput .*capture group/,
  ],
  [
    'bridge without port',
    `apps:\n  - name: a\n    runtime: docker\n    image: x\n    network: bridge`,
    /apps\[0\]\.port is missing; a bridge-network app needs the container port/,
  ],
  ['reserved name', `apps:\n  - name: _warmpool\n    command: [x]`, /apps\[0\]\.name is "_warmpool"/],
  ['not yaml', `apps: [`, /not valid YAML/],
  ['unknown relay key', `relay: { maxSockets: 3 }\n${minimal}`, /relay\.maxSockets is 3; unknown key; allowed keys here: headerSize, headerTimeout/],
  [
    'relay head size too small',
    `relay: { headerSize: 10 }\n${minimal}`,
    /relay\.headerSize is 10; expected a size like 16k or 64k, from 1024 to 1048576 bytes/,
  ],
  [
    'relay WebSockets per session zero',
    `relay: { websocketsPerSession: 0 }\n${minimal}`,
    /relay\.websocketsPerSession is 0; expected an integer from 1 to 10000/,
  ],
  ['relay head timeout', `relay: { headerTimeout: forever }\n${minimal}`, /relay\.headerTimeout is "forever"; expected a duration/],
  [
    'unknown queue key',
    `queue: { ticketTtl: 20s }\n${minimal}`,
    /queue\.ticketTtl is "20s"; unknown key; allowed keys here: hold, pageHold, attach, collect, firstUse, unusedClaimsPerAddress, waitingPerAddress, claimRate/,
  ],
  [
    'queue hold too short',
    `queue: { hold: 200ms }\n${minimal}`,
    /queue\.hold is "200ms"; expected a duration like 90s, .* or a number of seconds, at least 1000 ms/,
  ],
  ['queue first use not a duration', `queue: { firstUse: soon }\n${minimal}`, /queue\.firstUse is "soon"; expected a duration/],
  ['queue unused claims zero', `queue: { unusedClaimsPerAddress: 0 }\n${minimal}`, /queue\.unusedClaimsPerAddress is 0; expected an integer from 1 to 100000/],
  [
    'queue waiting places fractional',
    `queue: { waitingPerAddress: 2.5 }\n${minimal}`,
    /queue\.waitingPerAddress is 2\.5; expected an integer from 1 to 100000/,
  ],
  [
    'queue claim rate unknown key',
    `queue: { claimRate: { perMinute: 5 } }\n${minimal}`,
    /queue\.claimRate\.perMinute is 5; unknown key; allowed keys here: perSecond, burst/,
  ],
  ['queue claim rate zero', `queue: { claimRate: { perSecond: 0 } }\n${minimal}`, /queue\.claimRate\.perSecond is 0; expected a number from 0\.01 to 100000/],
  ['queue burst', `queue: { claimRate: { burst: many } }\n${minimal}`, /queue\.claimRate\.burst is "many"; expected an integer from 1 to 100000/],
  ['processUsers not a mapping', `processUsers: 61000\n${minimal}`, /processUsers is 61000; expected false \(off\) or a mapping \{ uidFrom, count \}/],
  ['processUsers unknown key', `processUsers: { from: 61000 }\n${minimal}`, /processUsers\.from is 61000; unknown key; allowed keys here: uidFrom, count/],
  ['processUsers system uid', `processUsers: { uidFrom: 500 }\n${minimal}`, /processUsers\.uidFrom is 500; expected an integer from 1000 to 2147483646/],
  [
    'processUsers past int32',
    `processUsers: { uidFrom: 2147483000, count: 1000 }\n${minimal}`,
    /processUsers\.count is 1000; expected an integer from 1 to 647/,
  ],
  ['processUsers count zero', `processUsers: { uidFrom: 70000, count: 0 }\n${minimal}`, /processUsers\.count is 0; expected an integer from 1/],
  [
    'processUsers over nobody',
    `processUsers: { uidFrom: 65000, count: 1000 }\n${minimal}`,
    /processUsers is \{"uidFrom":65000,"count":1000\}; the range 65000-65999 includes 65534 \(nobody\)/,
  ],
  [
    'processUsers fewer than the instances',
    `processUsers: { uidFrom: 70000, count: 15 }\napps:\n  - name: a\n    command: [x]\n    pool: { warm: 2, max: 10 }\n  - name: b\n    command: [y]\n    pool: { warm: 2, max: 10 }`,
    /processUsers\.count is 15; the process apps may run 20 instances at once \(the sum of their pool\.max\); allowed: at least 20/,
  ],
  ['swarm without image', `apps:\n  - name: a\n    runtime: swarm`, /apps\[0\]\.image is missing/],
  [
    'swarm on a bridge',
    `apps:\n  - name: a\n    runtime: swarm\n    image: x\n    network: bridge\n    port: 80`,
    /apps\[0\]\.network is "bridge"; runtime swarm runs instances on host networking, or on the overlay network named in swarm\.network/,
  ],
  ['swarm block on docker', `apps:\n  - name: a\n    runtime: docker\n    image: x\n    swarm: {}`, /apps\[0\]\.swarm is \{\}; swarm: is for runtime swarm/],
  [
    'unknown swarm app key',
    `apps:\n  - name: a\n    runtime: swarm\n    image: x\n    swarm: { replicas: 2 }`,
    /apps\[0\]\.swarm\.replicas is 2; unknown key; allowed keys here: constraints, spread, reservations, network/,
  ],
  [
    'bad constraint',
    `apps:\n  - name: a\n    runtime: swarm\n    image: x\n    swarm: { constraints: [gpu] }`,
    /apps\[0\]\.swarm\.constraints\[0\] is "gpu"; expected a constraint like node\.role==worker/,
  ],
  [
    'bad spread',
    `apps:\n  - name: a\n    runtime: swarm\n    image: x\n    swarm: { spread: [zone] }`,
    /apps\[0\]\.swarm\.spread\[0\] is "zone"; expected a node attribute to spread over/,
  ],
  [
    'bad reservation',
    `apps:\n  - name: a\n    runtime: swarm\n    image: x\n    swarm: { reservations: { memory: lots } }`,
    /apps\[0\]\.swarm\.reservations\.memory is "lots"; expected a size/,
  ],
  [
    'overlay without port',
    `apps:\n  - name: a\n    runtime: swarm\n    image: x\n    swarm: { network: nb }`,
    /apps\[0\]\.port is missing; an app on an overlay network \(swarm\.network\) needs the port/,
  ],
  [
    'host-network swarm app with a port',
    `apps:\n  - name: a\n    runtime: swarm\n    image: x\n    port: 80`,
    /apps\[0\]\.port is 80; a host-network swarm app gets an allocated port/,
  ],
  ['bad swarm replica', `swarm: { replica: Web_1 }\n${minimal}`, /swarm\.replica is "Web_1"; expected lower-case letters/],
  ['unknown swarm key', `swarm: { managers: 3 }\n${minimal}`, /swarm\.managers is 3; unknown key; allowed keys here: replica, schedulingTimeout/],
  [
    'refill rate zero',
    `apps:\n  - name: a\n    command: [x]\n    pool: { refillPerSecond: 0 }`,
    /apps\[0\]\.pool\.refillPerSecond is 0; expected a number from 0\.001 to 1000/,
  ],
  [
    'warming on a process app',
    `apps:\n  - name: a\n    command: [x]\n    warming: { cpuShares: 128 }`,
    /apps\[0\]\.warming is \{"cpuShares":128\}; warming \(a CPU weight while an instance warms\) is for runtime docker/,
  ],
  [
    'warming on a swarm app',
    `apps:\n  - name: a\n    runtime: swarm\n    image: x\n    warming: { cpuShares: 128 }`,
    /apps\[0\]\.warming is .*; swarm instances keep one CPU weight: changing a service's resources replaces its task/,
  ],
  [
    "warming shares below the engine's minimum",
    `apps:\n  - name: a\n    runtime: docker\n    image: x\n    warming: { cpuShares: 1 }`,
    /apps\[0\]\.warming\.cpuShares is 1; expected an integer from 2 to 1024/,
  ],
  [
    'resolveDeepLink not a boolean',
    `apps:\n  - name: a\n    command: [x]\n    resolveDeepLink: sometimes`,
    /apps\[0\]\.resolveDeepLink is "sometimes"; expected true or false/,
  ],
  [
    'warming unknown key',
    `apps:\n  - name: a\n    runtime: docker\n    image: x\n    warming: { nice: 10 }`,
    /apps\[0\]\.warming\.nice is 10; unknown key; allowed keys here: cpuShares/,
  ],
];

for (const [what, yaml, msg] of bad) {
  test(`refused: ${what}`, () => {
    assert.throws(
      () => parseConfig(yaml, 'cfg.yaml'),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'CONFIG_INVALID');
        assert.match(e.message, /^cfg\.yaml: /);
        assert.match(e.message, msg);
        return true;
      },
    );
  });
}

test('relay limits: defaults, and each one set from YAML', () => {
  assert.deepEqual(parseConfig(minimal).relay, DEFAULT_RELAY_LIMITS);
  const c = parseConfig(
    `relay: { headerSize: 32k, headerTimeout: 5s, websocketsPerSession: 4, connectionsPerAddress: 600, upstreamConnectionsPerInstance: 8 }\n${minimal}`,
  );
  assert.deepEqual(c.relay, {
    headerBytes: 32 * 1024,
    headerTimeoutMs: 5000,
    websocketsPerSession: 4,
    connectionsPerAddress: 600,
    upstreamConnectionsPerInstance: 8,
  });
});

test('queue: defaults, and each one set from YAML', () => {
  assert.deepEqual(parseConfig(minimal).queue, DEFAULT_QUEUE);
  assert.deepEqual(DEFAULT_QUEUE, {
    holdMs: 25_000,
    pageHoldMs: 2000,
    attachMs: 10_000,
    collectMs: 10_000,
    firstUseMs: 15_000,
    unusedClaimsPerAddress: 10,
    waitingPerAddress: 100,
    claimRate: { perSecond: 5, burst: 60 },
  });
  const c = parseConfig(
    `queue: { hold: 20s, pageHold: 0, attach: 5s, collect: 8s, firstUse: 30s, unusedClaimsPerAddress: 4, waitingPerAddress: 200, claimRate: { perSecond: 0.5, burst: 120 } }\n${minimal}`,
  );
  assert.deepEqual(c.queue, {
    holdMs: 20_000,
    pageHoldMs: 0,
    attachMs: 5000,
    collectMs: 8000,
    firstUseMs: 30_000,
    unusedClaimsPerAddress: 4,
    waitingPerAddress: 200,
    claimRate: { perSecond: 0.5, burst: 120 },
  });
  assert.deepEqual(
    parseConfig(`queue: { claimRate: { burst: 10 } }\n${minimal}`).queue.claimRate,
    { perSecond: 5, burst: 10 },
    'one field set, the other kept',
  );
});

test("processUsers: on by default (a range systemd leaves unused), false turns it off, a range of one's own", () => {
  assert.deepEqual(parseConfig(minimal).processUsers, { uidFrom: 1879048192, count: 10_000 });
  assert.deepEqual(DEFAULT_PROCESS_USERS, { uidFrom: 1879048192, count: 10_000 });
  assert.equal(parseConfig(`processUsers: false\n${minimal}`).processUsers, false);
  assert.deepEqual(parseConfig(`processUsers: true\n${minimal}`).processUsers, DEFAULT_PROCESS_USERS);
  assert.deepEqual(parseConfig(`processUsers: { uidFrom: 70000, count: 500 }\n${minimal}`).processUsers, { uidFrom: 70000, count: 500 });
  assert.deepEqual(
    parseConfig(`processUsers: { uidFrom: 2147480000 }\n${minimal}`).processUsers,
    { uidFrom: 2147480000, count: 3647 },
    'count defaults to what fits',
  );
  // Docker apps need no uids.
  assert.deepEqual(
    parseConfig(`processUsers: { uidFrom: 70000, count: 1 }\napps:\n  - name: d\n    runtime: docker\n    image: x\n    pool: { max: 50 }`).processUsers,
    { uidFrom: 70000, count: 1 },
  );
});

test('durations and sizes', () => {
  assert.equal(parseDuration('1h30m'), 90 * 60_000);
  assert.equal(parseDuration('45s'), 45_000);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration(2), 2000);
  assert.equal(parseDuration('10 minutes'), undefined);
  assert.equal(parseDuration(''), undefined);
  assert.equal(parseBytes('512m'), 512 * 1024 ** 2);
  assert.equal(parseBytes('2G'), 2 * 1024 ** 3);
  assert.equal(parseBytes('1.5g'), 1.5 * 1024 ** 3);
});

test('loadConfig names a missing file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wp-cfg-'));
  try {
    assert.throws(
      () => loadConfig(join(dir, 'nope.yaml')),
      (e: Error & { code?: string }) => e.code === 'CONFIG_UNREADABLE' && /nope\.yaml/.test(e.message),
    );
    writeFileSync(join(dir, 'ok.yaml'), minimal);
    assert.equal(loadConfig(join(dir, 'ok.yaml'), {}).apps[0]!.name, 'demo');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('admin: its own listener by default (127.0.0.1:8081, not public), set from YAML and the environment', () => {
  assert.deepEqual(parseConfig(minimal).admin, { host: '127.0.0.1', port: 8081, public: false, generateToken: false });
  assert.deepEqual(parseConfig(`admin: { host: 10.0.0.5, port: 9100, public: true, generateToken: true }\n${minimal}`).admin, {
    host: '10.0.0.5',
    port: 9100,
    public: true,
    generateToken: true,
  });
  const env = parseConfig(`admin: { port: 9100 }\n${minimal}`, 'c', { WARMPOOL_ADMIN_HOST: '::1', WARMPOOL_ADMIN_PORT: '0' }).admin!;
  assert.deepEqual([env.host, env.port], ['::1', 0]);
});

const badAdmin: [string, string, RegExp][] = [
  [
    'admin on the public port',
    `listen: { port: 8080 }\nadmin: { port: 8080 }\n${minimal}`,
    /admin\.port is 8080; the admin listener needs a port of its own \(listen\.port is 8080\); allowed: any other port, or 0 for a free one; to serve the admin surface on the public port as well, set admin\.public: true/,
  ],
  ['admin unknown key', `admin: { token: abc }\n${minimal}`, /admin\.token is "abc"; unknown key; allowed keys here: host, port, public, generateToken/],
  ['admin public not a boolean', `admin: { public: yes please }\n${minimal}`, /admin\.public is "yes please"; expected true or false/],
  ['admin port out of range', `admin: { port: 70000 }\n${minimal}`, /admin\.port is 70000; expected an integer from 0 to 65535/],
  ['log addresses', `log: { addresses: anonymous }\n${minimal}`, /log\.addresses is "anonymous"; allowed: full, truncate, hash/],
  [
    'log retention under a day',
    `log: { retention: 2h }\n${minimal}`,
    /log\.retention is "2h"; expected a duration like 90s, 20m, 1h30m, 30d or a number of seconds, at least 86400000 ms/,
  ],
];

for (const [what, yaml, msg] of badAdmin) {
  test(`refused: ${what}`, () => {
    assert.throws(
      () => parseConfig(yaml, 'cfg.yaml'),
      (e: Error & { code?: string }) => e.code === 'CONFIG_INVALID' && msg.test(e.message),
    );
  });
}

test('WARMPOOL_ADMIN_PORT equal to the public port is refused too', () => {
  assert.throws(() => parseConfig(minimal, 'c', { WARMPOOL_ADMIN_PORT: '8080' }), /admin\.port is 8080; the admin listener needs a port of its own/);
  assert.throws(() => parseConfig(minimal, 'c', { WARMPOOL_ADMIN_PORT: 'high' }), /WARMPOOL_ADMIN_PORT \(env\) is "high"; expected an integer/);
});

test('log: addresses full by default; truncate, hash; retention in days', () => {
  const d = parseConfig(minimal).log;
  assert.equal(d.addresses, 'full');
  assert.equal(d.retentionMs, undefined, 'kept forever unless set');
  const c = parseConfig(`log: { addresses: hash, retention: 30d }\n${minimal}`).log;
  assert.deepEqual([c.addresses, c.retentionMs], ['hash', 30 * 86_400_000]);
  assert.equal(parseConfig(`log: { addresses: truncate, retention: 1d12h }\n${minimal}`).log.retentionMs, 36 * 3_600_000);
  assert.equal(parseDuration('2d'), 2 * 86_400_000);
});
