// Where the entry sends a visitor: the app's deep link under /<app>/, or, for a new session on an
// instance whose deep link answered a redirect when it became ready (pool/deep-link.ts), straight to
// that redirect's target. That Location came from the instance, so it is untrusted: it is mapped to
// the public URL space as a relayed Location is (proxy/headers.ts publicLocation: the instance's own
// origin dropped, strip mode's /x under /<app>/, an echoed secret removed), resolved against the deep
// link, and used only if it stays under /<app>/ and gives nothing of the secret away. Anything else:
// the deep link itself, which the instance answers as it would have.

import type { AppConfig } from '../core/config.js';
import type { SessionTarget } from '../pool/api.js';
import { publicLocation } from './headers.js';
import { leaksSecret, withoutQueryParam } from './secret.js';

/** The public URL of an app's deep link, e.g. /demo/open?path=webapp.jl. */
export function deepLinkUrl(app: AppConfig): string {
  return `/${app.name}${app.deepLink}`;
}

/** A base no Location can name: a resolved URL with another origin came from the Location itself. */
const NOWHERE = 'http://warmpool.invalid';

/** Where a new session's visitor is sent first: the deep link's redirect target when there is a safe one, else the deep link. */
export function firstLocation(app: AppConfig, target: SessionTarget): string {
  const deep = deepLinkUrl(app);
  const loc = target.deepLinkRedirect;
  if (loc === undefined) return deep;
  // An echoed secret query parameter is removed (publicLocation); the secret anywhere else: not this Location.
  const secret = target.secret;
  const q = app.secret?.inject.query;
  if (secret && leaksSecret(q ? withoutQueryParam(loc, q) : loc, secret)) return deep;
  let u: URL;
  try {
    u = new URL(publicLocation(loc, { app, target }), NOWHERE + deep);
  } catch {
    return deep;
  }
  if (u.origin !== NOWHERE || u.username !== '' || u.password !== '') return deep;
  const path = u.pathname + u.search + u.hash;
  if (!path.startsWith(`/${app.name}/`)) return deep;
  if (secret && leaksSecret(path, secret)) return deep; // e.g. spelled out by the URL parser's own encoding
  return path;
}
