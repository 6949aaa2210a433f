import { ApplicationFailure, Context, sleep } from '@temporalio/activity';
import { ManifestChangedError, PgconvoyError, UnknownDatabaseError } from '../core/errors';
import type { ManifestEntry, MigrationSet } from '../core/migration-set';
import { checkTarget, integrityProblems, planMigrations, type AppliedEntry, type Divergence } from '../core/plan';
import { tablesTouched } from '../core/locks';
import type { MigrationRisk, RiskLevel, TableContext } from '../core/risk';
import { assessOnDatabase } from '../db/risk-context';
import type { PreparedMigration } from '../core/prepare';
import { prepareOffThread } from '../source/prepare-off-thread';
import type { TransactionMode } from '../core/statements';
import type { Version } from '../core/version';
import { databaseEnvName, type Config } from '../config/config';
import { withClient, type Target } from '../db/connection';
import { applyGroup as applyGroupInDb, applyMigration as applyOne, type ApplyResult, type EngineContext, type EngineEvent } from '../db/execute';
import { appliedByRun, changedByOthersSince, ensureLedger, ledgerExists, ledgerHighWater, type RunChanges, markRolledBack, readHistory, readLedgerState, type AuditColumns, type HistoryRow } from '../db/ledger';
import { changeLedger as changeLedgerInDb, type LedgerChange, type LedgerChangeResult } from '../db/ledger-admin';
import { acquireLease, releaseLease, renewLease, type Lease } from '../db/lease';
import { readMigrationSet } from '../source/read-migration-set';
import { applyRetention, backupDatabase, BackupCorruptError, drillRestore, listBackups, restoreDatabase, verifyBackup, type BackupManifest } from '../backup/backup';
import { withTransaction } from '../db/connection';
import { fingerprint } from '../db/fingerprint';
import { checkFence } from '../db/lease';
import { undoMigration, type UndoResult } from '../db/undo';
import { catalogProblems, runChecks } from '../db/verify';
import { readChecks } from '../source/read-checks';
import { openStore } from '../backup/open-store';
import { backupToolsFor, checkPgTools, planBackup, type BackupPlan } from '../backup/pg-tools';
import type { Logger } from '../worker/logger';

/** What the run left does not pass verification (new invalid objects, failing user checks). */
export class VerificationFailedError extends PgconvoyError {
  readonly type = 'VerificationFailed';
  constructor(alias: string, problems: string[]) {
    super(`verification of "${alias}" failed:\n` + problems.map((p) => `  ${p}`).join('\n'), { db: alias, problems });
  }
}

export interface ActivityDeps {
  config: Config;
  logger: Logger;
}

export interface PlanInput {
  db: string;
  migrationsDir: string;
  target?: Version;
  allowOutOfOrder?: boolean;
}

export interface PendingMigration extends ManifestEntry {
  mode: TransactionMode;
  statements: number;
  /** Tables its statements lock (names only), for a `touched-tables` backup. */
  tables?: string[];
  /** Risk with context from the live database; the execution mode gates on its level. */
  risk?: MigrationRisk;
}

export interface DatabasePlan {
  db: string;
  manifestDigest: string;
  migrationCount: number;
  baseline: Version | null;
  pending: PendingMigration[];
  applied: AppliedEntry[];
  divergent: Divergence[];
  missing: AppliedEntry[];
  outOfOrder: ManifestEntry[];
  /** Why the plan must not run; empty when it may. */
  problems: string[];
  /** What the database said about the tables the pending migrations lock. */
  tableContext?: Array<TableContext & { table: string }>;
  /** The backup a run would take before its first change, or why it takes none. */
  backup?: BackupPlan;
}

export type { BackupPlan };

/** A version's risk as the run assessed it, recorded in the ledger when it is applied. */
export interface RunRisk {
  version: Version;
  level: RiskLevel;
  findings: Array<{ rule: string; level: RiskLevel; table: string | null; line: number; context: string | null; accepted: string | null }>;
}

/** Who approved the run, and when (workflow time, ms since the epoch). */
export interface RunApproval {
  by: string;
  at: number;
  note: string | null;
}

