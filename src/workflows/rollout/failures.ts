import type { RunFailure } from '../../contracts';

/** An error's message, whatever was thrown. */
export const message = (error: unknown): string => (error instanceof Error ? error.message : String(error));

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
