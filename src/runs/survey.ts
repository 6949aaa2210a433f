import type { CompareSchemasInput, DatabaseSurvey, PlanInput } from '../contracts';
import { withClient } from '../db/connection';
import { fingerprint, fingerprintDiff } from '../db/fingerprint';
import { recordedSchema } from '../db/undo';
import { targetOf, type RunDeps } from './deps';
import { planDatabase } from './plan';

/**
 * What a rollout must know of a database before it changes anything: its
 * plan against the set (version, pending migrations with their risk), the
 * problems that would refuse its run, and its schema's fingerprint now and
 * as the ledger recorded it after its version (drift shows as a difference).
 */
export async function surveyDatabase(deps: RunDeps, input: PlanInput): Promise<DatabaseSurvey> {
  const plan = await planDatabase(deps, input);
  const version = plan.applied.at(-1)?.version ?? plan.baseline ?? null;
  return withClient(targetOf(deps.config, input.db), async (client) => {
    const now = await fingerprint(client);
    const recorded = version === null ? undefined : await recordedSchema(client, version);
    return {
      db: input.db,
      manifestDigest: plan.manifestDigest,
      version,
      pending: plan.pending,
      fingerprint: now.sha256,
      recordedFingerprint: recorded?.fingerprint ?? null,
      problems: [...plan.problems, ...(plan.backup?.problem && plan.pending.length > 0 ? [plan.backup.problem] : [])],
    };
  });
}

/** What differs between two databases' schemas, as `part: + line` / `part: - line` (from `reference` to `db`), the first `limit` lines. */
export async function compareSchemas(deps: RunDeps, input: CompareSchemasInput): Promise<{ differences: string[]; total: number }> {
  const read = (alias: string) => withClient(targetOf(deps.config, alias), (client) => fingerprint(client));
  const [reference, db] = await Promise.all([read(input.reference), read(input.db)]);
  const lines = fingerprintDiff(reference, db);
  return { differences: lines.slice(0, input.limit ?? 10), total: lines.length };
}
