import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultFileLimits, type FileLimits } from '../core/file-limits';
import type { MigrationSet } from '../core/migration-set';
import type { PreparedMigration, PrepareOptions } from '../core/prepare';
import type { Version } from '../core/version';
import { prepareOffThread } from './prepare-off-thread';
import { readMigrationSet } from './read-migration-set';
import { sqlExtension } from './read-sql-files';

interface Entry {
  /** Name, size, inode, mtime and ctime of every `.sql` file in the set and its checks, as read. */
  signature: string;
  set: MigrationSet;
  prepared: Map<Version, PreparedMigration>;
}

/** The last set read from each directory on this worker. */
const entries = new Map<string, Entry>();

export interface CachedSet {
  set: MigrationSet;
  /** The parsed migrations of `versions` (default: all), parsed once. */
  prepare: (versions?: Version[], options?: PrepareOptions) => Promise<Map<Version, PreparedMigration>>;
}

/**
 * The migration set in `directory`, read, hashed and parsed once on this
 * worker instead of by every step of every run: kept as long as no `.sql`
 * file in it (or in checks/) was added, removed, renamed or written. A write
 * always moves a file's ctime, which nobody can set back, so an edit between
 * two steps is read again (and a run pinned to the earlier digest refuses it,
 * as before). A directory that cannot be listed in time is read the long way,
 * which reports why.
 */
export async function cachedMigrationSet(directory: string, limits: FileLimits = defaultFileLimits): Promise<CachedSet> {
  const signature = await Promise.race([signatureOf(directory), new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), limits.readTimeoutMs).unref())]).catch(() => undefined);
  let entry = signature === undefined ? undefined : entries.get(directory);
  if (entry === undefined || entry.signature !== signature) {
    const set = await readMigrationSet(directory, limits);
    entry = { signature: signature ?? '', set, prepared: new Map() };
    if (signature !== undefined) entries.set(directory, entry);
  }
  const found = entry;
  return {
    set: found.set,
    prepare: async (versions, options = {}) => {
      const wanted = versions ?? found.set.migrations.map((m) => m.version);
      const missing = wanted.filter((v) => !found.prepared.has(v));
      if (missing.length > 0) for (const [v, m] of await prepareOffThread(found.set, new Set(missing), options)) found.prepared.set(v, m);
      return new Map(wanted.flatMap((v) => (found.prepared.has(v) ? [[v, found.prepared.get(v)!] as const] : [])));
    },
  };
}

async function signatureOf(directory: string): Promise<string> {
  const parts: string[] = [];
  for (const dir of [directory, join(directory, 'checks')]) {
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => sqlExtension.test(n)).sort();
    } catch (error) {
      if (dir !== directory && (error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    const stats = await Promise.all(names.map((n) => stat(join(dir, n), { bigint: true })));
    names.forEach((n, i) => {
      const s = stats[i]!;
      parts.push(`${dir === directory ? '' : 'checks/'}${n}:${s.size}:${s.ino}:${s.mtimeNs}:${s.ctimeNs}`);
    });
  }
  return parts.join('\n');
}
