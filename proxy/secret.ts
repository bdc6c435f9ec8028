// The instance secret: added to every forwarded request (query parameter, header or cookie, as
// app.secret.inject says) and scrubbed from every response header, so no visitor ever sees it.

import type { SecretConfig } from '../pool/config.js';

/** The path to send upstream, with `?<name>=<secret>` set (a visitor-supplied one removed first). */
export function withSecretQuery(path: string, name: string, secret: string): string {
  const q = path.indexOf('?');
  const pair = `${encodeURIComponent(name)}=${encodeURIComponent(secret)}`;
  if (q < 0) return `${path}?${pair}`;
  const query = path.slice(q + 1);
  if (query.length === 0) return `${path}${pair}`;
  if (query.indexOf(name) < 0) return `${path}&${pair}`;
  const kept = query.split('&').filter((p) => {
    const eq = p.indexOf('=');
    const k = eq < 0 ? p : p.slice(0, eq);
    return safeDecode(k) !== name;
  });
  kept.push(pair);
  return `${path.slice(0, q)}?${kept.join('&')}`;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

/** Removes a query parameter from a URL or path (used on Location headers that echo the secret). */
export function withoutQueryParam(url: string, name: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const hash = url.indexOf('#', q);
  const query = url.slice(q + 1, hash < 0 ? undefined : hash);
  const kept = query.split('&').filter((p) => {
    const eq = p.indexOf('=');
    return safeDecode(eq < 0 ? p : p.slice(0, eq)) !== name;
  });
  return url.slice(0, q) + (kept.length ? '?' + kept.join('&') : '') + (hash < 0 ? '' : url.slice(hash));
}

export function secretHeaderValue(inject: SecretConfig['inject'], secret: string): string {
  return inject.headerFormat.split('{secret}').join(secret);
}

// The URL-encoded form of the last secret asked about: every response header is checked, and
// encodeURIComponent per header showed in the relay's profile (issue 5).
let lastSecret = '';
let lastEncoded = '';

/** True when a response header value gives the secret away (raw or URL-encoded). */
export function leaksSecret(value: string, secret: string): boolean {
  if (value.indexOf(secret) >= 0) return true;
  if (secret !== lastSecret) {
    lastSecret = secret;
    lastEncoded = encodeURIComponent(secret);
  }
  return lastEncoded !== secret && value.indexOf(lastEncoded) >= 0;
}
