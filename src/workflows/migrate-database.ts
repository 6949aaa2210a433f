import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities, ApplyInput, DatabasePlan, PendingMigration, RunRisk, RunStart } from '../activities';
import type { Version } from '../core/version';
import { nonRetryableTypes, runFailure } from './failures';
import { describeGate, gatedMigrations, within } from './gates';
import { progressQuery } from './messages';
import { handleRunMessages, recordApproval } from './run-messages';
import { describeRunBackup } from './messages';
import type { AppliedStep, MigrateDatabaseInput, MigrateDatabaseResult, Progress, RunBackup } from './messages';

/** Error types that trying again cannot fix (src/contracts/errors.ts); everything else is retried with backoff. */
export { nonRetryableTypes } from './failures';

const { planDatabase } = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 10, nonRetryableErrorTypes: nonRetryableTypes },
});

const { applyMigration, applyGroup } = proxyActivities<Activities>({
  // A migration may legitimately run for hours (an index on a large table);
  // heartbeats every few seconds tell a dead worker from a slow one, so a
  // dead worker's migration is retried elsewhere within ten seconds.
  startToCloseTimeout: '24 hours',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10, nonRetryableErrorTypes: nonRetryableTypes },
});

const { acquireLease } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  // Another holder's lease ends when it finishes or expires: keep asking, for up to an hour.
  scheduleToCloseTimeout: '1 hour',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', nonRetryableErrorTypes: nonRetryableTypes },
});

const { holdLease } = proxyActivities<Activities>({
  startToCloseTimeout: '7 days',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '5s', nonRetryableErrorTypes: nonRetryableTypes },
});

const { beginRun, verifyRun, finishCompensation, runChanges } = proxyActivities<Activities>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 5, nonRetryableErrorTypes: nonRetryableTypes },
});

const { takeBackup, restoreFromBackup, undoMigration } = proxyActivities<Activities>({
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 3, nonRetryableErrorTypes: nonRetryableTypes },
});

const { releaseLease } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 10 },
});

const defaultApprovalTimeoutMs = 24 * 60 * 60 * 1000;
/** How often a run re-takes a lease it lost (it expired while the run stalled) before giving up. */
const maxLeaseRecoveries = 3;

function failureType(error: unknown): string | undefined {
  return error instanceof ActivityFailure && error.cause instanceof ApplicationFailure ? (error.cause.type ?? undefined) : undefined;
}

/**
 * One database: plan, gate (dry run, approval), take the lease, apply each
 * pending migration in its own activity, release the lease. Workflow id
 * `pgconvoy/db/<alias>`: Temporal runs at most one per database, and the
 * lease in the database fences off anything outside Temporal.
 */
export async function migrateDatabase(input: MigrateDatabaseInput): Promise<MigrateDatabaseResult> {
  const now = () => Date.now(); // deterministic inside the workflow sandbox
  const progress: Progress = {
    db: input.db,
    mode: input.mode ?? 'auto',
    phase: 'planning',
    current: null,
    pending: [],
    completed: [],
    approval: { required: false, reason: null, waitingSince: null, approvedBy: null, approvedAt: null, note: null },
    cancelRequested: null,
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
    if (input.expect && input.expect.manifestDigest !== plan.manifestDigest) {
      throw runFailure(
        'ManifestChanged',
        `refusing to migrate "${input.db}": the run was pinned to manifest ${input.expect.manifestDigest.slice(0, 12)}, but the worker reads ${plan.manifestDigest.slice(0, 12)} in ${input.migrationsDir}; nothing ran`,
        { db: input.db, expected: input.expect.manifestDigest, actual: plan.manifestDigest },
      );
    }
    if (plan.problems.length > 0) {
      throw runFailure(
        'IntegrityCheckFailed',
        `refusing to migrate "${input.db}": the ledger and the migration files disagree:\n` + plan.problems.map((p) => `  ${p}`).join('\n'),
        { db: input.db, problems: plan.problems },
      );
    }
    progress.pending = plan.pending;
    if (plan.backup) progress.backup = plan.backup;
    const versionBefore = plan.applied.at(-1)?.version ?? plan.baseline ?? null;
    if (plan.pending.length === 0) {
      enter('done');
      return { status: 'up-to-date', db: input.db, manifestDigest: plan.manifestDigest, version: versionBefore, applied: [] };
    }
    const outside = plan.pending.filter((p) => p.mode === 'no-transaction');
    if (input.group && outside.length > 0) {
      throw runFailure(
        'GroupNotPossible',
        `cannot apply the pending migrations in one transaction: ${outside.map((p) => `V${p.version} (${p.description})`).join(', ')} must run outside a transaction`,
        { db: input.db, versions: outside.map((p) => p.version) },
      );
    }

    return await gateLockAndApply(input, plan, versionBefore, progress, enter);
  } catch (error) {
    if (progress.phase !== 'cancelled') enter('failed');
    throw error;
  }
}

