import { ApplicationFailure, setHandler, workflowInfo } from '@temporalio/workflow';
import { describeRunBackup, outcomeOf } from '../contracts';
import type { AppliedStep, RunOutcome, DatabasePlan, MigrateDatabaseInput, MigrateDatabaseResult, PendingMigration, Progress, RunBackup, RunRecord, RunRisk } from '../contracts';
import { emitVersionHooks, eventEmitter, type RunEventBody } from './events';
import { applyGroup, applyMigration, applyMigrationsInline, beginRun, planDatabase, runCommandHooks, runHooks, takeBackup, verifyRun } from './activities';
import { compensate, type Compensation } from './compensate';
import { causeOf, runFailure } from './failures';
import { awaitApproval, newProgress } from './approval';
import { gatedMigrations, within } from './gates';
import { emitReport, guarded } from './guards';
import { withLease, type HeldLease } from './lease';
import { progressQuery } from './messages';
import { outcomeBase, versionBefore, withOutcome, type RunFacts } from './outcome';
import { handleRunMessages, recordApproval } from './run-messages';
import { runNotifier, type RunNotifier } from './run-notify';

/** One run of the workflow: its input, the progress it reports, its phase, and what it learns on the way (for its outcome). */
interface Run extends RunFacts {
  input: MigrateDatabaseInput;
  emit: (event: RunEventBody) => void;
  /** Waits until the parent (if any) heard every event. */
  flush: () => Promise<void>;
  /** Tells the cancel handler whether the step running now is the last one. */
  lastStepRunning: (last: boolean) => void;
  /** The webhooks of a run that is not a rollout's (run-notify.ts). */
  notifier: RunNotifier;
}

/**
 * One database, as the design's steps: plan → gate → lock → safeguard →
 * apply → verify → (compensate on failure) → release. Workflow id
 * `pgconvoy/db/<alias>`: Temporal runs at most one per database, and the
 * lease in the database fences off anything outside Temporal.
 */
export async function migrateDatabase(input: MigrateDatabaseInput): Promise<MigrateDatabaseResult> {
  const run = startRun(input);
  try {
    const plan = await planStep(run);
    if (plan.pending.length === 0) return await ended(run, { ...outcomeBase(run), status: 'up-to-date' });
    const from = versionBefore(plan);
    run.notifier.notify('run-started', `${input.db}: ${plan.pending.length} migration(s) to apply from version ${from ?? 'none'} to ${plan.pending.at(-1)!.version}`, { versionBefore: from, pending: plan.pending.length });
    const stopped = await gateStep(run, plan);
    if (stopped) return await ended(run, stopped);
    run.emit({ type: 'locking' });
    return await ended(run, await withLease(input.db, (lease) => changeStep(run, plan, lease)));
  } catch (error) {
    const failed = withOutcome(run, error);
    const outcome = outcomeOf(failed);
    if (outcome) await ended(run, outcome);
    else if (run.progress.phase !== 'cancelled') run.progress.phase = 'failed'; // cancelled or timed out by Temporal: no outcome to tell
    throw failed;
  }
}

/** The last event; the run ends only once its parent (if any) heard it. */
async function ended<O extends RunOutcome>(run: Run, outcome: O): Promise<O> {
  run.emit({ type: 'ended', status: outcome.status, versionAfter: outcome.versionAfter });
  run.notifier.ended(outcome);
  await Promise.all([run.flush(), run.notifier.settled()]);
  return outcome;
}

function startRun(input: MigrateDatabaseInput): Run {
  const progress = newProgress(input.db, input.mode ?? 'auto');
  setHandler(progressQuery, () => progress);
  const messages = handleRunMessages(progress, input.group ?? false);
  const notifier = runNotifier(input);
  const { emit, flush } = eventEmitter(progress);
  return {
    input,
    progress,
    emit: (event) => {
      emit(event);
      if (event.type === 'awaiting-approval') notifier.notify('run-approval-needed', `${input.db}: waiting for an approval: ${event.reason}`);
    },
    flush,
    lastStepRunning: messages.lastStepRunning,
    notifier,
  };
}

/** Plan: what is pending, and everything that forbids the run before it is gated or locks anything. */
async function planStep(run: Run): Promise<DatabasePlan> {
  const { input, progress } = run;
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
    throw runFailure('IntegrityCheckFailed', `refusing to migrate "${input.db}": the ledger and the migration files disagree:\n` + plan.problems.map((p) => `  ${p}`).join('\n'), {
      db: input.db,
      problems: plan.problems,
    });
  }
  run.plan = plan;
  progress.pending = plan.pending;
  if (plan.backup) progress.backup = plan.backup;
  const outside = plan.pending.filter((p) => p.mode === 'no-transaction');
  if (input.group && outside.length > 0) {
    throw runFailure(
      'GroupNotPossible',
      `cannot apply the pending migrations in one transaction: ${outside.map((p) => `V${p.version} (${p.description})`).join(', ')} must run outside a transaction`,
      { db: input.db, versions: outside.map((p) => p.version) },
    );
  }
  run.emit({ type: 'planned', manifestDigest: plan.manifestDigest, versionBefore: versionBefore(plan), pending: plan.pending.map((p) => p.version) });
  return plan;
}

