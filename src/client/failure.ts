import { ApplicationFailure, TemporalFailure } from '@temporalio/client';
import { PgconvoyError } from '../core/errors';

export interface FailureSummary {
  /** Stable error type, e.g. MigrationFailed, InvalidMigrationSet. */
  type: string | undefined;
  message: string;
  details: unknown;
}

/**
 * The innermost pgconvoy failure in a chain of Temporal failures
 * (WorkflowFailed -> ActivityFailure -> ApplicationFailure), or the error itself.
 */
export function summarizeFailure(error: unknown): FailureSummary {
  let current: unknown = error;
  let found: FailureSummary | undefined;
  while (current instanceof Error) {
    if (current instanceof ApplicationFailure) {
      found = { type: current.type ?? undefined, message: current.message, details: current.details?.[0] ?? null };
    } else if (current instanceof PgconvoyError) {
      found ??= { type: current.type, message: current.message, details: current.details };
    } else if (!(current instanceof TemporalFailure) && found === undefined) {
      found = { type: undefined, message: current.message, details: null };
    }
    current = current.cause;
  }
  return found ?? { type: undefined, message: String(error), details: null };
}
