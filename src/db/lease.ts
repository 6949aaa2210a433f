import type pg from 'pg';
import { PgconvoyError } from '../core/errors';
import { withTransaction } from './connection';
import { pgErrorFields } from './sqlstate';
import type { Lease } from '../contracts/records';
export type { Lease };

/** How long taking the lease waits for a row lock before reporting it held (and being retried). */
const acquireLockTimeoutMs = 2_000;

/** The lease is held by someone else and has not expired. */
export class LeaseHeldError extends PgconvoyError {
  readonly type = 'LeaseHeld';
  constructor(alias: string, holder: string, expiresAt: string | null) {
    super(
      expiresAt === null
        ? `database "${alias}" is leased by ${holder}, whose ledger write is in progress; waiting for it to finish`
        : `database "${alias}" is leased by ${holder} until ${expiresAt}; waiting for it to finish or expire`,
      { alias, holder, expiresAt },
    );
  }
}

/** This runner's lease expired and may have been taken over: it must not write. */
export class LeaseLostError extends PgconvoyError {
  readonly type = 'LeaseLost';
  constructor(alias: string, token: string) {
    super(`lease ${token} on database "${alias}" is no longer held (it expired or was taken over); this runner must not write`, { alias, token });
  }
}


/** The proof a ledger write carries: only the current lease holder may write. */
export interface Fence {
  alias: string;
  token: string;
}

/**
 * Takes the database's lease for `holder`, or renews it when `holder` still
 * holds it. A fresh acquisition (the row was free or expired) gets a new,
 * larger token, which fences off every earlier holder.
 */
export async function acquireLease(client: pg.Client, alias: string, holder: string, ttlMs: number): Promise<Lease> {
  return withTransaction(client, async () => {
    // A takeover waits for the fenced transaction in flight (it holds the row
    // FOR KEY SHARE, and a new token is a key change); never for long, so a
    // waiting acquirer never piles up connections.
    await client.query(`SET LOCAL lock_timeout = '${acquireLockTimeoutMs}ms'`);
    let result;
    try {
      result = await client.query<{ token: string; expires_at: Date }>(
        `INSERT INTO pgconvoy.lease AS l (holder, token, acquired_at, renewed_at, expires_at)
       VALUES ($1, nextval('pgconvoy.lease_token'), now(), now(), now() + $2 * interval '1 millisecond')
       ON CONFLICT (singleton) DO UPDATE
         SET holder = EXCLUDED.holder,
             token = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > now() THEN l.token ELSE EXCLUDED.token END,
             acquired_at = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > now() THEN l.acquired_at ELSE now() END,
             renewed_at = now(),
             expires_at = EXCLUDED.expires_at
         WHERE l.expires_at <= now() OR l.holder = EXCLUDED.holder
       RETURNING token::text AS token, expires_at`,
        [holder, ttlMs],
      );
    } catch (error) {
      if (pgErrorFields(error).code !== '55P03') throw error;
      throw new LeaseHeldError(alias, 'another run', null);
    }
    const row = result.rows[0];
    if (row) return { alias, holder, token: row.token, expiresAt: row.expires_at.toISOString() };
    const current = await client.query<{ holder: string; expires_at: Date }>('SELECT holder, expires_at FROM pgconvoy.lease');
    const other = current.rows[0];
    throw new LeaseHeldError(alias, other?.holder ?? 'another runner', other?.expires_at.toISOString() ?? 'unknown');
  });
}

/**
 * Extends the lease; fails when the token is no longer the current one. It
 * changes no key column, so it never waits for a migration's transaction
 * (which holds the row FOR KEY SHARE): a migration of hours keeps its lease
 * on one connection.
 */
export async function renewLease(client: pg.Client, fence: Fence, ttlMs: number): Promise<string> {
  const result = await client.query<{ expires_at: Date }>(
    `UPDATE pgconvoy.lease SET renewed_at = now(), expires_at = now() + $2 * interval '1 millisecond' WHERE token = $1 RETURNING expires_at`,
    [fence.token, ttlMs],
  );
  const row = result.rows[0];
  if (!row) throw new LeaseLostError(fence.alias, fence.token);
  return row.expires_at.toISOString();
}

/** Gives the lease up; a no-op when it is already gone. */
export async function releaseLease(client: pg.Client, fence: Fence): Promise<boolean> {
  const result = await client.query('DELETE FROM pgconvoy.lease WHERE token = $1', [fence.token]);
  return (result.rowCount ?? 0) > 0;
}

/**
 * Inside a transaction: proves `fence` is the live lease and keeps it so
 * until commit, so the writes that follow cannot land after someone else
 * took over. FOR KEY SHARE, not FOR SHARE: a takeover (a new token, a key
 * column since the ledger's third step) or a release waits for this
 * transaction, but the holder's renewal (expires_at only) does not.
 */
export async function checkFence(client: pg.Client, fence: Fence): Promise<void> {
  const result = await client.query(`SELECT 1 FROM pgconvoy.lease WHERE token = $1 AND expires_at > now() FOR KEY SHARE`, [fence.token]);
  if (!result.rowCount) throw new LeaseLostError(fence.alias, fence.token);
}