export interface ApplyInput {
  db: string;
  migrationsDir: string;
  manifestDigest: string;
  version: Version;
  /** The lease token the run holds. */
  leaseToken?: string;
  risk?: RunRisk[];
  approval?: RunApproval;
  /** The run's backup key, or `none: <reason>`; recorded with each version. */
  backup?: string;
}

export interface ApplyGroupInput {
  db: string;
  migrationsDir: string;
  manifestDigest: string;
  versions: Version[];
  leaseToken?: string;
  risk?: RunRisk[];
  approval?: RunApproval;
  backup?: string;
}

export interface LeaseInput {
  db: string;
  /** Who holds it: the workflow id. */
  holder: string;
}

export interface HeldLeaseInput {
  db: string;
  token: string;
}

export interface ChangeLedgerInput {
  db: string;
  migrationsDir: string;
  change: LedgerChange;
}

export interface BackupInput {
  db: string;
  /** Only these tables; default the whole database. */
  tables?: string[];
  /** The tables a run's pending migrations touch; used instead of the whole database when backup.scope is `touched-tables`. */
  touched?: string[];
}

export interface BackupResult {
  manifest: BackupManifest;
  location: string;
  verified: { bytes: number; sha256: string };
  /** Ids of older backups deleted to keep the configured number. */
  deleted: string[];
  /** With backup.drill: where and how fast the backup was restored. */
  drill?: string;
}

export interface RunStateInput {
  db: string;
  migrationsDir: string;
}

/** The database before a run changes it: what compensation must get back to. */
export interface RunStart {
  fingerprint: string;
  /** Invalid indexes and NOT VALID constraints that were there before (only new ones fail a run). */
  knownProblems: string[];
  /** The newest ledger row before the run's backup: rows above it are the run's own, or someone else's change after the backup. */
  ledgerHighWater?: string;
}

export interface VerifyInput extends RunStateInput {
  knownProblems: string[];
}

export interface UndoInput {
  db: string;
  migrationsDir: string;
  manifestDigest: string;
  version: Version;
  leaseToken: string;
}

export interface RestoreInput {
  db: string;
  backupKey: string;
  leaseToken: string;
}

export interface FinishCompensationInput {
  db: string;
  /** The fingerprint before the run; the compensated database must match it. */
  fingerprint: string;
  versions: Version[];
  leaseToken: string;
}

export interface HistoryInput {
  db: string;
  last?: number;
}

/** How often a running migration tells Temporal it is alive (the workflow's heartbeat timeout is larger). */
const heartbeatEveryMs = 5_000;

/**
 * Activities are thin adapters: they resolve the alias, read the files, call
 * core/ and db/, and turn pgconvoy errors into ApplicationFailures with the
 * same type. Policy (what to do with a plan) is the workflow's.
 */
