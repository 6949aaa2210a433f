import { migrationChecksum, sha256Hex } from './checksum';
import { InvalidMigrationSetError, type SetProblem } from './errors';
import { parseMigrationFileName } from './file-name';
import { compareVersions, type Version } from './version';

export interface SourceFile {
  /** File name relative to the migration directory. */
  name: string;
  content: Buffer;
}

export interface MigrationScript {
  file: string;
  checksum: string;
  sql: string;
}

export interface Migration {
  version: Version;
  description: string;
  forward: MigrationScript;
  undo?: MigrationScript;
}

/** What pins a run: no SQL text, safe to carry in workflow history. */
export interface ManifestEntry {
  version: Version;
  description: string;
  checksum: string;
  undoChecksum: string | null;
}

export interface MigrationSet {
  directory: string;
  migrations: Migration[];
  manifest: ManifestEntry[];
  digest: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Builds a migration set from the files of one directory. Collects every
 * problem before failing so one run of `validate` shows them all.
 */
export function buildMigrationSet(directory: string, files: SourceFile[]): MigrationSet {
  const problems: SetProblem[] = [];
  const forwards = new Map<Version, Migration>();
  const undos = new Map<Version, MigrationScript>();

  for (const file of [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const parsed = parseMigrationFileName(file.name);
    if (!parsed.ok) {
      problems.push({ file: file.name, message: parsed.reason });
      continue;
    }
    let sql: string;
    try {
      sql = utf8.decode(file.content);
    } catch {
      problems.push({ file: file.name, message: 'file is not valid UTF-8' });
      continue;
    }
    const script: MigrationScript = { file: file.name, checksum: migrationChecksum(file.content), sql };
    if (parsed.kind === 'forward') {
      const existing = forwards.get(parsed.version);
      if (existing) {
        problems.push({ file: file.name, message: `duplicate version ${parsed.version}: also in ${existing.forward.file}` });
        continue;
      }
      forwards.set(parsed.version, { version: parsed.version, description: parsed.description, forward: script });
    } else {
      const existing = undos.get(parsed.version);
      if (existing) {
        problems.push({ file: file.name, message: `duplicate undo for version ${parsed.version}: also in ${existing.file}` });
        continue;
      }
      undos.set(parsed.version, script);
    }
  }

  for (const [version, undo] of undos) {
    const migration = forwards.get(version);
    if (!migration) {
      problems.push({ file: undo.file, message: `undo script for version ${version} has no forward migration V${version}__*.sql` });
      continue;
    }
    migration.undo = undo;
  }

  if (problems.length > 0) throw new InvalidMigrationSetError(directory, problems);

  const migrations = [...forwards.values()].sort((a, b) => compareVersions(a.version, b.version));
  const manifest = migrations.map(toManifestEntry);
  return { directory, migrations, manifest, digest: manifestDigest(manifest) };
}

export function toManifestEntry(m: Migration): ManifestEntry {
  return { version: m.version, description: m.description, checksum: m.forward.checksum, undoChecksum: m.undo?.checksum ?? null };
}

export function manifestDigest(manifest: ManifestEntry[]): string {
  return sha256Hex(JSON.stringify(manifest.map((e) => [e.version, e.description, e.checksum, e.undoChecksum])));
}
