import { migrationChecksum, sha256Hex } from './checksum';
import { InvalidMigrationSetError, type SetProblem } from './errors';
import { parseMigrationFileName } from './file-name';
import { parseHookFileName, type HookScript } from './hooks';
import { lineAndColumnOfByte } from './statements';
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
  /** The user checks (`checks/*.sql`) by file name and checksum: part of what a run is pinned to. */
  checks: Array<{ file: string; checksum: string }>;
  /** The SQL callbacks (`hooks/*.sql`), by file name: part of what a run is pinned to. */
  hooks: HookScript[];
  /** Of the manifest, the checks and the hooks. */
  digest: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Builds a migration set from the files of one directory. Collects every
 * problem before failing so one run of `validate` shows them all.
 */
export function buildMigrationSet(directory: string, files: SourceFile[], checkFiles: SourceFile[] = [], hookFiles: SourceFile[] = []): MigrationSet {
  const problems: SetProblem[] = [];
  const hooks: HookScript[] = [];
  for (const file of hookFiles) {
    const parsed = parseHookFileName(file.name);
    const decoded = decodeSql(file.content);
    if (!parsed.ok) problems.push({ file: file.name, message: parsed.reason });
    else if (!decoded.ok) problems.push({ file: file.name, message: decoded.problem });
    else hooks.push({ file: file.name, event: parsed.event, description: parsed.description, checksum: migrationChecksum(file.content), sql: decoded.sql });
  }
  const forwards = new Map<Version, Migration>();
  const undos = new Map<Version, MigrationScript>();

  for (const file of [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const parsed = parseMigrationFileName(file.name);
    if (!parsed.ok) {
      problems.push({ file: file.name, message: parsed.reason });
      continue;
    }
    const decoded = decodeSql(file.content);
    if (!decoded.ok) {
      problems.push({ file: file.name, message: decoded.problem });
      continue;
    }
    const sql = decoded.sql;
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
  const checks = checkFiles.map((f) => ({ file: f.name, checksum: migrationChecksum(f.content) })).sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  hooks.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  return { directory, migrations, manifest, checks, hooks, digest: manifestDigest(manifest, checks, hooks) };
}

/**
 * A file's text, or why it cannot be one: it must be UTF-8, and it must not
 * hold a NUL byte (PostgreSQL's parser and protocol take text up to the
 * first NUL, so everything after it would silently not run).
 */
export function decodeSql(content: Buffer): { ok: true; sql: string } | { ok: false; problem: string } {
  let sql: string;
  try {
    sql = utf8.decode(content);
  } catch {
    return { ok: false, problem: 'file is not valid UTF-8' };
  }
  const nul = content.indexOf(0);
  if (nul !== -1) {
    const { line, column } = lineAndColumnOfByte(content, nul);
    return {
      ok: false,
      problem: `NUL byte at byte offset ${nul} (line ${line}, column ${column}); PostgreSQL cannot take a NUL byte in SQL text, and everything after it would be lost — remove it`,
    };
  }
  return { ok: true, sql };
}

export function toManifestEntry(m: Migration): ManifestEntry {
  return { version: m.version, description: m.description, checksum: m.forward.checksum, undoChecksum: m.undo?.checksum ?? null };
}

/** A set's digest: its manifest and, when it has any, its checks and hooks (a run verified by other checks, or with other hooks, is another run). */
export function manifestDigest(manifest: ManifestEntry[], checks: Array<{ file: string; checksum: string }> = [], hooks: Array<{ file: string; checksum: string }> = []): string {
  const entries = manifest.map((e) => [e.version, e.description, e.checksum, e.undoChecksum]);
  if (checks.length === 0 && hooks.length === 0) return sha256Hex(JSON.stringify(entries));
  return sha256Hex(JSON.stringify({ migrations: entries, ...(checks.length > 0 || hooks.length === 0 ? { checks: checks.map((c) => [c.file, c.checksum]) } : {}), ...(hooks.length > 0 ? { hooks: hooks.map((h) => [h.file, h.checksum]) } : {}) }));
}
