// The instance secret: added to every forwarded request (query parameter, header or cookie, as
// app.secret.inject says) and scrubbed from every response header, so no visitor ever sees it.

import type { SecretConfig } from '../core/config.js';

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

/**
 * The forms a secret can take in a header value: as it is, percent-encoded (any case of hex, any
 * subset of characters encoded: checked by decoding the value), and base64 in both alphabets at
 * each of the three alignments (the secret preceded by 0, 1 or 2 other bytes before encoding).
 */
interface SecretForms {
  /** Substrings whose presence gives the secret away. */
  needles: string[];
}

// Per secret, computed once: a session's secret is asked about on every response. Bounded: a
// restarted class has new secrets, old ones are dropped wholesale when the map is full.
const FORMS = new Map<string, SecretForms>();
const FORMS_MAX = 4096;

function formsOf(secret: string): SecretForms {
  let f = FORMS.get(secret);
  if (f) return f;
  const needles = new Set<string>([secret, encodeURIComponent(secret)]);
  const bytes = Buffer.from(secret, 'utf8');
  for (let k = 0; k < 3; k++) {
    const b64 = Buffer.concat([Buffer.alloc(k), bytes])
      .toString('base64')
      .replace(/=+$/, '');
    // Characters that carry only secret bits: skip those mixing in the k leading bytes, and the
    // last one if it mixes in whatever byte follows the secret.
    const from = k === 0 ? 0 : k === 1 ? 2 : 3;
    const to = Math.floor(((k + bytes.length) * 8) / 6);
    const core = b64.slice(from, to);
    if (core.length < 8) continue; // too short to name the secret rather than anything else
    needles.add(core);
    needles.add(core.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  f = { needles: [...needles] };
  if (FORMS.size >= FORMS_MAX) FORMS.clear();
  FORMS.set(secret, f);
  return f;
}

/** True when a response header value gives the secret away (raw, percent-encoded or base64). */
export function leaksSecret(value: string, secret: string): boolean {
  if (value.indexOf(secret) >= 0) return true;
  const { needles } = formsOf(secret);
  for (let i = 1; i < needles.length; i++) if (value.indexOf(needles[i]!) >= 0) return true;
  // Percent-encoding in lower-case hex, or of only some characters: compare the decoded value.
  return value.indexOf('%') >= 0 && percentDecoded(value).indexOf(secret) >= 0;
}

/** decodeURIComponent that never throws: a malformed escape is left as it is. */
function percentDecoded(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value.replace(/(?:%[0-9a-fA-F]{2})+/g, (run) => {
      try {
        return decodeURIComponent(run);
      } catch {
        return run;
      }
    });
  }
}
