// The stand-in apps and their driver clients against real sockets on port 0: Pluto's routes, secret, readiness and
// WebSocket traffic; Jupyter's token, base_url, subprotocol choice and ping frames; the example Pluto config.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { loadConfig } from '../core/config.js';
import { optionsFromEnv, startStandin, CELLS, type StandinHandle, type StandinOptions } from '../examples/standin/server.js';
import { startJupyterStandin, type JupyterStandinHandle, type JupyterStandinOptions } from '../examples/standin/jupyter.js';
import { PlutoClient, JupyterClient, DriverError, pollRest, saveContents, msgpackDecode, msgpackEncode } from '../examples/standin/driver.js';
import { DEFAULT_NOTEBOOK_ID, JUPYTER_V1_SUBPROTOCOL, type PlutoUpdate } from '../examples/standin/protocol.js';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function pluto(opts: StandinOptions = {}): Promise<StandinHandle & { lines: string[] }> {
  const lines: string[] = [];
  const h = await startStandin({ port: 0, stateBytes: 20_000, out: (l) => lines.push(l), log: () => {}, ...opts });
  cleanups.push(async () => {
    await h.close();
    assert.equal(h.connections(), 0, 'no WebSocket left open');
  });
  return Object.assign(h, { lines });
}

async function jupyter(opts: JupyterStandinOptions = {}): Promise<JupyterStandinHandle & { lines: string[] }> {
  const lines: string[] = [];
  const h = await startJupyterStandin({ port: 0, out: (l) => lines.push(l), log: () => {}, ...opts });
  cleanups.push(async () => {
    await h.close();
    assert.equal(h.connections(), 0, 'no WebSocket left open');
  });
  return Object.assign(h, { lines });
}

async function openPluto(url: string, opts: Parameters<typeof PlutoClient.open>[1] = {}): Promise<PlutoClient> {
  const c = await PlutoClient.open(url, opts);
  cleanups.push(() => c.close());
  return c;
}

async function openJupyter(url: string, opts: Parameters<typeof JupyterClient.open>[1] = {}): Promise<JupyterClient> {
  const c = await JupyterClient.open(url, opts);
  cleanups.push(() => c.close());
  return c;
}

const get = (url: string, init: RequestInit = {}) => fetch(url, { redirect: 'manual', ...init });
const wsUrl = (h: { url: string }) => h.url.replace(/^http/, 'ws');

