// The layouts of a Jupyter kernel WebSocket message from the browser: where its header and content JSON are.
// Only checks offsets; the JSON inside is for json-peek.ts (or JSON.parse) to read.

/*
 * Three framings, told apart by their bytes (jupyter_server kernels/connection/base.py):
 *   - text frame: legacy JSON, {"header": {"msg_type": ...}, "content": ..., "channel": ...}
 *   - binary, subprotocol v1.kernel.websocket.jupyter.org (serialize_msg_to_ws_v1): uint64 LE n, then n uint64 LE
 *     offsets, then channel, header, parent_header, metadata, content, buffers...; part i spans
 *     [offset[i], offset[i+1]), offset[0] == 8 * (n + 1).
 *   - binary, legacy with buffers (deserialize_binary_message): uint32 BE nbufs, nbufs uint32 BE offsets
 *     (offset[0] == 4 * (nbufs + 1)); the first part is the JSON message.
 */

/** Where locateKernelParts found the JSON. The caller owns one and reuses it for every message. */
export class KernelParts {
  /**
   * true: [headerStart, headerEnd) is the whole message as one JSON object, with `header` and `content` keys (legacy).
   * false: [headerStart, headerEnd) is the header object and [contentStart, contentEnd) the content object (v1).
   */
  whole = false;
  headerStart = 0;
  headerEnd = 0;
  /** v1 only; an empty range when the message has no content part. */
  contentStart = 0;
  contentEnd = 0;
}

/** Locates the JSON of one client message (opcode 1 text, 2 binary) into out. False when a binary layout is inconsistent. */
export function locateKernelParts(opcode: number, b: Uint8Array, out: KernelParts): boolean {
  if (opcode === 1) {
    out.whole = true;
    out.headerStart = 0;
    out.headerEnd = b.length;
    return true;
  }
  return locateV1(b, out) || locateLegacyBinary(b, out);
}

function u32le(b: Uint8Array, p: number): number {
  return (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
}

function u32be(b: Uint8Array, p: number): number {
  return ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
}

/** v1.kernel.websocket.jupyter.org. False unless the offset table is consistent. */
function locateV1(b: Uint8Array, out: KernelParts): boolean {
  const len = b.length;
  if (len < 16 || u32le(b, 4) !== 0) return false;
  const n = u32le(b, 0);
  if (n < 3 || n > 0xffff || 8 * (n + 1) > len) return false;
  // offset[0] starts the channel right after the table; offsets never go back and stay inside the message.
  let prev = 8 * (n + 1);
  for (let i = 0; i < n; i++) {
    const at = 8 * (i + 1);
    const off = u32le(b, at);
    if (u32le(b, at + 4) !== 0 || off < prev || off > len || (i === 0 && off !== prev)) return false;
    prev = off;
  }
  // part i (0 channel, 1 header, 2 parent_header, 3 metadata, 4 content) spans [offset[i], offset[i+1])
  out.whole = false;
  out.headerStart = u32le(b, 16);
  out.headerEnd = u32le(b, 24);
  if (n >= 6) {
    out.contentStart = u32le(b, 40);
    out.contentEnd = u32le(b, 48);
  } else {
    out.contentStart = out.contentEnd = 0;
  }
  return true;
}

/** Legacy binary (a JSON message followed by buffers). */
function locateLegacyBinary(b: Uint8Array, out: KernelParts): boolean {
  const len = b.length;
  if (len < 8) return false;
  const nbufs = u32be(b, 0);
  if (nbufs < 1 || nbufs > 0xffff || 4 * (nbufs + 1) > len) return false;
  const first = u32be(b, 4);
  if (first !== 4 * (nbufs + 1)) return false;
  const next = nbufs > 1 ? u32be(b, 8) : len;
  if (next < first || next > len) return false;
  out.whole = true;
  out.headerStart = first;
  out.headerEnd = next;
  return true;
}
