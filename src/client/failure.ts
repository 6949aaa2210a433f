import type { ApplicationFailure } from '@temporalio/client';
import { temporalClient } from './temporal';
import { PgconvoyError } from '../core/errors';
import { isConnectionLoss } from './wait';

export interface FailureSummary {
  /** Stable error type, e.g. MigrationFailed, InvalidMigrationSet. */
  type: string | undefined;
  message: string;
  details: unknown;
}

/**
 * The outermost application failure in a chain of Temporal failures
 * (WorkflowFailed -> ActivityFailure -> ApplicationFailure, or a workflow's own
 * ApplicationFailure wrapping the one that caused it), or the error itself.
 */
export function summarizeFailure(error: unknown): FailureSummary {
  const { ApplicationFailure, TemporalFailure } = temporalClient();
  const chain: Error[] = [];
  for (let current: unknown = error; current instanceof Error; current = current.cause) chain.push(current);
  const application = chain.find((e): e is ApplicationFailure => e instanceof ApplicationFailure);
  if (application) return { type: application.type ?? undefined, message: application.message, details: application.details?.[0] ?? null };
  const own = chain.find((e): e is PgconvoyError => e instanceof PgconvoyError);
  if (own) return { type: own.type, message: own.message, details: own.details };
  const plain = chain.find((e) => !(e instanceof TemporalFailure)) ?? chain[0];
  if (isConnectionLoss(error)) return { type: 'TemporalUnavailable', message: `lost the connection to Temporal: ${plain?.message ?? String(error)}`, details: null };
  return { type: undefined, message: plain?.message ?? String(error), details: null };
}

/** Why a workflow refused an update (its validator's MessageRejected, nothing recorded), or undefined for any other error. */
export function rejectionOf(error: unknown): string | undefined {
  const { ApplicationFailure, WorkflowUpdateFailedError } = temporalClient();
  const cause = error instanceof WorkflowUpdateFailedError ? error.cause : undefined;
  return cause instanceof ApplicationFailure && cause.type === 'MessageRejected' ? cause.message : undefined;
}
