import { createHash, randomBytes } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PgconvoyError } from '../core/errors';
import { libpqEnv } from './libpq-env';
import { pathTools, type PgTools } from './pg-tools';
import { describeExit, runTool } from './processes';
import { putBackPublicSchema, readPublicSchema } from './public-schema';
import { replayBackup } from './replay';
import type { BackupStore } from './store';
import type { BackupManifest } from '../contracts/records';
export type { BackupManifest };

export { libpqEnv } from './libpq-env';


/** pg_dump failed or its output could not be stored: there is no backup. */
export class BackupFailedError extends PgconvoyError {
  readonly type = 'BackupFailed';
}

/** A stored backup does not read back as it was written, or is gone. */
export class BackupCorruptError extends PgconvoyError {
  readonly type = 'BackupCorrupt';
}

/**
 * A restore did not happen: it was rolled back, or never began (the backup
 * could not be read). `details.outcome` is 'unknown' in the one case where
 * that cannot be known: the connection broke after COMMIT was sent.
 */
export class RestoreFailedError extends PgconvoyError {
  readonly type = 'RestoreFailed';
}

/** Counts and hashes the bytes that flow through it. */
class Digest extends Transform {
  bytes = 0;
  private readonly hash = createHash('sha256');
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    callback(null, chunk);
  }
  hex(): string {
    return this.hash.digest('hex');
  }
}

export async function pgDumpVersion(tools: PgTools = pathTools): Promise<string> {
  const tool = runTool(tools.pgDump, ['--version'], { PATH: process.env.PATH });
  const chunks: Buffer[] = [];
  for await (const c of tool.stdout) chunks.push(c as Buffer);
  await tool.exit;
  return Buffer.concat(chunks).toString().trim();
}

const manifestKeyOf = (key: string) => `${key}.manifest.json`;

export interface BackupOptions {
  alias: string;
  url: string;
  store: BackupStore;
  serverVersion: string;
  ledgerVersion: string | null;
  /** Dump only these tables (schema-qualified or not); default: the whole database. */
  tables?: string[];
  now?: Date;
  /** pg_dump to use; default: PATH's. */
  tools?: PgTools;
}

/**
 * pg_dump in custom format, streamed into the store with its sha256 and size
 * computed on the way; memory stays flat whatever the database's size. The
 * backup counts only if pg_dump exited 0 and the upload completed: then its
 * manifest is written. Otherwise the partial object is deleted.
 */
export async function backupDatabase(options: BackupOptions): Promise<BackupManifest> {
  const created = options.now ?? new Date();
  const id = `${created.toISOString().replace(/[-:.]/g, '').replace('T', '-').slice(0, 15)}-${randomBytes(3).toString('hex')}`;
  const key = `${options.alias}/${id}.dump`;
  const tables = options.tables && options.tables.length > 0 ? options.tables : null;
  // The ledger is not part of a backup: a restore must not rewind the history that records it.
  const args = ['--format=custom', '--no-password', '--exclude-schema=pgconvoy', ...(tables ?? []).flatMap((t) => ['--table', t])];
  const tools = options.tools ?? pathTools;
  const dump = runTool(tools.pgDump, args, libpqEnv(options.url));
  const digest = new Digest();
  let stored: unknown;
  try {
    await options.store.put(key, dump.stdout.pipe(digest), 'application/octet-stream');
  } catch (error) {
    stored = error;
  }
  // Nobody reads its output any more once the store gave up: stop() ends it
  // (a no-op when it exited by itself) and waits until it is gone.
  const { code, signal, stderr } = stored === undefined ? await dump.exit : await dump.stop();
  if (code !== 0 || stored !== undefined) {
    await options.store.delete(key).catch(() => undefined);
    const why =
      code !== 0 && signal === null ? `pg_dump exited with code ${String(code)}: ${stderr || '(no message)'}` : `storing it failed: ${(stored as Error).message}`;
    throw new BackupFailedError(`backup of "${options.alias}" to ${options.store.location} failed; no backup was kept. ${why}`, { db: options.alias });
  }
  const manifest: BackupManifest = {
    id,
    db: options.alias,
    key,
    format: 'custom',
    createdAt: created.toISOString(),
    bytes: digest.bytes,
    sha256: digest.hex(),
    serverVersion: options.serverVersion,
    pgDumpVersion: await pgDumpVersion(tools),
    ledgerVersion: options.ledgerVersion,
    tables,
  };
  await options.store.put(manifestKeyOf(key), Readable.from([JSON.stringify(manifest, null, 2)]), 'application/json');
  return manifest;
}

