import { ApplicationFailure, CancellationScope, setHandler, workflowInfo } from '@temporalio/workflow';
import type { Progress, RevertDatabaseInput, RevertDatabaseResult, RevertPlan, RunBackup, RunOutcome, RunStart } from '../contracts';
import { beginRun, finishRevertCompensation, planRevert, proveRevert, restoreFromBackup, revertVersion, takeBackup } from './activities';
import { compensationFailed, failedWith, notCompensated } from './compensate';
import { awaitApproval, newProgress } from './approval';
import { emitVersionHooks, eventEmitter, type Emitter } from './events';
import { runFailure } from './failures';
import { withLease, type HeldLease } from './lease';
import { progressQuery } from './messages';
import { handleRunMessages } from './run-messages';

interface Revert extends Emitter {
  input: RevertDatabaseInput;
  progress: Progress;
  plan?: RevertPlan;
  undone: Map<string, 'undone' | 'skipped'>;
}

/**
 * `pgconvoy undo`: plan → gate → lock → safeguard → undo scripts in reverse,
 * each in its own transaction and proven against the schema recorded before
 * its version → prove the result (the fingerprint the ledger recorded after
 * the version it lands on) → on failure, restore the backup. Workflow id
 * `pgconvoy/db/<alias>`: never beside a migration of the same database.
 */
export async function revertDatabase(input: RevertDatabaseInput): Promise<RevertDatabaseResult> {
  const run = startRevert(input);
  try {
    const plan = await planStepOf(run);
    if (plan.steps.length === 0) return await done(run, resultOf(run, plan, 'nothing-to-undo'));
    if (run.progress.mode === 'dry-run') return await done(run, resultOf(run, plan, 'dry-run'));
    if (plan.backup?.problem) throw runFailure('BackupToolMismatch', plan.backup.problem, { db: input.db });
    const waited = await awaitApproval(run.progress, run.emit, { pending: run.progress.pending, requireApproval: input.requireApproval ?? false, who: 'the undo', what: 'the undo', ...(input.approvalTimeoutMs !== undefined ? { timeoutMs: input.approvalTimeoutMs } : {}) });
    if (waited === 'cancelled') return await done(run, { ...resultOf(run, plan, 'cancelled'), cancelledBy: run.progress.cancelRequested!.by });
    run.emit({ type: 'locking' });
    return await done(run, await withLease(input.db, (lease) => undoStep(run, plan, lease)));
  } catch (error) {
    run.progress.phase = run.progress.phase === 'cancelled' ? 'cancelled' : 'failed';
    throw error;
  }
}

function startRevert(input: RevertDatabaseInput): Revert {
  const progress = newProgress(input.db, input.mode ?? 'auto');
  setHandler(progressQuery, () => progress);
  handleRunMessages(progress, false);
  return { input, progress, undone: new Map(), ...eventEmitter(progress) };
}

/** Plan: what would be undone, and everything that refuses the whole undo before anything runs. */
async function planStepOf(run: Revert): Promise<RevertPlan> {
  const { input } = run;
  const plan = await planRevert({ db: input.db, migrationsDir: input.migrationsDir, ...(input.to !== undefined ? { to: input.to } : {}), ...(input.steps !== undefined ? { steps: input.steps } : {}) });
  if (plan.problems.length > 0) {
    throw runFailure('UndoNotPossible', `refusing to undo on "${input.db}"; nothing ran:\n` + plan.problems.map((p) => `  ${p}`).join('\n'), { db: input.db, problems: plan.problems });
  }
  run.plan = plan;
  run.progress.pending = plan.steps.map((s) => ({ version: s.version, description: s.description, checksum: '', undoChecksum: null, mode: 'transaction', statements: 0, risk: s.risk }));
  if (plan.backup) run.progress.backup = plan.backup;
  run.emit({ type: 'planned', manifestDigest: plan.manifestDigest, versionBefore: plan.versionBefore, pending: plan.steps.map((s) => s.version) });
  return plan;
}

