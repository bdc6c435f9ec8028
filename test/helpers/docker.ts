// For suites that need a real Docker Engine: find out whether it answers, skip (or, in CI, fail
// loudly) when it does not, and look at, kill and remove containers by label.
//
// Through the docker CLI, not warmpool's own Engine client: a check must not share the code it checks
// (a client bug that hid containers from list() would also hide the leftovers from countByLabel).
// The suites need the CLI anyway (scripts/build-images.sh).

import { execFile } from 'node:child_process';
import type { TestContext } from 'node:test';
import type { Cli } from './cli.js';
import { until } from './wait.js';
import type { InspectInfo } from '../../pool/runtimes/engine-types.js';

const REQUIRE = 'WARMPOOL_REQUIRE_DOCKER';

/** Runs `docker args...`; resolves with stdout, rejects with stderr in the message. */
export function dockerCli(args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('docker', args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`docker ${args.join(' ')} failed: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve(stdout);
    });
  });
}

/** True when `docker version` reaches the engine within timeoutMs. */
export async function dockerReachable(timeoutMs = 5000): Promise<boolean> {
  return dockerCli(['version', '--format', '{{.Server.Version}}'], timeoutMs).then(
    () => true,
    () => false,
  );
}

function where(): string {
  return process.env.DOCKER_HOST || 'unix:///var/run/docker.sock';
}

/**
 * undefined when the engine answers; otherwise a reason to skip, printed as a notice. With
 * WARMPOOL_REQUIRE_DOCKER=1 an unreachable engine throws instead, so CI cannot pass by skipping.
 * For `describe(name, { skip: await dockerSkipReason() }, ...)`.
 */
export async function dockerSkipReason(): Promise<string | undefined> {
  if (await dockerReachable()) return undefined;
  if (process.env[REQUIRE] === '1') {
    throw new Error(`Docker Engine unreachable at ${where()} (or no docker CLI), and ${REQUIRE}=1: start dockerd (or run .ci/run) before the Docker suites`);
  }
  const reason = `Docker Engine unreachable at ${where()} (or no docker CLI): Docker suites skipped (set ${REQUIRE}=1 to make this a failure)`;
  console.error(`NOTICE: ${reason}`);
  return reason;
}

/** For test-context style: true when the suite can run; otherwise skips t (or throws when Docker is required). */
export async function dockerSuite(t: TestContext): Promise<boolean> {
  const reason = await dockerSkipReason();
  if (reason === undefined) return true;
  t.skip(reason);
  return false;
}

/** Ids of the containers carrying every `label=value` given; running ones only unless all. */
export async function idsByLabel(selectors: string[], opts: { all?: boolean } = { all: true }): Promise<string[]> {
  const args = ['ps', '-q', '--no-trunc', ...(opts.all ? ['-a'] : []), ...selectors.flatMap((s) => ['--filter', `label=${s}`])];
  return (await dockerCli(args)).split('\n').filter(Boolean);
}

/** Removes (force, with volumes) every container carrying `label=value`. Returns how many it removed. */
export async function removeByLabel(selector: string): Promise<number> {
  const ids = await idsByLabel([selector]);
  if (ids.length === 0) return 0;
  await dockerCli(['rm', '-f', '-v', ...ids]).catch((e: Error) => {
    // Gone between ps and rm, or a removal already under way (ours or the runtime's): fine. Anything else is not.
    const other = e.message.split('\n').filter((l) => /error/i.test(l) && !/no such container|already in progress/i.test(l));
    if (other.length > 0) throw e;
  });
  return ids.length;
}

/** How many containers (any state) carry `label=value`. */
export async function countByLabel(selector: string): Promise<number> {
  return (await idsByLabel([selector])).length;
}

/** `docker inspect` of one container: the same JSON as the Engine API's inspect. */
export async function inspectContainer(id: string): Promise<InspectInfo> {
  return (JSON.parse(await dockerCli(['container', 'inspect', id])) as InspectInfo[])[0]!;
}

/** SIGKILL, as `docker kill` (the container exits with code 137). */
export async function killContainer(id: string): Promise<void> {
  await dockerCli(['kill', id]);
}

/** A container of a warmpool deployment, as `docker ps` shows it. */
export interface DeploymentContainer {
  id: string;
  name: string;
  running: boolean;
  instance: string;
}

/** A deployment's containers (any state), from the docker CLI; `host`: another engine than DOCKER_HOST's. */
export async function deploymentContainers(deployment: string, host?: string): Promise<DeploymentContainer[]> {
  const out = await dockerCli([
    ...(host ? ['-H', host] : []),
    'ps',
    '-a',
    '--no-trunc',
    '--filter',
    `label=warmpool.deployment=${deployment}`,
    '--format',
    '{{.ID}}\t{{.Names}}\t{{.State}}\t{{.Label "warmpool.instance"}}',
  ]);
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [id, name, state, instance] = l.split('\t') as [string, string, string, string];
      return { id, name, running: state === 'running', instance };
    });
}

/** Waits until every container of the deployment runs and is one `warmpool start` counts (ready + starting + claimed). */
export async function noOrphanContainers(list: () => Promise<DeploymentContainer[]>, cli: Cli, app = 'demo'): Promise<void> {
  let last: DeploymentContainer[] = [];
  await until(
    "containers and warmpool's counts to agree",
    async () => {
      last = await list();
      const p = cli.progress(app);
      return p && last.every((c) => c.running) && last.length === p.ready + p.starting + p.claimed ? true : undefined;
    },
    20_000,
    100,
  ).catch((e: Error) => {
    throw new Error(`${e.message}: ${JSON.stringify(last)} vs ${JSON.stringify(cli.progress(app))}`);
  });
}
