import { condition, workflowInfo } from '@temporalio/workflow';
import type { ExecutionMode, PendingMigration, Progress } from '../contracts';
import type { RunEventBody } from './events';
import { runFailure } from './failures';
import { describeGate, gatedMigrations } from './gates';

const defaultApprovalTimeoutMs = 24 * 60 * 60 * 1000;

/** A run's progress as it starts: planning, nothing approved, nothing asked. */
export function newProgress(db: string, mode: ExecutionMode): Progress {
  return {
    db,
    mode,
    phase: 'planning',
    current: null,
    pending: [],
    completed: [],
    approval: { required: false, reason: null, waitingSince: null, approvedBy: null, approvedAt: null, note: null },
    cancelRequested: null,
    startedAt: workflowInfo().startTime.getTime(),
    phaseStartedAt: Date.now(), // deterministic inside the workflow sandbox
  };
}

/**
 * The gate's wait: when --require-approval was given, or `pending` holds
 * migrations above what the mode runs unapproved, the run waits (durably)
 * for an `approve` or a `cancel`, up to the approval timeout. Resolves
 * `cancelled` or `go`; a wait nobody ends fails with ApprovalTimedOut.
 */
export async function awaitApproval(
  progress: Progress,
  emit: (event: RunEventBody) => void,
  options: { pending: PendingMigration[]; requireApproval: boolean; /** `the run`, `the undo` */ who: string; /** `the migration`, `the undo` */ what: string; timeoutMs?: number },
): Promise<'go' | 'cancelled'> {
  const gated = gatedMigrations(progress.mode, options.pending);
  const approved = () => progress.approval.approvedBy !== null;
  if ((!options.requireApproval && gated.length === 0) || approved()) return 'go';
  progress.approval.required = true;
  progress.approval.reason = [...(options.requireApproval ? [`${options.who} was started with --require-approval`] : []), ...(gated.length > 0 ? [describeGate(progress.mode, gated)] : [])].join('\n');
  if (gated.length > 0) progress.approval.gated = gated;
  progress.approval.waitingSince = Date.now();
  emit({ type: 'awaiting-approval', reason: progress.approval.reason });
  const timeoutMs = options.timeoutMs ?? defaultApprovalTimeoutMs;
  const decided = await condition(() => approved() || progress.cancelRequested !== null, timeoutMs);
  if (progress.cancelRequested) return 'cancelled';
  if (!decided) throw runFailure('ApprovalTimedOut', `nobody approved ${options.what} of "${progress.db}" within ${Math.round(timeoutMs / 1000)} s; nothing ran`);
  emit({ type: 'approved', by: progress.approval.approvedBy! });
  return 'go';
}
