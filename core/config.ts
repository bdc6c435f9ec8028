// The YAML configuration: one zod schema holds every field's validation, default and description.
// The types are inferred from it, `warmpool schema` prints it as JSON Schema, unknown keys are
// refused, and each issue is told as `source: path is <value>; <what is allowed>`.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';
import * as z from 'zod';
import { replicaFromHost } from './names.js';
import { WarmpoolError } from './errors.js';

// ---- Field kinds: each says what it allows in the words an error shows. ----

const NAME_RE = /^[a-z0-9][a-z0-9-]{0,39}$/;
const NAME_WHAT = 'expected lower-case letters, digits and dashes (at most 40)';
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ENV_NAME_WHAT = 'expected an environment variable name';
const RESERVED = new Set(['_warmpool', 'favicon.ico', 'robots.txt']);
/** Highest uid a range may reach: Node's spawn takes an int32 uid. */
const UID_MAX = 2147483646;

/** A non-empty string, matching re when given. */
function str(re?: RegExp, what?: string) {
  const error = 'expected a non-empty string';
  const s = z.string({ error }).min(1, { error, abort: true });
  return re ? s.regex(re, { error: what ?? `expected to match ${re}`, abort: true }) : s;
}

function int(min: number, max: number) {
  const error = `expected an integer from ${min} to ${max}`;
  return z.int({ error }).min(min, { error }).max(max, { error });
}

function num(min: number, max: number) {
  const error = `expected a number from ${min} to ${max}`;
  return z.number({ error }).min(min, { error }).max(max, { error });
}

const bool = () => z.boolean({ error: 'expected true or false' });

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: `allowed: ${values.join(', ')}` });
}

function strList() {
  const error = 'expected a non-empty list of strings';
  return z.array(str(), { error }).min(1, { error });
}

/** A regular expression, written as a string. */
function regex() {
  return str().transform((s, ctx) => {
    try {
      return new RegExp(s);
    } catch (e) {
      ctx.issues.push({ code: 'custom', input: s, message: `expected a regular expression (${(e as Error).message})` });
      return z.NEVER;
    }
  });
}

/** 90s, 20m, 1h30m, 30d, 250ms, or a number of seconds. */
const DURATION_PATTERN = /^\s*(?=\d)(?:\d+d)?(?:\d+h)?(?:\d+m(?!s))?(?:\d+s)?(?:\d+ms)?\s*$/;

/** A duration, in ms once parsed; at least min ms. */
function duration(min = 0) {
  const error = `expected a duration like 90s, 20m, 1h30m, 30d or a number of seconds${min ? `, at least ${min} ms` : ''}`;
  return z.union([z.number({ error }).min(min / 1000, { error }), z.string({ error }).regex(DURATION_PATTERN, { error })], { error }).transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined || ms < min) {
      ctx.issues.push({ code: 'custom', input: v, message: error });
      return z.NEVER;
    }
    return ms;
  });
}

/** 16k, 64kb, 512m, 2g, 1.5GiB, or a number of bytes. */
const SIZE_PATTERN = /^\s*\d+(?:\.\d+)?\s*[kKmMgG]?[iI]?[bB]?\s*$/;

/** A byte size, in bytes once parsed, from min to max. */
function size(min: number, max: number, error: string) {
  return z.union([z.int({ error }).min(1, { error }), z.string({ error }).regex(SIZE_PATTERN, { error })], { error }).transform((v, ctx) => {
    const b = parseBytes(v);
    if (b === undefined || b < min || b > max) {
      ctx.issues.push({ code: 'custom', input: v, message: error });
      return z.NEVER;
    }
    return b;
  });
}

/** Memory: a size like 512m or 2g, at least 4m. */
const memory = () => size(4 * 1024 * 1024, Number.MAX_SAFE_INTEGER, 'expected a size like 512m or 2g (at least 4m)');

/** A mapping whose unknown keys are refused, naming the keys allowed there. */
function strict<S extends z.ZodRawShape>(shape: S) {
  const keys = Object.keys(shape).join(', ');
  return z.strictObject(shape, { error: (iss) => (iss.code === 'unrecognized_keys' ? `unknown key; allowed keys here: ${keys}` : 'expected a mapping') });
}

/** A mapping that may be left out or left empty (`listen:`): its fields' defaults apply. */
function section<T extends z.ZodType>(schema: T) {
  return z.preprocess((v) => (v === null ? undefined : v), schema.prefault({} as z.input<T>));
}

/** A check of a mapping as written (before its fields are parsed), when what it says is about keys given together. */
type RawCheck = (o: Record<string, unknown>, fail: (path: PropertyKey[], input: unknown, message: string) => void) => void;
function checked<T extends z.ZodType>(check: RawCheck, schema: T, o: { nullIsUnset?: boolean } = {}) {
  return z.preprocess((v, ctx) => {
    if (v === null && o.nullIsUnset) return undefined;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      check(v as Record<string, unknown>, (path, input, message) => ctx.issues.push({ code: 'custom', path, input, message }));
    }
    return v;
  }, schema);
}

