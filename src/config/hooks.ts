/** The config's command hooks (hooks.<event>), part of the one config in config.ts. */
import { z } from 'zod';

/** A command the worker runs at a run's event (hooks.<event>[]): through /bin/sh, in the worker's working directory. */
export const commandHookSchema = z.strictObject({
  run: z.string().min(1),
  /** Killed (SIGTERM, then SIGKILL) past this; a failure. */
  timeoutMs: z.number().int().positive().max(3_600_000).default(60_000),
  /** The database's connection string, in this environment variable; without it the command gets none. */
  connectionEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'an environment variable name (upper case)').optional(),
});
export type CommandHook = z.output<typeof commandHookSchema>;

export const commandHooksSchema = z.strictObject({
  beforeMigrate: z.array(commandHookSchema).default([]),
  afterMigrate: z.array(commandHookSchema).default([]),
  afterMigrateError: z.array(commandHookSchema).default([]),
  /** A failed afterMigrate command fails the run and keeps its migrations (`keep`, the default), or compensates them as a failed migration would (`compensate`). */
  afterMigrateFailure: z.enum(['keep', 'compensate']).default('keep'),
});
export type CommandHooks = z.output<typeof commandHooksSchema>;
