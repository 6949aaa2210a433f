import { ManifestChangedError } from '../core/errors';
import type { PreparedMigration } from '../core/prepare';
import type { Version } from '../core/version';
import type { Config } from '../config/config';
import { cachedMigrationSet, cachedSetFor } from '../source/set-cache';
import { cancellable, type RunDeps } from './deps';

/**
 * The prepared (parsed) migrations of `versions`, from the set the run was
 * planned with: refused if the files are no longer that set. Read, hashed and
 * parsed once per worker while the files stay as they are; each step looks
 * again only at its own versions' files (src/source/set-cache.ts).
 */
export async function pinnedMigrations(deps: RunDeps, migrationsDir: string, digest: string, versions: Version[]): Promise<PreparedMigration[]> {
  const { set, prepare } = await cachedSetFor(migrationsDir, versions, deps.config.files);
  if (set.digest !== digest) throw new ManifestChangedError(migrationsDir, digest, set.digest);
  const prepared = await prepare(versions, cancellable(deps));
  return versions.map((v) => {
    const m = prepared.get(v);
    if (m === undefined) throw new ManifestChangedError(migrationsDir, digest, set.digest);
    return m;
  });
}

/** Reads, hashes and parses the set into this process's cache ahead of the activities that need it (an embedded command's worker). */
export async function warmSet(config: Config, migrationsDir: string): Promise<void> {
  const { prepare } = await cachedMigrationSet(migrationsDir, config.files);
  await prepare();
}