/** Keys whose value may be undefined become optional in the type (configs built in code leave them out); parsing still sets each one. */
type Loose<T> = { [K in keyof T as undefined extends T[K] ? K : never]?: T[K] } & { [K in keyof T as undefined extends T[K] ? never : K]: T[K] };
type Flat<T> = { [K in keyof T]: T[K] } & {};
const loose = <T extends object>(o: T) => o as unknown as Flat<Loose<T>>;

// ---- The schema, section by section. ----

const relaySchema = strict({
  headerSize: size(1024, 1024 * 1024, 'expected a size like 16k or 64k, from 1024 to 1048576 bytes')
    .prefault('16k')
    .describe("Bytes of a request head (request line + headers), as Node's maxHeaderSize; larger heads get 431."),
  headerTimeout: duration(100).prefault('20s').describe('A request head must arrive within this (slow-drip heads get 408).'),
  websocketsPerSession: int(1, 10_000)
    .default(32)
    .describe('WebSockets open at once per session; more are refused with 429 (an idle notebook tab is never cut).'),
  connectionsPerAddress: int(1, 1_000_000)
    .default(1024)
    .describe("Client connections open at once per visitor address (a trusted proxy's are not counted); more get 429."),
  upstreamConnectionsPerInstance: int(1, 10_000).default(32).describe('HTTP connections to one instance at once; further requests wait for one to be free.'),
})
  .transform((r) => ({
    headerBytes: r.headerSize,
    headerTimeoutMs: r.headerTimeout,
    websocketsPerSession: r.websocketsPerSession,
    connectionsPerAddress: r.connectionsPerAddress,
    upstreamConnectionsPerInstance: r.upstreamConnectionsPerInstance,
  }))
  .describe('What one visitor, one session or one instance may take of the shared proxy. The defaults leave a class of 60 behind one NAT address room.');

const queueSchema = strict({
  hold: duration(1000).prefault('25s').describe("An API client's request is held this long for an instance, then answered 503 + Retry-After."),
  pageHold: duration(0)
    .prefault('2s')
    .describe(
      "A browser's request for the app with no instance free is held this long for one (answered with the redirect the moment one is ready), then answered with the waiting page, which keeps its place. 0: the waiting page at once.",
    ),
  attach: duration(1000).prefault('10s').describe('A waiting page must open its live stream within this after it was served, or its ticket lapses.'),
  collect: duration(1000).prefault('10s').describe('An instance offered to a waiter goes back to the line unless collected within this.'),
  firstUse: duration(1000).prefault('15s').describe('A claim that no request has used within this is returned to the pool as ready.'),
  unusedClaimsPerAddress: int(1, 100_000)
    .default(10)
    .describe('Claims not yet used (and offers not yet collected) per visitor address; more wait in line (a held API request gets 429).'),
  waitingPerAddress: int(1, 100_000).default(100).describe('Places in line per visitor address; more get 429.'),
  claimRate: section(
    strict({
      perSecond: num(0.01, 100_000).default(5).describe('Claims per second, on average.'),
      burst: int(1, 100_000).default(60).describe('Claims at once.'),
    }),
  ).describe("Visitors' claims of one app, as a token bucket."),
})
  .transform((q) => ({
    holdMs: q.hold,
    pageHoldMs: q.pageHold,
    attachMs: q.attach,
    collectMs: q.collect,
    firstUseMs: q.firstUse,
    unusedClaimsPerAddress: q.unusedClaimsPerAddress,
    waitingPerAddress: q.waitingPerAddress,
    claimRate: { perSecond: q.claimRate.perSecond, burst: q.claimRate.burst },
  }))
  .describe('The waiting line and fair sharing without logins, applied to each app on its own.');

const portsSchema = strict({
  from: int(1024, 65535).default(20000).describe('First host port handed to process and host-network instances.'),
  to: int(1024, 65535).optional().describe('Last host port (default: from + 9999, at most 65535).'),
}).transform((p, ctx) => {
  const to = p.to ?? Math.min(65535, p.from + 9999);
  if (to < p.from) {
    ctx.issues.push({ code: 'custom', path: ['to'], input: p.to, message: `expected an integer from ${p.from} to 65535` });
    return z.NEVER;
  }
  return { from: p.from, to };
});

const logSchema = strict({
  dir: str().optional().describe('Folder of the traffic log (default: <stateDir>/log).'),
  rotateSize: memory().prefault('64m').describe('A log file is continued in a new part once it passes this size.'),
  addresses: oneOf(['full', 'truncate', 'hash'])
    .default('full')
    .describe('How visitor addresses are written to the traffic log: full; truncate: IPv4 to /24, IPv6 to /48; hash: keyed HMAC (key kept in stateDir).'),
  // At least a day: files are per UTC day, and the one being written must never be removed.
  retention: duration(86_400_000).optional().describe('Log files whose last possible entry is older than this are removed (at least 1d); unset: kept forever.'),
});

