// The real `warmpool start` with its output going nowhere: stdout piped to a reader that exits (EPIPE
// on every later write), before it starts or mid-run, and stderr closed too. Progress and log lines
// must never end the process: it keeps serving, and SIGTERM still removes every instance with status
// 0. (Before: the first progress line after the reader left was an uncaught EPIPE, status 1, and the
// instances were left running.) Issue "Class-day resilience".

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { listeningPorts, type Cli } from './helpers/cli.js';
import { claim, cleanupSites, noOrphans, routesToOwn, site, start, stopClean } from './helpers/process-site.js';
import { until } from './helpers/wait.js';

afterEach(cleanupSites);

/** Its stdout is gone, so the port it prints cannot be read: found from its listening socket. */
async function urlOf(cli: Cli): Promise<string> {
  const port = await until('warmpool to listen', () => {
    if (cli.exit) throw new Error(`warmpool exited: ${JSON.stringify(cli.exit)}\n${cli.output()}`);
    return listeningPorts(cli.pid)[0];
  });
  return `http://127.0.0.1:${port}`;
}

test('stdout closed before it starts: warmpool warms, serves a visitor, and SIGTERM removes every instance with status 0', async () => {
  const s = site(300);
  const cli = start(s, { stdout: 'closed' });
  const url = await urlOf(cli);
  const v = await claim(url); // a progress line is written (and fails) on every change of counts
  await routesToOwn(url, s, v);
  await cli.when('the note on stderr', () => cli.lines.find((l) => /^err: warmpool: standard output failed \(write EPIPE\)/.test(l)));
  assert.equal(cli.lines.filter((l) => /standard output failed/.test(l)).length, 1, 'noted once');
  await noOrphans(s);
  await stopClean(s, cli);
});

test('stdout closed mid-run (its reader exits): the next progress lines fail harmlessly; sessions go on', async () => {
  const s = site(300);
  const cli = start(s);
  const url = `http://127.0.0.1:${await cli.port()}`;
  await cli.waitProgress('demo', (p) => p.ready === 2);
  const a = await claim(url);
  cli.closeStdout();
  const b = await claim(url);
  await routesToOwn(url, s, a);
  await routesToOwn(url, s, b);
  await cli.when('the note on stderr', () => cli.lines.find((l) => /^err: warmpool: standard output failed/.test(l)));
  await noOrphans(s);
  await stopClean(s, cli);
});

test('stdout and stderr both closed: nothing can be said, nothing breaks', async () => {
  const s = site(300);
  const cli = start(s, { stdout: 'closed', stderr: 'closed' });
  const url = await urlOf(cli);
  const v = await claim(url);
  await routesToOwn(url, s, v);
  await noOrphans(s);
  await stopClean(s, cli);
});

test('its terminal closes (SIGHUP): warmpool stops as on SIGTERM, every instance removed, status 0', async () => {
  const s = site(300);
  const cli = start(s);
  const url = `http://127.0.0.1:${await cli.port()}`;
  const v = await claim(url);
  await routesToOwn(url, s, v);
  await stopClean(s, cli, 'SIGHUP');
  assert.match(cli.output(), /SIGHUP: removing instances/);
});
