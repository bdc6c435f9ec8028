// The admin surface's one credential: a bearer token from WARMPOOL_ADMIN_TOKEN or
// WARMPOOL_ADMIN_TOKEN_FILE, compared in constant time (SHA-256 digests of both sides, so the
// comparison neither stops at the first differing byte nor reveals the token's length).

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { WarmpoolError } from '../core/errors.js';

/** Shorter tokens are refused: the admin surface can end every session of a class. */
export const MIN_TOKEN_LENGTH = 16;

/** The configured token, or undefined (admin surface off). Throws CONFIG_INVALID for both set, an unreadable file, a short token. */
export function loadAdminToken(env: NodeJS.ProcessEnv): string | undefined {
  if (env.WARMPOOL_ADMIN_TOKEN && env.WARMPOOL_ADMIN_TOKEN_FILE) {
    throw new WarmpoolError('CONFIG_INVALID', 'both WARMPOOL_ADMIN_TOKEN and WARMPOOL_ADMIN_TOKEN_FILE are set', { hint: 'set one of them' });
  }
  let token = env.WARMPOOL_ADMIN_TOKEN?.trim();
  let from = 'WARMPOOL_ADMIN_TOKEN';
  if (!token && env.WARMPOOL_ADMIN_TOKEN_FILE) {
    from = `WARMPOOL_ADMIN_TOKEN_FILE=${env.WARMPOOL_ADMIN_TOKEN_FILE}`;
    try {
      token = readFileSync(env.WARMPOOL_ADMIN_TOKEN_FILE, 'utf8').trim();
    } catch (e) {
      throw new WarmpoolError('CONFIG_INVALID', `${from} cannot be read: ${(e as Error).message}`, { hint: 'point it at a readable file holding the token' });
    }
  }
  if (!token) return undefined;
  if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
    throw new WarmpoolError(
      'CONFIG_INVALID',
      `the admin token from ${from} is ${token.length} characters${/\s/.test(token) ? ' with white space' : ''}; expected at least ${MIN_TOKEN_LENGTH} characters without white space`,
      { hint: 'make one with: openssl rand -base64 32' },
    );
  }
  return token;
}

/** A fresh random token (admin.generateToken: the demo). */
export function generateAdminToken(): string {
  return randomBytes(24).toString('base64url');
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export class TokenCheck {
  private readonly want: Buffer;

  constructor(token: string) {
    this.want = digest(token);
  }

  /** True when an Authorization header value is `Bearer <the token>`. */
  authorizes(header: string | undefined): boolean {
    const m = typeof header === 'string' ? /^Bearer[ ]+(\S+)\s*$/i.exec(header) : null;
    // Digest even when absent, so a missing header takes as long as a wrong one.
    return timingSafeEqual(digest(m ? m[1]! : ''), this.want) && m !== null;
  }
}