/**
 * Default: the first 10,000 uids of the range systemd leaves unused (1879048192–2147352575, see
 * https://systemd.io/UIDS-GIDS/), so no system, regular, DynamicUser= or container uid is met. It
 * stays below 2^31: Node's spawn takes an int32 uid.
 */
export const DEFAULT_PROCESS_USERS: Readonly<{ uidFrom: number; count: number }> = Object.freeze({ uidFrom: 1879048192, count: 10_000 });

/** The upper bound depends on uidFrom: checked with it, below. */
const COUNT_WHAT = `expected an integer from 1 to the number of uids from uidFrom to ${UID_MAX}`;
const processUsersSchema = z
  .union(
    [
      bool(),
      strict({
        uidFrom: int(1000, UID_MAX).optional().describe(`First uid of the range (default ${DEFAULT_PROCESS_USERS.uidFrom}).`),
        count: z
          .int({ error: COUNT_WHAT })
          .min(1, { error: COUNT_WHAT })
          .optional()
          .describe(`Uids in the range (default ${DEFAULT_PROCESS_USERS.count}); at least the process apps' pool.max added up.`),
      }),
    ],
    { error: 'expected false (off) or a mapping { uidFrom, count }' },
  )
  .optional()
  .describe(
    "Runtime process, when warmpool runs as root: each instance runs under its own uid (gid the same number) from this range, so instances cannot read each other's environment or files. false: instances run as warmpool's own user.",
  );

const swarmSchema = strict({
  replica: str(NAME_RE, NAME_WHAT)
    .optional()
    .describe(
      'Names this warmpool process among those sharing one swarm and deployment: stable across restarts, distinct per process. Default: WARMPOOL_REPLICA, else the host name.',
    ),
  schedulingTimeout: duration(1000).prefault('60s').describe('A task no node takes for this long (constraints, reservations) fails its create.'),
}).describe('What the swarm runtime needs beyond the apps.');

const adminSchema = strict({
  host: str().default('127.0.0.1').describe('Address of the admin listener (WARMPOOL_ADMIN_HOST overrides it).'),
  port: int(0, 65535).default(8081).describe('Port of the admin listener, not the public one (WARMPOOL_ADMIN_PORT overrides it; 0: a free one).'),
  public: bool().default(false).describe('Also serve the admin surface on the public listener under /_warmpool/admin/ (same token).'),
  generateToken: bool().default(false).describe('No token in the environment: make one up at each start and print the dashboard URL with it (the demo).'),
}).describe(
  'The admin surface (dashboard, JSON API, /metrics) on its own listener, because notebooks run arbitrary JavaScript on the public origin. On only when WARMPOOL_ADMIN_TOKEN[_FILE] is set or generateToken is true.',
);

// ---- One app. ----

