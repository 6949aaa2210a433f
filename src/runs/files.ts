import type { Config } from '../config/config';
import { ManifestChangedError } from '../core/errors';
import type { MigrationSet } from '../core/migration-set';
import type { PreparedMigration } from '../core/prepare';
import type { Version } from '../core/version';
import { prepareOffThread } from '../source/prepare-off-thread';
import { readMigrationSet } from '../source/read-migration-set';
import { cancellable, type RunDeps } from './deps';

/** Re-reads the files and refuses if they are not the ones the run was planned with. */
export async function pinnedSet(config: Config, migrationsDir: string, digest: string): Promise<MigrationSet> {
  const set = await readMigrationSet(migrationsDir, config.files);
  if (set.digest !== digest) throw new ManifestChangedError(migrationsDir, digest, set.digest);
  return set;
}

/** The prepared (parsed) migrations of `versions`, from the set the run was planned with. */
export async function pinnedMigrations(deps: RunDeps, migrationsDir: string, digest: string, versions: Version[]): Promise<PreparedMigration[]> {
  const set = await pinnedSet(deps.config, migrationsDir, digest);
  const prepared = await prepareOffThread(set, new Set(versions), cancellable(deps));
  return versions.map((v) => {
    const m = prepared.get(v);
    if (m === undefined) throw new ManifestChangedError(migrationsDir, digest, set.digest);
    return m;
  });
}
