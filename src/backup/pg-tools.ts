import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PgconvoyError } from '../core/errors';
import type { BackupPlan } from '../contracts/records';
export type { BackupPlan };

/**
 * The pg_dump, pg_restore and psql a backup and a restore use. pg_dump
 * refuses a server of a later major version than its own ("server version
 * mismatch"), and pg_restore reads only archives of a pg_dump no newer than
 * itself, so all three come from one place, chosen in this order:
 *   1. backup.pgBinDir (or PGCONVOY_PG_BIN_DIR);
 *   2. /usr/lib/postgresql/<server major>/bin, where Debian and Ubuntu's
 *      postgresql-client-<major> packages put them, if it exists;
 *   3. PATH.
 */
export interface PgTools {
  /** Where they came from, for messages. */
  source: 'backup.pgBinDir' | 'server-major' | 'PATH';
  /** Their directory; null for PATH. */
  dir: string | null;
  pgDump: string;
  pgRestore: string;
  psql: string;
}

/** The tools on PATH: what a caller that knows no server version uses. */
export const pathTools: PgTools = { source: 'PATH', dir: null, pgDump: 'pg_dump', pgRestore: 'pg_restore', psql: 'psql' };

/** The major version of a server_version_num (150020 → 15, 90624 → 9). */
export function serverMajor(versionNum: number): number {
  return versionNum >= 100_000 ? Math.floor(versionNum / 10_000) : Math.floor(versionNum / 10_000) + (Math.floor(versionNum / 100) % 100) / 10;
}

/** Picks the tools for a server of this major version; `exists` is the file system's, replaceable in tests. */
export function pgToolsFor(major: number, pgBinDir: string | undefined, exists: (path: string) => boolean = existsSync): PgTools {
  if (pgBinDir !== undefined) {
    // psql only replays the restore's SQL: one of any version will do when the directory has none.
    const psql = join(pgBinDir, 'psql');
    return { source: 'backup.pgBinDir', dir: pgBinDir, pgDump: join(pgBinDir, 'pg_dump'), pgRestore: join(pgBinDir, 'pg_restore'), psql: exists(psql) ? psql : 'psql' };
  }
  const packaged = `/usr/lib/postgresql/${major}/bin`;
  if (exists(join(packaged, 'pg_dump'))) {
    const psql = join(packaged, 'psql');
    return { source: 'server-major', dir: packaged, pgDump: join(packaged, 'pg_dump'), pgRestore: join(packaged, 'pg_restore'), psql: exists(psql) ? psql : 'psql' };
  }
  return pathTools;
}

/** The backup tools cannot serve this server: nothing was changed, and retrying cannot help. */
export class BackupToolMismatchError extends PgconvoyError {
  readonly type = 'BackupToolMismatch';
}

/** `pg_dump --version` → "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"; the major version from it. */
export function parseToolVersion(output: string): { text: string; major: number } | undefined {
  const match = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(output);
  if (!match) return undefined;
  const first = Number(match[1]);
  // Before 10 the major version had two parts (9.6).
  const major = first >= 10 ? first : Number(`${first}.${match[2] ?? 0}`);
  return { text: output.trim(), major };
}

const run = promisify(execFile);

/**
 * What `--version` said, per binary as it is on disk (path, inode, size,
 * modification time): a run asks at its plan and again at its backup, and
 * starting a process from a worker costs tens of milliseconds. A binary
 * replaced or upgraded in place is asked again; a bare name (found on PATH)
 * is asked every time.
 */
const versions = new Map<string, { text: string; major: number }>();

function onDisk(path: string): string | undefined {
  if (!path.includes('/')) return undefined;
  try {
    const s = statSync(path);
    return `${path}\0${s.ino}\0${s.size}\0${s.mtimeMs}`;
  } catch {
    return undefined;
  }
}

async function versionOf(path: string): Promise<{ text: string; major: number } | { error: string }> {
  const key = onDisk(path);
  const known = key === undefined ? undefined : versions.get(key);
  if (known) return known;
  const found = await askVersion(path);
  if (key !== undefined && !('error' in found)) versions.set(key, found);
  return found;
}

