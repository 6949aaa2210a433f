import pg from 'pg';
import { PgconvoyError } from '../core/errors';
import { serverOf, serverSlots, type SlotKind } from './server-slots';
import { classifySqlState, pgErrorFields } from './sqlstate';

/** The database could not be reached or the connection broke; trying again later can help. */
export class DatabaseUnavailableError extends PgconvoyError {
  readonly type = 'DatabaseUnavailable';
  constructor(readonly alias: string, cause: unknown) {
    // The message names the alias, never the connection string: it may hold a password.
    super(`cannot reach database "${alias}": ${pgErrorFields(cause).message}`, { alias }, { cause });
  }
}

/**
 * The connection settings of an alias are wrong: no such database, role or
 * password, a pg_hba.conf refusal, or a string that is not a postgres:// URL.
 * The same settings fail the same way every time, so nothing retries it.
 */
export class DatabaseConfigError extends PgconvoyError {
  readonly type = 'DatabaseConfig';
  constructor(readonly alias: string, problem: string, cause?: unknown) {
    super(`cannot connect to database "${alias}": ${problem}`, { alias }, cause === undefined ? undefined : { cause });
  }
}

/** The role of an alias's connection string lacks a privilege pgconvoy needs (outside a migration's own SQL). */
export class PermissionDeniedError extends PgconvoyError {
  readonly type = 'PermissionDenied';
  constructor(readonly alias: string, cause: unknown) {
    super(
      `permission denied on database "${alias}": ${pgErrorFields(cause).message} (SQLSTATE 42501); ` +
        'the role in its connection string needs CONNECT, and CREATE on the database for the pgconvoy schema',
      { alias, sqlstate: '42501' },
      { cause },
    );
  }
}

/** SQLSTATEs at connect time that mean the settings are wrong, with what to check. */
const configStates: Record<string, string> = {
  '3D000': 'check the database name in its connection string', // invalid_catalog_name
  '28P01': 'check the password in its connection string', // invalid_password
  '28000': 'check the user in its connection string and the server\'s pg_hba.conf', // invalid_authorization_specification
};

/** Only URLs: pg reads anything else as a host name and would retry a typo for minutes. */
function checkUrl(target: Target): void {
  let protocol: string | undefined;
  try {
    protocol = new URL(target.url).protocol;
  } catch {
    protocol = undefined;
  }
  // The message never quotes the string: it may hold a password.
  if (protocol !== 'postgres:' && protocol !== 'postgresql:') {
    throw new DatabaseConfigError(target.alias, 'its connection string is not a valid postgres:// or postgresql:// URL');
  }
}

export interface Target {
  alias: string;
  url: string;
}

/** How a connection is opened: what it is for (the cap's kind), and the step's cancellation, which ends a wait for a slot. */
export interface ConnectOptions {
  kind?: SlotKind;
  signal?: AbortSignal;
}

/**
 * Opens a connection, with what went wrong said in terms of the alias,
 * within the process's cap on connections to the target's server
 * (server-slots.ts): the slot is held until the connection ends.
 */
async function connect(target: Target, options: ConnectOptions = {}): Promise<pg.Client> {
  checkUrl(target);
  let client: pg.Client;
  try {
    client = new pg.Client({ connectionString: target.url, application_name: 'pgconvoy' });
  } catch {
    throw new DatabaseConfigError(target.alias, 'its connection string cannot be parsed');
  }
  // A connection that breaks while idle emits 'error'; without a listener it would crash the process.
  client.on('error', () => undefined);
  const release = await serverSlots.acquire(serverOf(target.url), options.kind ?? 'step', options.signal);
  client.once('end', release);
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    release();
    const fields = pgErrorFields(error);
    const check = fields.code === undefined ? undefined : configStates[fields.code];
    if (check !== undefined) throw new DatabaseConfigError(target.alias, `${fields.message} (SQLSTATE ${fields.code}); ${check}`, error);
    if (fields.code === '42501') throw new PermissionDeniedError(target.alias, error);
    if (classifySqlState(fields.code) === 'retryable') throw new DatabaseUnavailableError(target.alias, error);
    throw error;
  }
  return client;
}

/** Runs `fn` on `client`; a given-up attempt ends the connection; a missing privilege is said as such. */
async function runOn<T>(target: Target, client: pg.Client, fn: (client: pg.Client) => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  // A given-up attempt (its activity cancelled, timed out, or its worker
  // shutting down) ends its connection: the statement in flight fails at once
  // and the server rolls its transaction back, instead of the attempt working
  // on (and a short-lived command's worker waiting for it) after nobody wants it.
  const abandon = () => void client.end().catch(() => undefined);
  signal?.addEventListener('abort', abandon, { once: true });
  try {
    return await fn(client);
  } catch (error) {
    // Creating the ledger or reading the catalog without the privilege fails
    // the same way every time. (A migration's own SQL fails as MigrationFailed.)
    if (!(error instanceof PgconvoyError) && pgErrorFields(error).code === '42501') throw new PermissionDeniedError(target.alias, error);
    throw error;
  } finally {
    signal?.removeEventListener('abort', abandon);
  }
}

