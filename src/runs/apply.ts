import type { ApplyGroupInput, ApplyInput, ApplyResult, RunRecord, WatchReport } from '../contracts';
import { eachMigrationEvents } from '../core/hooks';
import type { PreparedMigration } from '../core/prepare';
import type { Version } from '../core/version';
import type pg from 'pg';
import { withClient } from '../db/connection';
import { applyGroup as applyGroupInDb, applyMigration as applyOne, type EngineContext, type EngineEvent } from '../db/execute';
import { ensureLedger, type AuditColumns } from '../db/ledger';
import { cancellable, targetOf, type RunDeps } from './deps';
import type { VersionHooks } from '../db/hooks';
import { pinnedVersions } from './files';
import { watchStep } from './watch';

/** Applies one pending version of the set the run planned with, under the run's lease. */
export async function applyMigration(deps: RunDeps, input: ApplyInput): Promise<ApplyResult> {
  const { migrations, hooks } = await pinnedVersions(deps, input.migrationsDir, input.manifestDigest, [input.version]);
  return applyOn(deps, input, migrations[0]!, { priorTime: true, recordFailure: true, hooks });
}

/** How long one `applyMigrations` call goes on before it reports: what a cancel or a progress event waits at most. */
export const batchBudgetMs = 1_000;

/**
 * Consecutive migrations predicted short, one after another, each in its
 * own transaction with its ledger row (each its own checkpoint, as with
 * `applyMigration`), until `batchBudgetMs` is spent; returns what it
 * applied, at least the first. A failure of the first is thrown as
 * `applyMigration` throws it. A failure of a later one is rolled back and
 * not recorded: the call ends before it, and the run applies that version
 * next, first in its step, where it fails (and is recorded) as it would
 * alone.
 */
export async function applyMigrations(deps: RunDeps, input: ApplyGroupInput): Promise<ApplyResult[]> {
  const { migrations, hooks } = await pinnedVersions(deps, input.migrationsDir, input.manifestDigest, input.versions);
  const results: ApplyResult[] = [];
  const started = performance.now();
  for (const [i, m] of migrations.entries()) {
    if (i > 0 && performance.now() - started >= batchBudgetMs) break;
    try {
      const result = await applyOn(deps, { ...input, version: m.version }, m, { priorTime: results.every((r) => r.status !== 'applied'), recordFailure: i === 0, hooks });
      results.push(result);
    } catch (error) {
      if (i === 0) throw error;
      deps.logger.info({ event: 'batch.stopped', db: input.db, version: m.version, reason: error instanceof Error ? error.message : String(error) });
      break;
    }
  }
  return results;
}

async function applyOn(deps: RunDeps, input: ApplyInput | (ApplyGroupInput & { version: Version }), migration: PreparedMigration, options: EngineOptions): Promise<ApplyResult> {
  const apply = async (client: pg.Client, reused: boolean) => {
    if (!reused) await ensureLedger(client);
    // A transactional migration past a guard is cancelled and tried again; a no-transaction one cannot be rolled back: its crossings are only reported.
    const watched = { db: input.db, ...(input.watchBaseline ? { baseline: input.watchBaseline } : {}), cancelOnCross: migration.forward.script.mode === 'transaction' };
    const { result, report } = await watchStep(deps, watched, client, (interrupted) => applyOne(client, migration, { ...engineContext(deps, input.db, input.leaseToken, input, options), interrupted }));
    deps.logger.info({ event: result.status === 'applied' ? 'migration.applied' : 'migration.skipped', db: input.db, ...result });
    return withReport(result, report);
  };
  const target = targetOf(deps.config, input.db);
  return deps.connections && sharesConnection(migration)
    ? deps.connections.use(target, apply, cancellable(deps))
    : withClient(target, (client) => apply(client, false), cancellable(deps));
}

/**
 * Whether a migration may run on a kept connection. A file that runs outside
 * a transaction leaves its session settings behind, and DEALLOCATE or
 * DISCARD would drop the statements pgconvoy keeps prepared there: each gets
 * a connection of its own.
 */