/**
 * Reads the whole backup back once: re-hashes it (size and sha256 must match
 * the manifest) and feeds it to `pg_restore -f /dev/null`, which parses every
 * entry and data block. `pg_restore --list` only reads the table of contents
 * and passes a truncated file; this does not.
 */
export async function verifyBackup(store: BackupStore, manifest: BackupManifest, tools: PgTools = pathTools): Promise<{ bytes: number; sha256: string }> {
  const restore = runTool(tools.pgRestore, ['--file=/dev/null'], { PATH: process.env.PATH });
  const digest = new Digest();
  // The verdict is on the bytes, not on how the streams ended: pg_restore
  // closes its input once it has read what it needs (EPIPE, "Premature
  // close"), on a good archive too. Every byte hashed to the manifest's
  // sha256 and pg_restore exiting 0 is a verified backup; a read that stopped
  // early shows as a size and sha256 mismatch, with its error added.
  let readError: unknown;
  let exit;
  try {
    try {
      await pipeline(await store.get(manifest.key), digest, restore.stdin);
    } catch (error) {
      readError = error;
      // A store that failed before the pipeline began left pg_restore's input
      // open; closed, pg_restore sees the end of its input and gives its verdict.
      restore.stdin.destroy();
    }
    exit = await restore.exit;
  } finally {
    await restore.stop();
  }
  const { code, stderr } = exit;
  const problems: string[] = [];
  const sha256 = digest.hex();
  if (digest.bytes !== manifest.bytes) problems.push(`size is ${digest.bytes} bytes, the manifest says ${manifest.bytes}`);
  if (sha256 !== manifest.sha256) problems.push(`sha256 is ${sha256.slice(0, 16)}…, the manifest says ${manifest.sha256.slice(0, 16)}…`);
  if (code !== 0) problems.push(`pg_restore could not read it (exit ${String(code)}): ${stderr || '(no message)'}`);
  if (problems.length > 0 && readError !== undefined) problems.push(`reading stopped: ${(readError as Error).message}`);
  if (problems.length > 0) {
    throw new BackupCorruptError(`backup ${manifest.id} of "${manifest.db}" in ${store.location} failed verification: ${problems.join('; ')}`, {
      db: manifest.db,
      id: manifest.id,
      problems,
    });
  }
  return { bytes: digest.bytes, sha256 };
}

/** The backups of one database, newest first. */
export async function listBackups(store: BackupStore, alias: string): Promise<BackupManifest[]> {
  const keys = (await store.list(`${alias}/`)).filter((k) => k.endsWith('.manifest.json'));
  const manifests: BackupManifest[] = [];
  for (const key of keys) {
    const chunks: Buffer[] = [];
    for await (const c of await store.get(key)) chunks.push(Buffer.from(c as Buffer));
    manifests.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as BackupManifest);
  }
  return manifests.sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
}

/** Keeps the newest `keep` backups of a database and deletes the rest (manifest first). */
export async function applyRetention(store: BackupStore, alias: string, keep: number): Promise<string[]> {
  const old = (await listBackups(store, alias)).slice(keep);
  for (const m of old) {
    await store.delete(manifestKeyOf(m.key));
    await store.delete(m.key);
  }
  return old.map((m) => m.id);
}

export interface RestoreOptions {
  alias: string;
  url: string;
  store: BackupStore;
  manifest: BackupManifest;
  /** Called with the sessions about to be terminated, for a clear log line. */
  onTerminate?: (sessions: Array<{ pid: number; application: string; user: string }>) => void;
  /** Aborting rolls a restore back unless its COMMIT was already sent (an activity's cancellation). */
  signal?: AbortSignal;
  /**
   * The longest the restore waits for a lock (a session that reconnected
   * after the others were terminated): past it the restore rolls back and is
   * retried, instead of queueing every query of the application behind it.
   */
  lockTimeoutMs?: number;
  /** The lease token the run holds: the restore commits only while it is the live lease. */
  fenceToken?: string;
  /** pg_restore and psql to use; default: PATH's. */
  tools?: PgTools;
}