async function gateLockAndApply(
  input: MigrateDatabaseInput,
  plan: DatabasePlan,
  versionBefore: Version | null,
  progress: Progress,
  enter: (phase: Progress['phase']) => void,
): Promise<MigrateDatabaseResult> {
  const base = { db: input.db, manifestDigest: plan.manifestDigest };
  const messages = handleRunMessages(progress, input.group ?? false);
  const approved = () => progress.approval.approvedBy !== null;
  const cancelled = (applied: AppliedStep[]): MigrateDatabaseResult => {
    enter('cancelled');
    const version = applied.filter((a) => a.status === 'applied').at(-1)?.version ?? versionBefore;
    return { status: 'cancelled', ...base, version, applied, cancelledBy: progress.cancelRequested!.by, reason: progress.cancelRequested!.reason };
  };

  // Gate.
  if (progress.mode === 'dry-run') {
    enter('done');
    return { status: 'dry-run', ...base, version: versionBefore, applied: [], pending: plan.pending, ...(plan.backup ? { backup: plan.backup } : {}) };
  }
  // A backup that cannot be taken stops the run here, before the lease and before anyone is asked to approve it.
  if (plan.backup?.problem) {
    throw runFailure('BackupToolMismatch', plan.backup.problem, { db: input.db, serverVersion: plan.backup.serverVersion });
  }
  const gated = gatedMigrations(progress.mode, plan.pending);
  // An approval given before the run (a deploy service, a rollout once per rollout or per wave) covers what it says.
  const given = input.approved;
  const covered = given !== undefined && gated.every((g) => within(g.level, given.upTo ?? 'high'));
  if (given && covered) recordApproval(progress, given);
  if ((input.requireApproval || gated.length > 0) && !approved()) {
    progress.approval.required = true;
    progress.approval.reason = [
      ...(input.requireApproval ? ['the run was started with --require-approval'] : []),
      ...(gated.length > 0 ? [describeGate(progress.mode, gated)] : []),
    ].join('\n');
    if (gated.length > 0) progress.approval.gated = gated;
    progress.approval.waitingSince = Date.now();
    enter('awaiting-approval');
    const decided = await condition(() => approved() || progress.cancelRequested !== null, input.approvalTimeoutMs ?? defaultApprovalTimeoutMs);
    if (progress.cancelRequested) return cancelled([]);
    if (!decided) {
      throw runFailure('ApprovalTimedOut', `nobody approved the migration of "${input.db}" within ${Math.round((input.approvalTimeoutMs ?? defaultApprovalTimeoutMs) / 1000)} s; nothing ran`);
    }
  }

  // Lock.
  enter('locking');
  // The run, not the workflow id: the same id on another Temporal cluster
  // (another embedded state directory) is another run, and must wait.
  const { namespace, workflowId, runId } = workflowInfo();
  const holder = `${namespace}/${workflowId}/${runId}`;
  let lease = await acquireLease({ db: input.db, holder });
  let keeper = keepLease(input.db, lease.token);
  const applied: AppliedStep[] = [];
  let backup: RunBackup | undefined;
  try {
    enter('backing-up');
    const start = await beginRun({ db: input.db, migrationsDir: input.migrationsDir });
    const touched = [...new Set(plan.pending.flatMap((p) => p.tables ?? []))].sort();
    // backup.scope "none": the decision and its reason go into the ledger with every version instead.
    const taken: RunBackup = plan.backup?.scope === 'none' ? { none: plan.backup.reason ?? '' } : { key: (await takeBackup({ db: input.db, touched })).manifest.key };
    backup = taken;
    try {
      enter('applying');
      const steps: PendingMigration[][] = input.group ? [plan.pending] : plan.pending.map((p) => [p]);
      for (const [index, step] of steps.entries()) {
        if (progress.cancelRequested) return cancelled(applied);
        progress.current = step[0]!;
        messages.lastStepRunning(index === steps.length - 1);
        for (let recoveries = 0; ; recoveries++) {
          try {
            const record = { ...runRecord(step, progress), backup: describeRunBackup(taken) };
            const results = input.group
              ? await applyGroup({ ...base, migrationsDir: input.migrationsDir, versions: step.map((p) => p.version), leaseToken: lease.token, ...record })
              : [await applyMigration({ ...base, migrationsDir: input.migrationsDir, version: step[0]!.version, leaseToken: lease.token, ...record })];
            results.forEach((result, i) => {
              const entry = step[i]!;
              const done: AppliedStep = { version: entry.version, description: entry.description, status: result.status, durationMs: result.status === 'applied' ? result.durationMs : 0 };
              applied.push(done);
              progress.completed.push(done);
            });
            break;
          } catch (error) {
            // The lease expired while the run stalled: take it again (a new token) and retry the step.
            if (failureType(error) !== 'LeaseLost' || recoveries >= maxLeaseRecoveries) throw error;
            keeper.cancel();
            lease = await acquireLease({ db: input.db, holder });
            keeper = keepLease(input.db, lease.token);
          }
        }
        progress.current = null;
      }
      enter('verifying');
      await verifyRun({ db: input.db, migrationsDir: input.migrationsDir, knownProblems: start.knownProblems });
    } catch (error) {
      if ((input.onFailure ?? 'restore') === 'halt') throw error;
      await compensate(error, { input, plan, start, backup: taken, leaseToken: lease.token, enter });
    }
  } finally {
    keeper.cancel();
    const token = lease.token;
    await CancellationScope.nonCancellable(() => releaseLease({ db: input.db, token }));
  }
  enter('done');
  const version = applied.at(-1)!.version;
  return { status: 'applied', ...base, version, applied, ...(progress.approval.approvedBy ? { approvedBy: progress.approval.approvedBy } : {}), ...(backup ? { backup } : {}) };
}