const readinessSchema = checked(
  (r, fail) => {
    if (r.http === undefined && r.log === undefined) fail([], r, 'expected http: {path, status} or log: <pattern>');
    if (r.http !== undefined && r.log !== undefined) fail([], r, 'choose one of http or log');
  },
  strict({
    http: strict({
      path: str(/^\//, 'expected a path starting with /').describe('GET this path of the instance...'),
      status: int(100, 599).default(200).describe('...until it answers this status.'),
    })
      .optional()
      .describe('HTTP probe (apps whose port opens only when they are ready; Jupyter: GET {base}api).'),
    log: regex()
      .optional()
      .describe('Output probe: a line of the instance\'s output matching this regular expression, then its port accepting a connection (Pluto: "^READY$").'),
    timeout: duration(100).prefault('5m').describe('Give up (and replace the instance) after this long.'),
    interval: duration(10).prefault('250ms').describe('Between HTTP probes.'),
  })
    .transform((r) => ({
      timeoutMs: r.timeout,
      intervalMs: r.interval,
      ...(r.http ? { http: r.http } : {}),
      ...(r.log ? { log: r.log } : {}),
    }))
    .prefault({ http: { path: '/' } }),
  { nullIsUnset: true },
).describe('When a new instance is ready to be handed out: one of http or log.');

const secretSchema = checked(
  (s, fail) => {
    if (s.env === undefined && s.fromOutput === undefined) fail([], s, 'expected env (the proxy generates the secret) or fromOutput (the image makes its own)');
    if (s.env !== undefined && s.fromOutput !== undefined) fail([], s, 'choose one of env or fromOutput');
    const inj = s.inject;
    if (inj !== null && typeof inj === 'object' && !Array.isArray(inj)) {
      const i = inj as Record<string, unknown>;
      if (i.query === undefined && i.header === undefined && i.cookie === undefined) fail(['inject'], inj, 'expected at least one of query, header, cookie');
    }
    if (typeof s.fromOutput === 'string' && !s.fromOutput.includes('('))
      fail(['fromOutput'], s.fromOutput, 'expected a regular expression with one capture group holding the token');
  },
  strict({
    env: str(ENV_NAME_RE, ENV_NAME_WHAT)
      .optional()
      .describe('The proxy generates a secret per instance and passes it in this environment variable (PLUTO_SECRET, JUPYTER_TOKEN).'),
    fromOutput: regex().optional().describe('For images that make up their own token: a regular expression with one group, matched against the output.'),
    inject: strict({
      query: str().optional().describe('Add the secret as this query parameter.'),
      header: str(/^[A-Za-z0-9-]+$/, 'expected a header name')
        .optional()
        .describe('Add the secret in this request header...'),
      headerFormat: str(/\{secret\}/, 'expected a template containing {secret}')
        .default('{secret}')
        .describe('...written like this ({secret} replaced).'),
      cookie: str(/^[A-Za-z0-9_-]+$/, 'expected a cookie name')
        .optional()
        .describe('Add the secret as this cookie.'),
    }).describe('How the proxy adds the secret to every forwarded request.'),
  }).transform((s) =>
    loose({
      env: s.env,
      fromOutput: s.fromOutput,
      inject: loose({ query: s.inject.query, header: s.inject.header, headerFormat: s.inject.headerFormat, cookie: s.inject.cookie }),
    }),
  ),
).describe("The instance's secret: an instance refuses anyone who bypasses the proxy, and no visitor ever sees it.");

function strListMatching(re: RegExp, what: string) {
  return z.array(str(re, what), { error: 'expected a list' });
}

const swarmAppSchema = strict({
  constraints: strListMatching(/^\s*[\w.-]+\s*(==|!=)\s*\S.*$/, 'expected a constraint like node.role==worker or node.labels.pool!=gpu')
    .optional()
    .describe('Placement constraints, as `docker service create --constraint` takes them (node.labels.pool==notebooks).'),
  spread: strListMatching(
    /^(node\.(id|hostname|role|platform\.os|platform\.arch)|node\.labels\.[\w.-]+|engine\.labels\.[\w.-]+)$/,
    'expected a node attribute to spread over, like node.labels.zone',
  )
    .optional()
    .describe('Spread preferences: node attributes to spread instances over (node.labels.zone).'),
  reservations: strict({
    cpus: num(0.01, 1024).optional().describe('CPUs set aside per instance.'),
    memory: memory().optional().describe('Memory set aside per instance.'),
  })
    .optional()
    .describe('Set aside per instance: a node takes a task only while it has this much unreserved. Unset: nothing reserved.'),
  network: str(/^[A-Za-z0-9][\w.-]*$/, 'expected the name of an overlay network')
    .optional()
    .describe(
      "An attachable overlay network (made by the operator) to put instances on; warmpool dials each task's own address on it, at port. Unset: host networking on an allocated port bound to 127.0.0.1.",
    ),
}).describe("runtime swarm: where each instance's service may run and what the scheduler reserves for it.");

const appSchema = strict({
  name: str(NAME_RE, `${NAME_WHAT}; it becomes the public prefix /<name>/`)
    .refine((n) => !RESERVED.has(n), { error: 'this name is reserved' })
    .describe("The app's name, and its public prefix /<name>/."),
  runtime: oneOf(['process', 'docker', 'swarm'])
    .default('process')
    .describe('Where instances run: local processes, Docker containers, or Docker Swarm services.'),
  command: strList().optional().describe('runtime process: the command line; {port} is replaced by the allocated port.'),
  cwd: str().optional().describe('runtime process: working directory.'),
  image: str(/^[a-z0-9][\w./:@-]*$/i, 'expected an image reference like warmpool/standin:latest')
    .optional()
    .describe('runtime docker and swarm: the image.'),
  args: strList().optional().describe("runtime docker and swarm: overrides the image's command."),
  port: int(0, 65535)
    .optional()
    .describe(
      'The port the app listens on. Unset or 0: allocated (process, host networking), the app reads it from env PORT or {port}. A bridge-network or overlay app needs its own.',
    ),
  env: z
    .record(
      z.string().regex(ENV_NAME_RE, { error: ENV_NAME_WHAT }),
      z.union([z.string(), z.number(), z.boolean()], { error: 'expected a string, number or boolean' }).transform(String),
      { error: 'expected a mapping' },
    )
    .prefault({})
    .describe('Environment of each instance.'),
  deepLink: str(/^\/[^\s]*$/, 'expected a path starting with / (e.g. /open?path=webapp.jl)')
    .default('/')
    .describe('Where a new visitor is sent in their instance.'),
  resolveDeepLink: bool()
    .optional()
    .describe(
      "Follow the deep link once when an instance becomes ready and, if it answers a redirect within the instance, send each new visitor straight to that target (Pluto's /open?path= answers the open notebook's ./edit?id=): one round trip less per student. Leave false for a deep link that does something per visit (Voila renders the notebook on each GET). Unset: true for classifier pluto.",
    ),
  prefix: z
    .union(
      [
        z.literal('strip'),
        strict({ baseUrlEnv: str(ENV_NAME_RE, ENV_NAME_WHAT).describe('The environment variable that passes the prefix (/<name>/) to the app.') }),
      ],
      { error: 'expected strip or a mapping { baseUrlEnv }' },
    )
    .default('strip')
    .transform((p) => (p === 'strip' ? { mode: 'strip' as const } : { mode: 'base-url' as const, env: p.baseUrlEnv }))
    .describe('strip: the app sees paths without /<name>; { baseUrlEnv: BASE_URL }: the prefix is kept and passed to the app in that variable (Jupyter).'),
  pool: section(
    strict({
      warm: int(0, 1000).default(2).describe('Ready idle instances kept ahead of demand.'),
      max: int(1, 10_000).optional().describe('Instances in all, claimed or not (default: the larger of warm and 10).'),
      parallel: int(1, 100).default(4).describe('Instances created at once.'),
      refillPerSecond: num(0.001, 1000)
        .optional()
        .describe('Creates start at most this often (a token bucket on the clock, one at a time); unset: as fast as parallel lets them.'),
    }).transform((p, ctx) => {
      const max = p.max ?? Math.max(p.warm, 10);
      if (max < p.warm) {
        ctx.issues.push({ code: 'custom', path: ['max'], input: max, message: `must be at least pool.warm (${p.warm})` });
        return z.NEVER;
      }
      return { warm: p.warm, max, parallel: p.parallel, ...(p.refillPerSecond === undefined ? {} : { refillPerSecond: p.refillPerSecond }) };
    }),
  ).describe('How many instances this app keeps and runs.'),
  readiness: readinessSchema,
  limits: section(
    strict({
      cpus: num(0.01, 1024).optional().describe('CPUs an instance may use.'),
      memory: memory().optional().describe('Memory an instance may use.'),
    }).transform((l) => loose({ cpus: l.cpus, memoryBytes: l.memory })),
  ).describe('What one instance may use (docker and swarm).'),
  network: oneOf(['host', 'bridge'])
    .default('host')
    .describe('host: an allocated port bound to 127.0.0.1 (env PORT); bridge (docker): port published on 127.0.0.1.'),
  idleTimeout: duration(1000).prefault('20m').describe('A session ends this long after the last user activity.'),
  maxLifetime: duration(1000).prefault('90m').describe('A session ends this long after its claim.'),
  grace: duration(0).prefault('5m').describe('A session ends this long after its last connection closed.'),
  classifier: oneOf(['pluto', 'jupyter', 'generic']).default('generic').describe('How messages are told apart as user activity or not.'),
  secret: secretSchema.optional(),
  swarm: swarmAppSchema.optional(),
  warming: strict({
    cpuShares: int(2, 1024).describe('The CPU weight (cgroup cpu shares) of an instance until its claim is recorded; a claimed one has 1024.'),
  })
    .optional()
    .describe("runtime docker: notebooks executing for the pool yield the CPU to the students' instances. Unset: one weight."),
}).transform((a, ctx) => {
  const fail = (path: PropertyKey[], input: unknown, message: string) => ctx.issues.push({ code: 'custom', path, input, message });
  const { runtime, network } = a;
  if (runtime === 'process') {
    if (a.command === undefined) fail(['command'], undefined, 'expected a non-empty list of strings');
    if (a.image !== undefined) fail(['image'], a.image, 'image is for runtime docker; a process app has a command');
    if (a.args !== undefined) fail(['args'], a.args, 'args is for runtime docker or swarm (it overrides the image command); a process app has a command');
  } else {
    if (a.image === undefined) fail(['image'], undefined, 'expected an image reference like warmpool/standin:latest');
    if (a.command !== undefined) fail(['command'], a.command, `command is for runtime process; use args to override a ${runtime} image command`);
  }
  const port = a.port ?? 0;
  if (runtime === 'docker' && network === 'bridge' && port === 0)
    fail(['port'], a.port, 'a bridge-network app needs the container port it listens on (1-65535)');
  if (runtime === 'swarm' && network !== 'host')
    fail(['network'], network, 'runtime swarm runs instances on host networking, or on the overlay network named in swarm.network');
  if (a.swarm !== undefined && runtime !== 'swarm') fail(['swarm'], a.swarm, 'swarm: is for runtime swarm');
  // A swarm service's resources live in its task template: changing them replaces the task (and its executed notebook).
  if (a.warming !== undefined && runtime === 'swarm') {
    fail(
      ['warming'],
      a.warming,
      "swarm instances keep one CPU weight: changing a service's resources replaces its task (and the notebook it executed); leave warming unset",
    );
  } else if (a.warming !== undefined && runtime !== 'docker')
    fail(['warming'], a.warming, 'warming (a CPU weight while an instance warms) is for runtime docker');
  const sw = a.swarm ?? {};
  const swarm =
    runtime !== 'swarm'
      ? undefined
      : loose({
          constraints: sw.constraints ?? [],
          spread: sw.spread ?? [],
          reservations: loose({ cpus: sw.reservations?.cpus, memoryBytes: sw.reservations?.memory }),
          network: sw.network,
        });
  if (swarm?.network && port === 0) fail(['port'], a.port, 'an app on an overlay network (swarm.network) needs the port it listens on (1-65535)');
  if (swarm && !swarm.network && a.port !== undefined) fail(['port'], a.port, 'a host-network swarm app gets an allocated port (env PORT); leave port unset');
  if (ctx.issues.length > 0) return z.NEVER;
  return loose({
    name: a.name,
    runtime,
    command: runtime === 'process' ? a.command : undefined,
    cwd: a.cwd,
    image: runtime === 'process' ? undefined : a.image,
    args: runtime === 'process' ? undefined : a.args,
    port,
    env: a.env,
    deepLink: a.deepLink,
    resolveDeepLink: a.resolveDeepLink ?? a.classifier === 'pluto',
    prefix: a.prefix,
    pool: a.pool,
    readiness: a.readiness,
    limits: a.limits,
    network,
    idleTimeoutMs: a.idleTimeout,
    maxLifetimeMs: a.maxLifetime,
    graceMs: a.grace,
    classifier: a.classifier,
    secret: a.secret,
    ...(swarm ? { swarm } : {}),
    ...(a.warming ? { warming: a.warming } : {}),
  });
});

// ---- The whole file, and what the environment overrides. ----

function fileSchema(env: NodeJS.ProcessEnv, hostName: () => string) {
  return strict({
    listen: section(
      strict({
        host: str().default('127.0.0.1').describe('Address of the public listener (WARMPOOL_HOST overrides it).'),
        port: int(0, 65535).default(8080).describe('Port of the public listener (WARMPOOL_PORT overrides it; 0: a free one).'),
      }),
    ).describe('The public listener.'),
    deployment: str(NAME_RE, NAME_WHAT).default('default').describe('Names the warmpool deployment that owns instances (label warmpool.deployment).'),
    landing: strict({
      redirect: str(/^(https?:\/\/|\/)/, 'expected an absolute http(s) URL or a path starting with /')
        .optional()
        .describe('Where / redirects; unset: a landing page lists the apps.'),
    })
      .optional()
      .describe('The landing page at /.'),
    trustedProxies: z
      .array(str(), { error: 'expected a list of IP addresses' })
      .prefault([])
      .describe('X-Forwarded-Proto/For are honoured only from these addresses.'),
    ports: section(portsSchema).describe('Host ports handed to process and host-network instances.'),
    stateDir: str().default('.state').describe('Folder for process-runtime state, the generated cookie key and the traffic log (made 0700).'),
    keepOnExit: bool().default(false).describe('Leave instances running on SIGTERM/SIGINT (they are adopted on the next start).'),
    processUsers: processUsersSchema,
    log: section(logSchema).describe('The traffic log.'),
    relay: section(relaySchema),
    queue: section(queueSchema),
    swarm: section(swarmSchema),
    apps: z
      .array(appSchema, { error: 'expected a non-empty list of apps' })
      .min(1, { error: 'expected a non-empty list of apps' })
      .describe('The apps, each with its own pool.'),
    admin: section(adminSchema),
  }).transform((c, ctx) => {
    const fail = (path: PropertyKey[], input: unknown, message: string) => ctx.issues.push({ code: 'custom', path, input, message });
    /** A value from the environment, checked by the same rule as its field; the path names the variable. */
    const fromEnv = <T extends z.ZodType>(label: string, value: unknown, schema: T): z.output<T> | undefined => {
      const r = schema.safeParse(value);
      if (!r.success) fail([label], value, r.error.issues[0]?.message ?? 'invalid');
      return r.success ? r.data : undefined;
    };
    const asPort = (v: string) => (/^\d+$/.test(v) ? Number(v) : v);

    let { host, port } = c.listen;
    if (env.WARMPOOL_HOST) host = fromEnv('WARMPOOL_HOST (env)', env.WARMPOOL_HOST, str()) ?? host;
    if (env.WARMPOOL_PORT !== undefined && env.WARMPOOL_PORT !== '') port = fromEnv('WARMPOOL_PORT (env)', asPort(env.WARMPOOL_PORT), int(0, 65535)) ?? port;

    const log = loose({
      dir: c.log.dir ?? `${c.stateDir}/log`,
      rotateBytes: c.log.rotateSize,
      addresses: c.log.addresses,
      ...(c.log.retention === undefined ? {} : { retentionMs: c.log.retention }),
    });

    const replica =
      c.swarm.replica ??
      fromEnv(
        'WARMPOOL_REPLICA (env) or the host name',
        env.WARMPOOL_REPLICA || replicaFromHost(hostName()),
        str(NAME_RE, `${NAME_WHAT}: set swarm.replica`),
      ) ??
      '';
    const swarm = { replica, schedulingTimeoutMs: c.swarm.schedulingTimeout };

    const seen = new Set<string>();
    c.apps.forEach((a, i) => {
      if (seen.has(a.name)) fail(['apps', i, 'name'], a.name, 'app names must be unique');
      seen.add(a.name);
    });

    let processUsers: { uidFrom: number; count: number } | false = false;
    if (c.processUsers !== false) {
      const o: { uidFrom?: number; count?: number } = typeof c.processUsers === 'object' ? c.processUsers : {};
      const uidFrom = o.uidFrom ?? DEFAULT_PROCESS_USERS.uidFrom;
      const room = UID_MAX - uidFrom + 1;
      const count = o.count ?? Math.min(DEFAULT_PROCESS_USERS.count, room);
      if (count > room) fail(['processUsers', 'count'], count, `expected an integer from 1 to ${room}`);
      const last = uidFrom + count - 1;
      // 65534 is nobody (NFS and user namespaces map strangers to it), 65535 the 16-bit (uid_t)-1.
      if (uidFrom <= 65535 && last >= 65534) {
        fail(
          ['processUsers'],
          c.processUsers,
          `the range ${uidFrom}-${last} includes 65534 (nobody) or 65535; allowed: a range of uids from 1000 up that leaves both out`,
        );
      }
      const needed = c.apps.filter((a) => a.runtime === 'process').reduce((n, a) => n + a.pool.max, 0);
      if (count < needed)
        fail(['processUsers', 'count'], count, `the process apps may run ${needed} instances at once (the sum of their pool.max); allowed: at least ${needed}`);
      processUsers = { uidFrom, count };
    }

    let { host: adminHost, port: adminPort } = c.admin;
    if (env.WARMPOOL_ADMIN_HOST) adminHost = fromEnv('WARMPOOL_ADMIN_HOST (env)', env.WARMPOOL_ADMIN_HOST, str()) ?? adminHost;
    if (env.WARMPOOL_ADMIN_PORT !== undefined && env.WARMPOOL_ADMIN_PORT !== '') {
      adminPort = fromEnv('WARMPOOL_ADMIN_PORT (env)', asPort(env.WARMPOOL_ADMIN_PORT), int(0, 65535)) ?? adminPort;
    }
    if (adminPort !== 0 && adminPort === port) {
      fail(
        ['admin', 'port'],
        adminPort,
        `the admin listener needs a port of its own (listen.port is ${port}); allowed: any other port, or 0 for a free one; to serve the admin surface on the public port as well, set admin.public: true`,
      );
    }
    const admin = { host: adminHost, port: adminPort, public: c.admin.public, generateToken: c.admin.generateToken };

    if (ctx.issues.length > 0) return z.NEVER;
    return loose({
      host,
      port,
      deployment: c.deployment,
      landingRedirect: c.landing?.redirect,
      trustedProxies: c.trustedProxies,
      ports: c.ports,
      stateDir: c.stateDir,
      keepOnExit: c.keepOnExit,
      processUsers: processUsers === false ? (false as const) : processUsers, // as const: else inferred as boolean
      log,
      relay: c.relay,
      queue: c.queue,
      swarm,
      apps: c.apps,
      admin,
    });
  });
}

// ---- The types, as the schema makes them. ----

type Optional<T, K extends keyof T> = Flat<Omit<T, K> & Partial<Pick<T, K>>>;
type Valid = z.output<ReturnType<typeof fileSchema>>;

export type AppConfig = z.output<typeof appSchema>;
export type RuntimeKind = AppConfig['runtime'];
export type ClassifierKind = AppConfig['classifier'];
export type ReadinessConfig = AppConfig['readiness'];
export type SecretConfig = NonNullable<AppConfig['secret']>;
export type SwarmAppConfig = NonNullable<AppConfig['swarm']>;
export type RelayLimits = z.output<typeof relaySchema>;
export type QueueConfig = z.output<typeof queueSchema>;
export type ProcessUsersConfig = Exclude<Valid['processUsers'], false>;
/** How visitor addresses are written to the traffic log. */
export type AddressMode = Valid['log']['addresses'];
/** addresses: always set by validateConfig; a config built in code may leave it out (full). */
export type LogConfig = Optional<Valid['log'], 'addresses'>;
export type AdminConfig = Valid['admin'];
export type SwarmConfig = Valid['swarm'];
/**
 * What validateConfig returns. admin and swarm are always set by it; a config built in code (tests,
 * embedding) may leave them out, and gets their defaults.
 */
export type WarmpoolConfig = Optional<Omit<Valid, 'log'> & { log: LogConfig }, 'admin' | 'swarm'>;

export const DEFAULT_RELAY_LIMITS: Readonly<RelayLimits> = Object.freeze(relaySchema.parse({}));
const queueDefaults = queueSchema.parse({});
export const DEFAULT_QUEUE: Readonly<QueueConfig> = Object.freeze({ ...queueDefaults, claimRate: Object.freeze(queueDefaults.claimRate) });

// ---- Reading, validating, describing. ----

/** Reads and validates a config file. Throws CONFIG_UNREADABLE or CONFIG_INVALID. */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): WarmpoolConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new WarmpoolError('CONFIG_UNREADABLE', `cannot read config file ${path}: ${(e as Error).message}`, {
      hint: 'pass an existing YAML file with --config or WARMPOOL_CONFIG',
    });
  }
  return parseConfig(text, path, env);
}

