/**
 * The config of the deploy service's door: `pgconvoy serve`'s tokens and the
 * webhooks rollouts and runs notify (part of the one config in config.ts).
 */
import { z } from 'zod';
import { webhookEvents } from '../contracts/rollout';

/** What a bearer token of `pgconvoy serve` may do. */
export const tokenScopes = ['read', 'trigger', 'approve', 'admin'] as const;
export type TokenScope = (typeof tokenScopes)[number];

/** A token of `pgconvoy serve`, stored as the sha256 of the token (never the token itself). */
export const tokenSchema = z.strictObject({
  /** Who holds it; recorded as `by` in approvals and the ledger. */
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/, 'a token name is letters, digits, "_", ".", "@" or "-"'),
  /** Hex sha256 of the token: `printf %s "$TOKEN" | sha256sum`. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'the hex sha256 of the token (64 lower-case hex digits)'),
  scopes: z.array(z.enum(tokenScopes)).min(1),
});

/** Where rollout and run events are sent; the secret signs each body (HMAC-SHA256) and comes from the environment. */
export const webhookSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'a webhook name is lower-case letters, digits, "_", "." or "-"'),
  url: z.string().url(),
  /** The environment variable holding the signing secret. */
  secretEnv: z.string().min(1),
  /** The events it wants (default: all). */
  events: z.array(z.enum(webhookEvents as [string, ...string[]])).optional(),
  /** `json` (default), or `slack`: `{"text": ...}` for a Slack-compatible incoming webhook. */
  format: z.enum(['json', 'slack']).default('json'),
});

export interface WebhookSettings {
  url: string;
  secret: string;
  events?: string[];
  format: 'json' | 'slack';
}

export interface ServeSettings {
  host: string;
  port: number;
  /** The largest request body accepted. */
  bodyLimitBytes: number;
  /** Requests per minute per token (per address without one). */
  rateLimitPerMinute: number;
  tokens: Array<{ name: string; sha256: string; scopes: TokenScope[] }>;
}
