import { ApplicationFailure, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { AppliedStep, MigrateDatabaseInput, MigrateDatabaseResult, Progress } from './messages';
import { progressQuery } from './messages';

/** Error types that trying again cannot fix; everything else is retried with backoff. */
export const nonRetryableTypes = [
  'InvalidMigrationSet',
  'ManifestChanged',
  'UnknownDatabase',
  'ChecksumMismatch',
  'IntegrityCheckFailed',
  'InvalidConfig',
  'GroupNotPossible',
];

const { planDatabase } = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10, nonRetryableErrorTypes: nonRetryableTypes },
});

const { applyMigration, applyGroup } = proxyActivities<Activities>({
  // A migration may legitimately run for hours (an index on a large table);
  // heartbeats every few seconds are what tell a dead worker from a slow one.
  startToCloseTimeout: '24 hours',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10, nonRetryableErrorTypes: nonRetryableTypes },
});

/**
 * Plans the pending migrations of one database and applies each in its own
 * activity (its own transaction), in version order. Workflow id
 * `pgconvoy/db/<alias>`: Temporal runs at most one per database.
 */
export async function migrateDatabase(input: MigrateDatabaseInput): Promise<MigrateDatabaseResult> {
  const now = () => Date.now(); // the workflow sandbox makes Date deterministic
  const progress: Progress = {
    db: input.db,
    phase: 'planning',
    current: null,
    pending: [],
    completed: [],
    startedAt: workflowInfo().startTime.getTime(),
    phaseStartedAt: now(),
  };
  setHandler(progressQuery, () => progress);
  const enter = (phase: Progress['phase']) => {
    progress.phase = phase;
    progress.phaseStartedAt = now();
  };

  try {
    const plan = await planDatabase({
      db: input.db,
      migrationsDir: input.migrationsDir,
      ...(input.target ? { target: input.target } : {}),
      ...(input.allowOutOfOrder ? { allowOutOfOrder: true } : {}),
    });
    if (plan.problems.length > 0) {
      throw ApplicationFailure.create({
        type: 'IntegrityCheckFailed',
        message: `refusing to migrate "${input.db}": the ledger and the migration files disagree:\n` + plan.problems.map((p) => `  ${p}`).join('\n'),
        nonRetryable: true,
        details: [{ db: input.db, problems: plan.problems }],
      });
    }
    progress.pending = plan.pending;
    if (plan.pending.length === 0) {
      enter('done');
      const version = plan.applied.at(-1)?.version ?? null;
      return { status: 'up-to-date', db: input.db, manifestDigest: plan.manifestDigest, version, applied: [] };
    }

    const outside = plan.pending.filter((p) => p.mode === 'no-transaction');
    if (input.group && outside.length > 0) {
      throw ApplicationFailure.create({
        type: 'GroupNotPossible',
        message: `cannot apply the pending migrations in one transaction: ${outside.map((p) => `V${p.version} (${p.description})`).join(', ')} must run outside a transaction`,
        nonRetryable: true,
        details: [{ db: input.db, versions: outside.map((p) => p.version) }],
      });
    }

    enter('applying');
    const applied: AppliedStep[] = [];
    if (input.group) {
      const results = await applyGroup({
        db: input.db,
        migrationsDir: input.migrationsDir,
        manifestDigest: plan.manifestDigest,
        versions: plan.pending.map((p) => p.version),
      });
      for (const [i, result] of results.entries()) {
        const entry = plan.pending[i]!;
        const step: AppliedStep = { version: entry.version, description: entry.description, status: result.status, durationMs: result.status === 'applied' ? result.durationMs : 0 };
        applied.push(step);
        progress.completed.push(step);
      }
    }
    for (const entry of input.group ? [] : plan.pending) {
      progress.current = entry;
      const result = await applyMigration({ db: input.db, migrationsDir: input.migrationsDir, manifestDigest: plan.manifestDigest, version: entry.version });
      const step: AppliedStep = {
        version: entry.version,
        description: entry.description,
        status: result.status,
        durationMs: result.status === 'applied' ? result.durationMs : 0,
      };
      applied.push(step);
      progress.completed.push(step);
      progress.current = null;
    }
    enter('done');
    const version = plan.pending[plan.pending.length - 1]!.version;
    return { status: 'applied', db: input.db, manifestDigest: plan.manifestDigest, version, applied };
  } catch (error) {
    enter('failed');
    throw error;
  }
}