/**
 * Gate: a dry run stops here; a backup that cannot be taken refuses the run
 * before anyone is asked to approve it; what the mode does not let run
 * unapproved waits for an approval (given with the input, or an `approve`).
 * Returns the run's result when it ends here.
 */
async function gateStep(run: Run, plan: DatabasePlan): Promise<MigrateDatabaseResult | undefined> {
  const { input, progress } = run;
  if (progress.mode === 'dry-run') return { ...outcomeBase(run), status: 'dry-run', pending: plan.pending, ...(plan.backup ? { backup: plan.backup } : {}) };
  if (plan.backup?.problem) throw runFailure('BackupToolMismatch', plan.backup.problem, { db: input.db, serverVersion: plan.backup.serverVersion });
  // An approval given before the run (a deploy service, a rollout once per rollout or per wave) covers what it says.
  const given = input.approved;
  if (given && gatedMigrations(progress.mode, plan.pending).every((g) => within(g.level, given.upTo ?? 'high'))) {
    recordApproval(progress, given);
    run.emit({ type: 'approved', by: given.by });
  }
  const waited = await awaitApproval(progress, run.emit, { pending: plan.pending, requireApproval: input.requireApproval ?? false, who: 'the run', what: 'the migration', ...(input.approvalTimeoutMs !== undefined ? { timeoutMs: input.approvalTimeoutMs } : {}) });
  return waited === 'cancelled' ? cancelled(run) : undefined;
}

/**
 * Under the lease: safeguard, apply, verify; on a failure after the
 * safeguard, compensate (unless the policy is `halt`).
 */
async function changeStep(run: Run, plan: DatabasePlan, lease: HeldLease): Promise<MigrateDatabaseResult> {
  const { input, progress } = run;
  const safeguard = await safeguardStep(run, plan);
  // beforeMigrate: its transaction rolled back on failure, and no migration has run: the run stops with nothing changed.
  await hookStep(run, plan, lease, 'beforeMigrate');
  // Registered only now that the safeguard succeeded: before it, nothing changed and there is nothing to compensate.
  let keepMigrations = false;
  try {
    const applied = await applyStep(run, plan, lease, safeguard);
    if (progress.cancelRequested && applied.length < plan.pending.length) return cancelled(run);
    // A failed afterMigrate keeps the migrations, unless the config says to compensate them (hooks.afterMigrateFailure).
    keepMigrations = plan.afterMigrateFailure !== 'compensate';
    await hookStep(run, plan, lease, 'afterMigrate');
    keepMigrations = false;
    run.emit({ type: 'verifying' });
    run.fingerprintAfter = (await verifyRun({ db: input.db, migrationsDir: input.migrationsDir, knownProblems: safeguard.start.knownProblems })).fingerprint;
  } catch (error) {
    // A failed afterMigrate fails the run and keeps the migrations it applied (they are in the ledger), unless hooks.afterMigrateFailure is compensate.
    if (keepMigrations) throw error;
    // afterMigrateError is told of the failure; its own failure is an event, never in the way of compensation.
    await hookStep(run, plan, lease, 'afterMigrateError', error).catch(() => undefined);
    if ((input.onFailure ?? 'restore') === 'halt') throw error;
    return await compensate(error, safeguard, lease.token());
  }
  const { approvedBy } = progress.approval;
  return { ...outcomeBase(run), status: 'applied', version: progress.completed.at(-1)!.version, ...(approvedBy ? { approvedBy } : {}), backup: safeguard.backup };
}

/**
 * A run-level event's hooks: the set's SQL callbacks (one transaction of
 * their own, under the lease), then the config's commands (with the run's
 * facts), each only when there are any; an event either way.
 */
async function hookStep(run: Run, plan: DatabasePlan, lease: HeldLease, event: 'beforeMigrate' | 'afterMigrate' | 'afterMigrateError', error?: unknown): Promise<void> {
  const sql = plan.hooks?.includes(event) ?? false;
  const commands = plan.commandHooks?.includes(event) ?? false;
  if (!sql && !commands) return;
  const { input, progress } = run;
  try {
    const files = sql ? await runHooks({ db: input.db, migrationsDir: input.migrationsDir, manifestDigest: plan.manifestDigest, event, leaseToken: lease.token() }) : [];
    const facts = {
      workflowId: workflowInfo().workflowId,
      versionBefore: versionBefore(plan),
      versionAfter: progress.completed.at(-1)?.version ?? versionBefore(plan),
      pending: plan.pending.length,
      outcome: event === 'afterMigrate' ? 'applied' : event === 'afterMigrateError' ? 'failed' : null,
      error: error === undefined ? null : causeOf(error),
    };
    const ran = commands ? await runCommandHooks({ db: input.db, event, facts }) : [];
    run.emit({ type: 'hook', event, files: [...files.map((r) => r.file), ...ran.map((r) => r.run)], durationMs: [...files, ...ran].reduce((sum, r) => sum + r.durationMs, 0), status: 'ok', error: null });
  } catch (failure) {
    run.emit({ type: 'hook', event, files: [], durationMs: 0, status: 'failed', error: causeOf(failure) });
    throw failure;
  }
}

