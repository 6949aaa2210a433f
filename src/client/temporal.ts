import type * as TemporalClient from '@temporalio/client';

/**
 * The Temporal client library, loaded on first use. Loading it takes about
 * 0.4 s, more than the rest of the CLI: a command answered without Temporal
 * (an embedded read of a settled state, session.ts answersWithoutServer)
 * does not pay it. Modules of the CLI take its values from here and its
 * types from '@temporalio/client' as usual (`import type`).
 */
export function temporalClient(): typeof TemporalClient {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded when needed, not when the CLI starts
  return require('@temporalio/client') as typeof TemporalClient;
}
