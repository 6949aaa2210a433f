import { createHash, timingSafeEqual } from 'node:crypto';
import type { ServeSettings, TokenScope } from '../../config/config';

/** Who called: a token's name (recorded as `by`) and what it may do. */
export interface Principal {
  name: string;
  scopes: TokenScope[];
}

/** The hex sha256 of a token, as the config stores it. */
export const tokenHash = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');

/**
 * The principal of an `Authorization: Bearer <token>` header, or undefined.
 * The config holds only hashes; the presented token's hash is compared with
 * every configured one in constant time, without stopping at a match, so
 * the time taken says nothing about which token (or how much of it) matched.
 */
export function authenticate(header: string | undefined, tokens: ServeSettings['tokens']): Principal | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  if (!match) return undefined;
  const presented = Buffer.from(tokenHash(match[1]!), 'hex');
  let found: Principal | undefined;
  for (const token of tokens) {
    if (timingSafeEqual(presented, Buffer.from(token.sha256, 'hex')) && found === undefined) found = { name: token.name, scopes: token.scopes };
  }
  return found;
}

/** `admin` may do everything; otherwise the scope itself. */
export const allows = (principal: Principal, scope: TokenScope): boolean => principal.scopes.includes('admin') || principal.scopes.includes(scope);