/** Resolves with the first `n` pushes a client sees. */
function pushes(c: PlutoClient, n: number): Promise<PlutoUpdate[]> {
  const seen: PlutoUpdate[] = [];
  return new Promise((resolve) => {
    c.onPush = (u) => {
      seen.push(u);
      if (seen.length === n) resolve(seen);
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Pluto stand-in: HTTP

test('pluto: routes answer as Pluto does, and the /open redirect is relative', async () => {
  const h = await pluto();
  const id = h.notebookId;
  assert.equal(id, DEFAULT_NOTEBOOK_ID);

  for (const p of ['ping', 'auth-check']) {
    const r = await get(h.url + p);
    assert.equal(r.status, 200, p);
    assert.equal(await r.text(), 'OK!');
  }
  const index = await get(h.url);
  assert.equal(index.status, 200);
  assert.match(await index.text(), /href="\.\/open\?path=webapp\.jl"/);

  for (const method of ['GET', 'POST']) {
    const r = await get(h.url + 'open?path=webapp.jl', { method });
    assert.equal(r.status, 302, method);
    assert.equal(r.headers.get('location'), `./edit?id=${id}`);
  }
  assert.equal((await get(h.url + 'open')).status, 400);

  // /edit is a static page: 200 for any id, so a 200 says nothing about readiness.
  const edit = await get(h.url + 'edit?id=00000000-0000-0000-0000-000000000000');
  assert.equal(edit.status, 200);
  const page = await edit.text();
  assert.match(page, /<span id="status">connecting<\/span>/);
  assert.match(page, /id="state-bytes"/);
  assert.match(page, /<input id="bond" type="range"/);
  assert.match(page, /new URL\("\.\/", location\.href\)/);
  assert.doesNotMatch(page, /(src|href)="\//, 'every asset URL is relative');
  const src = /<script src="\.\/(msgpack\.[0-9a-f]{10}\.min\.js)"><\/script>/.exec(page);
  assert.ok(src, 'the msgpack bundle is referenced relatively under a hashed name');

  const asset = await get(h.url + src[1]);
  assert.equal(asset.status, 200);
  assert.equal(asset.headers.get('cache-control'), 'public, max-age=2592000, immutable');
  assert.match(asset.headers.get('content-type') ?? '', /javascript/);
  assert.match(await asset.text(), /MessagePack/);

  const nbfile = await get(h.url + `notebookfile?id=${id}`);
  assert.equal(nbfile.status, 200);
  assert.match(await nbfile.text(), /^### A Pluto\.jl notebook ###/);
  const list = (await (await get(h.url + 'notebooklist')).json()) as { notebook_id: string }[];
  assert.equal(list[0]!.notebook_id, id);
  assert.equal((await get(h.url + `shutdown?id=${id}`)).status, 200);
  assert.equal((await get(h.url + 'statefile?id=nope')).status, 404);
  assert.equal((await get(h.url + 'no/such/thing')).status, 404);
});

test('pluto: READY is printed only after STARTUP_DELAY_MS, before the port opens; /statefile says ready', async () => {
  const t0 = Date.now();
  const h = await pluto({ startupDelayMs: 300 });
  assert.ok(Date.now() - t0 >= 290, 'startStandin waited for the execution');
  assert.equal(h.lines[0], 'READY');
  assert.match(h.lines[1]!, /^Go to http:\/\/127\.0\.0\.1:\d+\/ in your browser/);
  const r = await get(h.url + `statefile?id=${h.notebookId}`);
  assert.equal(r.headers.get('content-type'), 'application/x-msgpack');
  const state = msgpackDecode(new Uint8Array(await r.arrayBuffer())) as any;
  assert.equal(state.process_status, 'ready');
  assert.ok(Object.values(state.cell_results).every((c: any) => !c.queued && !c.running));
});

test('pluto: BURN_CPU_MS spends that much CPU time executing before READY (off by default)', async () => {
  assert.equal(optionsFromEnv({}).burnCpuMs, 0);
  assert.equal(optionsFromEnv({ BURN_CPU_MS: '2000' }).burnCpuMs, 2000);
  assert.throws(() => optionsFromEnv({ BURN_CPU_MS: 'lots' }), /BURN_CPU_MS="lots": expected an integer/);
  const cpu0 = process.cpuUsage();
  const h = await pluto({ burnCpuMs: 150 });
  const used = process.cpuUsage(cpu0);
  assert.ok((used.user + used.system) / 1000 >= 150, `${(used.user + used.system) / 1000} ms of CPU`);
  assert.equal(h.lines[0], 'READY');
  assert.equal(h.isExecuted(), true);
});

test('pluto: LISTEN_EARLY answers /ping while the notebook still runs; connected tabs get the results pushed', async () => {
  const h = await pluto({ startupDelayMs: 400, listenEarly: true });
  assert.equal((await get(h.url + 'ping')).status, 200, 'the port answers at once');
  assert.equal(h.isExecuted(), false);
  assert.ok(!h.lines.includes('READY'));
  const early = msgpackDecode(new Uint8Array(await (await get(h.url + `statefile?id=${h.notebookId}`)).arrayBuffer())) as any;
  assert.equal(early.process_status, 'starting');
  assert.ok(Object.values(early.cell_results).every((c: any) => c.queued));

  const c = await openPluto(wsUrl(h));
  const small = await c.start();
  assert.ok(small < 20_000, 'before execution the state is small');
  const pushed = pushes(c, 1);
  await h.executed;
  assert.ok(h.lines.includes('READY'), 'READY still marks the end of execution');
  const [diff] = await pushed;
  assert.equal(diff!.type, 'notebook_diff');
  assert.equal(diff!.initiator_id, undefined, 'a push names no initiator');
  assert.equal(c.state.process_status, 'ready');
  const late = msgpackDecode(new Uint8Array(await (await get(h.url + `statefile?id=${h.notebookId}`)).arrayBuffer())) as any;
  assert.equal(late.process_status, 'ready');
});

test('pluto: PLUTO_SECRET is required by query or cookie, on HTTP and on the upgrade; /ping is exempt', async () => {
  const h = await pluto({ secret: 's3cr3tXY' });
  assert.equal((await get(h.url + 'ping')).status, 200);
  for (const p of ['', 'edit?id=x', 'open?path=webapp.jl', `statefile?id=${h.notebookId}`, 'auth-check']) {
    assert.equal((await get(h.url + p)).status, 403, `${p} without the secret`);
  }
  assert.equal((await get(h.url + 'edit?secret=wrong')).status, 403);
  const byQuery = await get(h.url + 'edit?id=x&secret=s3cr3tXY');
  assert.equal(byQuery.status, 200);
  assert.match(byQuery.headers.get('set-cookie') ?? '', /^secret=s3cr3tXY; SameSite=Strict; HttpOnly/);
  assert.equal((await get(h.url + 'edit?id=x', { headers: { Cookie: 'other=1; secret=s3cr3tXY' } })).status, 200);

  await assert.rejects(PlutoClient.open(wsUrl(h)), (e: unknown) => e instanceof DriverError && e.status === 403);
  await assert.rejects(PlutoClient.open(wsUrl(h), { cookie: 'secret=nope' }), (e: unknown) => e instanceof DriverError && e.status === 403);
  assert.equal(h.stats.refused, 2);
  const byCookie = await openPluto(wsUrl(h), { cookie: 'secret=s3cr3tXY' });
  assert.ok((await byCookie.start()) > 0);
  const byQueryWs = await openPluto(wsUrl(h) + '?secret=s3cr3tXY');
  await byQueryWs.ping();
});

test('pluto: BASE_URL serves everything under the base path, WebSocket included', async () => {
  const h = await pluto({ baseUrl: '/demo' });
  assert.match(h.url, /\/demo\/$/);
  const origin = new URL(h.url).origin;
  assert.equal((await get(origin + '/ping')).status, 404);
  assert.equal((await get(origin + '/demo/ping')).status, 200);
  const r = await get(origin + '/demo/open?path=webapp.jl');
  assert.equal(r.headers.get('location'), `./edit?id=${h.notebookId}`);
  const page = await (await get(origin + '/demo/edit?id=' + h.notebookId)).text();
  const asset = /src="\.\/([^"]+)"/.exec(page)![1]!;
  assert.equal((await get(origin + '/demo/' + asset)).status, 200);
  const c = await openPluto(wsUrl(h));
  assert.ok((await c.start()) >= 20_000);
});

// ---------------------------------------------------------------------------------------------
// Pluto stand-in: WebSocket traffic

test('pluto: start() sends connect, an empty update_notebook and two completes, and receives the full state', async () => {
  const h = await pluto({ stateBytes: 300_000 });
  const statefile = new Uint8Array(await (await get(h.url + `statefile?id=${h.notebookId}`)).arrayBuffer());
  assert.equal(statefile.length, 300_000, 'the state encodes to exactly STATE_BYTES');

  const c = await openPluto(wsUrl(h));
  const bytes = await c.start();
  assert.ok(bytes >= 300_000 && bytes < 301_000, `full-state frame of ${bytes} bytes`);
  assert.equal(c.fullStateBytes, bytes);
  assert.deepEqual(c.sent, { connect: 1, update_notebook: 1, complete: 2 });
  assert.deepEqual(c.received, { '👋': 1, notebook_diff: 1, completion_result: 2 });
  assert.equal(c.state.notebook_id, h.notebookId);
  assert.equal(c.state.process_status, 'ready');
  assert.equal(c.state.cell_results[CELLS.data].output.body.length > 290_000, true);
  assert.deepEqual(h.stats.received, { connect: 1, update_notebook: 1, complete: 2 });
});

test('pluto: idle requests get their replies; keepalive messages are small ordinary frames', async () => {
  const h = await pluto();
  const c = await openPluto(wsUrl(h));
  await c.start();
  const hello = await c.send('connect', {});
  assert.equal(hello.type, '👋');
  assert.equal(hello.message.notebook_exists, true);
  assert.ok(hello.bytes > 700 && hello.bytes < 2000, `👋 is about 1 KB (${hello.bytes})`);

  const pong = await c.ping();
  assert.equal(pong.type, 'pong');
  assert.equal(pong.initiator_id, c.clientId);
  const burst = await c.currentTimeBurst();
  assert.equal(burst.length, 18);
  assert.ok(burst.every((r) => r.type === 'current_time' && Math.abs(r.message.time - Date.now() / 1000) < 5));
  assert.equal(c.sent.current_time, 18);

  // The sizes a tap sees: keepalives are small ordinary binary frames (55 to 85 bytes in Pluto).
  let before = c.bytesSent;
  await c.ping();
  const pingBytes = c.bytesSent - before;
  before = c.bytesSent;
  await c.currentTimeBurst(1);
  const ctBytes = c.bytesSent - before;
  assert.ok(pingBytes >= 45 && pingBytes <= 85, `ping is ${pingBytes} bytes`);
  assert.ok(ctBytes >= 55 && ctBytes <= 85, `current_time is ${ctBytes} bytes`);

  const reset = await c.resetSharedState();
  assert.equal(reset.message.response.from_reset, true);
  assert.ok(reset.bytes >= 20_000);
});

test('pluto: setBond round-trips the server echo; other tabs of the notebook see the change', async () => {
  const h = await pluto();
  const a = await openPluto(wsUrl(h));
  const b = await openPluto(wsUrl(h));
  await a.start();
  await b.start();
  const bSees = pushes(b, 1);
  const r = await a.setBond(42);
  assert.equal(r.type, 'notebook_diff');
  assert.equal(r.message.response.update_went_well, '👍');
  assert.equal(r.notebook_id, h.notebookId);
  assert.ok(r.bytes < 1000, 'a small diff');
  assert.equal(a.state.cell_results[CELLS.echo].output.body, '42');
  assert.equal(a.state.bonds.x.value, 42);
  const [other] = await bSees;
  assert.equal(other!.initiator_id, a.clientId);
  assert.equal(b.state.bonds.x.value, 42);
  assert.equal(b.state.cell_results[CELLS.echo].output.body, '42');

  const bad = await a.send('update_notebook', { updates: [{ op: 'replace', path: ['nonsense'], value: 1 }] });
  assert.equal(bad.message.response.update_went_well, '👎');
});

test('pluto: active requests (complete, docs, run, interrupt, reshow, edit) are answered', async () => {
  const h = await pluto();
  const c = await openPluto(wsUrl(h));
  await c.start();
  const comp = await c.complete('sq');
  assert.equal(comp.type, 'completion_result');
  assert.ok(comp.message.results.some((x: string[]) => x[0] === 'sqrt'));
  assert.equal((await c.docs('sqrt')).type, 'doc_result');
  const run = await c.runCells([CELLS.echo]);
  assert.equal(run.type, 'notebook_diff');
  assert.ok(run.message.patches.length > 0);
  assert.equal((await c.interrupt()).type, 'notebook_diff');
  assert.equal((await c.reshowCell(CELLS.data)).type, 'notebook_diff');
  await c.editCell(CELLS.echo, 'x + 1');
  assert.equal(c.state.cell_inputs[CELLS.echo].code, 'x + 1');
  assert.deepEqual(
    { complete: h.stats.received.complete, docs: h.stats.received.docs, run: h.stats.received.run_multiple_cells },
    { complete: 3, docs: 1, run: 1 },
  );
});

test('pluto: garbage on the socket is ignored and the connection keeps working', async () => {
  const h = await pluto();
  const c = await openPluto(wsUrl(h));
  c.sendRaw(new Uint8Array([0xc1, 0xff, 0x00, 0x13])); // not MsgPack
  c.sendRaw(msgpackEncode([1, 2, 3])); // not a map
  c.sendRaw(msgpackEncode({ body: {} })); // no type
  c.sendRaw('{"type":"ping"}'); // a text frame
  c.sendRaw(msgpackEncode({ type: 'no_such_type', client_id: 'x', request_id: 'y', body: {} }));
  c.sendRaw(msgpackEncode({ type: 'update_notebook', client_id: 'x', request_id: 'y', body: { updates: [] } })); // no notebook_id
  const pong = await c.ping();
  assert.equal(pong.type, 'pong');
  assert.equal(h.stats.received.undecodable, 3);
  assert.equal(h.stats.received.text, 1);
  assert.equal(h.stats.sent.notebook_diff, undefined, 'nothing answered without a notebook');
  assert.equal((await c.start()) >= 20_000, true);
});

test('pluto: PUSH_INTERVAL_MS makes the server push notebook_diffs with nobody interacting', async () => {
  const h = await pluto({ pushIntervalMs: 30 });
  const c = await openPluto(wsUrl(h));
  await c.start();
  const got = await pushes(c, 2);
  for (const u of got) {
    assert.equal(u.type, 'notebook_diff');
    assert.equal(u.initiator_id, undefined);
    assert.equal(u.request_id, undefined);
    assert.deepEqual(u.message.patches[0].path, ['cell_results', CELLS.clock, 'output']);
  }
  assert.match(c.state.cell_results[CELLS.clock].output.body, /^tick \d+$/);
  assert.deepEqual(c.sent, { connect: 1, update_notebook: 1, complete: 2 }, 'the client sent nothing more');
});

test('pluto: the executable reads its env and prints READY and a Jupyter-style token line', async () => {
  const server = join(process.cwd(), 'dist/examples/standin/server.js');
  const child = spawn(process.execPath, [server], {
    env: { ...process.env, PORT: '0', STARTUP_DELAY_MS: '100', PRINT_TOKEN: '1', STATE_BYTES: '5000' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((r) => child.once('exit', r));
  cleanups.push(async () => {
    child.kill('SIGTERM');
    await exited;
  });
  const lines: string[] = [];
  const rl = createInterface({ input: child.stdout! });
  const tokenLine = await new Promise<string>((resolve, reject) => {
    rl.on('line', (l) => {
      lines.push(l);
      if (/\?token=/.test(l)) resolve(l);
    });
    child.once('exit', () => reject(new Error(`exited early: ${lines.join(' | ')}`)));
  });
  assert.equal(lines[0], 'READY');
  const m = /^ {4}http:\/\/127\.0\.0\.1:(\d+)\/\?token=([0-9a-f]{48})$/.exec(tokenLine);
  assert.ok(m, tokenLine);
  const base = `http://127.0.0.1:${m[1]}/`;
  assert.equal((await get(base + 'edit')).status, 403, 'the generated token is the secret');
  assert.equal((await get(base + `edit?token=${m[2]}`)).status, 200);
  assert.equal((await get(base + `edit?secret=${m[2]}`)).status, 200);
});

// ---------------------------------------------------------------------------------------------
// Jupyter stand-in

test('jupyter: GET {base}api needs no token; everything else does, by query, header or login cookie', async () => {
  const h = await jupyter({ token: 'tok123' });
  const api = await get(h.url + 'api');
  assert.equal(api.status, 200);
  assert.match(((await api.json()) as { version: string }).version, /^2\./);
  assert.equal((await get(h.url + 'api/kernels')).status, 403);
  assert.equal((await get(h.url + 'api/kernels', { headers: { Authorization: 'token nope' } })).status, 403);
  const byQuery = await get(h.url + 'api/kernels?token=tok123');
  assert.equal(byQuery.status, 200);
  const kernels = (await byQuery.json()) as { id: string }[];
  assert.deepEqual(
    kernels.map((k) => k.id),
    [h.kernelId],
  );
  assert.equal((await get(h.url + 'api/kernels', { headers: { Authorization: 'token tok123' } })).status, 200);
  const login = (byQuery.headers.get('set-cookie') ?? '').split(';')[0]!;
  assert.equal((await get(h.url + 'api/me', { headers: { Cookie: login } })).status, 200);

  const lab = await get(h.url + 'lab');
  assert.equal(lab.status, 302);
  assert.match(lab.headers.get('location')!, /^\/login\?next=/);
  const page = await get(h.url + 'lab?token=tok123');
  assert.equal(page.status, 200);
  assert.match(await page.text(), /"baseUrl":"\/"/);
  assert.equal((await get(h.url + 'tree?token=tok123')).status, 200);
  assert.ok(
    h.lines.some((l) => l.endsWith('/?token=...')),
    'a configured token is not printed',
  );
});

test('jupyter: BASE_URL is kept, not stripped: the same paths without it are 404', async () => {
  const h = await jupyter({ token: 't', baseUrl: '/user/ana/' });
  const origin = new URL(h.url).origin;
  assert.equal((await get(origin + '/api')).status, 404);
  assert.equal((await get(origin + '/user/ana/api')).status, 200);
  const page = await (await get(origin + '/user/ana/lab?token=t')).text();
  assert.match(page, /"baseUrl":"\/user\/ana\/"/);
  const c = await openJupyter(JupyterClient.channelsUrl(h.url, h.kernelId), { token: 't' });
  assert.equal((await c.kernelInfo()).reply?.header.msg_type, 'kernel_info_reply');
  await assert.rejects(
    JupyterClient.open(JupyterClient.channelsUrl(origin + '/', h.kernelId), { token: 't' }),
    (e: unknown) => e instanceof DriverError && e.status === 404,
  );
});

test('jupyter: the token is generated and printed when not configured', async () => {
  const h = await jupyter();
  assert.match(h.token, /^[0-9a-f]{48}$/);
  assert.ok(h.lines.includes(`    ${h.url}?token=${h.token}`), h.lines.join('\n'));
  assert.equal((await get(h.url + `api/status?token=${h.token}`)).status, 200);
});

test('jupyter: v1 subprotocol chosen when offered, legacy JSON otherwise; execute round-trips either way', async () => {
  const h = await jupyter({ token: 't' });
  const url = JupyterClient.channelsUrl(h.url, h.kernelId);

  const v1 = await openJupyter(url, { token: 't' });
  assert.equal(v1.protocol, JUPYTER_V1_SUBPROTOCOL);
  const ex = await v1.execute('1+1');
  assert.equal(ex.text, '2');
  assert.equal(ex.reply?.header.msg_type, 'execute_reply');
  assert.equal(ex.reply?.content.status, 'ok');
  assert.equal(ex.reply?.channel, 'shell');
  assert.deepEqual(
    ex.iopub.map((m) => m.header.msg_type),
    ['status', 'execute_input', 'execute_result', 'status'],
  );
  assert.equal((await v1.complete('pri')).reply?.content.matches[0], 'print');
  assert.equal((await v1.inspect('print')).reply?.content.found, true);
  const echo = await v1.commMsg('w1', { method: 'update', state: { value: 3 } });
  assert.deepEqual(echo.iopub.find((m) => m.header.msg_type === 'comm_msg')?.content, { comm_id: 'w1', data: { method: 'update', state: { value: 3 } } });

  const legacy = await openJupyter(url, { token: 't', subprotocol: false });
  assert.equal(legacy.protocol, '');
  const ex2 = await legacy.execute('print("hi")');
  assert.equal(ex2.text, `'print("hi")'`);
  assert.equal(ex2.reply?.content.execution_count, 2, 'the kernel counts executions across connections');
  assert.equal((await legacy.kernelInfo()).reply?.content.status, 'ok');

  // Garbage is ignored on both.
  v1.sendRaw('not a v1 frame');
  legacy.sendRaw(new Uint8Array([1, 2, 3]));
  assert.equal((await v1.kernelInfo()).reply?.header.msg_type, 'kernel_info_reply');
  assert.equal(h.stats.received.undecodable, 2);
  assert.equal(h.stats.received.execute_request, 2);
});

test('jupyter: upgrades need the token, an existing kernel and a matching Origin', async () => {
  const h = await jupyter({ token: 't' });
  const url = JupyterClient.channelsUrl(h.url, h.kernelId);
  const status = (e: unknown) => (e instanceof DriverError ? e.status : undefined);
  await assert.rejects(JupyterClient.open(url), (e) => status(e) === 403);
  await assert.rejects(JupyterClient.open(JupyterClient.channelsUrl(h.url, 'nope'), { token: 't' }), (e) => status(e) === 404);
  await assert.rejects(JupyterClient.open(url, { token: 't', origin: 'http://evil.example' }), (e) => status(e) === 403);
  const ok = await openJupyter(url, { headers: { Authorization: 'token t' }, origin: new URL(h.url).origin });
  assert.equal(ok.protocol, JUPYTER_V1_SUBPROTOCOL);
  const created = await JupyterClient.createKernel(h.url, { Authorization: 'token t' });
  const other = await openJupyter(JupyterClient.channelsUrl(h.url, created), { token: 't' });
  assert.equal((await other.execute('6*7')).text, '42');
});

test('jupyter: the server sends ping frames every PING_INTERVAL_MS and drops a client that never pongs', async () => {
  const h = await jupyter({ token: 't', pingIntervalMs: 60 });
  const url = JupyterClient.channelsUrl(h.url, h.kernelId);

  const alive = await openJupyter(url, { token: 't' });
  const times: number[] = [];
  await new Promise<void>((resolve) => {
    alive.onPing = () => {
      times.push(Date.now());
      if (times.length === 3) resolve();
    };
  });
  for (let i = 1; i < times.length; i++) assert.ok(times[i]! - times[i - 1]! >= 40, `ping gap ${times[i]! - times[i - 1]!} ms`);
  assert.equal(alive.readyState, 1, 'a client that pongs stays connected');

  const t0 = Date.now();
  const frozen = await openJupyter(url, { token: 't', autoPong: false });
  const { code } = await frozen.closed;
  const after = Date.now() - t0;
  assert.ok(after >= 150, `closed after ${after} ms, about 3 intervals`);
  assert.equal(code, 1005, 'closed by the server without a status code, as tornado does');
  assert.equal(h.stats.closedForNoPong, 1);
  assert.ok(h.stats.pongs >= 3);
  assert.equal(alive.readyState, 1);
});

test('jupyter: pollRest does one round of the frontend polls; saves go through PUT api/contents', async () => {
  const h = await jupyter({ token: 't' });
  const auth = { Authorization: 'token t' };
  assert.deepEqual(await pollRest(h.url, auth), { 'api/kernels': 200, 'api/sessions': 200, 'api/terminals': 200 });
  assert.deepEqual(Object.values(await pollRest(h.url, auth, { slow: true })), [200, 200, 200, 200, 200]);
  assert.equal(h.stats.rest['GET api/kernels'], 2);
  assert.equal(h.stats.rest['GET api/me'], 1);
  assert.equal(await saveContents(h.url, 'work/a.ipynb', { cells: [] }, auth), 201);
  assert.equal(await saveContents(h.url, 'work/a.ipynb', { cells: [1] }, auth), 200);
  assert.equal(h.stats.saves, 2);
  assert.deepEqual(Object.values(await pollRest(h.url)), [403, 403, 403]);
});

// ---------------------------------------------------------------------------------------------

test('examples/pluto/warmpool.yaml validates and describes the executed-before-listening image', () => {
  const cfg = loadConfig(join(process.cwd(), 'examples/pluto/warmpool.yaml'), {});
  const app = cfg.apps[0]!;
  assert.equal(app.runtime, 'docker');
  assert.equal(app.port, 1234);
  assert.equal(app.classifier, 'pluto');
  assert.equal(String(app.readiness.log), String(/^READY$/));
  assert.equal(app.deepLink, `/edit?id=${DEFAULT_NOTEBOOK_ID}`);
  assert.equal(app.secret?.env, 'PLUTO_SECRET');
  assert.equal(app.secret?.inject.query, 'secret');
});