/** The restore's first statements: a bounded lock wait, and proof that the run still holds the lease (kept until COMMIT). */
function restoreGuards(options: RestoreOptions): string {
  const lines: string[] = [];
  if (options.lockTimeoutMs !== undefined) lines.push(`SET LOCAL lock_timeout = '${Math.max(1, Math.floor(options.lockTimeoutMs))}ms';`);
  if (options.fenceToken !== undefined) {
    if (!/^[0-9]+$/.test(options.fenceToken)) throw new Error(`invalid lease token ${JSON.stringify(options.fenceToken)}`);
    lines.push(
      `DO $pgconvoy_fence$ BEGIN
         PERFORM 1 FROM pgconvoy.lease WHERE token = ${options.fenceToken} AND expires_at > now() FOR KEY SHARE;
         IF NOT FOUND THEN RAISE EXCEPTION 'lease ${options.fenceToken} on database "%" is no longer held (it expired or was taken over); not restoring', current_database(); END IF;
       END $pgconvoy_fence$;`,
    );
  }
  return lines.map((l) => `${l}\n`).join('');
}

const isMissing = (error: unknown) => {
  const e = error as { code?: string; name?: string; $metadata?: { httpStatusCode?: number } };
  return e.code === 'ENOENT' || e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
};

/**
 * Reads the whole backup and checks its size and sha256 against the
 * manifest, before anything is done to the database: a backup that is gone,
 * short or changed is BackupCorrupt (retrying cannot help); a read that
 * fails is RestoreFailed (it may work next time). Either way the database
 * was not touched.
 */
async function checkBackup(options: RestoreOptions): Promise<void> {
  const { manifest, store, alias } = options;
  const what = `backup ${manifest.id} of "${alias}" in ${store.location}`;
  const details = { db: alias, id: manifest.id, key: manifest.key };
  const hash = createHash('sha256');
  let bytes = 0;
  let stream: Readable;
  try {
    stream = await store.get(manifest.key);
  } catch (error) {
    if (isMissing(error)) throw new BackupCorruptError(`${what} is gone (${manifest.key}); the database was not changed`, details, { cause: error });
    throw new RestoreFailedError(`${what} could not be opened: ${(error as Error).message}; the database was not changed`, details, { cause: error });
  }
  try {
    for await (const chunk of stream) {
      bytes += (chunk as Buffer).length;
      hash.update(chunk as Buffer);
    }
  } catch (error) {
    throw new RestoreFailedError(`reading ${what} failed after ${bytes} of ${manifest.bytes} bytes: ${(error as Error).message}; the database was not changed`, details, {
      cause: error,
    });
  } finally {
    stream.destroy();
  }
  const sha256 = hash.digest('hex');
  const problems: string[] = [];
  if (bytes !== manifest.bytes) problems.push(`size is ${bytes} bytes, the manifest says ${manifest.bytes}`);
  else if (sha256 !== manifest.sha256) problems.push(`sha256 is ${sha256.slice(0, 16)}…, the manifest says ${manifest.sha256.slice(0, 16)}…`);
  if (problems.length > 0) throw new BackupCorruptError(`${what} does not match its manifest: ${problems.join('; ')}; the database was not changed`, { ...details, problems });
}

/**
 * Puts the database back to the backup. First the backup is read in full
 * and checked against its manifest; only then are the other sessions
 * terminated and, in ONE transaction that pgconvoy alone commits (see
 * replayBackup), every application schema dropped (the pgconvoy ledger
 * stays) and the backup replayed, the public schema's owner, comment and
 * privileges kept. A failure at any point leaves the database as it was, no
 * child process and no open session behind. Needs a whole-database backup
 * (or one of the tables it names).
 */
