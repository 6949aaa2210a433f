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
  /** Name, size, inode, mtime and ctime of every `.sql` file in the set, its checks and its hooks, as read. */
  signature: string;
  /** The same, file by file (name to size, inode, mtime and ctime). */
  files: Map<string, string>;
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
 * file in it (or in checks/ or hooks/) was added, removed, renamed or written. A write
 * always moves a file's ctime, which nobody can set back, so an edit between
 * two steps is read again (and a run pinned to the earlier digest refuses it,
 * as before). A directory that cannot be listed in time is read the long way,
 * which reports why.
 */
export async function cachedMigrationSet(directory: string, limits: FileLimits = defaultFileLimits): Promise<CachedSet> {
  const read = await Promise.race([signatureOf(directory), new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), limits.readTimeoutMs).unref())]).catch(() => undefined);
  let entry = read === undefined ? undefined : entries.get(directory);
  if (entry === undefined || entry.signature !== read?.signature) {
    const set = await readMigrationSet(directory, limits);
    entry = { signature: read?.signature ?? '', files: read?.files ?? new Map<string, string>(), set, prepared: new Map() };
    if (read !== undefined) entries.set(directory, entry);
  }
  return cached(entry);
}

/**
 * The set, for a step that needs only `versions` of it (applying or undoing
 * them): when this worker has read the set, only those versions' files are
 * looked at again (not every file of the set for every migration, which made
 * a run's cost grow with the square of its size), and the hook files, which
 * run around each step; any of them changed, gone, added or unknown reads
 * the whole set the long way.
 */
export async function cachedSetFor(directory: string, versions: Version[], limits: FileLimits = defaultFileLimits): Promise<CachedSet> {
  const entry = entries.get(directory);
  if (entry !== undefined) {
    const byVersion = new Map(entry.set.migrations.map((m) => [m.version, m]));
    const known = versions.map((v) => byVersion.get(v));
    // The hooks run around every step: theirs are looked at too, and a hook file added or removed is a change.
    const hooks = [...entry.files.keys()].filter((name) => name.startsWith('hooks/')).sort();
    const hooksNow = await readdir(join(directory, 'hooks')).then(
      (names) => names.filter((n) => sqlExtension.test(n)).map((n) => `hooks/${n}`).sort(),
      () => [],
    );
    if (known.every((m) => m !== undefined) && hooksNow.join('\n') === hooks.join('\n')) {
      const names = [...known.flatMap((m) => [m.forward.file, ...(m.undo ? [m.undo.file] : [])]), ...hooks];
      const same = await Promise.all(names.map(async (name) => (await statOf(join(directory, name)).catch(() => null)) === entry.files.get(name)));
      if (same.every(Boolean)) return cached(entry);
    }
  }
  return cachedMigrationSet(directory, limits);
}

function cached(found: Entry): CachedSet {
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

async function statOf(path: string): Promise<string> {
  const s = await stat(path, { bigint: true });
  return `${s.size}:${s.ino}:${s.mtimeNs}:${s.ctimeNs}`;
}

async function signatureOf(directory: string): Promise<{ signature: string; files: Map<string, string> }> {
  const files = new Map<string, string>();
  for (const dir of [directory, join(directory, 'checks'), join(directory, 'hooks')]) {
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => sqlExtension.test(n)).sort();
    } catch (error) {
      if (dir !== directory && (error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    const stats = await Promise.all(names.map((n) => statOf(join(dir, n))));
    const prefix = dir === directory ? '' : `${dir.slice(directory.length + 1)}/`;
    names.forEach((n, i) => files.set(`${prefix}${n}`, stats[i]!));
  }
  return { signature: [...files].map(([name, s]) => `${name}:${s}`).join('\n'), files };
}
