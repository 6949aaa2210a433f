import { ManifestChangedError } from '../core/errors';
import type { PreparedMigration } from '../core/prepare';
import type { Version } from '../core/version';
import type { Config } from '../config/config';
import { cachedMigrationSet, cachedSetFor } from '../source/set-cache';
import type { VersionHooks } from '../db/hooks';
import { cancellable, type RunDeps } from './deps';
import { versionHooksOf } from './hooks';

/**
 * The prepared (parsed) migrations of `versions`, from the set the run was
 * planned with, and the set's hooks that run around each version: refused if
 * the files are no longer that set. Read, hashed and parsed once per worker
 * while the files stay as they are; each step looks again only at its own
 * versions' files and the hooks (src/source/set-cache.ts).
 */
export async function pinnedVersions(deps: RunDeps, migrationsDir: string, digest: string, versions: Version[]): Promise<{ migrations: PreparedMigration[]; hooks: VersionHooks }> {
  const { set, prepare } = await cachedSetFor(migrationsDir, versions, deps.config.files);
  if (set.digest !== digest) throw new ManifestChangedError(migrationsDir, digest, set.digest);
  const prepared = await prepare(versions, cancellable(deps));
  const migrations = versions.map((v) => {
    const m = prepared.get(v);
    if (m === undefined) throw new ManifestChangedError(migrationsDir, digest, set.digest);
    return m;
  });
  return { migrations, hooks: await versionHooksOf(set, migrationsDir) };
}

/** Reads, hashes and parses the set into this process's cache ahead of the activities that need it (an embedded command's worker). */
export async function warmSet(config: Config, migrationsDir: string): Promise<void> {
  const { prepare } = await cachedMigrationSet(migrationsDir, config.files);
  await prepare();
}