/**
 * Safeguard: the schema's fingerprint and the problems it already has, then
 * a verified backup (or, with backup.scope "none", the recorded decision not
 * to take one). Returns the compensation they make possible.
 */
async function safeguardStep(run: Run, plan: DatabasePlan): Promise<Compensation> {
  const { input } = run;
  run.emit({ type: 'backing-up' });
  const start = await beginRun({ db: input.db, migrationsDir: input.migrationsDir });
  const touched = [...new Set(plan.pending.flatMap((p) => p.tables ?? []))].sort();
  let backup: RunBackup;
  if (plan.backup?.scope === 'none') backup = { none: plan.backup.reason ?? '' };
  else {
    const taken = await takeBackup({ db: input.db, touched, ...(start.watchBaseline ? { watchBaseline: start.watchBaseline } : {}) });
    emitReport(taken.watch, run.emit);
    backup = { key: taken.manifest.key };
  }
  run.safeguard = { backup, fingerprintBefore: start.fingerprint };
  return { input, plan, start, backup, emit: run.emit };
}

/** The most versions one inline call is given; it reports after about a second's work anyway. */
const maxInline = 100;

/**
 * Apply: each pending migration a checkpoint of its own: consecutive ones
 * predicted short together in one inline call that applies each in its own
 * transaction, every other one in its own activity (or all of them in one
 * transaction, with --group). A cancel takes effect between two steps,
 * never during a migration. Returns what was applied.
 */
async function applyStep(run: Run, plan: DatabasePlan, lease: HeldLease, { backup, start }: Compensation): Promise<AppliedStep[]> {
  const { input, progress } = run;
  const baseline = start.watchBaseline;
  const base = { db: input.db, manifestDigest: plan.manifestDigest, migrationsDir: input.migrationsDir, ...(baseline ? { watchBaseline: baseline } : {}) };
  const pending = plan.pending;
  for (let next = 0; next < pending.length; ) {
    if (progress.cancelRequested) break;
    const first = pending[next]!;
    const step = input.group ? pending : first.short ? shortRun(pending, next) : [first];
    run.emit({ type: 'applying', version: first.version });
    run.lastStepRunning(next + step.length === pending.length);
    const record = { ...runRecord(step, progress), backup: describeRunBackup(backup) };
    const versions = step.map((p) => p.version);
    // Past a guard, the step holds until the database is healthy, then runs again (guards.ts).
    const results = await guarded(input.db, baseline, run.emit, () =>
      lease.fenced(async (leaseToken) =>
        input.group
          ? applyGroup({ ...base, versions, leaseToken, ...record })
          : first.short
            ? applyMigrationsInline({ ...base, versions, leaseToken, ...record })
            : [await applyMigration({ ...base, version: first.version, leaseToken, ...record })],
      ),
    );
    if (results.length === 0) throw ApplicationFailure.nonRetryable(`no migration reported for V${first.version}`, 'Internal');
    for (const [i, result] of results.entries()) {
      if (i > 0) run.emit({ type: 'applying', version: result.version });
      if (result.status === 'applied') emitVersionHooks(run.emit, result.version, result.hooks);
      run.emit({ type: 'migration-done', version: result.version, status: result.status, durationMs: result.status === 'applied' ? result.durationMs : 0 });
      emitReport(result.watch, run.emit);
    }
    next += results.length;
  }
  return progress.completed;
}

/** The migrations predicted short from `from` on, up to the first that is not (at most maxInline). */
function shortRun(pending: PendingMigration[], from: number): PendingMigration[] {
  const end = pending.findIndex((p, i) => i >= from && (!p.short || i - from >= maxInline));
  return pending.slice(from, end === -1 ? pending.length : end);
}

function cancelled(run: Run): MigrateDatabaseResult {
  const { by, reason } = run.progress.cancelRequested!;
  return { ...outcomeBase(run), status: 'cancelled', cancelledBy: by, reason };
}

/** What the ledger records with each applied version: its risk, the accepted findings' reasons and the approval. */
function runRecord(step: PendingMigration[], progress: Progress): Omit<RunRecord, 'backup'> {
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
