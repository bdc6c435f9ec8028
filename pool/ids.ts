// Random identifiers: instance ids (short, lower-case: they appear in container names),
// session ids and secrets (url-safe base64, unguessable).
import { freshRandom, randomToken } from '../core/random.js';

export function instanceId(): string {
  // 10 chars of base36 from 8 random bytes: ~51 bits, plenty within one deployment.
  return freshRandom(8).readBigUInt64BE().toString(36).padStart(10, '0').slice(-10);
}

export function sessionId(): string {
  return randomToken(16);
}

export function secretToken(): string {
  return randomToken(18);
}
