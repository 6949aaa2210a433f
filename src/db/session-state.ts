import type pg from 'pg';
import { catalogSearchPath } from './fingerprint';

/** Namespace of pgconvoy's per-version advisory locks (any constant int4): applying and undoing a version take the same one. */
export const versionLockKey = 1_886_417_250;

/**
 * Inside a migration's (or undo's) transaction, after its statements: undoes
 * what they did to the session (SET ROLE, SET search_path,
 * SET default_transaction_read_only, ...), so neither the ledger write that
 * follows nor the next migration on this connection runs under it.
 * In the same round trip: with `timeouts`, they are set again for the rest
 * of the transaction; with `catalogRead`, so are the settings the catalog is
 * read under: its search_path (what follows names its tables in full; a next
 * migration in the same transaction sets it back first, `sessionSettingsAgain`)
 * and generic plans for the prepared statements that follow, planned once
 * per connection (PostgreSQL planned the tracker's closure query anew for
 * each migration: about 0.9 ms of its 1.8).
 */
export async function resetSession(client: pg.Client, options: { timeouts?: { lockTimeoutMs: number; statementTimeoutMs: number }; catalogRead?: boolean } = {}): Promise<void> {
  const { timeouts } = options;
  // Numbers only: safe as literals.
  const again = timeouts
    ? `; SELECT set_config('lock_timeout', '${Math.trunc(timeouts.lockTimeoutMs)}ms', true), set_config('statement_timeout', '${Math.trunc(timeouts.statementTimeoutMs)}ms', true)`
    : '';
  const catalog = options.catalogRead ? `; SET LOCAL search_path = ${catalogSearchPath}; SET LOCAL plan_cache_mode = force_generic_plan` : '';
  await client.query(`RESET SESSION AUTHORIZATION; RESET ROLE; RESET ALL${again}${catalog}`);
}

/** Before the next migration of a group: the session's own search_path and plan cache mode again (what RESET ALL left, before `catalogRead`). */
export const sessionSettingsAgain = 'SET LOCAL search_path TO DEFAULT; SET LOCAL plan_cache_mode TO DEFAULT';

/**
 * First statement of a ledger-only transaction (begun READ WRITE) beside a
 * no-transaction file: the connecting user and a fixed search_path for this
 * transaction only, while the file's own settings stay with its statements.
 */
export async function asConnectingUser(client: pg.Client): Promise<void> {
  await client.query(`SET LOCAL SESSION AUTHORIZATION DEFAULT; SET LOCAL search_path = ${catalogSearchPath}`);
}
