// The deep link's redirect, read once when an instance becomes ready (app.resolveDeepLink): Pluto's
// `/open?path=webapp.jl` answers 302 to the open notebook's `./edit?id=<uuid>`, the same for as long as
// the notebook stays open, so the entry can send a new visitor there at once instead of through the
// deep link (one round trip less per student, the one the port-per-student floor does not make either:
// bench/burst.ts). The pool keeps the Location as the instance sent it; the proxy maps it to the public
// URL space and checks it stays within the app (proxy/entry.ts), and falls back to the deep link.

import type { AppConfig } from '../core/config.js';
import { probeHead, type ProbeTarget } from './http-probe.js';
import { instanceRequest } from './readiness.js';

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** The Location the app's deep link answers with a redirect, or undefined (no redirect, no answer within timeoutMs, no single Location). */
export async function deepLinkRedirect(app: AppConfig, to: ProbeTarget, secret: string | undefined, timeoutMs = 2000): Promise<string | undefined> {
  const { target, headers } = instanceRequest(app.deepLink, app, secret);
  const a = await probeHead(to, target, headers, timeoutMs);
  return a && REDIRECTS.has(a.status) ? a.location : undefined;
}
