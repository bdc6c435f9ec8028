// For suites that need a Docker Swarm: find out whether the engine is a swarm manager, skip (or, with
// WARMPOOL_REQUIRE_DOCKER=1, make it one: `docker swarm init --advertise-addr 127.0.0.1`), and look
// at and remove services, task containers and networks by label. Through the docker CLI, not
// warmpool's Engine client: a check must not share the code it checks.

import type { ServiceInfo, TaskInfo } from '../../pool/runtimes/engine-types.js';
import { dockerCli, dockerReachable } from './docker.js';

const REQUIRE = 'WARMPOOL_REQUIRE_DOCKER';

async function swarmState(): Promise<{ state: string; manager: boolean }> {
  const out = (await dockerCli(['info', '--format', '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}'])).trim().split(/\s+/);
  return { state: out[0] ?? '', manager: out[1] === 'true' };
}

/**
 * undefined when the engine is a swarm manager; otherwise a reason to skip, printed as a notice. With
 * WARMPOOL_REQUIRE_DOCKER=1 a reachable engine outside any swarm is made a single-node swarm on
 * 127.0.0.1 (left in place: other suites use plain containers, which a swarm does not disturb), and
 * anything else throws, so CI cannot pass by skipping.
 */
export async function swarmSkipReason(): Promise<string | undefined> {
  const required = process.env[REQUIRE] === '1';
  if (!(await dockerReachable())) {
    if (required) throw new Error(`Docker Engine unreachable, and ${REQUIRE}=1: start dockerd (or run .ci/run) before the swarm suites`);
    return notice('Docker Engine unreachable (or no docker CLI): swarm suites skipped');
  }
  let s = await swarmState();
  if (s.state === 'inactive' && required) {
    await dockerCli(['swarm', 'init', '--advertise-addr', '127.0.0.1']).catch((e: Error) => {
      // Another suite (or .ci/run) may have made it one meanwhile.
      if (!/already part of a swarm/i.test(e.message)) throw e;
    });
    s = await swarmState();
  }
  if (s.state === 'active' && s.manager) return undefined;
  const why = s.state === 'active' ? 'this engine is a swarm worker, not a manager' : `this engine is not in a swarm (state ${s.state || 'unknown'})`;
  if (required) throw new Error(`${why}, and ${REQUIRE}=1: run \`docker swarm init --advertise-addr 127.0.0.1\` (.ci/run does)`);
  return notice(`${why}: swarm suites skipped (docker swarm init --advertise-addr 127.0.0.1 to run them, or set ${REQUIRE}=1)`);
}

function notice(reason: string): string {
  console.error(`NOTICE: ${reason}`);
  return reason;
}

/** Ids of the services carrying `label=value`. */
export async function servicesByLabel(selector: string): Promise<string[]> {
  return (await dockerCli(['service', 'ls', '-q', '--filter', `label=${selector}`])).split('\n').filter(Boolean);
}

/** Ids of the containers (any state) carrying `label=value`: the services' task containers. */
export async function containersByLabel(selector: string): Promise<string[]> {
  return (await dockerCli(['ps', '-aq', '--no-trunc', '--filter', `label=${selector}`])).split('\n').filter(Boolean);
}

/** Names of the networks carrying `label=value`. */
export async function networksByLabel(selector: string): Promise<string[]> {
  return (await dockerCli(['network', 'ls', '-q', '--filter', `label=${selector}`])).split('\n').filter(Boolean);
}

/** Removes every service, then every task container, carrying `label=value`. Returns how many services. */
export async function removeServicesByLabel(selector: string): Promise<number> {
  const ids = await servicesByLabel(selector);
  if (ids.length > 0) await dockerCli(['service', 'rm', ...ids]).catch(() => undefined);
  const cs = await containersByLabel(selector);
  if (cs.length > 0) await dockerCli(['rm', '-f', '-v', ...cs]).catch(() => undefined);
  return ids.length;
}

/** `docker service inspect` of one service: the same JSON as the Engine API's. */
export async function inspectService(id: string): Promise<ServiceInfo> {
  return (JSON.parse(await dockerCli(['service', 'inspect', id])) as ServiceInfo[])[0]!;
}

/** The tasks of one service, as the Engine API lists them. */
export async function serviceTasks(id: string): Promise<TaskInfo[]> {
  const ids = (await dockerCli(['service', 'ps', '-q', '--no-trunc', id])).split('\n').filter(Boolean);
  if (ids.length === 0) return [];
  return JSON.parse(await dockerCli(['inspect', '--type', 'task', ...ids])) as TaskInfo[];
}
