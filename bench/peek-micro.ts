// Micro-benchmark of reading Jupyter kernel messages: protocol/json-peek.ts (as the Jupyter classifier uses it) against
// JSON.parse plus reading the same fields. Run `node dist/bench/peek-micro.js [rounds]`; prints median ns/message.

import { ALWAYS_IDLE, JUPYTER_MESSAGE_TYPES, jupyterClassifier } from '../proxy/classify/jupyter.js';
import { KernelParts, locateKernelParts } from '../proxy/protocol/kernel-ws-msg.js';

const ROUNDS = Number(process.argv[2] ?? 7);
/** Bytes read per measured batch: small messages get more iterations. */
const BATCH_BYTES = 8 * 1024 * 1024;

const SESSION = '2d6a1f0e-5b7c-4c1e-9a3b-8f2e4d6c0a19';
let seq = 0;

/** A message as @jupyterlab/services createMessage builds it (its key order included). */
function message(channel: string, msgType: string, content: unknown, metadata: unknown = {}): Record<string, unknown> {
  seq++;
  return {
    buffers: [],
    channel,
    content,
    header: {
      date: '2025-11-03T10:21:' + String(10 + (seq % 50)) + '.123Z',
      msg_id: `b7e1c0a2-${String(seq).padStart(4, '0')}-4f2e-8d1c-3a5b7c9e1f20`,
      msg_type: msgType,
      session: SESSION,
      username: '',
      version: '5.2',
    },
    metadata,
    parent_header: {},
  };
}

/** v1.kernel.websocket.jupyter.org, as JupyterLab's serializeV1KernelMessage lays it out. */
function v1(m: Record<string, unknown>, buffers: Buffer[] = []): Buffer {
  const parts = [m.header, m.parent_header, m.metadata, m.content].map((o) => Buffer.from(JSON.stringify(o)));
  const list = [Buffer.from(String(m.channel)), ...parts, ...buffers];
  const offsets = [8 * (list.length + 2)];
  for (const p of list) offsets.push(offsets[offsets.length - 1] + p.length);
  const head = Buffer.alloc(8 * (offsets.length + 1));
  head.writeBigUInt64LE(BigInt(offsets.length), 0);
  for (let i = 0; i < offsets.length; i++) head.writeBigUInt64LE(BigInt(offsets[i]), 8 * (i + 1));
  return Buffer.concat([head, ...list]);
}

/** Legacy text frame: JSON.stringify of the whole message (serializeDefault without buffers). */
function legacyText(m: Record<string, unknown>): Buffer {
  return Buffer.from(JSON.stringify(m));
}

/** Legacy binary frame: uint32 BE nbufs, offsets, the JSON message, the buffers. */
function legacyBinary(m: Record<string, unknown>, buffers: Buffer[]): Buffer {
  const list = [Buffer.from(JSON.stringify({ ...m, buffers: undefined })), ...buffers];
  const head = Buffer.alloc(4 * (list.length + 1));
  head.writeUInt32BE(list.length, 0);
  let off = head.length;
  list.forEach((p, i) => {
    head.writeUInt32BE(off, 4 * (i + 1));
    off += p.length;
  });
  return Buffer.concat([head, ...list]);
}

function cell(lines: number): string {
  const out: string[] = ['import numpy as np', 'import matplotlib.pyplot as plt', ''];
  for (let i = 0; out.length < lines; i++) {
    out.push(
      `def step_${i}(x, rate=0.${i % 10}):`,
      `    """Advance the "model" by one step; see notes §${i}."""`,
      `    return np.tanh(x * rate) + ${i}\t# ünïcode ok`,
    );
  }
  return out.join('\n');
}

function execute(code: string): Record<string, unknown> {
  return message(
    'shell',
    'execute_request',
    { code, silent: false, store_history: true, user_expressions: {}, allow_stdin: true, stop_on_error: true },
    { deletedCells: [], recordTiming: false, cellId: '6f1c2a3b-7d4e-4f5a-9b0c-1d2e3f4a5b6c' },
  );
}

const widgetUpdate = message('shell', 'comm_msg', { comm_id: 'e4a1c7d2f9b84c0e', data: { method: 'update', state: { value: 42 }, buffer_paths: [] } });
const widgetRestore = message('shell', 'comm_msg', { comm_id: 'e4a1c7d2f9b84c0e', data: { method: 'request_states' } });
const kernelInfo = message('shell', 'kernel_info_request', {});
const imageBuffer = Buffer.alloc(2048, 0x89);

