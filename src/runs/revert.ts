import type { FinishRevertCompensationInput, ProveRevertInput, RevertPlan, RevertStep, RevertVersionInput, UndoResult } from '../contracts';
import { planBackup } from '../backup/pg-tools';
import { analyzeUndo, highestLevel } from '../core/risk';
import { compareVersions, type Version } from '../core/version';
import { withClient, withTransaction } from '../db/connection';
import { fingerprint, hashParts } from '../db/fingerprint';
import { checkFence } from '../db/lease';
import { readLedgerState } from '../db/ledger';
import { recordedSchema, undoMigration, unmarkUndone } from '../db/undo';
import { cachedMigrationSet } from '../source/set-cache';
import { cancellable, runIdOf, targetOf, workflowIdOf, type RunDeps } from './deps';
import { pinnedVersions } from './files';
import { VerificationFailedError } from './verify';

/**
 * What `pgconvoy undo --to <version>` or `--steps <n>` would undo, newest
 * first, with each undo script's risk; what the schema must be afterwards
 * (the fingerprint the ledger recorded after the version it lands on); and
 * every reason it must not run: a version without an undo script, a file
 * changed since it was applied, nothing to prove the result against.
 */
export async function planRevert(deps: RunDeps, input: { db: string; migrationsDir: string; to?: Version; steps?: number }): Promise<RevertPlan> {
  const { config } = deps;
  const { set, prepare } = await cachedMigrationSet(input.migrationsDir, config.files);
  const prepared = await prepare(undefined, cancellable(deps));
  return withClient(targetOf(config, input.db), async (client) => {
    const ledger = await readLedgerState(client);
    const applied = [...ledger.applied].sort((a, b) => compareVersions(a.version, b.version));
    const problems: string[] = [];
    let chosen = applied;
    if (input.steps !== undefined) {
      if (input.steps > applied.length) problems.push(`--steps ${input.steps}: only ${applied.length} version${applied.length === 1 ? ' is' : 's are'} applied`);
      chosen = applied.slice(Math.max(0, applied.length - input.steps));
    } else if (input.to !== undefined) {
      const to = input.to;
      if (!applied.some((a) => a.version === to)) problems.push(`--to ${to}: version ${to} is not applied (applied: ${applied.map((a) => a.version).join(', ') || 'none'})`);
      chosen = applied.filter((a) => compareVersions(a.version, to) > 0);
    }
    const below = applied.filter((a) => !chosen.includes(a)).at(-1);
    const versionAfter = below?.version ?? ledger.baseline ?? null;
    const risks = analyzeUndo(
      set.migrations.map((m) => {
        const p = prepared.get(m.version)!;
        return { version: m.version, file: p.forward.file, script: p.forward.script, ...(p.undo ? { undo: { version: m.version, file: p.undo.file, script: p.undo.script } } : {}) };
      }),
    );
    const steps: RevertStep[] = [...chosen].reverse().map((a) => {
      const m = set.migrations.find((x) => x.version === a.version);
      if (!m) problems.push(`V${a.version} (${a.description}) is applied but its file is not in ${input.migrationsDir}`);
      else if (!m.undo) problems.push(`V${a.version} (${m.forward.file}) has no undo script (U${a.version}__${m.description}.sql)`);
      else if (m.forward.checksum !== a.checksum) problems.push(`V${a.version} (${m.forward.file}) changed since it was applied (checksum ${a.checksum.slice(0, 12)} in the ledger, ${m.forward.checksum.slice(0, 12)} on disk)`);
      const findings = risks.get(a.version) ?? [];
      return { version: a.version, description: a.description, undoFile: m?.undo?.file ?? null, risk: { level: highestLevel(findings), findings } };
    });
    const expectedFingerprint = steps.length === 0 ? null : await expectedAfter(client, below?.version, chosen[0]!.version);
    if (steps.length > 0 && expectedFingerprint === null) {
      problems.push(`the ledger recorded no schema to prove the undo against: neither a fingerprint after V${versionAfter ?? '(none)'} nor the schema before V${chosen[0]!.version}`);
    }
    return {
      db: input.db,
      manifestDigest: set.digest,
      versionBefore: applied.at(-1)?.version ?? ledger.baseline ?? null,
      versionAfter,
      steps,
      expectedFingerprint,
      problems,
      backup: await planBackup(client, input.db, config.backup),
    };
  });
}

/** The fingerprint the ledger recorded after the version the undo lands on; or, when it lands on none, the schema recorded before the lowest undone version. */
async function expectedAfter(client: Parameters<typeof recordedSchema>[0], landsOn: Version | undefined, lowestUndone: Version): Promise<string | null> {
  const after = landsOn === undefined ? undefined : await recordedSchema(client, landsOn);
  if (after?.fingerprint) return after.fingerprint;
  const before = (await recordedSchema(client, lowestUndone))?.schemaBefore;
  return before ? hashParts(before) : null;
}

/** Undoes one applied version (whatever run applied it), proves the schema is as before it, and marks it undone. */
export async function revertVersion(deps: RunDeps, input: RevertVersionInput): Promise<UndoResult> {
  const { migrations: [m], hooks } = await pinnedVersions(deps, input.migrationsDir, input.manifestDigest, [input.version]);
  const result = await withClient(targetOf(deps.config, input.db), (client) => undoMigration(client, m!, runIdOf(deps), { alias: input.db, token: input.leaseToken }, { revert: true, hooks, ...workflowIdOf(deps) }), cancellable(deps));
  deps.logger.info({ event: result.status === 'undone' ? 'undo.undone' : 'undo.skipped', db: input.db, version: input.version, file: m!.undo?.file });
  return result;
}

/** The proof: after the undo, the schema's fingerprint is the one the ledger recorded. */
export async function proveRevert(deps: RunDeps, input: ProveRevertInput): Promise<{ fingerprint: string }> {
  return withClient(targetOf(deps.config, input.db), async (client) => {
    const now = (await fingerprint(client)).sha256;
    if (now !== input.expectedFingerprint) {
      const at = input.versionAfter === null ? 'before the first undone version' : `after V${input.versionAfter}`;
      throw new VerificationFailedError(input.db, [`after the undo the schema fingerprint is ${now.slice(0, 12)}, not ${input.expectedFingerprint.slice(0, 12)} as the ledger recorded ${at}`]);
    }
    deps.logger.info({ event: 'undo.proven', db: input.db, fingerprint: now });
    return { fingerprint: now };
  });
}

/** After a failed undo was restored from its backup: the schema must be as before it, and the versions it marked undone are applied again. */
export async function finishRevertCompensation(deps: RunDeps, input: FinishRevertCompensationInput): Promise<{ reapplied: Version[] }> {
  return withClient(targetOf(deps.config, input.db), async (client) => {
    const now = await fingerprint(client);
    if (now.sha256 !== input.fingerprint) {
      throw new VerificationFailedError(input.db, [`after the restore the schema fingerprint is ${now.sha256.slice(0, 12)}, not ${input.fingerprint.slice(0, 12)} as before the undo`]);
    }
    const reapplied = await withTransaction(client, async () => {
      await checkFence(client, { alias: input.db, token: input.leaseToken });
      return unmarkUndone(client, runIdOf(deps));
    });
    deps.logger.warn({ event: 'undo.compensated', db: input.db, reapplied });
    return { reapplied };
  });
}
