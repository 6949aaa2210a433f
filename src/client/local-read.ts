import type { Config } from '../config/config';
import type { DatabasePlan, DatabaseStatus, InspectDatabaseInput, PlanInput } from '../contracts';
import type { Logger } from '../logging/logger';

/**
 * An embedded command's short read path (session.ts, answersWithoutServer):
 * the same use-cases the worker's activities run (planDatabase, readHistory),
 * called in this process, which holds the same config, without starting the
 * dev server. Loaded only when used.
 */
export async function planHere(config: Config, logger: Logger, input: PlanInput): Promise<DatabasePlan> {
  const { localDeps, planDatabase } = await import('../runs');
  return planDatabase(localDeps(config, logger), input);
}

/** What the inspectDatabase workflow returns, read here. */
export async function inspectHere(config: Config, logger: Logger, input: InspectDatabaseInput): Promise<DatabaseStatus> {
  const { localDeps, readHistory } = await import('../runs');
  const plan = await planHere(config, logger, { db: input.db, migrationsDir: input.migrationsDir, ...(input.allowOutOfOrder ? { allowOutOfOrder: true } : {}) });
  const history = await readHistory(localDeps(config, logger), { db: input.db, ...(input.historyLast === undefined ? {} : { last: input.historyLast }) });
  return { plan, history };
}

/** Reads and parses the migration set into this process's cache, where its worker's activities find it (an embedded `up`, while its dev server starts). */
export async function warmSetHere(config: Config): Promise<void> {
  const { warmSet } = await import('../runs');
  await warmSet(config, config.migrationsDir);
}
