import { ActivityFailure, ApplicationFailure, CancellationScope } from '@temporalio/workflow';
import type { DatabasePlan, MigrateDatabaseInput, RunBackup, RunChanges, RunStart, Version } from '../contracts';
import { emitVersionHooks, type RunEventBody } from './events';
import { finishCompensation, restoreFromBackup, runChanges, undoMigration } from './activities';

/** What the safeguard step made possible: the way back to the database as it was before the run. */
export interface Compensation {
  input: MigrateDatabaseInput;
  plan: DatabasePlan;
  start: RunStart;
  backup: RunBackup;
  emit: (event: RunEventBody) => void;
}

type WayBack = 'undo' | 'restore' | 'undo-then-restore';

/** The failure a run ends with, and what compensation adds to it. */
export interface Failed {
  error: unknown;
  original: ApplicationFailure | undefined;
  details: Record<string, unknown>;
  backupKey: string | null;
}

export function failureOf(error: unknown): ApplicationFailure | undefined {
  if (error instanceof ActivityFailure && error.cause instanceof ApplicationFailure) return error.cause;
  return error instanceof ApplicationFailure ? error : undefined;
}

/**
 * The saga's compensation, run last-in-first-out in a non-cancellable scope:
 * undo scripts in reverse when the policy is `undo` and every step this run
 * applied has one, otherwise a restore from the backup verified before the
 * first change. Then the schema must match its fingerprint from before the
 * run, and the run's versions are recorded as rolled back. The original
 * failure is always what the run fails with; a compensation failure is added
 * to it, never put in its place.
 */
export async function compensate(error: unknown, c: Compensation, leaseToken: string): Promise<never> {
  const failed = failedWith(error, c.backup);
  const { original } = failed;
  const ledger = await whatTheRunChanged(failed, c);
  const done = ledger.applied;
  const partial = ledger.partial.length > 0 || (typeof failed.details.statementsDone === 'number' && failed.details.statementsDone > 0);
  if (done.length === 0 && !partial && original?.type !== 'VerificationFailed') throw error; // nothing of this run is in the database
  const chosen = chooseWayBack(failed, c, ledger, partial);
  c.emit({ type: 'compensating' });
  const back = await goBack(failed, c, chosen, done, leaseToken);
  const what =
    back.how === 'undo'
      ? `undo scripts of ${done.map((v) => `V${v}`).join(', ')} ran in reverse`
      : back.how === 'undo-then-restore'
        ? `the undo failed (${back.undoFailure?.message ?? 'unknown'}); restored from the verified backup ${failed.backupKey} instead`
        : `restored from the verified backup ${failed.backupKey}`;
  throw ApplicationFailure.create({
    type: original?.type ?? 'MigrationFailed',
    message: `${original?.message ?? String(error)}\ncompensated: ${what}; the schema matches its fingerprint from before the run`,
    nonRetryable: true,
    details: [{ ...failed.details, compensated: back.how, rolledBack: back.rolledBack, backupKey: failed.backupKey }],
    cause: original ?? (error as Error),
  });
}

export function failedWith(error: unknown, backup: RunBackup): Failed {
  const original = failureOf(error);
  return { error, original, details: (original?.details?.[0] ?? {}) as Record<string, unknown>, backupKey: 'key' in backup ? backup.key : null };
}

/** What this run changed is what the ledger says it applied (an attempt may have committed and died before reporting), not what the workflow heard. */
async function whatTheRunChanged(failed: Failed, c: Compensation): Promise<RunChanges> {
  try {
    return await CancellationScope.nonCancellable(() => runChanges({ db: c.input.db, ...(c.start.ledgerHighWater !== undefined ? { since: c.start.ledgerHighWater } : {}) }));
  } catch (ledgerError) {
    throw notCompensated(failed, `the ledger could not be read to see what this run changed (${failureOf(ledgerError)?.message ?? String(ledgerError)}); the database may hold this run's migrations: see \`pgconvoy status\``);
  }
}

