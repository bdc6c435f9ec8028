// Config validation: defaults, env overrides, and errors that name the field, the value and what
// is allowed. Table-driven.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_QUEUE, DEFAULT_RELAY_LIMITS, loadConfig, parseConfig, parseDuration, parseBytes } from '../pool/config.js';

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
});

test('WARMPOOL_HOST and WARMPOOL_PORT override the file', () => {
  const c = parseConfig(minimal, 'x', { WARMPOOL_HOST: '0.0.0.0', WARMPOOL_PORT: '9999' });
  assert.deepEqual([c.host, c.port], ['0.0.0.0', 9999]);
  assert.throws(() => parseConfig(minimal, 'x', { WARMPOOL_PORT: 'eighty' }), /WARMPOOL_PORT \(env\) is "eighty"; expected an integer/);
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
  ['bad deep link', `apps:\n  - name: a\n    command: [x]\n    deepLink: open?path=x`, /apps\[0\]\.deepLink is "open\?path=x"; expected a path starting with \//],
  ['secret without inject', `apps:\n  - name: a\n    command: [x]\n    secret: { env: S, inject: {} }`, /apps\[0\]\.secret\.inject is \{\}; expected at least one of query, header, cookie/],
  ['token pattern without group', `apps:\n  - name: a\n    command: [x]\n    secret: { fromOutput: "token=\\\\w+", inject: { query: token } }`, /fromOutput .*capture group/],
  ['bridge without port', `apps:\n  - name: a\n    runtime: docker\n    image: x\n    network: bridge`, /apps\[0\]\.port is missing; a bridge-network app needs the container port/],
  ['reserved name', `apps:\n  - name: _warmpool\n    command: [x]`, /apps\[0\]\.name is "_warmpool"/],
  ['not yaml', `apps: [`, /not valid YAML/],
  ['unknown relay key', `relay: { maxSockets: 3 }\n${minimal}`, /relay\.maxSockets is 3; unknown key; allowed keys here: headerSize, headerTimeout/],
  ['relay head size too small', `relay: { headerSize: 10 }\n${minimal}`, /relay\.headerSize is 10; expected a size like 16k or 64k, from 1024 to 1048576 bytes/],
  ['relay WebSockets per session zero', `relay: { websocketsPerSession: 0 }\n${minimal}`, /relay\.websocketsPerSession is 0; expected an integer from 1 to 10000/],
  ['relay head timeout', `relay: { headerTimeout: forever }\n${minimal}`, /relay\.headerTimeout is "forever"; expected a duration/],
  ['unknown queue key', `queue: { ticketTtl: 20s }\n${minimal}`, /queue\.ticketTtl is "20s"; unknown key; allowed keys here: hold, attach, collect, firstUse, unusedClaimsPerAddress, waitingPerAddress, claimRate/],
  ['queue hold too short', `queue: { hold: 200ms }\n${minimal}`, /queue\.hold is "200ms"; expected a duration like 90s, 20m, 1h30m or a number of seconds, at least 1000 ms/],
  ['queue first use not a duration', `queue: { firstUse: soon }\n${minimal}`, /queue\.firstUse is "soon"; expected a duration/],
  ['queue unused claims zero', `queue: { unusedClaimsPerAddress: 0 }\n${minimal}`, /queue\.unusedClaimsPerAddress is 0; expected an integer from 1 to 100000/],
  ['queue waiting places fractional', `queue: { waitingPerAddress: 2.5 }\n${minimal}`, /queue\.waitingPerAddress is 2\.5; expected an integer from 1 to 100000/],
  ['queue claim rate unknown key', `queue: { claimRate: { perMinute: 5 } }\n${minimal}`, /queue\.claimRate\.perMinute is 5; unknown key; allowed keys here: perSecond, burst/],
  ['queue claim rate zero', `queue: { claimRate: { perSecond: 0 } }\n${minimal}`, /queue\.claimRate\.perSecond is 0; expected a number from 0\.01 to 100000/],
  ['queue burst', `queue: { claimRate: { burst: many } }\n${minimal}`, /queue\.claimRate\.burst is "many"; expected an integer from 1 to 100000/],
];

for (const [what, yaml, msg] of bad) {
  test(`refused: ${what}`, () => {
    assert.throws(() => parseConfig(yaml, 'cfg.yaml'), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'CONFIG_INVALID');
      assert.match(e.message, /^cfg\.yaml: /);
      assert.match(e.message, msg);
      return true;
    });
  });
}

test('relay limits: defaults, and each one set from YAML', () => {
  assert.deepEqual(parseConfig(minimal).relay, DEFAULT_RELAY_LIMITS);
  const c = parseConfig(`relay: { headerSize: 32k, headerTimeout: 5s, websocketsPerSession: 4, connectionsPerAddress: 600, upstreamConnectionsPerInstance: 8 }\n${minimal}`);
  assert.deepEqual(c.relay, { headerBytes: 32 * 1024, headerTimeoutMs: 5000, websocketsPerSession: 4, connectionsPerAddress: 600, upstreamConnectionsPerInstance: 8 });
});

test('queue: defaults, and each one set from YAML', () => {
  assert.deepEqual(parseConfig(minimal).queue, DEFAULT_QUEUE);
  assert.deepEqual(DEFAULT_QUEUE, { holdMs: 25_000, attachMs: 10_000, collectMs: 10_000, firstUseMs: 15_000, unusedClaimsPerAddress: 10, waitingPerAddress: 100, claimRate: { perSecond: 5, burst: 60 } });
  const c = parseConfig(`queue: { hold: 20s, attach: 5s, collect: 8s, firstUse: 30s, unusedClaimsPerAddress: 4, waitingPerAddress: 200, claimRate: { perSecond: 0.5, burst: 120 } }\n${minimal}`);
  assert.deepEqual(c.queue, { holdMs: 20_000, attachMs: 5000, collectMs: 8000, firstUseMs: 30_000, unusedClaimsPerAddress: 4, waitingPerAddress: 200, claimRate: { perSecond: 0.5, burst: 120 } });
  assert.deepEqual(parseConfig(`queue: { claimRate: { burst: 10 } }\n${minimal}`).queue.claimRate, { perSecond: 5, burst: 10 }, 'one field set, the other kept');
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
    assert.throws(() => loadConfig(join(dir, 'nope.yaml')), (e: Error & { code?: string }) => e.code === 'CONFIG_UNREADABLE' && /nope\.yaml/.test(e.message));
    writeFileSync(join(dir, 'ok.yaml'), minimal);
    assert.equal(loadConfig(join(dir, 'ok.yaml'), {}).apps[0]!.name, 'demo');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
