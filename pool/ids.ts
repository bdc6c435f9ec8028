// Random identifiers: instance ids (short, lower-case: they appear in container names),
// session ids and secrets (url-safe base64, unguessable).
import { randomBytes } from 'node:crypto';

export function instanceId(): string {
  // 10 chars of base36 from 8 random bytes: ~51 bits, plenty within one deployment.
  return randomBytes(8).readBigUInt64BE().toString(36).padStart(10, '0').slice(-10);
}

export function sessionId(): string {
  return randomBytes(16).toString('base64url');
}

export function secretToken(): string {
  return randomBytes(18).toString('base64url');
}
