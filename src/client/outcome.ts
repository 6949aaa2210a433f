import type { RunOutcome } from '../contracts';
import { ExitCode, exitCodeForFailure } from './exit-codes';
import type { FailureSummary } from './failure';
import { renderMigrateResult } from './render';
import { renderFailureReport } from './report';
import type { HistoryRow } from '../contracts';

/** The one mapping from a run's outcome to the CLI's exit code. */
export function exitCodeFor(outcome: RunOutcome, options: { detailedExitcode?: boolean } = {}): ExitCode {
  switch (outcome.status) {
    case 'up-to-date':
    case 'dry-run':
      return ExitCode.ok;
    case 'applied':
      return options.detailedExitcode ? ExitCode.applied : ExitCode.ok;
    case 'cancelled':
      return ExitCode.cancelled;
    case 'compensated':
      return ExitCode.rolledBack;
    case 'halted':
      // By the failure: bad input (nothing ran), or a migration's own (4 when nothing of it stays, 1 when part of a no-transaction file does).
      return exitCodeForFailure(outcome.failure.type, outcome.failure);
    case 'compensation-failed':
    case 'approval-timed-out':
      return ExitCode.failed;
  }
}

/** A failed outcome's failure, as the failure report reads it. */
export function failureSummaryOf(outcome: Extract<RunOutcome, { failure: unknown }>): FailureSummary {
  return { type: outcome.failure.type, message: outcome.failure.message, details: { ...outcome.failure, ...(outcome.status === 'compensated' ? { compensated: outcome.compensation } : {}) } };
}

/**
 * The one rendering of a run's outcome for a person: what was applied (or
 * would be), who cancelled it, or the failure report with where it failed,
 * what state it left and what to do next. `stream`: where it goes (a run
 * that did not apply what it was asked to reports on stderr).
 */
export function renderOutcome(outcome: RunOutcome, context: { migrationsDir: string; history?: HistoryRow[] }): { stream: 'stdout' | 'stderr'; text: string } {
  switch (outcome.status) {
    case 'up-to-date':
    case 'dry-run':
    case 'applied':
      return { stream: 'stdout', text: renderMigrateResult(outcome, outcome.workflowId) };
    case 'cancelled':
      return { stream: 'stderr', text: `pgconvoy: ${renderMigrateResult(outcome, outcome.workflowId)}` };
    default:
      return {
        stream: 'stderr',
        text: renderFailureReport({
          failure: failureSummaryOf(outcome),
          db: outcome.db,
          migrationsDir: context.migrationsDir,
          workflowId: outcome.workflowId,
          ...(context.history ? { history: context.history } : {}),
        }),
      };
  }
}