/** Under the lease: safeguard, the undo scripts newest first, the proof; a failure after the safeguard restores the backup. */
async function undoStep(run: Revert, plan: RevertPlan, lease: HeldLease): Promise<RevertDatabaseResult> {
  const { input } = run;
  run.emit({ type: 'backing-up' });
  const start = await beginRun({ db: input.db, migrationsDir: input.migrationsDir });
  const backup: RunBackup = plan.backup?.scope === 'none' ? { none: plan.backup.reason ?? '' } : { key: (await takeBackup({ db: input.db, touched: [] })).manifest.key };
  try {
    for (const step of plan.steps) {
      run.emit({ type: 'applying', version: step.version });
      const result = await lease.fenced((leaseToken) => revertVersion({ db: input.db, migrationsDir: input.migrationsDir, manifestDigest: plan.manifestDigest, version: step.version, leaseToken }));
      if (result.status === 'undone') emitVersionHooks(run.emit, step.version, result.hooks);
      run.undone.set(step.version, result.status);
    }
    run.emit({ type: 'verifying' });
    const proven = await proveRevert({ db: input.db, expectedFingerprint: plan.expectedFingerprint!, versionAfter: plan.versionAfter });
    return { ...resultOf(run, plan, 'reverted'), backup, proof: { expected: plan.expectedFingerprint!, actual: proven.fingerprint } };
  } catch (error) {
    return await restore(run, error, start, backup, lease.token());
  }
}

/** A failed undo: the backup taken before it goes back, proven by the fingerprint from before; the versions are applied again in the ledger. */
async function restore(run: Revert, error: unknown, start: RunStart, backup: RunBackup, leaseToken: string): Promise<never> {
  const { db } = run.input;
  const failed = failedWith(error, backup);
  const { original, details } = failed;
  if (!('key' in backup)) throw notCompensated(failed, 'no backup was taken (backup.scope "none"); the database is as the ledger says: see `pgconvoy status`');
  run.emit({ type: 'compensating' });
  try {
    await CancellationScope.nonCancellable(async () => {
      await restoreFromBackup({ db, backupKey: backup.key, leaseToken });
      await finishRevertCompensation({ db, fingerprint: start.fingerprint, leaseToken });
    });
  } catch (compensationError) {
    throw compensationFailed(failed, 'restore', undefined, compensationError, 'the undo');
  }
  throw ApplicationFailure.create({
    type: original?.type ?? 'UndoFailed',
    message: `${original?.message ?? String(error)}\ncompensated: restored from the verified backup ${backup.key}; the schema matches its fingerprint from before the undo, and the ledger shows the versions applied again`,
    nonRetryable: true,
    details: [{ ...details, compensated: 'restore', backupKey: backup.key }],
    cause: original ?? (error as Error),
  });
}

function resultOf(run: Revert, plan: RevertPlan, status: RevertDatabaseResult['status']): RevertDatabaseResult {
  const { workflowId, runId } = workflowInfo();
  const { approvedBy } = run.progress.approval;
  return {
    status,
    db: run.input.db,
    workflowId,
    runId,
    manifestDigest: plan.manifestDigest,
    versionBefore: plan.versionBefore,
    // A dry run says where the undo would take the database.
    versionAfter: status === 'reverted' || status === 'dry-run' ? plan.versionAfter : plan.versionBefore,
    steps: plan.steps.map((s) => ({ version: s.version, description: s.description, undoFile: s.undoFile, status: run.undone.get(s.version) ?? 'not-run' })),
    ...(approvedBy ? { approvedBy } : {}),
  };
}

/** How an undo's end reads in the run events' vocabulary. */
const endedAs = { reverted: 'applied', 'dry-run': 'dry-run', 'nothing-to-undo': 'up-to-date', cancelled: 'cancelled' } as const satisfies Record<RevertDatabaseResult['status'], RunOutcome['status']>;

async function done(run: Revert, result: RevertDatabaseResult): Promise<RevertDatabaseResult> {
  run.emit({ type: 'ended', status: endedAs[result.status], versionAfter: result.versionAfter });
  await run.flush();
  return result;
}