/** Opens one connection for the lifetime of `fn` and always closes it. */
export async function withClient<T>(target: Target, fn: (client: pg.Client) => Promise<T>, options: ConnectOptions = {}): Promise<T> {
  const client = await connect(target, options);
  try {
    return await runOn(target, client, fn, options.signal);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * What `DISCARD ALL` resets, except the prepared statements: pgconvoy's own
 * (named `pgconvoy_*`) stay prepared on a kept connection, so the catalog
 * queries a migration runs are planned once per connection. Last, whether a
 * migration left a prepared statement of its own: then the connection is
 * not kept. (A step whose SQL could drop pgconvoy's, DEALLOCATE or DISCARD,
 * never runs on a kept connection: see runs/apply.ts.)
 */
const resetKept = `CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; SELECT pg_catalog.pg_advisory_unlock_all();
  DISCARD TEMP; DISCARD SEQUENCES; SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_statements WHERE from_sql) AS prepared`;

/**
 * Connections a worker keeps between steps on the same database, so a run
 * of short migrations does not pay a connection (and its close) each. A
 * connection goes back only after a step that succeeded, reset as by
 * `DISCARD ALL` (temporary tables, settings, session locks, cursors) but
 * keeping pgconvoy's prepared statements (resetKept); anything that failed
 * or was abandoned closes it. Idle ones close after `idleMs`, or at once
 * when a connection to the same server waits for a slot under the cap.
 */
export class ConnectionPool {
  private readonly idle = new Map<string, Array<{ client: pg.Client; timer: NodeJS.Timeout }>>();

  constructor(
    private readonly idleMs = 10_000,
    private readonly perTarget = 2,
  ) {
    serverSlots.onPressure((server) => this.closeIdleOn(server));
  }

  /** Runs `fn` on a kept connection, or a new one (`reused` says which: a kept one already has what earlier steps set up). */
  async use<T>(target: Target, fn: (client: pg.Client, reused: boolean) => Promise<T>, options: ConnectOptions = {}): Promise<T> {
    const kept = this.idle.get(target.url)?.pop();
    if (kept) {
      clearTimeout(kept.timer);
      socketOf(kept.client)?.ref();
    }
    const client = kept?.client ?? (await connect(target, options));
    let result: T;
    let reusable: boolean;
    try {
      result = await runOn(target, client, (c) => fn(c, kept !== undefined), options.signal);
      const reset = (await client.query(resetKept)) as unknown as Array<pg.QueryResult<{ prepared?: boolean }>>;
      reusable = reset.at(-1)?.rows[0]?.prepared === false;
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    // An idle kept connection still holds a slot: when a connection to the server waits for one, it closes instead.
    if (options.signal?.aborted || !reusable || serverSlots.waited(serverOf(target.url))) await client.end().catch(() => undefined);
    else this.keep(target.url, client);
    return result;
  }

  /** Closes one idle connection to `server` (the longest idle), for a connection waiting for its slot. */
  private closeIdleOn(server: string): boolean {
    for (const [url, list] of this.idle) {
      if (serverOf(url) !== server || list.length === 0) continue;
      const entry = list.shift()!;
      clearTimeout(entry.timer);
      void entry.client.end().catch(() => undefined);
      return true;
    }
    return false;
  }

  private keep(url: string, client: pg.Client): void {
    const list = this.idle.get(url) ?? [];
    if (list.length >= this.perTarget) {
      void client.end().catch(() => undefined);
      return;
    }
    const entry = {
      client,
      timer: setTimeout(() => {
        this.idle.set(url, (this.idle.get(url) ?? []).filter((e) => e !== entry));
        void client.end().catch(() => undefined);
      }, this.idleMs).unref(),
    };
    // An idle connection never keeps the process alive (a short command's worker ends when its work does).
    socketOf(client)?.unref();
    list.push(entry);
    this.idle.set(url, list);
  }
}

/** The client's socket (pg does not type it). */
function socketOf(client: pg.Client): { ref(): void; unref(): void } | undefined {
  return (client as unknown as { connection?: { stream?: { ref(): void; unref(): void } } }).connection?.stream;
}

/**
 * Runs `fn` inside BEGIN/COMMIT, rolling back if it throws. `begin` may carry
 * the transaction's first statement with it (`BEGIN; SELECT ...`: one round
 * trip instead of two).
 */
export async function withTransaction<T>(client: pg.Client, fn: () => Promise<T>, begin: 'BEGIN' | 'BEGIN READ WRITE' | 'BEGIN READ ONLY' | `BEGIN; ${string}` = 'BEGIN'): Promise<T> {
  try {
    await client.query(begin);
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