/** What the ledger records with each applied version: its risk, the accepted findings' reasons and the approval. */
function runRecord(step: PendingMigration[], progress: Progress): Pick<ApplyInput, 'risk' | 'approval'> {
  const risk: RunRisk[] = step.flatMap((p) =>
    p.risk
      ? [{ version: p.version, level: p.risk.level, findings: p.risk.findings.map((f) => ({ rule: f.rule, level: f.level, table: f.table, line: f.line, context: f.context, accepted: f.allowed })) }]
      : [],
  );
  const { approvedBy, approvedAt, note } = progress.approval;
  return {
    ...(risk.length > 0 ? { risk } : {}),
    ...(approvedBy !== null && approvedAt !== null ? { approval: { by: approvedBy, at: approvedAt, note } } : {}),
  };
}

interface CompensationContext {
  input: MigrateDatabaseInput;
  plan: DatabasePlan;
  start: RunStart;
  backup: RunBackup;
  leaseToken: string;
  enter: (phase: Progress['phase']) => void;
}

function failureOf(error: unknown): ApplicationFailure | undefined {
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
async function compensate(error: unknown, c: CompensationContext): Promise<never> {
  const backupKey = 'key' in c.backup ? c.backup.key : null;
  const original = failureOf(error);
  const details = (original?.details?.[0] ?? {}) as Record<string, unknown>;
  const notCompensated = (why: string, extra: Record<string, unknown>) =>
    ApplicationFailure.create({
      type: 'CompensationFailed',
      message: `${original?.message ?? String(error)}\nNOT COMPENSATED: ${why}`,
      nonRetryable: true,
      details: [{ ...details, originalType: original?.type ?? null, compensation: 'none', backupKey, ...extra }],
      cause: original ?? (error as Error),
    });
  // What this run changed is what the ledger says it applied (an attempt may
  // have committed and died before reporting), not what the workflow heard.
  let ledger;
  try {
    ledger = await CancellationScope.nonCancellable(() => runChanges({ db: c.input.db, ...(c.start.ledgerHighWater !== undefined ? { since: c.start.ledgerHighWater } : {}) }));
  } catch (ledgerError) {
    throw notCompensated(`the ledger could not be read to see what this run changed (${failureOf(ledgerError)?.message ?? String(ledgerError)}); the database may hold this run's migrations: see \`pgconvoy status\``, {});
  }
  const done = ledger.applied;
  const partial = ledger.partial.length > 0 || (typeof details.statementsDone === 'number' && details.statementsDone > 0);
  if (done.length === 0 && !partial && original?.type !== 'VerificationFailed') throw error; // nothing of this run is in the database
  if (ledger.others.length > 0) {
    // The lease was lost and taken again meanwhile: someone else changed the
    // database after this run's backup, and putting it back would erase that.
    const others = ledger.others.map((o) => `V${o.version} (${o.status}, ${o.runId ? `run ${o.runId}` : o.source})`).join(', ');
    throw notCompensated(
      `other runs changed the database after this run's backup: ${others}; restoring it (or undoing under them) would destroy their work. The database is as the ledger says; this run's versions stay recorded as applied`,
      { others: ledger.others },
    );
  }
  const undoable = new Set(c.plan.pending.filter((p) => p.undoChecksum !== null).map((p) => p.version));
  const canUndo = !partial && done.every((v) => undoable.has(v));
  if (backupKey === null && !canUndo) {
    // backup.scope "none": undo scripts are the only way back, and they do not cover this run.
    const missing = done.filter((v) => !undoable.has(v)).map((v) => `V${v}`);
    const why = [
      ...(missing.length > 0 ? [`${missing.join(', ')} ha${missing.length === 1 ? 's' : 've'} no undo script`] : []),
      ...(partial ? ['a no-transaction file stopped part-way'] : []),
    ].join(' and ');
    throw notCompensated(
      `no backup was taken (backup.scope "none": ${'none' in c.backup ? c.backup.none : ''}) and ${why}; the database is as the ledger says: see \`pgconvoy status\``,
      {},
    );
  }
  const chosen: 'undo' | 'restore' = (c.input.onFailure === 'undo' || backupKey === null) && canUndo ? 'undo' : 'restore';
  let how = chosen as 'undo' | 'restore' | 'undo-then-restore';
  let undoFailure: ApplicationFailure | undefined;
  let rolledBack: string[] = done;
  c.enter('compensating');
  try {
    await CancellationScope.nonCancellable(async () => {
      if (how === 'undo') {
        try {
          for (const version of [...done].reverse()) {
            await undoMigration({ db: c.input.db, migrationsDir: c.input.migrationsDir, manifestDigest: c.plan.manifestDigest, version, leaseToken: c.leaseToken });
          }
        } catch (undoError) {
          // An undo script that fails or leaves the schema different: the verified backup is the way back, if there is one.
          if (backupKey === null) throw undoError;
          undoFailure = failureOf(undoError);
          how = 'undo-then-restore';
          await restoreFromBackup({ db: c.input.db, backupKey, leaseToken: c.leaseToken });
        }
      } else {
        await restoreFromBackup({ db: c.input.db, backupKey: backupKey!, leaseToken: c.leaseToken });
      }
      // Undo scripts mark their own rows; the rest are marked here.
      const marked = (await finishCompensation({ db: c.input.db, fingerprint: c.start.fingerprint, versions: done, leaseToken: c.leaseToken })).rolledBack;
      rolledBack = [...done, ...marked.filter((v) => !done.includes(v))];
    });
  } catch (compensationError) {
    const second = failureOf(compensationError);
    const backupUnusable = second?.type === 'BackupCorrupt';
    throw ApplicationFailure.create({
      type: 'CompensationFailed',
      message:
        `${original?.message ?? String(error)}\n` +
        (undoFailure ? `the undo failed: ${undoFailure.message}\n` : '') +
        `COMPENSATION FAILED (${how}): ${second?.message ?? String(compensationError)}\n` +
        (backupKey === null
          ? `the database is NOT back to its state before the run, and no backup was taken (backup.scope "none"); the ledger says what is applied`
          : backupUnusable
            ? `the database is NOT back to its state before the run: the backup ${backupKey} failed its check and was not used; the ledger says what is applied`
            : `the database is NOT back to its state before the run; the backup taken before the run is ${backupKey}`),
      nonRetryable: true,
      details: [{ ...details, originalType: original?.type ?? null, compensation: how, compensationType: second?.type ?? null, backupKey, ...(undoFailure ? { undoType: undoFailure.type } : {}) }],
      cause: original ?? (error as Error),
    });
  }
  c.enter('failed');
  const what =
    how === 'undo'
      ? `undo scripts of ${done.map((v) => `V${v}`).join(', ')} ran in reverse`
      : how === 'undo-then-restore'
        ? `the undo failed (${undoFailure?.message ?? 'unknown'}); restored from the verified backup ${backupKey} instead`
        : `restored from the verified backup ${backupKey}`;
  throw ApplicationFailure.create({
    type: original?.type ?? 'MigrationFailed',
    message: `${original?.message ?? String(error)}\ncompensated: ${what}; the schema matches its fingerprint from before the run`,
    nonRetryable: true,
    details: [{ ...details, compensated: how, rolledBack, backupKey }],
    cause: original ?? (error as Error),
  });
}

/** Renews the lease in the background until cancelled. */
function keepLease(db: string, token: string): { cancel(): void } {
  const scope = new CancellationScope();
  // It ends cancelled (by us, at release) or failed (the lease was lost: the
  // next ledger write is fenced and says so, and the run recovers there).
  scope.run(() => holdLease({ db, token })).catch(() => undefined);
  return { cancel: () => scope.cancel() };
}
