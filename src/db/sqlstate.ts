/**
 * What a PostgreSQL error means for a retry. Transient conditions pass with
 * time (a lock is released, a deadlock victim re-runs, a server restarts);
 * everything else fails the same way every time.
 */
export type ErrorClass = 'retryable' | 'permanent';

const retryableCodes = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available (lock_timeout; the engine retries it on its own bounded schedule)
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
]);

// Not retried: 57014 query_canceled. A statement that ran into its
// statement_timeout runs into it again on every attempt (a 2 s limit retried
// ten times is ten times the load and minutes of waiting), and an operator who
// cancels a statement with pg_cancel_backend() (also 57014, indistinguishable
// by SQLSTATE) means "stop", not "try again".

export function classifySqlState(sqlstate: string | undefined): ErrorClass {
  if (sqlstate === undefined) return 'retryable'; // no SQLSTATE: the connection itself failed
  if (sqlstate.startsWith('08')) return 'retryable'; // connection_exception
  return retryableCodes.has(sqlstate) ? 'retryable' : 'permanent';
}

/** PostgreSQL error fields as `pg` exposes them. */
export interface PgErrorFields {
  code?: string;
  message: string;
  detail?: string;
  hint?: string;
  position?: string;
  where?: string;
}

export function pgErrorFields(error: unknown): PgErrorFields {
  if (error instanceof Error) {
    const e = error as Error & Partial<Record<'code' | 'detail' | 'hint' | 'position' | 'where', string>>;
    const sqlstate = typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : undefined;
    return { code: sqlstate, message: e.message, detail: e.detail, hint: e.hint, position: e.position, where: e.where };
  }
  return { message: String(error) };
}