export function parseConfig(text: string, source = 'config', env: NodeJS.ProcessEnv = {}): WarmpoolConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new WarmpoolError('CONFIG_INVALID', `${source}: not valid YAML: ${(e as Error).message}`);
  }
  return validateConfig(raw, source, env);
}

/** Validates a parsed config. Throws CONFIG_INVALID naming, on a line each, every field wrong. */
export function validateConfig(raw: unknown, source = 'config', env: NodeJS.ProcessEnv = {}): WarmpoolConfig {
  const r = fileSchema(env, hostname).safeParse(raw ?? {}, { reportInput: true, error: fallbackMessage });
  if (!r.success) throw new WarmpoolError('CONFIG_INVALID', formatIssues(source, r.error.issues));
  return r.data;
}

/**
 * The config file's JSON Schema (what a YAML editor completes and checks warmpool.yaml with): the
 * file as written, with each field's description and default. The rules that tie fields together
 * (runtime and image, pool.max and pool.warm, ...) are checked by `warmpool validate`.
 */
export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(
    fileSchema({}, () => 'warmpool'),
    { io: 'input', target: 'draft-07' },
  ) as Record<string, unknown>;
  return { ...schema, title: 'warmpool configuration', description: "The YAML file warmpool start --config reads (see the README's Configuration section)." };
}

