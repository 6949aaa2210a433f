import { ApplicationFailure } from '@temporalio/workflow';
import { errorTypes, nonRetryableErrorTypes, type ErrorType } from '../contracts/errors';

/** Every activity's retry policy: the types no retry can fix, from the one table. */
export const nonRetryableTypes: string[] = nonRetryableErrorTypes;

/** A failure the workflow itself raises, of a type from the table (retryable as the table says). */
export function runFailure(type: ErrorType, message: string, details?: Record<string, unknown>): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: errorTypes[type].retryable !== true, ...(details ? { details: [details] } : {}) });
}
