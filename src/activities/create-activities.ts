import { Context, ApplicationFailure } from '@temporalio/activity';
import { PgconvoyError, ManifestChangedError, UnknownDatabaseError } from '../core/errors';
import type { ManifestEntry } from '../core/migration-set';
import { integrityProblems, planMigrations, type AppliedEntry, type Divergence } from '../core/plan';
import type { Version } from '../core/version';
import { databaseEnvName, type Config } from '../config/config';
import { applyMigration as applyOne, type ApplyResult } from '../db/apply';
import { withClient, type Target } from '../db/connection';
import { ensureLedger, readApplied, readHistory, type HistoryRow } from '../db/ledger';
import { readMigrationSet } from '../source/read-migration-set';
import type { Logger } from '../worker/logger';

export interface ActivityDeps {
  config: Config;
  logger: Logger;
}

export interface PlanInput {
  db: string;
  migrationsDir: string;
  target?: Version;
}

export interface DatabasePlan {
  db: string;
  manifestDigest: string;
  migrationCount: number;
  pending: ManifestEntry[];
  applied: AppliedEntry[];
  divergent: Divergence[];
  missing: AppliedEntry[];
  outOfOrder: ManifestEntry[];
  /** Why the plan must not run; empty when it may. */
  problems: string[];
}

export interface ApplyInput {
  db: string;
  migrationsDir: string;
  manifestDigest: string;
  version: Version;
}

export interface HistoryInput {
  db: string;
}

/**
 * Activities are thin adapters: they resolve the alias, read the files, call
 * core/ and db/, and turn pgconvoy errors into ApplicationFailures with the
 * same type. Policy (what to do with a plan) is the workflow's.
 */
export function createActivities({ config, logger }: ActivityDeps) {
  function target(alias: string): Target {
    const url = config.databases[alias];
    if (url === undefined) throw new UnknownDatabaseError(alias, databaseEnvName(alias));
    return { alias, url };
  }

  return {
    async planDatabase(input: PlanInput): Promise<DatabasePlan> {
      return edge(async () => {
        const set = await readMigrationSet(input.migrationsDir);
        return withClient(target(input.db), async (client) => {
          await ensureLedger(client);
          const applied = await readApplied(client);
          const plan = planMigrations(set.manifest, applied, input.target === undefined ? {} : { target: input.target });
          const fileOf = (v: Version) => set.migrations.find((m) => m.version === v)?.forward.file;
          const result: DatabasePlan = {
            db: input.db,
            manifestDigest: set.digest,
            migrationCount: set.migrations.length,
            ...plan,
            problems: integrityProblems(plan, fileOf),
          };
          logger.info({ event: 'plan.made', db: input.db, pending: plan.pending.length, problems: result.problems.length });
          return result;
        });
      });
    },

    async applyMigration(input: ApplyInput): Promise<ApplyResult> {
      return edge(async () => {
        const set = await readMigrationSet(input.migrationsDir);
        if (set.digest !== input.manifestDigest) throw new ManifestChangedError(input.migrationsDir, input.manifestDigest, set.digest);
        const migration = set.migrations.find((m) => m.version === input.version);
        if (migration === undefined) throw new Error(`version ${input.version} is not in the manifest`); // the digest matched, so unreachable
        const execution = Context.current().info.workflowExecution;
        const context = execution ? { workflowId: execution.workflowId, runId: execution.runId } : {};
        return withClient(target(input.db), async (client) => {
          const result = await applyOne(client, migration, context);
          logger.info({ event: result.status === 'applied' ? 'migration.applied' : 'migration.skipped', db: input.db, ...result });
          return result;
        });
      });
    },

    async readHistory(input: HistoryInput): Promise<HistoryRow[]> {
      return edge(() =>
        withClient(target(input.db), async (client) => {
          await ensureLedger(client);
          return readHistory(client);
        }),
      );
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;

/** At the activity edge a pgconvoy error becomes an ApplicationFailure of the same type. */
async function edge<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof PgconvoyError) {
      throw ApplicationFailure.create({
        message: error.message,
        type: error.type,
        nonRetryable: !error.retryable,
        details: [error.details],
        cause: error,
      });
    }
    throw error;
  }
}