/** Messages for issues no field-level error names (zod's own are about JavaScript types). */
const fallbackMessage: z.core.$ZodErrorMap = (iss) => {
  if (iss.code !== 'invalid_type') return undefined;
  const words: Record<string, string> = {
    object: 'expected a mapping',
    array: 'expected a list',
    string: 'expected a non-empty string',
    boolean: 'expected true or false',
    number: 'expected a number',
    int: 'expected an integer',
  };
  return words[iss.expected];
};

/** Each issue as `source: path is <value>; <allowed>`, one line each, in the order found. */
export function formatIssues(source: string, issues: readonly z.core.$ZodIssue[]): string {
  const lines = issues.flatMap((iss) => {
    if (iss.code === 'unrecognized_keys') {
      const o = (iss.input ?? {}) as Record<string, unknown>;
      return iss.keys.map((k) => issueLine([...iss.path, k], o[k], iss.message));
    }
    if (iss.code === 'invalid_key') return [issueLine(iss.path, iss.input, iss.issues[0]?.message ?? iss.message)];
    return [issueLine(iss.path, iss.input, iss.message)];
  });
  return [...new Set(lines)].map((l) => `${source}: ${l}`).join('\n');
}

function issueLine(path: readonly PropertyKey[], input: unknown, message: string): string {
  const at = path.reduce<string>((s, p) => (typeof p === 'number' ? `${s}[${p}]` : s ? `${s}.${String(p)}` : String(p)), '');
  return `${at || 'the configuration'} is ${show(input)}; ${message}`;
}

function show(v: unknown): string {
  if (v === undefined) return 'missing';
  try {
    const s = JSON.stringify(v);
    return s.length > 60 ? s.slice(0, 57) + '...' : s;
  } catch {
    return String(v);
  }
}

// ---- Durations, sizes, names. ----

export { replicaFromHost };

export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.round(v * 1000) : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$/.exec(v.trim());
  if (!m || v.trim() === '') return undefined;
  const [, d, h, mi, s, ms] = m;
  return (((+(d ?? 0) * 24 + +(h ?? 0)) * 60 + +(mi ?? 0)) * 60 + +(s ?? 0)) * 1000 + +(ms ?? 0);
}

export function parseBytes(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v > 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)i?b?$/i.exec(v.trim());
  if (!m) return undefined;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Math.round(parseFloat(m[1]!) * mult);
}
