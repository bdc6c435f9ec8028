// For suites that need a real Docker Engine: find out whether it answers, skip (or, in CI, fail
// loudly) when it does not, and remove what a suite created by label.

import type { TestContext } from 'node:test';
import Dockerode from 'dockerode';

const REQUIRE = 'WARMPOOL_REQUIRE_DOCKER';

/** True when the engine answers a ping within timeoutMs. */
export async function dockerReachable(docker: Dockerode = new Dockerode(), timeoutMs = 5000): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); });
  try {
    return await Promise.race([docker.ping().then(() => true, () => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * undefined when the engine answers; otherwise a reason to skip, printed as a notice. With
 * WARMPOOL_REQUIRE_DOCKER=1 an unreachable engine throws instead, so CI cannot pass by skipping.
 * For `describe(name, { skip: await dockerSkipReason() }, ...)`.
 */
export async function dockerSkipReason(docker: Dockerode = new Dockerode()): Promise<string | undefined> {
  if (await dockerReachable(docker)) return undefined;
  const where = (docker.modem as unknown as { socketPath?: string }).socketPath ?? 'DOCKER_HOST';
  if (process.env[REQUIRE] === '1') {
    throw new Error(`Docker Engine unreachable at ${where}, and ${REQUIRE}=1: start dockerd (or run .ci/run) before the Docker suites`);
  }
  const reason = `Docker Engine unreachable at ${where}: Docker suites skipped (set ${REQUIRE}=1 to make this a failure)`;
  console.error(`NOTICE: ${reason}`);
  return reason;
}

/** For test-context style: true when the suite can run; otherwise skips t (or throws when Docker is required). */
export async function dockerSuite(t: TestContext, docker?: Dockerode): Promise<boolean> {
  const reason = await dockerSkipReason(docker);
  if (reason === undefined) return true;
  t.skip(reason);
  return false;
}

/** Removes (force, with volumes) every container carrying `label=value`. Returns how many it removed. */
export async function removeByLabel(selector: string, docker: Dockerode = new Dockerode()): Promise<number> {
  const found = await docker.listContainers({ all: true, filters: { label: [selector] } });
  await Promise.all(found.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch((e: { statusCode?: number }) => {
    if (e?.statusCode !== 404 && e?.statusCode !== 409) throw e;
  })));
  return found.length;
}

/** How many containers (any state) carry `label=value`. */
export async function countByLabel(selector: string, docker: Dockerode = new Dockerode()): Promise<number> {
  return (await docker.listContainers({ all: true, filters: { label: [selector] } })).length;
}
