import { join } from 'node:path';
import type { UserCheck } from '../db/verify';
import { InvalidMigrationSetError } from '../core/errors';
import type { FileLimits } from '../core/file-limits';
import { decodeSql } from '../core/migration-set';
import { readSqlFiles, type SourceFs } from './read-sql-files';

/**
 * The user checks in `<migrations>/checks/*.sql`, by file name; none when
 * the folder does not exist. Read with the same rules as migrations (regular
 * files only, size and time limits, UTF-8 without NUL bytes).
 */
export async function readChecks(migrationsDir: string, limits?: FileLimits, fs?: SourceFs): Promise<UserCheck[]> {
  const { files, problems } = await readSqlFiles(migrationsDir, join(migrationsDir, 'checks'), {
    prefix: 'checks/',
    missingIsEmpty: true,
    ...(limits ? { limits } : {}),
    ...(fs ? { fs } : {}),
  });
  const checks: UserCheck[] = [];
  for (const file of files) {
    if (!file.name.endsWith('.sql')) {
      problems.push({ file: file.name, message: `the extension must be lowercase ".sql", got "${file.name.slice(-4)}"; rename the file` });
      continue;
    }
    const decoded = decodeSql(file.content); // as for migrations: UTF-8 (a byte order mark dropped), no NUL byte
    if (decoded.ok) checks.push({ file: file.name, sql: decoded.sql });
    else problems.push({ file: file.name, message: decoded.problem });
  }
  if (problems.length > 0) throw new InvalidMigrationSetError(migrationsDir, problems.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0)));
  return checks.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}

