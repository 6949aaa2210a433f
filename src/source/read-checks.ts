import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { UserCheck } from '../db/verify';

/** The user checks in `<migrations>/checks/*.sql`, by file name; none when the folder does not exist. */
export async function readChecks(migrationsDir: string): Promise<UserCheck[]> {
  const dir = join(migrationsDir, 'checks');
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.sql')).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return Promise.all(names.map(async (name) => ({ file: `checks/${name}`, sql: await readFile(join(dir, name), 'utf8') })));
}