export function createActivities({ config, logger }: ActivityDeps) {
  function target(alias: string): Target {
    const url = config.databases[alias];
    if (url === undefined) throw new UnknownDatabaseError(alias, databaseEnvName(alias));
    return { alias, url };
  }

  /** Re-reads the files and refuses if they are not the ones the run was planned with. */
  async function pinnedSet(migrationsDir: string, digest: string): Promise<MigrationSet> {
    const set = await readMigrationSet(migrationsDir, config.files);
    if (set.digest !== digest) throw new ManifestChangedError(migrationsDir, digest, set.digest);
    return set;
  }

  /** Engine hooks: structured logs, heartbeats with progress, a sleep Temporal can cancel, the lease fence. */
  function engineContext(db: string, leaseToken: string | undefined, record: Pick<ApplyInput, 'risk' | 'approval' | 'backup'> = {}): { ctx: EngineContext; stop: () => void } {
    const activity = Context.current();
    const execution = activity.info.workflowExecution;
    let progress: Record<string, unknown> = {};
    const ticker = setInterval(() => activity.heartbeat(progress), heartbeatEveryMs);
    const { attempt, scheduledTimestampMs } = activity.info;
    const ctx: EngineContext = {
      settings: config.execution,
      // Earlier attempts and the backoff between them are part of the migration's duration.
      ...(attempt > 1 ? { priorMs: Math.max(0, Date.now() - scheduledTimestampMs) } : {}),
      run: execution ? { workflowId: execution.workflowId, runId: execution.runId } : {},
      ...(leaseToken ? { fence: { alias: db, token: leaseToken } } : {}),
      sleep: (ms) => sleep(ms),
      audit: (version) => auditColumns(version, record),
      onEvent: (event: EngineEvent) => {
        if (event.event === 'statement.done') {
          progress = { version: event.version, statementsDone: event.statement, statementsTotal: event.of };
          activity.heartbeat(progress);
        }
        if (event.event === 'migration.lock_timeout') logger.warn({ db, ...event });
        else logger.info({ db, ...event });
      },
    };
    activity.heartbeat(progress);
    return { ctx, stop: () => clearInterval(ticker) };
  }

  async function withEngine<T>(db: string, leaseToken: string | undefined, record: Pick<ApplyInput, 'risk' | 'approval' | 'backup'>, fn: (ctx: EngineContext) => Promise<T>): Promise<T> {
    const { ctx, stop } = engineContext(db, leaseToken, record);
    try {
      return await fn(ctx);
    } finally {
      stop();
    }
  }

  return {
    async planDatabase(input: PlanInput): Promise<DatabasePlan> {
      return heartbeating(() => edge(async () => {
        const set = await readMigrationSet(input.migrationsDir, config.files);
        if (input.target) checkTarget(set.directory, set.manifest, input.target);
        // Every file goes through the parser before anything runs.
        const prepared = await prepareOffThread(set, undefined, { signal: Context.current().cancellationSignal });
        await readChecks(input.migrationsDir, config.files); // a check that cannot be read stops the run before it starts, not after it applied
        // Read-only: planning (and so status, plan, validate) never creates the ledger.
        return withClient(target(input.db), async (client) => {
          const ledger = await readLedgerState(client);
          const plan = planMigrations(set.manifest, ledger.applied, { baseline: ledger.baseline, ...(input.target ? { target: input.target } : {}) });
          const fileOf = (v: Version) => set.migrations.find((m) => m.version === v)?.forward.file;
          const scripts = plan.pending.map((entry) => {
            const forward = prepared.get(entry.version)!.forward;
            return { version: entry.version, file: forward.file, script: forward.script };
          });
          const { risk, tables } = await assessOnDatabase(client, scripts, config.risk);
          const pending = plan.pending.map((entry, i) => {
            const script = scripts[i]!.script;
            return { ...entry, mode: script.mode, statements: script.statements.length, tables: tablesTouched(script.statements), risk: risk.get(entry.version)! };
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
          };
          logger.info({ event: 'plan.made', db: input.db, pending: plan.pending.length, problems: result.problems.length });
          return result;
        });
      }));
    },

    async applyMigration(input: ApplyInput): Promise<ApplyResult> {
      return edge(async () => {
        // Heartbeats while a large file is read and parsed, before the engine's own begin.
        const { set, prepared } = await heartbeating(async () => {
          const pinned = await pinnedSet(input.migrationsDir, input.manifestDigest);
          return { set: pinned, prepared: await prepareOffThread(pinned, new Set([input.version]), { signal: Context.current().cancellationSignal }) };
        });
        const migration = prepared.get(input.version);
        if (migration === undefined) throw new ManifestChangedError(input.migrationsDir, input.manifestDigest, set.digest);
        return withClient(target(input.db), (client) =>
          withEngine(input.db, input.leaseToken, input, async (ctx) => {
            await ensureLedger(client);
            const result = await applyOne(client, migration, ctx);
            logger.info({ event: result.status === 'applied' ? 'migration.applied' : 'migration.skipped', db: input.db, ...result });
            return result;
          }),
          { signal: Context.current().cancellationSignal },
        );
      });
    },

    async applyGroup(input: ApplyGroupInput): Promise<ApplyResult[]> {
      return edge(async () => {
        const prepared = await heartbeating(async () =>
          prepareOffThread(await pinnedSet(input.migrationsDir, input.manifestDigest), new Set(input.versions), { signal: Context.current().cancellationSignal }),
        );
        const migrations = input.versions.map((v) => prepared.get(v)).filter((m): m is PreparedMigration => m !== undefined);
        return withClient(target(input.db), (client) =>
          withEngine(input.db, input.leaseToken, input, async (ctx) => {
            await ensureLedger(client);
            const results = await applyGroupInDb(client, migrations, ctx);
            logger.info({ event: 'group.applied', db: input.db, versions: input.versions });
            return results;
          }),
          { signal: Context.current().cancellationSignal },
        );
      });
    },

    async changeLedger(input: ChangeLedgerInput): Promise<LedgerChangeResult> {
      return edge(async () => {
        const set = await readMigrationSet(input.migrationsDir, config.files);
        const { workflowExecution: execution, workflowNamespace } = Context.current().info;
        const holder = execution ? `${workflowNamespace}/${execution.workflowId}/${execution.runId}` : `pgconvoy/ledger/${input.db}`;
        return withClient(target(input.db), async (client) => {
          await ensureLedger(client);
          const lease = await acquireLease(client, input.db, holder, config.lease.ttlMs);
          const fence = { alias: input.db, token: lease.token };
          try {
            const result = await changeLedgerInDb(client, set, input.change, execution ? { workflowId: execution.workflowId, runId: execution.runId } : {}, fence);
            logger.info({ event: 'ledger.changed', db: input.db, ...result });
            return result;
          } finally {
            await releaseLease(client, fence).catch(() => undefined);
          }
        });
      });
    },

    /** Takes the database's lease for the workflow (or renews it, when the workflow already holds it). */
    async acquireLease(input: LeaseInput): Promise<Lease> {
      return edge(() =>
        withClient(target(input.db), async (client) => {
          await ensureLedger(client);
          const lease = await acquireLease(client, input.db, input.holder, config.lease.ttlMs);
          logger.info({ event: 'lease.acquired', db: input.db, holder: input.holder, token: lease.token });
          return lease;
        }),
      );
    },

    /**
     * Keeps the lease alive for as long as the workflow needs it: renews it
     * and heartbeats every renewEveryMs until the workflow cancels this
     * activity. If its worker dies, Temporal runs it again elsewhere after
     * the heartbeat timeout, well within the lease's lifetime.
     */
    async holdLease(input: HeldLeaseInput): Promise<void> {
      const activity = Context.current();
      const fence = { alias: input.db, token: input.token };
      return edge(() =>
        withClient(target(input.db), async (client) => {
          // A renewal that cannot finish fails fast and closes its connection
          // before the retry opens another: the lease costs one connection.
          await client.query(`SELECT set_config('lock_timeout', $1, false), set_config('statement_timeout', $2, false)`, [
            `${Math.max(500, Math.floor(config.lease.renewEveryMs))}ms`,
            `${Math.max(1_000, config.lease.renewEveryMs * 2)}ms`,
          ]);
          for (;;) {
            await renewLease(client, fence, config.lease.ttlMs);
            activity.heartbeat();
            await activity.sleep(config.lease.renewEveryMs); // throws when the workflow cancels
          }
        }),
      );
    },

    async releaseLease(input: HeldLeaseInput): Promise<boolean> {
      return edge(() =>
        withClient(target(input.db), async (client) => {
          const released = await releaseLease(client, { alias: input.db, token: input.token });
          logger.info({ event: 'lease.released', db: input.db, token: input.token, released });
          return released;
        }),
      );
    },

    /** pg_dump to the configured store, verified by a full read-through, then older backups beyond `keep` deleted. */
    async takeBackup(input: BackupInput): Promise<BackupResult> {
      return heartbeating(() =>
        edge(async () => {
          const db = target(input.db);
          const { serverVersion, ledgerVersion, tools } = await withClient(db, async (client) => {
            const { server, tools } = await backupToolsFor(client, input.db, config.backup.pgBinDir);
            // The plan checked this already; a worker with other tools may run this step.
            await checkPgTools(tools, server);
            const ledger = await readLedgerState(client);
            return { serverVersion: server.version, ledgerVersion: ledger.applied.at(-1)?.version ?? ledger.baseline, tools };
          });
          const store = openStore(config.backup);
          try {
            let tables = input.tables;
            if (!tables && input.touched && config.backup.scope === 'touched-tables') {
              // Only tables that exist now: the run may create the others.
              tables = await withClient(db, async (client) => {
                const existing: string[] = [];
                for (const t of input.touched!) if ((await client.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [t])).rows[0]?.ok) existing.push(t);
                return existing;
              });
              if (tables.length === 0) tables = undefined;
            }
            const manifest = await backupDatabase({ alias: input.db, url: db.url, store, serverVersion, ledgerVersion, tools, ...(tables ? { tables } : {}) });
            logger.info({ event: 'backup.taken', db: input.db, id: manifest.id, bytes: manifest.bytes, location: store.location });
            const verified = await verifyBackup(store, manifest, tools);
            logger.info({ event: 'backup.verified', db: input.db, id: manifest.id });
            let drill: string | undefined;
            if (config.backup.drill) {
              const result = await withClient(db, (client) => drillRestore({ alias: input.db, url: db.url, store, manifest, tools }, (sql) => client.query(sql)));
              drill = `restored into ${result.database} in ${Math.round(result.ms)} ms`;
              logger.info({ event: 'backup.drilled', db: input.db, id: manifest.id, ms: Math.round(result.ms) });
            }
            const deleted = await applyRetention(store, input.db, config.backup.keep);
            return { manifest, location: store.location, verified, deleted, ...(drill ? { drill } : {}) };
          } finally {
            store.close(); // an S3 client's sockets end with the activity
          }
        }),
      );
    },

    async beginRun(input: RunStateInput): Promise<RunStart> {
      return heartbeating(() => edge(() =>
        withClient(target(input.db), async (client) => {
          const fp = await fingerprint(client);
          const known = (await catalogProblems(client)).map((p) => p.subject);
          return { fingerprint: fp.sha256, knownProblems: known, ledgerHighWater: await ledgerHighWater(client) };
        }),
      ));
    },

    /** After the last migration: no new invalid index or NOT VALID constraint, and every user check returns no rows. */
    async verifyRun(input: VerifyInput): Promise<{ fingerprint: string }> {
      return heartbeating(() => edge(async () => {
        const checks = await readChecks(input.migrationsDir, config.files);
        return withClient(target(input.db), async (client) => {
          const known = new Set(input.knownProblems);
          const problems = [...(await catalogProblems(client)).filter((p) => !known.has(p.subject)), ...(await runChecks(client, checks))];
          if (problems.length > 0) throw new VerificationFailedError(input.db, problems.map((p) => p.message));
          logger.info({ event: 'run.verified', db: input.db, checks: checks.length });
          return { fingerprint: (await fingerprint(client)).sha256 };
        });
      }));
    },

    async undoMigration(input: UndoInput): Promise<UndoResult> {
      return heartbeating(() => edge(async () => {
        const set = await pinnedSet(input.migrationsDir, input.manifestDigest);
        const m = (await prepareOffThread(set, new Set([input.version]), { signal: Context.current().cancellationSignal })).get(input.version);
        if (!m) throw new ManifestChangedError(input.migrationsDir, input.manifestDigest, set.digest);
        const runId = Context.current().info.workflowExecution?.runId ?? '';
        const result = await withClient(target(input.db), (client) => undoMigration(client, m, runId, { alias: input.db, token: input.leaseToken }), {
          signal: Context.current().cancellationSignal,
        });
        logger.warn({ event: result.status === 'undone' ? 'compensation.undone' : 'compensation.undo_skipped', db: input.db, version: input.version, file: m.undo?.file });
        return result;
      }));
    },

    async restoreFromBackup(input: RestoreInput): Promise<void> {
      return heartbeating(() =>
        edge(async () => {
          const db = target(input.db);
          const store = openStore(config.backup);
          try {
            const manifest = (await listBackups(store, input.db)).find((m) => m.key === input.backupKey);
            if (!manifest) throw new BackupCorruptError(`backup ${input.backupKey} of "${input.db}" is gone from ${store.location}`, { key: input.backupKey });
            await withClient(db, async (client) => {
              await checkFence(client, { alias: input.db, token: input.leaseToken });
              const { tools } = await backupToolsFor(client, input.db, config.backup.pgBinDir);
              await restoreDatabase(
                {
                  tools,
                  alias: input.db,
                  url: db.url,
                  store,
                  manifest,
                  // A cancelled or timed-out attempt rolls its restore back instead of racing the next one.
                  signal: Context.current().cancellationSignal,
                  lockTimeoutMs: config.execution.lockTimeoutMs,
                  fenceToken: input.leaseToken,
                  onTerminate: (sessions) =>
                    logger.warn({ event: 'restore.terminating_sessions', db: input.db, sessions }, `terminating ${sessions.length} other session(s) of "${input.db}" before restoring backup ${manifest.id}`),
                },
                async (sql) => (await client.query<Record<string, unknown>>(sql)).rows,
              );
            });
            logger.warn({ event: 'compensation.restored', db: input.db, backup: manifest.id });
          } finally {
            store.close();
          }
        }),
      );
    },

    /** Proves the compensated database matches the state before the run, then records the run's versions as rolled back. */
    async finishCompensation(input: FinishCompensationInput): Promise<{ rolledBack: Version[] }> {
      return heartbeating(() => edge(() =>
        withClient(target(input.db), async (client) => {
          const now = await fingerprint(client);
          if (now.sha256 !== input.fingerprint) {
            throw new VerificationFailedError(input.db, [`after compensation the schema fingerprint is ${now.sha256.slice(0, 12)}, not ${input.fingerprint.slice(0, 12)} as before the run`]);
          }
          const runId = Context.current().info.workflowExecution?.runId ?? '';
          // What the ledger says this run applied, not what the workflow last heard.
          const versions = await withTransaction(client, async () => {
            await checkFence(client, { alias: input.db, token: input.leaseToken });
            return markRolledBack(client, runId);
          });
          logger.warn({ event: 'compensation.finished', db: input.db, rolledBack: versions });
          return { rolledBack: versions };
        }),
      ));
    },

    /** What this run changed, as the ledger says: versions applied and a no-transaction file left part-way. */
    async runChanges(input: { db: string; since?: string }): Promise<RunChanges> {
      return edge(() =>
        withClient(target(input.db), async (client) => {
          const runId = Context.current().info.workflowExecution?.runId ?? '';
          if (!(await ledgerExists(client))) return { applied: [], partial: [], others: [] };
          return { ...(await appliedByRun(client, runId)), others: input.since === undefined ? [] : await changedByOthersSince(client, runId, input.since) };
        }),
      );
    },

    async readHistory(input: HistoryInput): Promise<HistoryRow[]> {
      return edge(() =>
        withClient(target(input.db), (client) => readHistory(client, input.last === undefined ? {} : { last: input.last })),
      );
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;

/** The run's risk assessment and approval of a version, as ledger columns. */
function auditColumns(version: Version, record: Pick<ApplyInput, 'risk' | 'approval' | 'backup'>): AuditColumns {
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

/**
 * Heartbeats while `fn` runs, so Temporal tells a dead worker from a slow one
 * within the heartbeat timeout instead of the (long) start-to-close timeout.
 */
async function heartbeating<T>(fn: () => Promise<T>): Promise<T> {
  const activity = Context.current();
  activity.heartbeat();
  const ticker = setInterval(() => activity.heartbeat(), heartbeatEveryMs);
  try {
    return await fn();
  } finally {
    clearInterval(ticker);
  }
}

/** At the activity edge a pgconvoy error becomes an ApplicationFailure of the same type. */
async function edge<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof PgconvoyError) {
      throw ApplicationFailure.create({
        message: error.message,
        type: error.type,
        nonRetryable: !error.retryable,
        details: [error.details],
        cause: error,
      });
    }
    throw error;
  }
}
