import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure } from '@temporalio/workflow';
import type { RunFailure } from '../contracts';
import { errorTypes, nonRetryableErrorTypes, type ErrorType } from '../contracts/errors';

/** Every activity's retry policy: the types no retry can fix, from the one table. */
export const nonRetryableTypes: string[] = nonRetryableErrorTypes;

/** A failure the workflow itself raises, of a type from the table (retryable as the table says). */
export function runFailure(type: ErrorType, message: string, details?: Record<string, unknown>): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: errorTypes[type].retryable !== true, ...(details ? { details: [details] } : {}) });
}

/**
 * An error's message, whatever was thrown; for a failed activity or child
 * run, its cause's ("Activity task failed" says nothing of what went wrong).
 */
export function message(error: unknown): string {
  let e = error;
  while ((e instanceof ActivityFailure || e instanceof ChildWorkflowFailure) && e.cause) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}

/** One line: the file, version, statement, SQLSTATE and what PostgreSQL said, and how the run left the database. */
export function describeFailure(f: RunFailure, ended: string): string {
  const where = [f.file ?? (f.version !== undefined ? `V${f.version}` : undefined), f.statement !== undefined ? `statement ${f.statement}` : undefined, f.sqlstate ? `SQLSTATE ${f.sqlstate}` : undefined].filter(Boolean).join(', ');
  return `[${f.type}] ${where ? `${where}: ` : ''}${f.message.split('\n')[0]} (${ended})`;
}

/** The innermost message of a child's failure. */
export function causeOf(error: unknown): string {
  let current: unknown = error;
  while (typeof current === 'object' && current !== null && (current as { cause?: unknown }).cause) current = (current as { cause?: unknown }).cause;
  return message(current);
}
