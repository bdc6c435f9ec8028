// What the claim journal costs a claim: one append on its own (as warmpool does it, and with an
// fdatasync each for comparison), and whole claims through the Fleet (FakeRuntime, a pool of 200, in-process claims,
// each recorded right after) with and without the journal. The journal lives in a temporary folder
// on the same file system as /tmp. Run `node dist/bench/claim-journal.js [rounds]`; prints medians.

import { fdatasyncSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClaimJournal } from '../pool/claim-journal.js';
import { ManualClock, settle } from '../core/clock.js';
import { parseConfig } from '../core/config.js';
import { Fleet } from '../pool/fleet.js';
import { FakeRuntime, fakePortCheck } from '../test/helpers/fake-runtime.js';
import { median } from './stats.js';

const ROUNDS = Number(process.argv[2] ?? 5);
const dir = mkdtempSync(join(tmpdir(), 'wp-journal-bench-'));

function appends(n: number, sync: boolean): number {
  const j = ClaimJournal.forDeployment(dir, `b${sync ? 's' : 'a'}${Math.random().toString(36).slice(2, 8)}`, { compactBytes: Infinity });
  const fd = (j as unknown as { fd: number }).fd;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    j.claimed({ instance: `i${String(i).padStart(9, '0')}`, session: 'x4J0m1Yy0p7y2rQmKkq3Zw', app: 'demo', at: 1_700_000_000_000 + i });
    if (sync) fdatasyncSync(fd);
  }
  const ns = Number(process.hrtime.bigint() - t0) / n;
  j.close();
  return ns;
}

async function claims(n: number, withJournal: boolean): Promise<number> {
  const config = parseConfig(`
deployment: b
apps:
  - name: demo
    command: [fake]
    readiness: { log: "^READY$", timeout: 30s }
    pool: { warm: ${n}, max: ${n}, parallel: 100 }
`);
  const rt = new FakeRuntime();
  rt.autoReady = true;
  const journal = withJournal ? ClaimJournal.forDeployment(dir, `c${Math.random().toString(36).slice(2, 8)}`) : undefined;
  const fleet = new Fleet({ config, runtimes: { process: rt }, clock: new ManualClock(), portCheck: fakePortCheck, journal });
  await fleet.start();
  while (fleet.status()[0]!.ready < n) await settle();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fleet.claim('demo');
  const ns = Number(process.hrtime.bigint() - t0) / n;
  await fleet.claimsRecorded();
  await fleet.stop();
  return ns;
}

const out: Record<string, number[]> = { append: [], appendFdatasync: [], claim: [], claimJournal: [] };
for (let r = 0; r < ROUNDS; r++) {
  out.append!.push(appends(100_000, false));
  out.appendFdatasync!.push(appends(2_000, true));
  out.claim!.push(await claims(200, false));
  out.claimJournal!.push(await claims(200, true));
}
rmSync(dir, { recursive: true, force: true });
const us = (k: string) => (median(out[k]!) / 1000).toFixed(2);
console.log(`claim journal, median of ${ROUNDS} rounds (µs per claim):`);
console.log(`  append (write(2), as warmpool does)   ${us('append')}`);
console.log(`  append + fdatasync                    ${us('appendFdatasync')}`);
console.log(`  fleet.claim, no journal               ${us('claim')}`);
console.log(`  fleet.claim, journal                  ${us('claimJournal')}`);