/** Undo scripts or the backup; refused when neither can put the database back without destroying someone's work. */
function chooseWayBack(failed: Failed, c: Compensation, ledger: RunChanges, partial: boolean): 'undo' | 'restore' {
  if (ledger.others.length > 0) {
    // The lease was lost and taken again meanwhile: someone else changed the
    // database after this run's backup, and putting it back would erase that.
    const others = ledger.others.map((o) => `V${o.version} (${o.status}, ${o.runId ? `run ${o.runId}` : o.source})`).join(', ');
    throw notCompensated(
      failed,
      `other runs changed the database after this run's backup: ${others}; restoring it (or undoing under them) would destroy their work. The database is as the ledger says; this run's versions stay recorded as applied`,
      { others: ledger.others },
    );
  }
  const undoable = new Set(c.plan.pending.filter((p) => p.undoChecksum !== null).map((p) => p.version));
  const canUndo = !partial && ledger.applied.every((v) => undoable.has(v));
  if (failed.backupKey === null && !canUndo) {
    // backup.scope "none": undo scripts are the only way back, and they do not cover this run.
    const missing = ledger.applied.filter((v) => !undoable.has(v)).map((v) => `V${v}`);
    const why = [...(missing.length > 0 ? [`${missing.join(', ')} ha${missing.length === 1 ? 's' : 've'} no undo script`] : []), ...(partial ? ['a no-transaction file stopped part-way'] : [])].join(' and ');
    throw notCompensated(failed, `no backup was taken (backup.scope "none": ${'none' in c.backup ? c.backup.none : ''}) and ${why}; the database is as the ledger says: see \`pgconvoy status\``);
  }
  return (c.input.onFailure === 'undo' || failed.backupKey === null) && canUndo ? 'undo' : 'restore';
}

/** Runs the way back and proves it: the schema's fingerprint equals the one before the run; then the run's rows are marked rolled back. */
async function goBack(failed: Failed, c: Compensation, chosen: 'undo' | 'restore', done: Version[], leaseToken: string): Promise<{ how: WayBack; undoFailure?: ApplicationFailure; rolledBack: Version[] }> {
  const { db } = c.input;
  let how: WayBack = chosen;
  let undoFailure: ApplicationFailure | undefined;
  try {
    return await CancellationScope.nonCancellable(async () => {
      if (how === 'undo') {
        try {
          for (const version of [...done].reverse()) {
            const undone = await undoMigration({ db, migrationsDir: c.input.migrationsDir, manifestDigest: c.plan.manifestDigest, version, leaseToken });
            if (undone.status === 'undone') emitVersionHooks(c.emit, version, undone.hooks);
          }
        } catch (undoError) {
          // An undo script that fails or leaves the schema different: the verified backup is the way back, if there is one.
          if (failed.backupKey === null) throw undoError;
          undoFailure = failureOf(undoError);
          how = 'undo-then-restore';
          await restoreFromBackup({ db, backupKey: failed.backupKey, leaseToken });
        }
      } else {
        await restoreFromBackup({ db, backupKey: failed.backupKey!, leaseToken });
      }
      // Undo scripts mark their own rows; the rest are marked here.
      const marked = (await finishCompensation({ db, fingerprint: c.start.fingerprint, versions: done, leaseToken })).rolledBack;
      return { how, ...(undoFailure ? { undoFailure } : {}), rolledBack: [...done, ...marked.filter((v) => !done.includes(v))] };
    });
  } catch (compensationError) {
    throw compensationFailed(failed, how, undoFailure, compensationError);
  }
}

export function notCompensated(failed: Failed, why: string, extra: Record<string, unknown> = {}): ApplicationFailure {
  const { original, error, details, backupKey } = failed;
  return ApplicationFailure.create({
    type: 'CompensationFailed',
    message: `${original?.message ?? String(error)}\nNOT COMPENSATED: ${why}`,
    nonRetryable: true,
    details: [{ ...details, originalType: original?.type ?? null, compensation: 'none', backupKey, ...extra }],
    cause: original ?? (error as Error),
  });
}

/** `what` failed and was being put back: `the run` of migrateDatabase, `the undo` of revertDatabase. */
export function compensationFailed(failed: Failed, how: WayBack, undoFailure: ApplicationFailure | undefined, compensationError: unknown, what = 'the run'): ApplicationFailure {
  const { original, error, details, backupKey } = failed;
  const second = failureOf(compensationError);
  const state =
    backupKey === null
      ? `the database is NOT back to its state before ${what}, and no backup was taken (backup.scope "none"); the ledger says what is applied`
      : second?.type === 'BackupCorrupt'
        ? `the database is NOT back to its state before ${what}: the backup ${backupKey} failed its check and was not used; the ledger says what is applied`
        : `the database is NOT back to its state before ${what}; the backup taken before ${what} is ${backupKey}`;
  return ApplicationFailure.create({
    type: 'CompensationFailed',
    message:
      `${original?.message ?? String(error)}\n` +
      (undoFailure ? `the undo failed: ${undoFailure.message}\n` : '') +
      `COMPENSATION FAILED (${how}): ${second?.message ?? String(compensationError)}\n` +
      state,
    nonRetryable: true,
    details: [{ ...details, originalType: original?.type ?? null, compensation: how, compensationType: second?.type ?? null, backupKey, ...(undoFailure ? { undoType: undoFailure.type } : {}) }],
    cause: original ?? (error as Error),
  });
}