export async function restoreDatabase(options: RestoreOptions, query: (sql: string) => Promise<Array<Record<string, unknown>>>): Promise<void> {
  const { manifest } = options;
  await checkBackup(options);

  const sessions = (await query(
    `SELECT pid, coalesce(application_name, '') AS application, coalesce(usename, '') AS "user" FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
  )) as Array<{ pid: number; application: string; user: string }>;
  options.onTerminate?.(sessions);
  for (const s of sessions) await query(`SELECT pg_terminate_backend(${Number(s.pid)})`);
  // A whole-database backup replaces every application schema; a
  // touched-tables backup replaces just its tables.
  const schemas =
    manifest.tables === null
      ? ((await query(
          `SELECT quote_ident(nspname) AS name FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pgconvoy')
             AND nspname NOT LIKE 'pg_toast%' AND nspname NOT LIKE 'pg_temp%'`,
        )) as Array<{ name: string }>)
      : [];
  const publicSchema = manifest.tables === null ? await readPublicSchema(query) : null;
  const quoted = (name: string) => name.split('.').map((part) => `"${part.replace(/"/g, '""')}"`).join('.');
  const prelude =
    restoreGuards(options) +
    (manifest.tables === null
      ? schemas.map((s) => `DROP SCHEMA ${s.name} CASCADE;\n`).join('') +
        // Large objects belong to no schema, and a whole-database dump holds them all: without
        // this, restoring one that still exists fails on its duplicate OID.
        `SELECT count(lo_unlink(oid)) FROM pg_largeobject_metadata;\n` +
        // pg_dump leaves out the public schema unless it was changed; give the restore one to fill.
        `CREATE SCHEMA IF NOT EXISTS public;\nGRANT USAGE ON SCHEMA public TO PUBLIC;\n`
      : manifest.tables.map((t) => `DROP TABLE IF EXISTS ${quoted(t)} CASCADE;\n`).join(''));

  const outcome = await replayBackup({
    env: libpqEnv(options.url),
    open: () => options.store.get(manifest.key),
    expected: { bytes: manifest.bytes, sha256: manifest.sha256 },
    prelude,
    epilogue: publicSchema ? putBackPublicSchema(publicSchema) : '',
    query,
    tools: options.tools ?? pathTools,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  if (outcome.status === 'committed') return;
  const details = { db: options.alias, id: manifest.id, key: manifest.key, outcome: outcome.status };
  const from = `restore of "${options.alias}" from backup ${manifest.id}`;
  if (outcome.status === 'unknown') {
    throw new RestoreFailedError(`${from} may or may not have committed: ${outcome.problems.join('; ')}`, details);
  }
  const message = `${from} failed and was rolled back; the database is as it was before the restore: ${outcome.problems.join('; ')}`;
  // The backup read right a moment ago: bytes that differ now mean it changed since.
  if (outcome.corrupt) throw new BackupCorruptError(message, details);
  throw new RestoreFailedError(message, details);
}

/**
 * The restore drill: restores the backup into a scratch database on the same
 * server (`pgconvoy_drill_<random>`, needs CREATEDB), then drops it. Proves
 * the backup restores, not just that it reads.
 */
export async function drillRestore(
  options: { alias: string; url: string; store: BackupStore; manifest: BackupManifest; tools?: PgTools },
  query: (sql: string) => Promise<unknown>,
): Promise<{ database: string; ms: number }> {
  const database = `pgconvoy_drill_${randomBytes(4).toString('hex')}`;
  const started = performance.now();
  await query(`CREATE DATABASE ${database}`);
  try {
    const restore = runTool((options.tools ?? pathTools).pgRestore, ['--no-owner', '--exit-on-error', `--dbname=${database}`], { ...libpqEnv(options.url), PGDATABASE: database });
    let readError: unknown;
    let exit;
    try {
      try {
        await pipeline(await options.store.get(options.manifest.key), restore.stdin);
      } catch (error) {
        readError = error;
        await restore.stop(); // the drill has failed; pg_restore must not wait on an input nobody feeds
      }
      exit = await restore.exit;
    } finally {
      await restore.stop();
    }
    if (exit.code !== 0 || readError !== undefined) {
      throw new BackupCorruptError(
        `restore drill of backup ${options.manifest.id} of "${options.alias}" failed: ${readError !== undefined ? `reading it failed: ${(readError as Error).message}` : `pg_restore ${describeExit(exit)}`}`,
        { db: options.alias, id: options.manifest.id },
      );
    }
    return { database, ms: performance.now() - started };
  } finally {
    await query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => undefined);
  }
}
