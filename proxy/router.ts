// Splits a request target into warmpool's namespaces: `/` (landing), `/_warmpool/…` (the proxy's
// own routes), `/<app>` and `/<app>/<rest>` (an app). Pure: no I/O, table-tested.

export const INTERNAL_PREFIX = '/_warmpool';

export type Route =
  | { kind: 'landing' }
  /** `/_warmpool/<path>`: path starts with '/' (query included). */
  | { kind: 'internal'; path: string }
  /** `/<app>` without the trailing slash: redirected to `/<app>/` (query kept). */
  | { kind: 'app-bare'; app: string; query: string }
  /** `/<app>/<rest>`: rest starts with '/' and keeps the query; `isRoot` when the path is exactly `/<app>/`. */
  | { kind: 'app'; app: string; rest: string; isRoot: boolean }
  /** A first segment that names no app (a candidate for the operator's own routes when mounted). */
  | { kind: 'other'; segment: string }
  /** Not an origin-form target (`*`, absolute-form, garbage). */
  | { kind: 'invalid' };

/** Routes a raw request target (req.url). `isApp` says whether a first segment is a configured app. */
export function route(url: string | undefined, isApp: (name: string) => boolean): Route {
  if (!url || url.charCodeAt(0) !== 47 /* / */) return { kind: 'invalid' };
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q);
  if (path === '/') return { kind: 'landing' };
  const slash = path.indexOf('/', 1);
  const segment = slash < 0 ? path.slice(1) : path.slice(1, slash);
  if (segment === INTERNAL_PREFIX.slice(1)) {
    return { kind: 'internal', path: slash < 0 ? '/' + query : url.slice(slash) };
  }
  if (!isApp(segment)) return { kind: 'other', segment };
  if (slash < 0) return { kind: 'app-bare', app: segment, query };
  const rest = url.slice(slash);
  return { kind: 'app', app: segment, rest, isRoot: slash === path.length - 1 };
}

/** The query string (without '?') of a target, or ''. */
export function queryOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? '' : url.slice(q + 1);
}

/** Reads one query parameter of a target without building a URL object. */
export function queryParam(url: string, name: string): string | undefined {
  const qs = queryOf(url);
  if (!qs) return undefined;
  return new URLSearchParams(qs).get(name) ?? undefined;
}