async function askVersion(path: string): Promise<{ text: string; major: number } | { error: string }> {
  try {
    const { stdout } = await run(path, ['--version'], { env: { PATH: process.env.PATH ?? '' }, timeout: 10_000 });
    return parseToolVersion(stdout) ?? { error: `${path} --version said "${stdout.trim()}", which names no PostgreSQL version` };
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    return { error: e.code === 'ENOENT' ? `${path} not found${path.includes('/') ? '' : ' on PATH'}` : `${path} --version failed: ${e.message}` };
  }
}

export interface ToolCheck {
  pgDump: string;
  pgRestore: string;
}

/**
 * Proves pg_dump and pg_restore can serve this server before anything is
 * changed: both run, and neither is of an older major version than the
 * server. The error names the server's version, what was found where, and the
 * settings that fix it.
 */
export async function checkPgTools(tools: PgTools, server: { alias: string; version: string; versionNum: number }): Promise<ToolCheck> {
  const major = serverMajor(server.versionNum);
  const [dump, restore] = await Promise.all([versionOf(tools.pgDump), versionOf(tools.pgRestore)]);
  const problems: string[] = [];
  for (const [name, found] of [
    ['pg_dump', dump],
    ['pg_restore', restore],
  ] as const) {
    if ('error' in found) problems.push(found.error);
    else if (found.major < major) problems.push(`${name} is ${found.text} (${name === 'pg_dump' ? tools.pgDump : tools.pgRestore}), older than the server`);
  }
  if (problems.length > 0) {
    const chosen =
      tools.source === 'backup.pgBinDir'
        ? `from backup.pgBinDir / PGCONVOY_PG_BIN_DIR (${tools.dir})`
        : tools.source === 'server-major'
          ? `from ${tools.dir}`
          : `from PATH (no backup.pgBinDir set, no /usr/lib/postgresql/${major}/bin)`;
    throw new BackupToolMismatchError(
      `cannot back up "${server.alias}": the server is PostgreSQL ${server.version} and the backup tools ${chosen} cannot serve it: ${problems.join('; ')}. ` +
        `Install PostgreSQL ${major} client tools (for example postgresql-client-${major}) and set backup.pgBinDir or PGCONVOY_PG_BIN_DIR to their bin directory, ` +
        `or set backup.scope to "none" with a backup.reason to migrate without a backup. Nothing was changed.`,
      { db: server.alias, serverVersion: server.version, source: tools.source, dir: tools.dir, problems },
    );
  }
  return { pgDump: (dump as { text: string }).text, pgRestore: (restore as { text: string }).text };
}


/** Any client that runs a query (a pg.Client). */
interface Queryable {
  query<R extends Record<string, unknown>>(sql: string): Promise<{ rows: R[] }>;
}

/** The server's version, and the tools chosen for it. */
export async function backupToolsFor(client: Queryable, alias: string, pgBinDir: string | undefined): Promise<{ server: { alias: string; version: string; versionNum: number }; tools: PgTools }> {
  const row = (await client.query<{ version: string; num: string }>(`SELECT current_setting('server_version') AS version, current_setting('server_version_num') AS num`)).rows[0]!;
  const server = { alias, version: row.version, versionNum: Number(row.num) };
  return { server, tools: pgToolsFor(serverMajor(server.versionNum), pgBinDir) };
}

/** The plan's backup line: no backup and why, or the pg_dump that will take it, or why none can be taken. */
export async function planBackup(client: Queryable, alias: string, settings: { scope: BackupPlan['scope']; reason?: string; pgBinDir?: string }): Promise<BackupPlan> {
  const { server, tools } = await backupToolsFor(client, alias, settings.pgBinDir);
  if (settings.scope === 'none') return { scope: 'none', reason: settings.reason ?? '', serverVersion: server.version };
  try {
    const found = await checkPgTools(tools, server);
    return { scope: settings.scope, serverVersion: server.version, pgDump: `${found.pgDump} (${tools.pgDump})` };
  } catch (error) {
    if (error instanceof BackupToolMismatchError) return { scope: settings.scope, serverVersion: server.version, problem: error.message };
    throw error;
  }
}