const CASES: Array<[string, number, Buffer]> = [
  ['v1 kernel_info_request', 2, v1(kernelInfo)],
  ['v1 execute_request, 1-line cell', 2, v1(execute('x = np.linspace(0, 1, 101)'))],
  ['v1 execute_request, 4 KB cell', 2, v1(execute(cell(100)))],
  ['v1 execute_request, 20 KB cell', 2, v1(execute(cell(500)))],
  ['v1 comm_msg widget update', 2, v1(widgetUpdate)],
  ['v1 comm_msg request_states', 2, v1(widgetRestore)],
  ['text kernel_info_request', 1, legacyText(kernelInfo)],
  ['text execute_request, 1-line cell', 1, legacyText(execute('x = np.linspace(0, 1, 101)'))],
  ['text execute_request, 4 KB cell', 1, legacyText(execute(cell(100)))],
  ['text execute_request, 20 KB cell', 1, legacyText(execute(cell(500)))],
  ['text comm_msg widget update', 1, legacyText(widgetUpdate)],
  ['binary comm_msg + 2 KB buffer', 2, legacyBinary(widgetUpdate, [imageBuffer])],
];

// ---------------------------------------------------------------------------------------------------------------
// The JSON.parse way: the same framing, then JSON.parse of the JSON parts and plain property reads.

const IDLE_TYPES = ALWAYS_IDLE;
const KNOWN: ReadonlySet<string> = new Set(JUPYTER_MESSAGE_TYPES);

type Obj = Record<string, unknown> | undefined;
const obj = (v: unknown): Obj => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);

function parseJson(b: Buffer, s: number, e: number): Obj {
  try {
    return obj(JSON.parse(b.toString('utf8', s, e)));
  } catch {
    return undefined;
  }
}

const parts = new KernelParts();

function viaParse(opcode: number, b: Buffer): string {
  if (!locateKernelParts(opcode, b, parts)) return 'active undecodable';
  const first = parseJson(b, parts.headerStart, parts.headerEnd);
  const header = parts.whole ? obj(first?.header) : first;
  const type = header?.msg_type;
  if (typeof type !== 'string') return 'active undecodable';
  if (!KNOWN.has(type)) return 'active other';
  if (type !== 'comm_msg' && type !== 'debug_request') return `${IDLE_TYPES.has(type) ? 'idle' : 'active'} ${type}`;
  const content = parts.whole ? obj(first?.content) : parts.contentStart < parts.contentEnd ? parseJson(b, parts.contentStart, parts.contentEnd) : undefined;
  if (type === 'comm_msg') {
    const method = obj(content?.data)?.method;
    return `${method === 'request_states' || method === 'request_state' ? 'idle' : 'active'} comm_msg`;
  }
  return `${content?.command === 'debugInfo' ? 'idle' : 'active'} debug_request`;
}

// ---------------------------------------------------------------------------------------------------------------

const conn = jupyterClassifier.newConnection();
const viaPeek = (opcode: number, b: Buffer): string => {
  const c = conn.clientMessage(opcode, b, b.length, false);
  return `${c.kind} ${c.type}`;
};

let sink = 0;

function measure(fn: (opcode: number, b: Buffer) => string, opcode: number, b: Buffer, iterations: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) sink += fn(opcode, b).length;
  return Number(process.hrtime.bigint() - t0) / iterations;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

console.log(`median of ${ROUNDS} rounds, ns/message (locate + read fields + decide)`);
console.log(`${'message'.padEnd(34)} ${'bytes'.padStart(6)} ${'json-peek'.padStart(10)} ${'JSON.parse'.padStart(11)} ${'ratio'.padStart(6)}  verdict`);
const iterationsFor = (b: Buffer): number => Math.max(2000, Math.floor(BATCH_BYTES / b.length));
for (const [name, opcode, b] of CASES) {
  const a = viaPeek(opcode, b);
  const p = viaParse(opcode, b);
  if (a !== p) throw new Error(`${name}: json-peek says ${a}, JSON.parse says ${p}`);
  measure(viaPeek, opcode, b, iterationsFor(b)); // warm-up, every case before any is measured
  measure(viaParse, opcode, b, iterationsFor(b));
}
for (const [name, opcode, b] of CASES) {
  const a = viaPeek(opcode, b);
  const iterations = iterationsFor(b);
  const peek: number[] = [];
  const parse: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    peek.push(measure(viaPeek, opcode, b, iterations));
    parse.push(measure(viaParse, opcode, b, iterations));
  }
  const mp = median(peek);
  const mj = median(parse);
  console.log(
    `${name.padEnd(34)} ${String(b.length).padStart(6)} ${mp.toFixed(0).padStart(10)} ${mj.toFixed(0).padStart(11)} ${(mj / mp).toFixed(1).padStart(5)}x  ${a}`,
  );
}
if (sink === 0) console.log('');
