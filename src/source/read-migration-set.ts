import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidMigrationSetError, type SetProblem } from '../core/errors';
import { buildMigrationSet, type MigrationSet, type SourceFile } from '../core/migration-set';

/**
 * Reads the `.sql` files directly inside `directory` (sub-folders such as
 * `checks/` and other files such as a README are not migrations) and builds
 * the migration set. Every unreadable file is reported, by name.
 */
export async function readMigrationSet(directory: string): Promise<MigrationSet> {
  let entries;
  try {
    entries = await readdir(directory, { withFileTypes: true });
  } catch (error) {
    throw new InvalidMigrationSetError(directory, [{ file: directory, message: `cannot read the migration directory: ${describe(error)}` }]);
  }
  const problems: SetProblem[] = [];
  const files: SourceFile[] = [];
  for (const entry of entries) {
    if (entry.isDirectory() || !entry.name.endsWith('.sql')) continue;
    try {
      files.push({ name: entry.name, content: await readFile(join(directory, entry.name)) });
    } catch (error) {
      problems.push({ file: entry.name, message: `cannot read file: ${describe(error)}` });
    }
  }
  if (problems.length > 0) throw new InvalidMigrationSetError(directory, problems);
  return buildMigrationSet(directory, files);
}

function describe(error: unknown): string {
  if (error instanceof Error && 'code' in error) return `${String(error.code)} (${error.message})`;
  return String(error);
}
