import { checkTarget, integrityProblems, planMigrations } from '../core/plan';
import { eachMigrationEvents } from '../core/hooks';
import { tablesTouched } from '../core/locks';
import type { Finding } from '../core/risk';
import type { PreparedMigration } from '../core/prepare';
import type { Version } from '../core/version';
import type { DatabasePlan, PlanInput } from '../contracts';
import { planBackup } from '../backup/pg-tools';
import { withClient } from '../db/connection';
import { readLedgerState } from '../db/ledger';
import { assessOnDatabase } from '../db/risk-context';
import { prepareMigrations } from '../core/prepare';
import { cachedMigrationSet } from '../source/set-cache';
import { readChecks } from '../source/read-checks';
import { readMigrationSet } from '../source/read-migration-set';
import { cancellable, targetOf, type RunDeps } from './deps';

/**
 * What a run of the set would do to the database: the pending migrations
 * with their risk in the live database's context, the integrity problems that
 * forbid it, and the backup it would take. Read-only: planning (and so
 * status, plan, validate) never creates the ledger.
 */
export async function planDatabase(deps: RunDeps, input: PlanInput): Promise<DatabasePlan> {
  const { config, logger } = deps;
  const { set, prepare } = await cachedMigrationSet(input.migrationsDir, config.files);
  if (input.target) checkTarget(set.directory, set.manifest, input.target);
  // Every file goes through the parser before anything runs.
  const prepared = await prepare(undefined, cancellable(deps));
  await readChecks(input.migrationsDir, config.files); // a check that cannot be read stops the run before it starts, not after it applied
  return withClient(targetOf(config, input.db), async (client) => {
    const ledger = await readLedgerState(client);
    const plan = planMigrations(set.manifest, ledger.applied, { baseline: ledger.baseline, ...(input.target ? { target: input.target } : {}) });
    const fileOf = (v: Version) => set.migrations.find((m) => m.version === v)?.forward.file;
    const scripts = plan.pending.map((entry) => {
      const forward = prepared.get(entry.version)!.forward;
      return { version: entry.version, file: forward.file, script: forward.script };
    });
    const { risk, tables, short } = await assessOnDatabase(client, scripts, config.risk);
    // Each-migration hooks run in every version's transaction, and nothing bounds what they do: no version of such a set is predicted short.
    const hooked = set.hooks.some((h) => eachMigrationEvents.some((event) => event === h.event));
    const pending = plan.pending.map((entry, i) => {
      const script = scripts[i]!.script;
      return { ...entry, mode: script.mode, statements: script.statements.length, tables: tablesTouched(script.statements), risk: risk.get(entry.version)!, short: !hooked && short.has(entry.version) };
    });
    const result: DatabasePlan = {
      db: input.db,
      manifestDigest: set.digest,
      migrationCount: set.migrations.length,
      baseline: ledger.baseline,
      ...plan,
      pending,
      problems: integrityProblems(plan, fileOf, { allowOutOfOrder: input.allowOutOfOrder ?? false }),
      tableContext: tables,
      backup: await planBackup(client, input.db, config.backup),
      ...(set.hooks.length > 0 ? { hooks: [...new Set(set.hooks.map((h) => h.event))] } : {}),
      ...commandHookFacts(config),
    };
    logger.info({ event: 'plan.made', db: input.db, pending: plan.pending.length, problems: result.problems.length });
    return result;
  });
}

/** The events the worker's config has commands for, and what a failed afterMigrate does (only what differs from none and `keep`). */
function commandHookFacts(config: RunDeps['config']): Pick<DatabasePlan, 'commandHooks' | 'afterMigrateFailure'> {
  const events = (['beforeMigrate', 'afterMigrate', 'afterMigrateError'] as const).filter((e) => config.hooks[e].length > 0);
  return { ...(events.length > 0 ? { commandHooks: events } : {}), ...(config.hooks.afterMigrateFailure === 'compensate' ? { afterMigrateFailure: 'compensate' as const } : {}) };
}

/** `lint --db`: the migrations still pending on the database, and their risk with its context (table sizes, blocking sessions). */
export async function assessPending(deps: RunDeps, input: { db: string; migrationsDir: string }): Promise<{ pending: PreparedMigration[]; risk: Map<Version, { findings: Finding[] }> }> {
  const set = await readMigrationSet(input.migrationsDir, deps.config.files);
  const prepared = [...(await prepareMigrations(set)).values()];
  return withClient(targetOf(deps.config, input.db), async (client) => {
    const ledger = await readLedgerState(client);
    const plan = planMigrations(set.manifest, ledger.applied, { baseline: ledger.baseline });
    const versions = new Set(plan.pending.map((p) => p.version));
    const pending = prepared.filter((m) => versions.has(m.version));
    const scripts = pending.map((m) => ({ version: m.version, file: m.forward.file, script: m.forward.script }));
    return { pending, risk: (await assessOnDatabase(client, scripts, deps.config.risk)).risk };
  });
}
