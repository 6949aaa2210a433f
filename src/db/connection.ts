import pg from 'pg';
import { PgconvoyError } from '../core/errors';
import { classifySqlState, pgErrorFields } from './sqlstate';

/** The database could not be reached or the connection broke; trying again later can help. */
export class DatabaseUnavailableError extends PgconvoyError {
  readonly type = 'DatabaseUnavailable';
  readonly retryable = true;
  constructor(readonly alias: string, cause: unknown) {
    // The message names the alias, never the connection string: it may hold a password.
    super(`cannot reach database "${alias}": ${pgErrorFields(cause).message}`, { alias }, { cause });
  }
}

export interface Target {
  alias: string;
  url: string;
}

/** Opens one connection for the lifetime of `fn` and always closes it. */
export async function withClient<T>(target: Target, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: target.url, application_name: 'pgconvoy' });
  // A connection that breaks while idle emits 'error'; without a listener it would crash the process.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    const { code } = pgErrorFields(error);
    if (classifySqlState(code) === 'retryable') throw new DatabaseUnavailableError(target.alias, error);
    throw error;
  }
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Runs `fn` inside BEGIN/COMMIT, rolling back if it throws. */
export async function withTransaction<T>(client: pg.Client, fn: () => Promise<T>, begin: 'BEGIN' | 'BEGIN READ WRITE' = 'BEGIN'): Promise<T> {
  await client.query(begin);
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