function sharesConnection(m: PreparedMigration): boolean {
  return m.forward.script.mode === 'transaction' && !m.forward.script.statements.some((s) => s.kind === 'DeallocateStmt' || s.kind === 'DiscardStmt');
}

/** The step's watch report with its result, when the watch saw anything (a step shorter than the interval: nothing). */
function withReport(result: ApplyResult, report: WatchReport): ApplyResult {
  return report.latest || report.crossings.length > 0 ? { ...result, watch: report } : result;
}

/** `--group`: every pending version in one transaction, all or none. */
export async function applyGroup(deps: RunDeps, input: ApplyGroupInput): Promise<ApplyResult[]> {
  const { migrations, hooks } = await pinnedVersions(deps, input.migrationsDir, input.manifestDigest, input.versions);
  return withClient(
    targetOf(deps.config, input.db),
    async (client) => {
      await ensureLedger(client);
      const watched = { db: input.db, ...(input.watchBaseline ? { baseline: input.watchBaseline } : {}), cancelOnCross: true };
      const { result: results, report } = await watchStep(deps, watched, client, (interrupted) =>
        applyGroupInDb(client, migrations, { ...engineContext(deps, input.db, input.leaseToken, input, { priorTime: true, recordFailure: true, hooks }), interrupted }),
      );
      deps.logger.info({ event: 'group.applied', db: input.db, versions: input.versions });
      return results.map((r, i) => (i === results.length - 1 ? withReport(r, report) : r));
    },
    cancellable(deps),
  );
}

/** How a step runs a migration: whether earlier attempts' time is part of its duration (only the first a call applies), whether a failure is written to the ledger, the set's hooks around each version. */
interface EngineOptions {
  priorTime: boolean;
  recordFailure: boolean;
  hooks: VersionHooks;
}

/** Engine hooks: structured logs, heartbeats with progress, a sleep the step's cancellation ends, the lease fence, the ledger's audit columns. */
function engineContext(deps: RunDeps, db: string, leaseToken: string | undefined, record: RunRecord, options: EngineOptions): EngineContext {
  const { execution, attempt, logger } = deps;
  return {
    settings: deps.config.execution,
    // Earlier attempts and the backoff between them are part of the migration's duration.
    ...(options.priorTime && attempt && attempt.number > 1 ? { priorMs: Math.max(0, Date.now() - attempt.scheduledAtMs) } : {}),
    ...(options.recordFailure ? {} : { recordFailure: false }),
    run: execution ? { workflowId: execution.workflowId, runId: execution.runId } : {},
    ...(leaseToken ? { fence: { alias: db, token: leaseToken } } : {}),
    sleep: (ms) => deps.sleep(ms),
    audit: (version) => auditColumns(version, record),
    // With each-migration hooks the engine reads the whole catalog instead: the tracker cannot see what a hook changes.
    ...(deps.catalogs && execution && !hasEachMigrationHooks(options.hooks) ? { catalog: deps.catalogs.tracker(db, execution.runId) } : {}),
    hooks: options.hooks,
    onEvent: (event: EngineEvent) => {
      if (event.event === 'statement.done') deps.heartbeat({ version: event.version, statementsDone: event.statement, statementsTotal: event.of });
      if (event.event === 'migration.lock_timeout') logger.warn({ db, ...event });
      else logger.info({ db, ...event });
    },
  };
}

const hasEachMigrationHooks = (hooks: VersionHooks) => eachMigrationEvents.some((event) => hooks[event].length > 0);

/** The run's risk assessment, approval and backup of a version, as ledger columns. */
function auditColumns(version: Version, record: RunRecord): AuditColumns {
  const risk = record.risk?.find((r) => r.version === version);
  return {
    riskLevel: risk?.level ?? null,
    riskFindings: risk?.findings ?? null,
    approvedBy: record.approval?.by ?? null,
    approvedAt: record.approval?.at ?? null,
    approvalNote: record.approval?.note ?? null,
    ...(record.backup !== undefined ? { backup: record.backup } : {}),
  };
}
