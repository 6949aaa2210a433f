import { ApplicationFailure, workflowInfo } from '@temporalio/workflow';
import type { DatabasePlan, FailedOutcome, MigrationResult, OutcomeBase, Progress, RunFailure, Safeguard, Version } from '../contracts';
import { failureOf } from './compensate';

/** What a run knows about itself by the time it ends, for its outcome. */
export interface RunFacts {
  progress: Progress;
  plan?: DatabasePlan;
  safeguard?: Safeguard;
  fingerprintAfter?: string;
}

export function versionBefore(plan: DatabasePlan | undefined): Version | null {
  return plan ? (plan.applied.at(-1)?.version ?? plan.baseline ?? null) : null;
}

/** The fields every outcome has. `versionAfter`: the last version this run applied, else the one before it. */
export function outcomeBase(facts: RunFacts, failedVersion?: Version): OutcomeBase {
  const { progress, plan } = facts;
  const { workflowId, runId } = workflowInfo();
  const before = versionBefore(plan);
  const after = progress.completed.filter((s) => s.status === 'applied').at(-1)?.version ?? before;
  return {
    db: progress.db,
    workflowId,
    runId,
    manifestDigest: plan?.manifestDigest ?? null,
    versionBefore: before,
    versionAfter: after,
    migrations: migrationResults(facts, failedVersion),
    ...(facts.safeguard ? { safeguard: facts.safeguard } : {}),
    ...(facts.fingerprintAfter ? { fingerprintAfter: facts.fingerprintAfter } : {}),
    version: after,
    applied: progress.completed,
  };
}

/** Every pending migration, `not-run` unless the run applied, skipped or failed it. */
function migrationResults({ progress, plan }: RunFacts, failedVersion: Version | undefined): MigrationResult[] {
  return (plan?.pending ?? []).map((p) => {
    const done = progress.completed.find((c) => c.version === p.version);
    if (done) return { version: p.version, description: p.description, status: done.status, durationMs: done.durationMs };
    return { version: p.version, description: p.description, status: p.version === failedVersion ? 'failed' : 'not-run' };
  });
}

/**
 * The failure a run fails with, carrying its outcome (halted, compensated,
 * compensation-failed, approval-timed-out) as a second detail: same type,
 * message and first detail as the failure it wraps, so a failed run still
 * fails, and reads the same, in the Temporal UI and the CLI. Anything that is
 * not an application failure (a cancelled or timed-out workflow) is left as
 * it is.
 */
export function withOutcome(facts: RunFacts, error: unknown): unknown {
  const failure = failureOf(error);
  if (!failure) return error;
  const details = (failure.details?.[0] ?? {}) as Record<string, unknown>;
  const parsed = runFailureOf(failure, details);
  const failedVersion = parsed.version ?? facts.progress.current?.version;
  const base = outcomeBase(facts, failedVersion);
  let outcome: FailedOutcome;
  if (failure.type === 'ApprovalTimedOut') outcome = { ...base, status: 'approval-timed-out', failure: parsed };
  else if (failure.type === 'CompensationFailed') outcome = { ...base, status: 'compensation-failed', failure: parsed, compensation: (details.compensation as 'none' | undefined) ?? 'none' };
  else if (typeof details.compensated === 'string') {
    const rolledBack = (details.rolledBack as Version[] | undefined) ?? [];
    outcome = { ...base, versionAfter: base.versionBefore, version: base.versionBefore, status: 'compensated', failure: parsed, compensation: details.compensated as 'undo', rolledBack };
  } else outcome = { ...base, status: 'halted', failure: parsed };
  return ApplicationFailure.create({
    type: failure.type ?? undefined,
    message: failure.message,
    nonRetryable: true,
    details: [details, { outcome }],
    cause: failure === error ? failure.cause : (error as Error),
  });
}

/** The typed failure, parsed in this one place from the failure's first detail. */
function runFailureOf(failure: ApplicationFailure, d: Record<string, unknown>): RunFailure {
  const str = (k: string) => (typeof d[k] === 'string' ? { [k]: d[k] } : {});
  const num = (k: string) => (typeof d[k] === 'number' ? { [k]: d[k] } : {});
  const nullable = (k: string) => (typeof d[k] === 'string' || d[k] === null ? { [k]: d[k] } : {});
  return {
    type: failure.type ?? 'Error',
    message: failure.message,
    ...str('file'),
    ...str('version'),
    ...num('statement'),
    ...num('statementsDone'),
    ...num('statementsTotal'),
    ...str('mode'),
    ...num('line'),
    ...num('column'),
    ...nullable('sqlstate'),
    ...nullable('detail'),
    ...nullable('hint'),
  };
}
