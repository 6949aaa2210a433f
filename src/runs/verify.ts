import type { FinishCompensationInput, RunStart, RunStateInput, VerifyInput } from '../contracts';
import { PgconvoyError } from '../core/errors';
import type { Version } from '../core/version';
import { withClient, withTransaction } from '../db/connection';
import { fingerprint, fingerprintOf, readCatalog } from '../db/fingerprint';
import { checkFence } from '../db/lease';
import { lastRecordedFingerprint, ledgerHighWater, markRolledBack } from '../db/ledger';
import { catalogProblems, runChecks } from '../db/verify';
import { sampleDatabase } from '../db/watch';
import { readChecks } from '../source/read-checks';
import { runIdOf, targetOf, type RunDeps } from './deps';

/** What the run left does not pass verification (new invalid objects, failing user checks, a schema other than the one it must be). */
export class VerificationFailedError extends PgconvoyError {
  readonly type = 'VerificationFailed';
  constructor(alias: string, problems: string[]) {
    super(`verification of "${alias}" failed:\n` + problems.map((p) => `  ${p}`).join('\n'), { db: alias, problems });
  }
}

/** The database before the run changes it: its schema's fingerprint, the problems it already had, the ledger's high-water mark. */
export async function beginRun(deps: RunDeps, input: RunStateInput): Promise<RunStart> {
  return withClient(targetOf(deps.config, input.db), async (client) => {
    const { snapshot, highWater } = await withTransaction(client, async () => ({ snapshot: await readCatalog(client), highWater: await ledgerHighWater(client) }), 'BEGIN READ ONLY');
    // The run's first migration starts from this catalog instead of reading it again.
    if (deps.execution) deps.catalogs?.seed(input.db, deps.execution.runId, { ledgerId: highWater, snapshot });
    const known = (await catalogProblems(client)).map((p) => p.subject);
    // What the watch measures the run's growth and WAL from (the backup's own WAL included).
    const { baseline } = await sampleDatabase(client);
    return { fingerprint: fingerprintOf(snapshot).sha256, knownProblems: known, ledgerHighWater: highWater, watchBaseline: baseline };
  });
}

/** After the last migration: no new invalid index or NOT VALID constraint, and every user check returns no rows. */
export async function verifyRun(deps: RunDeps, input: VerifyInput): Promise<{ fingerprint: string }> {
  const checks = await readChecks(input.migrationsDir, deps.config.files);
  return withClient(targetOf(deps.config, input.db), async (client) => {
    const known = new Set(input.knownProblems);
    const problems = [...(await catalogProblems(client)).filter((p) => !known.has(p.subject)), ...(await runChecks(client, checks))];
    if (problems.length > 0) throw new VerificationFailedError(input.db, problems.map((p) => p.message));
    deps.logger.info({ event: 'run.verified', db: input.db, checks: checks.length });
    const now = (await fingerprint(client)).sha256;
    const recorded = deps.execution ? await lastRecordedFingerprint(client, deps.execution.runId) : undefined;
    // The versions' fingerprints follow what each migration touched; a change they could not see (DDL by hand during the run) shows here.
    if (recorded && recorded.fingerprint !== now) deps.logger.warn({ event: 'run.fingerprint_differs', db: input.db, version: recorded.version, recorded: recorded.fingerprint, now });
    return { fingerprint: now };
  });
}

/** Proves the compensated database matches the state before the run, then records the run's versions as rolled back. */
export async function finishCompensation(deps: RunDeps, input: FinishCompensationInput): Promise<{ rolledBack: Version[] }> {
  return withClient(targetOf(deps.config, input.db), async (client) => {
    const now = await fingerprint(client);
    if (now.sha256 !== input.fingerprint) {
      throw new VerificationFailedError(input.db, [`after compensation the schema fingerprint is ${now.sha256.slice(0, 12)}, not ${input.fingerprint.slice(0, 12)} as before the run`]);
    }
    // What the ledger says this run applied, not what the workflow last heard.
    const versions = await withTransaction(client, async () => {
      await checkFence(client, { alias: input.db, token: input.leaseToken });
      return markRolledBack(client, runIdOf(deps));
    });
    deps.logger.warn({ event: 'compensation.finished', db: input.db, rolledBack: versions });
    return { rolledBack: versions };
  });
}
