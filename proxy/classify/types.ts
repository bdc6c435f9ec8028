// What an activity classifier is: it names each client message and request and says whether a person did it.
// The proxy calls it on the hot path; the pool decides what idle time means.

import type { ClassifierKind } from '../../core/config.js';

export type { ClassifierKind };

/** 'active': a person did something (or may have: anything undecodable counts). 'idle': a keepalive or the page's own chatter. */
export type ActivityKind = 'active' | 'idle';

/** A classified client message: kind, and the type name for per-type counters (a bounded set: unknown names become 'other'). */
export interface MessageClass {
  readonly kind: ActivityKind;
  readonly type: string;
}

/** Per WebSocket connection state (e.g. "the two start-up completes have been seen"). */
export interface ConnectionClassifier {
  /**
   * One whole client-to-server data message. opcode is 1 (text) or 2 (binary); payload is the unmasked message,
   * or undefined when it was compressed or longer than the tap's capture limit. Never throws; returns shared constants.
   */
  clientMessage(opcode: number, payload: Buffer | undefined, totalLength: number, compressed: boolean): MessageClass;
}

export interface Classifier {
  readonly name: ClassifierKind;
  newConnection(): ConnectionClassifier;
  /** One HTTP request: method, path as the proxy forwards it (query included, may carry a base-URL prefix), response status. */
  http(method: string, path: string, status: number): ActivityKind;
}

/** Builds the shared result constants for a set of type names, so classifying allocates nothing. */
export function messageClasses<T extends string>(names: readonly T[]): { idle: Record<T, MessageClass>; active: Record<T, MessageClass> } {
  const idle = {} as Record<T, MessageClass>;
  const active = {} as Record<T, MessageClass>;
  for (const type of names) {
    idle[type] = Object.freeze({ kind: 'idle', type });
    active[type] = Object.freeze({ kind: 'active', type });
  }
  return { idle, active };
}

/** Cuts the query string and fragment off a request path. */
export function pathOnly(path: string): string {
  let end = path.length;
  const q = path.indexOf('?');
  if (q >= 0) end = q;
  const h = path.indexOf('#');
  if (h >= 0 && h < end) end = h;
  return end === path.length ? path : path.slice(0, end);
}

/** File extensions of static assets (scripts, styles, fonts, images, source maps, wasm). */
const ASSET_EXT = new Set([
  'js',
  'mjs',
  'cjs',
  'css',
  'map',
  'woff',
  'woff2',
  'ttf',
  'otf',
  'eot',
  'svg',
  'png',
  'jpg',
  'jpeg',
  'gif',
  'webp',
  'avif',
  'ico',
  'wasm',
  'webmanifest',
]);

/** True when the last segment of the path names a static asset by its extension. */
export function isAssetPath(path: string): boolean {
  const dot = path.lastIndexOf('.');
  if (dot < 0 || dot < path.lastIndexOf('/')) return false;
  return ASSET_EXT.has(path.slice(dot + 1).toLowerCase());
}
