import { TargetBeyondSetError } from './errors';
import type { ManifestEntry } from './migration-set';
import { compareVersions, type Version } from './version';

/** A row of pgconvoy.history that counts as "in the database". */
export interface AppliedEntry {
  version: Version;
  description: string;
  checksum: string;
  status: 'applied';
  finishedAt: string;
}

export interface Divergence {
  version: Version;
  description: string;
  appliedChecksum: string;
  fileChecksum: string;
}

export interface Plan {
  /** Migrations to run, in order. */
  pending: ManifestEntry[];
  /** Applied in the database and present, unchanged, on disk. */
  applied: AppliedEntry[];
  /** Applied, but the file on disk now has a different checksum. */
  divergent: Divergence[];
  /** Applied, but no longer on disk. */
  missing: AppliedEntry[];
  /** Pending, yet lower than the highest applied version. */
  outOfOrder: ManifestEntry[];
}

export interface PlanOptions {
  /** Stop at this version (inclusive). */
  target?: Version;
  /** Versions up to this one were in the database before pgconvoy (`baseline`). */
  baseline?: Version | null;
}

/** Refuses a target beyond the set's last version (one between two versions is fine: the run stops below it). */
export function checkTarget(directory: string, manifest: ManifestEntry[], target: Version): void {
  const highest = manifest.reduce<Version | null>((max, e) => (max === null || compareVersions(e.version, max) > 0 ? e.version : max), null);
  if (highest === null || compareVersions(target, highest) > 0) throw new TargetBeyondSetError(directory, target, highest);
}

/**
 * Compares the manifest with the ledger. Pure: the caller decides what a
 * divergent, missing or out-of-order entry means for the run.
 */
export function planMigrations(manifest: ManifestEntry[], ledger: AppliedEntry[], options: PlanOptions = {}): Plan {
  const onDisk = new Map(manifest.map((e) => [e.version, e]));
  const inLedger = new Map(ledger.map((e) => [e.version, e]));
  const applied: AppliedEntry[] = [];
  const divergent: Divergence[] = [];
  const missing: AppliedEntry[] = [];

  for (const entry of [...ledger].sort((a, b) => compareVersions(a.version, b.version))) {
    const file = onDisk.get(entry.version);
    if (!file) missing.push(entry);
    else if (file.checksum !== entry.checksum) {
      divergent.push({ version: entry.version, description: file.description, appliedChecksum: entry.checksum, fileChecksum: file.checksum });
    } else applied.push(entry);
  }

  const baseline = options.baseline ?? undefined;
  const highestApplied = ledger.reduce<Version | undefined>(
    (max, e) => (max === undefined || compareVersions(e.version, max) > 0 ? e.version : max),
    baseline,
  );
  const pending = manifest.filter(
    (e) =>
      !inLedger.has(e.version) &&
      (baseline === undefined || compareVersions(e.version, baseline) > 0) &&
      (options.target === undefined || compareVersions(e.version, options.target) <= 0),
  );
  const outOfOrder = highestApplied === undefined ? [] : pending.filter((e) => compareVersions(e.version, highestApplied) < 0);
  return { pending, applied, divergent, missing, outOfOrder };
}

/**
 * Why a plan must not run, one line per offending version; empty when it may.
 * Like Flyway's validate: a changed or vanished applied file, or a pending
 * file older than what is applied, means the set on disk is not the history
 * the database went through.
 */
export function integrityProblems(
  plan: Plan,
  fileOf: (version: Version) => string | undefined,
  options: { allowOutOfOrder?: boolean } = {},
): string[] {
  const problems: string[] = [];
  for (const d of plan.divergent) {
    problems.push(
      `version ${d.version} (${fileOf(d.version) ?? d.description}) was applied with checksum ${d.appliedChecksum.slice(0, 12)} ` +
        `but the file now has ${d.fileChecksum.slice(0, 12)}: applied migrations must not be edited`,
    );
  }
  for (const m of plan.missing) {
    problems.push(`version ${m.version} (${m.description}) is applied in the database but has no file on disk`);
  }
  if (!options.allowOutOfOrder) {
    for (const o of plan.outOfOrder) {
      problems.push(
        `version ${o.version} (${fileOf(o.version) ?? o.description}) is pending but lower than the highest applied version; ` +
          'rename it to a higher version, or allow it with --out-of-order',
      );
    }
  }
  return problems;
}
