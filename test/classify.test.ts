// Tests for proxy/classify/: Pluto MsgPack and Jupyter kernel messages built as the clients send them, and HTTP
// tables, each row naming what a person did (active) or what the page did by itself (idle).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encode } from '@msgpack/msgpack';
import { classifierFor, createJupyterClassifier } from '../proxy/classify/index.js';
import { readPlutoMessage } from '../proxy/classify/pluto.js';
import type { Classifier } from '../proxy/classify/index.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const NB = '5a5d9a4e-7f7c-11ef-0c1b-a1b2c3d4e5f6';

/** A client message exactly as Pluto's PlutoConnection.send builds it (key order included), MsgPack-encoded. */
function pluto(type: string, body: Record<string, unknown> = {}, meta: Record<string, unknown> = { notebook_id: NB }): Buffer {
  return Buffer.from(encode({ type, client_id: 'k3j2a', request_id: Math.random().toString(36).slice(2, 8), body, ...meta }));
}

function classifyAll(c: Classifier, msgs: Array<Buffer | undefined>): string[] {
  const conn = c.newConnection();
  return msgs.map((m) => {
    const r = conn.clientMessage(2, m, m?.length ?? 100_000, false);
    return `${r.kind} ${r.type}`;
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Pluto

test('pluto: literal MsgPack messages as the client sends them', () => {
  // {type:"ping", client_id:"k3j2a", request_id:"1x9z", body:{}}
  const ping = hex('84 a4 74797065 a4 70696e67 a9 636c69656e745f6964 a5 6b336a3261 aa 726571756573745f6964 a4 3178397a a4 626f6479 80');
  // {type:"update_notebook", ..., body:{updates:[]}, notebook_id:"5a5d..."}
  const emptyUpdate = hex(
    '85 a4 74797065 af 7570646174655f6e6f7465626f6f6b a9 636c69656e745f6964 a5 6b336a3261 aa 726571756573745f6964 a4 3178397a' +
      'a4 626f6479 81 a7 75706461746573 90 ab 6e6f7465626f6f6b5f6964 d9 24' +
      Buffer.from(NB).toString('hex'),
  );
  assert.deepEqual(classifyAll(classifierFor('pluto'), [ping, emptyUpdate]), ['idle ping', 'idle update_notebook']);
});

test('pluto: message table', () => {
  const rows: Array<[string, Buffer, string]> = [
    ['ping', pluto('ping', {}, {}), 'idle ping'],
    ['current_time', pluto('current_time', {}, {}), 'idle current_time'],
    ['connect', pluto('connect', {}, { notebook_id: NB }), 'idle connect'],
    ['reset_shared_state', pluto('reset_shared_state'), 'idle reset_shared_state'],
    ['get_all_notebooks', pluto('get_all_notebooks', {}, {}), 'idle get_all_notebooks'],
    ['complete_symbols', pluto('complete_symbols', {}, {}), 'idle complete_symbols'],
    ['all_registered_package_names', pluto('all_registered_package_names', {}, {}), 'idle all_registered_package_names'],
    ['empty update_notebook', pluto('update_notebook', { updates: [] }), 'idle update_notebook'],
    ['slider moved', pluto('update_notebook', { updates: [{ op: 'replace', path: ['bonds', 'x', 'value'], value: 42 }] }), 'active update_notebook'],
    ['code edited', pluto('update_notebook', { updates: [{ op: 'replace', path: ['cell_inputs', 'c1', 'code'], value: 'x = 1' }] }), 'active update_notebook'],
    ['update_notebook without updates', pluto('update_notebook', {}), 'active update_notebook'],
    ['run_multiple_cells', pluto('run_multiple_cells', { cells: ['c1'] }), 'active run_multiple_cells'],
    ['interrupt_all', pluto('interrupt_all'), 'active interrupt_all'],
    ['docs', pluto('docs', { query: 'sqrt' }), 'active docs'],
    ['reshow_cell', pluto('reshow_cell', { cell_id: 'c1', objectid: 'ab12', dim: 1 }), 'active reshow_cell'],
    ['unknown type', pluto('summon_dragon'), 'active other'],
    ['non-ASCII type', pluto('🐉'), 'active other'],
  ];
  for (const [what, msg, want] of rows) {
    assert.deepEqual(classifyAll(classifierFor('pluto'), [msg]), [want], what);
  }
});

test('pluto: start-up completes are idle, completes while typing are active', () => {
  const c = classifierFor('pluto');
  // A tab opening: connect, ping, empty update_notebook, the two warm-up completes; then a person types.
  assert.deepEqual(
    classifyAll(c, [
      pluto('connect'),
      pluto('ping', {}, {}),
      pluto('update_notebook', { updates: [] }),
      pluto('complete', { query: 'sq' }),
      pluto('complete', { query: '\\sq' }),
      pluto('current_time', {}, {}),
      pluto('complete', { query: 'sq' }),
      pluto('complete', { query: 'Base.sor' }),
    ]),
    ['idle connect', 'idle ping', 'idle update_notebook', 'idle complete', 'idle complete', 'idle current_time', 'active complete', 'active complete'],
  );
  // After a reconnect (a new connection) there are no warm-ups: a real query is active at once.
  assert.deepEqual(classifyAll(c, [pluto('connect'), pluto('reset_shared_state'), pluto('complete', { query: 'prin' })]), [
    'idle connect',
    'idle reset_shared_state',
    'active complete',
  ]);
  // Anything active before them means a person is already there.
  assert.deepEqual(classifyAll(c, [pluto('run_multiple_cells', { cells: [] }), pluto('complete', { query: 'sq' })]), [
    'active run_multiple_cells',
    'active complete',
  ]);
  // A stand-in that sends completes without a query still gets its two start-up ones.
  assert.deepEqual(classifyAll(c, [pluto('complete', {}), pluto('complete'), pluto('complete')]), ['idle complete', 'idle complete', 'active complete']);
  // Per connection: a second connection has its own two.
  const a = c.newConnection();
  const b = c.newConnection();
  assert.equal(a.clientMessage(2, pluto('complete', { query: 'sq' }), 0, false).kind, 'idle');
  assert.equal(a.clientMessage(2, pluto('complete', { query: '\\sq' }), 0, false).kind, 'idle');
  assert.equal(b.clientMessage(2, pluto('complete', { query: 'sq' }), 0, false).kind, 'idle');
});

test('pluto: key order, str8/map16 encodings and a trailing delimiter do not matter', () => {
  const c = classifierFor('pluto');
  const bodyFirst = Buffer.from(encode({ body: { updates: [] }, client_id: 'a', type: 'update_notebook' }));
  const bodyFirstActive = Buffer.from(encode({ body: { updates: [{ op: 'add', path: ['x'], value: [1, 2.5, 'y', null] }] }, type: 'update_notebook' }));
  const withDelim = Buffer.concat([pluto('ping', {}, {}), Buffer.from('IUUQ.km jt ejggjdvmu vhi')]); // Pluto < 0.17 appended this
  // 16 keys forces map16 at the top level; a 40-byte key forces str8
  const big: Record<string, unknown> = { type: 'interrupt_all' };
  for (let i = 0; i < 15; i++) big[`k${i}`] = i;
  const map16 = Buffer.from(encode(big));
  assert.equal(map16[0], 0xde);
  const str8Key = Buffer.from(encode({ ['x'.repeat(40)]: new Uint8Array(300), type: 'ping', body: {} }));
  assert.deepEqual(classifyAll(c, [bodyFirst, bodyFirstActive, withDelim, map16, str8Key]), [
    'idle update_notebook',
    'active update_notebook',
    'idle ping',
    'active interrupt_all',
    'idle ping',
  ]);
});

test('pluto: undecodable, compressed and oversized messages are activity', () => {
  const c = classifierFor('pluto');
  const conn = c.newConnection();
  const garbage = [
    Buffer.from('not msgpack at all'),
    Buffer.alloc(0),
    hex('c1'),
    hex('93 01 02 03'), // an array, not a map
    hex('81 a4 74797065 05'), // type is a number
    hex('82 a4 626f6479 80'), // claims 2 pairs, has 1
    hex('81 a4 74797065 a9 70696e'), // string cut short
    hex('81 a4 626f6479 80'), // no type at all
    Buffer.from(encode({ body: { updates: [] } })),
    hex('df ff ff ff ff a4 74797065'), // absurd map32 count
  ];
  for (const g of garbage) {
    assert.deepEqual(conn.clientMessage(2, g, g.length, false), { kind: 'active', type: 'undecodable' }, g.toString('hex'));
  }
  assert.deepEqual(conn.clientMessage(2, undefined, 80, true), { kind: 'active', type: 'compressed' });
  assert.deepEqual(conn.clientMessage(2, undefined, 10_000_000, false), { kind: 'active', type: 'oversize' });
});

test('pluto: the reader never throws on random bytes', () => {
  let seed = 1;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  const base = pluto('update_notebook', { updates: [{ op: 'replace', path: ['a'], value: 1 }] });
  for (let i = 0; i < 5000; i++) {
    const b = Buffer.from(base);
    for (let j = 0; j < 3; j++) b[rnd() % b.length] = rnd();
    const cut = b.subarray(0, rnd() % (b.length + 1));
    assert.doesNotThrow(() => readPlutoMessage(cut));
  }
});

test('pluto: HTTP table', () => {
  const c = classifierFor('pluto');
  const rows: Array<[string, string, number, string]> = [
    ['GET', '/', 200, 'active'],
    ['GET', '/edit?id=' + NB, 200, 'active'],
    ['GET', '/open?path=webapp.jl', 302, 'active'],
    ['POST', '/open?path=webapp.jl', 302, 'active'],
    ['GET', '/new', 302, 'active'],
    ['GET', '/sample/Basic.jl', 302, 'active'],
    ['GET', '/notebookexport?id=' + NB, 200, 'active'],
    ['GET', '/notebookfile?id=' + NB, 200, 'active'],
    ['GET', '/statefile?id=' + NB, 200, 'active'],
    ['GET', '/vdma/edit?id=' + NB, 200, 'active'], // prefix kept (base_url mode)
    ['GET', '/ping', 200, 'idle'],
    ['GET', '/auth-check', 200, 'idle'],
    ['GET', '/possible_binder_token_please', 200, 'idle'],
    ['GET', '/notebooklist', 200, 'idle'],
    ['GET', '/vdma/ping', 200, 'idle'],
    ['GET', '/editor.3a2b1c9d.js', 200, 'idle'],
    ['GET', '/editor.css?v=1', 200, 'idle'],
    ['GET', '/favicon.ico', 200, 'idle'],
    ['GET', '/vendor/juliamono.woff2', 304, 'idle'],
    ['GET', '/img/logo.svg', 200, 'idle'],
    ['GET', '/edit?id=x', 404, 'idle'],
    ['GET', '/', 403, 'idle'],
    ['GET', '/open?path=x.jl', 500, 'idle'],
    ['GET', '/', 101, 'idle'], // the WebSocket upgrade itself
    ['HEAD', '/', 200, 'idle'],
    ['OPTIONS', '/edit', 204, 'idle'],
  ];
  for (const [method, path, status, want] of rows) assert.equal(c.http(method, path, status), want, `${method} ${path} ${status}`);
});

// ---------------------------------------------------------------------------------------------------------------
// Jupyter

interface KernelMsg {
  channel: string;
  header: Record<string, unknown>;
  parent_header?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
  content?: Record<string, unknown>;
  buffers?: Buffer[];
}

function header(msg_type: string): Record<string, unknown> {
  return { date: '', msg_id: 'b1e2', msg_type, session: 's1', username: '', version: '5.2' };
}

/** v1.kernel.websocket.jupyter.org, as serialize_msg_to_ws_v1 lays it out. */
function v1(m: KernelMsg): Buffer {
  const parts = [m.header, m.parent_header ?? {}, m.metadata ?? {}, m.content ?? {}].map((o) => Buffer.from(JSON.stringify(o)));
  const msgList = [...parts, ...(m.buffers ?? [])];
  const channel = Buffer.from(m.channel);
  const offsets = [8 * (1 + 1 + msgList.length + 1)];
  offsets.push(offsets[0] + channel.length);
  for (const p of msgList) offsets.push(offsets[offsets.length - 1] + p.length);
  const u64 = (n: number): Buffer => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    return b;
  };
  return Buffer.concat([u64(offsets.length), ...offsets.map(u64), channel, ...msgList]);
}

/** Legacy text frame: the whole message as JSON (JupyterLab's serializeDefault without buffers). */
function legacyJson(m: KernelMsg, spaced = false): Buffer {
  const msg = {
    header: m.header,
    msg_id: 'b1e2',
    msg_type: m.header.msg_type,
    parent_header: m.parent_header ?? {},
    metadata: m.metadata ?? {},
    content: m.content ?? {},
    buffers: [],
    channel: m.channel,
  };
  return Buffer.from(spaced ? JSON.stringify(msg, null, 1) : JSON.stringify(msg));
}

/** Legacy binary frame (message with buffers): uint32 BE nbufs, offsets, JSON, buffers. */
function legacyBinary(m: KernelMsg): Buffer {
  const json = Buffer.from(JSON.stringify({ header: m.header, parent_header: {}, metadata: {}, content: m.content ?? {}, channel: m.channel }));
  const bufs = [json, ...(m.buffers ?? [])];
  const offsets = [4 * (bufs.length + 1)];
  for (let i = 0; i < bufs.length - 1; i++) offsets.push(offsets[i] + bufs[i].length);
  const head = Buffer.alloc(4 * (bufs.length + 1));
  head.writeUInt32BE(bufs.length, 0);
  offsets.forEach((o, i) => {
    head.writeUInt32BE(o, 4 * (i + 1));
  });
  return Buffer.concat([head, ...bufs]);
}

const JUPYTER_ROWS: Array<[string, KernelMsg, string]> = [
  ['execute', { channel: 'shell', header: header('execute_request'), content: { code: 'x = 1', silent: false } }, 'active execute_request'],
  ['complete', { channel: 'shell', header: header('complete_request'), content: { code: 'pri', cursor_pos: 3 } }, 'active complete_request'],
  ['inspect', { channel: 'shell', header: header('inspect_request'), content: { code: 'print', cursor_pos: 5, detail_level: 0 } }, 'active inspect_request'],
  ['is_complete', { channel: 'shell', header: header('is_complete_request'), content: { code: 'for' } }, 'active is_complete_request'],
  ['interrupt', { channel: 'control', header: header('interrupt_request') }, 'active interrupt_request'],
  ['shutdown', { channel: 'control', header: header('shutdown_request'), content: { restart: true } }, 'active shutdown_request'],
  ['input_reply', { channel: 'stdin', header: header('input_reply'), content: { value: 'yes' } }, 'active input_reply'],
  ['kernel_info', { channel: 'shell', header: header('kernel_info_request') }, 'idle kernel_info_request'],
  ['comm_info', { channel: 'shell', header: header('comm_info_request'), content: { target_name: 'jupyter.widget' } }, 'idle comm_info_request'],
  ['history', { channel: 'shell', header: header('history_request'), content: { hist_access_type: 'tail', n: 1000 } }, 'idle history_request'],
  [
    'comm_open',
    { channel: 'shell', header: header('comm_open'), content: { comm_id: 'c', target_name: 'jupyter.widget.control', data: {} } },
    'idle comm_open',
  ],
  ['comm_close', { channel: 'shell', header: header('comm_close'), content: { comm_id: 'c', data: {} } }, 'idle comm_close'],
  ['widget restore', { channel: 'shell', header: header('comm_msg'), content: { comm_id: 'c', data: { method: 'request_states' } } }, 'idle comm_msg'],
  [
    'widget slider moved',
    { channel: 'shell', header: header('comm_msg'), content: { comm_id: 'c', data: { method: 'update', state: { value: 3 }, buffer_paths: [] } } },
    'active comm_msg',
  ],
  [
    'widget state with a binary buffer',
    { channel: 'shell', header: header('comm_msg'), content: { comm_id: 'c', data: { state: {}, method: 'update' } }, buffers: [Buffer.from([1, 2, 3])] },
    'active comm_msg',
  ],
  ['debugger probe', { channel: 'control', header: header('debug_request'), content: { seq: 1, type: 'request', command: 'debugInfo' } }, 'idle debug_request'],
  ['debugger step', { channel: 'control', header: header('debug_request'), content: { seq: 2, type: 'request', command: 'next' } }, 'active debug_request'],
  ['unknown', { channel: 'shell', header: header('frobnicate_request') }, 'active other'],
];

test('jupyter: v1 binary protocol messages', () => {
  for (const [what, m, want] of JUPYTER_ROWS) assert.deepEqual(classifyAll(classifierFor('jupyter'), [v1(m)]), [want], what);
});

test('jupyter: legacy JSON text messages (compact and pretty-printed)', () => {
  const conn = classifierFor('jupyter').newConnection();
  for (const [what, m, want] of JUPYTER_ROWS) {
    if (m.buffers) continue;
    for (const spaced of [false, true]) {
      const r = conn.clientMessage(1, legacyJson(m, spaced), 0, false);
      assert.equal(`${r.kind} ${r.type}`, want, `${what} spaced=${spaced}`);
    }
  }
});

test('jupyter: legacy binary messages (with buffers)', () => {
  const conn = classifierFor('jupyter').newConnection();
  for (const [what, m, want] of JUPYTER_ROWS) {
    const r = conn.clientMessage(2, legacyBinary({ ...m, buffers: m.buffers ?? [Buffer.from('buf')] }), 0, false);
    assert.equal(`${r.kind} ${r.type}`, want, what);
  }
});

test('jupyter: a literal v1 execute_request', () => {
  // n = 6 offsets: 56 (table end, channel "shell"), 61 (header, 30 bytes), 91, 93, 95 ({} x3), 97 (end)
  const hdr = '{"msg_type":"execute_request"}';
  const bytes = Buffer.concat([
    hex('0600000000000000'),
    hex('3800000000000000 3d00000000000000 5b00000000000000 5d00000000000000 5f00000000000000 6100000000000000'),
    Buffer.from('shell'),
    Buffer.from(hdr),
    Buffer.from('{}{}{}'),
  ]);
  assert.equal(bytes.length, 0x61);
  const r = classifierFor('jupyter').newConnection().clientMessage(2, bytes, bytes.length, false);
  assert.deepEqual(r, { kind: 'active', type: 'execute_request' });
});

test('jupyter: undecodable, compressed and oversized messages are activity', () => {
  const conn = classifierFor('jupyter').newConnection();
  const bad = [
    Buffer.from('{"header": {"msg_id": "x"}}'), // no msg_type
    Buffer.from('{"header": '), // cut short
    Buffer.from('[1,2,3]'),
    hex('0600000000000000 0000000000000000'), // offsets table past the end
    hex('0300000000000000 2000000000000000 1000000000000000 2000000000000000 00'), // offsets going back
    Buffer.alloc(40, 0xff),
  ];
  for (const b of bad) {
    assert.deepEqual(
      conn.clientMessage(b[0] === 0x7b || b[0] === 0x5b ? 1 : 2, b, b.length, false),
      { kind: 'active', type: 'undecodable' },
      b.toString('hex'),
    );
  }
  assert.deepEqual(conn.clientMessage(2, undefined, 80, true), { kind: 'active', type: 'compressed' });
  assert.deepEqual(conn.clientMessage(1, undefined, 1e6, false), { kind: 'active', type: 'oversize' });
});

test('jupyter: HTTP table, with and without a base URL', () => {
  const rows: Array<[string, string, number, string]> = [
    // the frontend polling by itself
    ['GET', '/api/kernels?1700000000000', 200, 'idle'],
    ['GET', '/api/sessions', 200, 'idle'],
    ['GET', '/api/terminals', 200, 'idle'],
    ['GET', '/api/kernelspecs', 200, 'idle'],
    ['GET', '/api/me', 200, 'idle'],
    ['GET', '/api/status', 200, 'idle'],
    ['GET', '/api', 200, 'idle'],
    ['GET', '/api/contents/work?content=1', 200, 'idle'],
    ['GET', '/lab/api/settings?ids_only=true', 200, 'idle'],
    ['GET', '/lab/api/translations/en', 200, 'idle'],
    ['PUT', '/lab/api/workspaces/default', 204, 'idle'],
    ['GET', '/api/kernels/0f1e/channels?session_id=ab', 101, 'idle'],
    // assets
    ['GET', '/static/lab/main.a1b2c3.js', 200, 'idle'],
    ['GET', '/lab/extensions/@jupyter-widgets/jupyterlab-manager/static/remoteEntry.js', 200, 'idle'],
    ['GET', '/static/favicons/favicon.ico', 200, 'idle'],
    ['GET', '/kernelspecs/python3/logo-64x64.png', 200, 'idle'],
    ['GET', '/custom/custom.css', 200, 'idle'],
    // a person
    ['PUT', '/api/contents/work/analysis.ipynb', 200, 'active'],
    ['PATCH', '/api/contents/work/old.ipynb', 200, 'active'],
    ['POST', '/api/contents/work', 201, 'active'],
    ['DELETE', '/api/contents/work/scratch.ipynb', 204, 'active'],
    ['POST', '/api/contents/work/analysis.ipynb/checkpoints', 201, 'active'],
    ['POST', '/api/kernels', 201, 'active'],
    ['POST', '/api/kernels/0f1e/restart', 200, 'active'],
    ['POST', '/api/kernels/0f1e/interrupt', 204, 'active'],
    ['DELETE', '/api/kernels/0f1e', 204, 'active'],
    ['POST', '/api/sessions', 201, 'active'],
    ['POST', '/api/terminals', 200, 'active'],
    ['PUT', '/lab/api/settings/@jupyterlab/apputils-extension:themes', 204, 'active'],
    ['GET', '/lab', 200, 'active'],
    ['GET', '/lab/tree/work/analysis.ipynb', 200, 'active'],
    ['GET', '/tree', 200, 'active'],
    ['GET', '/notebooks/work/analysis.ipynb', 200, 'active'],
    ['GET', '/edit/work/data.csv', 200, 'active'],
    ['GET', '/doc/tree/work/analysis.ipynb', 200, 'active'],
    ['GET', '/files/work/plot.png', 200, 'active'],
    ['GET', '/nbconvert/html/work/analysis.ipynb?download=true', 200, 'active'],
    ['GET', '/', 302, 'active'],
    // errors
    ['PUT', '/api/contents/work/analysis.ipynb', 409, 'idle'],
    ['GET', '/lab', 403, 'idle'],
    ['POST', '/api/kernels', 500, 'idle'],
    ['OPTIONS', '/api/kernels', 204, 'idle'],
  ];
  const plain = classifierFor('jupyter');
  const based = classifierFor('jupyter', { baseUrl: '/lab/' }); // an app unluckily named "lab"
  for (const [method, path, status, want] of rows) {
    assert.equal(plain.http(method, path, status), want, `${method} ${path} ${status}`);
    // behind a base URL kept in the path, found by its first Jupyter segment
    assert.equal(plain.http(method, '/user/alice' + path, status), want, `${method} /user/alice${path} ${status}`);
    assert.equal(plain.http(method, '/vdma' + path, status), want, `${method} /vdma${path} ${status}`);
    // with the base URL known, even a prefix that looks like a Jupyter route is cut cleanly
    assert.equal(based.http(method, '/lab' + path, status), want, `baseUrl /lab/: ${method} /lab${path} ${status}`);
  }
  // without the base URL, the "lab" prefix is still read right for the API
  assert.equal(plain.http('GET', '/lab/api/kernels', 200), 'idle');
  assert.equal(plain.http('POST', '/lab/api/kernels', 201), 'active');
  assert.equal(createJupyterClassifier({ baseUrl: '/x' }).http('GET', '/x/api/kernels', 200), 'idle');
});

// ---------------------------------------------------------------------------------------------------------------
// Generic

test('generic: every client message is activity; every successful request too', () => {
  const c = classifierFor('generic');
  assert.deepEqual(classifyAll(c, [Buffer.from('hi'), undefined, Buffer.alloc(0)]), ['active data', 'active data', 'active data']);
  const rows: Array<[string, string, number, string]> = [
    ['GET', '/', 200, 'active'],
    ['GET', '/app.js', 200, 'active'],
    ['POST', '/api/x?y=1', 201, 'active'],
    ['GET', '/moved', 302, 'active'],
    ['GET', '/cached', 304, 'active'],
    ['GET', '/missing', 404, 'idle'],
    ['GET', '/broken', 502, 'idle'],
    ['GET', '/socket', 101, 'idle'],
  ];
  for (const [method, path, status, want] of rows) assert.equal(c.http(method, path, status), want, `${method} ${path} ${status}`);
});

test('classifierFor: names and an unknown kind', () => {
  assert.equal(classifierFor('pluto').name, 'pluto');
  assert.equal(classifierFor('jupyter').name, 'jupyter');
  assert.equal(classifierFor('generic').name, 'generic');
  assert.throws(() => classifierFor('shiny' as never), /unknown classifier "shiny"/);
});

test('results are shared constants: classifying allocates no result objects', () => {
  const conn = classifierFor('pluto').newConnection();
  const a = conn.clientMessage(2, pluto('ping', {}, {}), 0, false);
  const b = conn.clientMessage(2, pluto('ping', {}, {}), 0, false);
  assert.equal(a, b);
  assert.ok(Object.isFrozen(a));
});

test('a message read from its first bytes only: classified by the type they name, or "oversize" when they do not settle it', () => {
  const conn = classifierFor('pluto').newConnection();
  const big = pluto('update_notebook', { updates: [{ op: 'replace', path: ['cell', 'code'], value: 'x'.repeat(20_000) }] });
  const emptyFirst = pluto('update_notebook', { updates: [] });
  // The type and the updates' array header come first: a prefix names them.
  const r1 = conn.clientMessage(2, big.subarray(0, 8192), big.length, false);
  assert.deepEqual([r1.kind, r1.type], ['active', 'update_notebook']);
  // A prefix that ends before the type is readable: "oversize", and active (never reap a person).
  const r2 = conn.clientMessage(2, big.subarray(0, 6), big.length, false);
  assert.deepEqual([r2.kind, r2.type], ['active', 'oversize']);
  // Whole and short: unchanged.
  const r3 = conn.clientMessage(2, emptyFirst, emptyFirst.length, false);
  assert.deepEqual([r3.kind, r3.type], ['idle', 'update_notebook']);
  const j = classifierFor('jupyter').newConnection();
  const garbled = Buffer.from('{"content": {"code": "' + 'y'.repeat(100));
  const r4 = j.clientMessage(1, garbled, 50_000, false);
  assert.deepEqual([r4.kind, r4.type], ['active', 'oversize']);
});
