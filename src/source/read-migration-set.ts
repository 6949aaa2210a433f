import { join } from 'node:path';
import { InvalidMigrationSetError } from '../core/errors';
import type { FileLimits } from '../core/file-limits';
import { buildMigrationSet, type MigrationSet } from '../core/migration-set';
import { readSqlFiles, type SourceFs } from './read-sql-files';

/**
 * Reads the `.sql` files directly inside `directory` (sub-folders and other
 * files such as a README are not migrations) and builds the migration set;
 * the checks in `checks/` and the SQL callbacks in `hooks/` count in its digest. Every unreadable,
 * non-regular or oversized file is reported, by name; the read as a whole
 * has a time limit.
 */
export async function readMigrationSet(directory: string, limits?: FileLimits, fs?: SourceFs): Promise<MigrationSet> {
  const options = { ...(limits ? { limits } : {}), ...(fs ? { fs } : {}) };
  const { files, problems } = await readSqlFiles(directory, directory, options);
  const checks = await readSqlFiles(directory, join(directory, 'checks'), { ...options, prefix: 'checks/', missingIsEmpty: true });
  const hooks = await readSqlFiles(directory, join(directory, 'hooks'), { ...options, prefix: 'hooks/', missingIsEmpty: true });
  problems.push(...checks.problems, ...hooks.problems);
  if (problems.length === 0) return buildMigrationSet(directory, files, checks.files, hooks.files);
  // Report the files that could not be read together with what is wrong with the others.
  try {
    buildMigrationSet(directory, files);
  } catch (error) {
    if (!(error instanceof InvalidMigrationSetError)) throw error;
    problems.push(...error.problems);
  }
  throw new InvalidMigrationSetError(directory, problems.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0)));
}
