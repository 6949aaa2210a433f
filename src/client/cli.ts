import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { Command, CommanderError, Option } from 'commander';
import type { LedgerChange, LedgerSource } from '../activities';
import { aliasPattern, databaseEnvName, loadConfig, type Config } from '../config/config';
import { rehearse } from './rehearse';
import { basename, relative } from 'node:path';
import { analyzeRisk, highestLevel, type Finding } from '../core/risk';
import { planMigrations } from '../core/plan';
import { withClient } from '../db/connection';
import { readLedgerState } from '../db/ledger';
import { assessOnDatabase } from '../db/risk-context';
import { renderLint } from './render-lint';
import { lockTaken } from '../core/locks';
import { prepareMigrations } from '../core/prepare';
import { compareVersions, parseVersion, type Version } from '../core/version';
import { readMigrationSet } from '../source/read-migration-set';
import { createLogger, type Logger } from '../worker/logger';
import { createWorker, installRuntime } from '../worker/worker';
import { hostname, userInfo } from 'node:os';
import { parseDuration } from '../core/directives';
import { executionModes, failurePolicies, type ExecutionMode, type FailurePolicy } from '../workflows/messages';
import { approve, backup, cancel, changeLedger, inspect, runningProgress, startMigration, type PgconvoyClient } from './api';
import { ExitCode, exitCodeForFailure } from './exit-codes';
import { summarizeFailure } from './failure';
import { renderHistory, renderMigrateResult, renderPlan, renderProgressLine, renderStatus, renderWaiting, type PlannedMigration } from './render';
import { renderFailureReport } from './report';
import { withTemporal } from './session';

interface GlobalOptions {
  config?: string;
  migrations?: string;
  json?: boolean;
}

interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

class UsageError extends Error {}

function parseAlias(value: string): string {
  if (!aliasPattern.test(value)) throw new UsageError(`invalid database alias "${value}": use lower-case letters, digits, "_", "." or "-"`);
  return value;
}

function versionArgument(what: string, value: string | undefined): Version | undefined {
  if (value === undefined) return undefined;
  const version = parseVersion(value);
  if (version === undefined) throw new UsageError(`${what} must be a positive integer version, got "${value}"`);
  return version;
}

/** Who is at the keyboard, for the approval record. */
function whoAmI(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `unknown@${hostname()}`;
  }
}

const dbOption = () => new Option('-d, --db <alias>', 'database alias').argParser(parseAlias).makeOptionMandatory();

export async function run(argv: string[], env: NodeJS.ProcessEnv, cwd: string, io: Io): Promise<ExitCode> {
  let exitCode: ExitCode = ExitCode.ok;
  const program = new Command('pgconvoy')
    .description('Versioned SQL migrations for PostgreSQL through durable Temporal workflows')
    .option('-c, --config <file>', 'config file (default: pgconvoy.config.json if present)')
    .option('-m, --migrations <dir>', 'migration directory (default: from the config, else ./migrations)')
    .option('--json', 'print machine-readable JSON on stdout')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError();

  const context = (defaultLogLevel = 'warn') => {
    const global = program.opts<GlobalOptions>();
    const config = loadConfig({ cwd, env, ...(global.config ? { configFile: global.config } : {}), ...(global.migrations ? { migrationsDir: global.migrations } : {}) });
    return { global, config, logger: createLogger(config.logLevel ?? defaultLogLevel) };
  };
  const print = (global: GlobalOptions, json: unknown, human: string) => io.stdout(global.json ? JSON.stringify(json, null, 2) + '\n' : human);
  /** Runs a command against Temporal; a failure becomes its report and exit code. */
  const viaTemporal = (
    c: { global: GlobalOptions; config: Config; logger: Logger },
    fn: (pgconvoy: PgconvoyClient) => Promise<ExitCode>,
    options: { attach?: boolean } = {},
  ): Promise<ExitCode> =>
    withTemporal(
      c.config,
      c.logger,
      async (pgconvoy) => {
        try {
          return await fn(pgconvoy);
        } catch (error) {
          return reportFailure(io, c.global, error);
        }
      },
      options,
    );

  program
    .command('up')
    .description('apply pending migrations to a database through the migrateDatabase workflow')
    .addOption(dbOption())
    .option('-t, --target <version>', 'stop at this version')
    .option('--group', 'apply all pending migrations in one transaction (all or none)')
    .option('--out-of-order', 'apply pending versions lower than the highest applied one')
    .option('--detailed-exitcode', 'exit 0 when there is nothing to do and 10 when migrations were applied')
    .addOption(new Option('--mode <mode>', 'what may run without approval').choices(executionModes).default('auto'))
    .option('--require-approval', 'wait for `pgconvoy approve` before changing anything')
    .option('--approval-timeout <duration>', 'give up waiting for approval after this long (e.g. 30min, 24h)', '24h')
    .addOption(new Option('--on-failure <policy>', 'restore from the verified backup, undo with U scripts, or halt').choices(failurePolicies).default('restore'))
    .action(async (options: { db: string; target?: string; group?: boolean; outOfOrder?: boolean; detailedExitcode?: boolean; mode: ExecutionMode; requireApproval?: boolean; approvalTimeout: string; onFailure: FailurePolicy }) => {
      const target = versionArgument('--target', options.target);
      const approvalTimeoutMs = parseDuration(options.approvalTimeout);
      if (approvalTimeoutMs === undefined || approvalTimeoutMs <= 0) throw new UsageError(`--approval-timeout needs a duration such as 30min or 24h, got "${options.approvalTimeout}"`);
      const { global, config, logger } = context();
      exitCode = await withTemporal(config, logger, async (pgconvoy) => {
        const handle = await startMigration(pgconvoy, {
          db: options.db,
          migrationsDir: config.migrationsDir,
          ...(target ? { target } : {}),
          ...(options.group ? { group: true } : {}),
          ...(options.outOfOrder ? { allowOutOfOrder: true } : {}),
          mode: options.mode,
          onFailure: options.onFailure,
          ...(options.requireApproval ? { requireApproval: true, approvalTimeoutMs } : {}),
        });
        if (!global.json) io.stderr(`pgconvoy: migrating "${options.db}" from ${config.migrationsDir}\n`);
        const announced = global.json ? Promise.resolve() : announceWait(pgconvoy, options.db, handle.result(), io);
        try {
          const result = await handle.result();
          await announced;
          print(global, { workflowId: handle.workflowId, runId: handle.firstExecutionRunId, ...result }, renderMigrateResult(result, handle.workflowId));
          if (result.status === 'cancelled') return ExitCode.cancelled;
          return options.detailedExitcode && result.status === 'applied' ? ExitCode.applied : ExitCode.ok;
        } catch (error) {
          return reportRunFailure(io, global, pgconvoy, config, options.db, error, handle.workflowId);
        }
      });
    });

  program
    .command('status')
    .description("show a database's ledger, pending migrations and any running migration")
    .addOption(dbOption())
    .option('-w, --watch', 'follow a running migration live until it ends')
    .action(async (options: { db: string; watch?: boolean }) => {
      const { global, config, logger } = context();
      exitCode = await viaTemporal(
        { global, config, logger },
        async (pgconvoy) => {
          if (options.watch) await watch(pgconvoy, options.db, global, io);
          const status = await inspect(pgconvoy, { db: options.db, migrationsDir: config.migrationsDir });
          const running = await runningProgress(pgconvoy, options.db);
          print(global, { ...status, running }, renderStatus(status, running));
          return status.plan.problems.length > 0 ? ExitCode.badInput : ExitCode.ok;
        },
        { attach: true },
      );
    });

  const runMessage = async (db: string, send: (pgconvoy: PgconvoyClient) => Promise<{ phase: string }>, done: string) => {
    const { global, config, logger } = context();
    exitCode = await withTemporal(
      config,
      logger,
      async (pgconvoy) => {
        try {
          const ack = await send(pgconvoy);
          print(global, ack, `${done} (the run was ${ack.phase})\n`);
          return ExitCode.ok;
        } catch (error) {
          const failure = summarizeFailure(error);
          io.stderr(`pgconvoy: ${failure.message.includes('not found') ? `no migration of "${db}" is running` : failure.message}\n`);
          return ExitCode.failed;
        }
      },
      { attach: true },
    );
  };

  program
    .command('approve')
    .description('approve the migration of a database that waits for approval')
    .addOption(dbOption())
    .option('--by <who>', 'who approves (default: user@host)')
    .option('--note <text>', 'recorded with the approval')
    .action(async (options: { db: string; by?: string; note?: string }) => {
      const by = options.by ?? whoAmI();
      await runMessage(options.db, (p) => approve(p, options.db, { by, ...(options.note ? { note: options.note } : {}) }), `approved the migration of "${options.db}" as ${by}`);
    });

  program
    .command('cancel')
    .description('cancel the migration of a database: at once while it waits, otherwise after the migration in progress')
    .addOption(dbOption())
    .option('--by <who>', 'who cancels (default: user@host)')
    .option('--reason <text>', 'recorded with the cancellation')
    .action(async (options: { db: string; by?: string; reason?: string }) => {
      const by = options.by ?? whoAmI();
      await runMessage(options.db, (p) => cancel(p, options.db, { by, ...(options.reason ? { reason: options.reason } : {}) }), `asked the migration of "${options.db}" to stop`);
    });

  program
    .command('plan')
    .description('dry run: what `up` would run, statement by statement, with transaction mode and the lock each statement takes')
    .addOption(dbOption())
    .option('-t, --target <version>', 'stop at this version')
    .option('--out-of-order', 'allow pending versions lower than the highest applied one')
    .action(async (options: { db: string; target?: string; outOfOrder?: boolean }) => {
      const target = versionArgument('--target', options.target);
      const { global, config, logger } = context();
      // Statements are read here, from the files: SQL text never travels through workflow history.
      const set = await readMigrationSet(config.migrationsDir);
      const prepared = await prepareMigrations(set);
      exitCode = await viaTemporal({ global, config, logger }, async (pgconvoy) => {
        const { plan } = await inspect(pgconvoy, { db: options.db, migrationsDir: config.migrationsDir, historyLast: 0, ...(options.outOfOrder ? { allowOutOfOrder: true } : {}) });
        const pending = plan.pending.filter((p) => target === undefined || compareVersions(p.version, target) <= 0);
        const planned: PlannedMigration[] = pending.map((p) => {
          const m = prepared.get(p.version)!;
          return {
            version: p.version,
            description: p.description,
            file: m.forward.file,
            mode: m.forward.script.mode,
            statements: m.forward.script.statements.map((s) => {
              const lock = lockTaken(s);
              return {
                index: s.index,
                line: s.line,
                kind: s.kind,
                lock: lock.mode === null ? 'no table lock' : `${lock.mode}${lock.relations.length ? ` on ${lock.relations.join(', ')}` : ''}`,
                text: s.sql.replace(/\s+/g, ' ').slice(0, 72),
              };
            }),
            risk: p.risk ?? null,
          };
        });
        const version = plan.applied.at(-1)?.version ?? plan.baseline ?? null;
        print(global, { db: options.db, version, pending: planned, tables: plan.tableContext ?? [], problems: plan.problems }, renderPlan(options.db, version, planned, plan.problems));
        return plan.problems.length > 0 ? ExitCode.badInput : ExitCode.ok;
      });
    });

  program
    .command('validate')
    .description('check the migration set (names, duplicates, SQL syntax, transaction modes, directives); with --db, also against the ledger')
    .addOption(new Option('-d, --db <alias>', 'also check the ledger of this database').argParser(parseAlias))
    .option('--out-of-order', 'allow pending versions lower than the highest applied one')
    .action(async (options: { db?: string; outOfOrder?: boolean }) => {
      const { global, config, logger } = context();
      const set = await readMigrationSet(config.migrationsDir);
      const prepared = await prepareMigrations(set);
      const summary = `${set.migrations.length} migrations in ${config.migrationsDir} are valid (${[...prepared.values()].filter((m) => m.undo).length} with undo scripts; manifest ${set.digest.slice(0, 12)})`;
      if (options.db === undefined) {
        print(global, { valid: true, migrations: set.migrations.length, manifestDigest: set.digest }, summary + '\n');
        return;
      }
      const db = options.db;
      exitCode = await viaTemporal({ global, config, logger }, async (pgconvoy) => {
        const { plan } = await inspect(pgconvoy, { db, migrationsDir: config.migrationsDir, historyLast: 0, ...(options.outOfOrder ? { allowOutOfOrder: true } : {}) });
        const ok = plan.problems.length === 0;
        print(
          global,
          { valid: ok, migrations: set.migrations.length, manifestDigest: set.digest, problems: plan.problems },
          ok ? `${summary}; the ledger of "${db}" agrees (${plan.pending.length} pending)\n` : `the ledger of "${db}" and the files disagree:\n${plan.problems.map((p) => `  ${p}`).join('\n')}\n`,
        );
        return ok ? ExitCode.ok : ExitCode.badInput;
      });
    });

  program
    .command('history')
    .description("show a database's ledger, every attempt, oldest first")
    .addOption(dbOption())
    .option('--last <n>', 'only the newest n entries')
    .action(async (options: { db: string; last?: string }) => {
      const last = options.last === undefined ? undefined : Number(options.last);
      if (last !== undefined && (!Number.isInteger(last) || last < 1)) throw new UsageError(`--last must be a positive whole number, got "${options.last}"`);
      const { global, config, logger } = context();
      exitCode = await viaTemporal({ global, config, logger }, async (pgconvoy) => {
        const { history } = await inspect(pgconvoy, { db: options.db, migrationsDir: config.migrationsDir, ...(last ? { historyLast: last } : {}) });
        print(global, history, renderHistory(options.db, history));
        return ExitCode.ok;
      });
    });

  const ledgerCommand = async (db: string, change: LedgerChange, describe: (result: unknown) => string) => {
    const { global, config, logger } = context();
    exitCode = await withTemporal(config, logger, async (pgconvoy) => {
      try {
        const result = await changeLedger(pgconvoy, { db, migrationsDir: config.migrationsDir, change });
        print(global, result, describe(result));
        return ExitCode.ok;
      } catch (error) {
        if (error instanceof WorkflowExecutionAlreadyStartedError) {
          io.stderr(`pgconvoy: a migration of "${db}" is running (workflow pgconvoy/db/${db}); change the ledger when it has finished\n`);
          return ExitCode.failed;
        }
        return reportFailure(io, global, error);
      }
    });
  };

  program
    .command('baseline')
    .description('adopt an existing database: record that everything up to <version> is already in it')
    .argument('<version>', 'the version the database is at')
    .addOption(dbOption())
    .option('--reason <text>', 'why, recorded in the ledger', 'baseline of an existing database')
    .action(async (raw: string, options: { db: string; reason: string }) => {
      const version = versionArgument('<version>', raw)!;
      await ledgerCommand(options.db, { kind: 'baseline', version, reason: options.reason }, () => `database "${options.db}" baselined at version ${version}: migrations up to it will not run\n`);
    });

  program
    .command('mark-applied')
    .description('record a migration as applied without running it (it was applied by hand); the reason is recorded')
    .argument('<version>', 'the version to record')
    .addOption(dbOption())
    .requiredOption('--reason <text>', 'why it is recorded without running')
    .action(async (raw: string, options: { db: string; reason: string }) => {
      const version = versionArgument('<version>', raw)!;
      await ledgerCommand(options.db, { kind: 'mark-applied', version, reason: options.reason }, () => `version ${version} recorded as applied in "${options.db}" (not run)\n`);
    });

  program
    .command('import')
    .description("take over another tool's ledger: flyway_schema_history, refinery_schema_history or golang-migrate's schema_migrations")
    .addOption(dbOption())
    .addOption(new Option('--from <tool>', 'the tool whose ledger to import').choices(['flyway', 'refinery', 'golang-migrate']).makeOptionMandatory())
    .action(async (options: { db: string; from: LedgerSource }) => {
      await ledgerCommand(options.db, { kind: 'import', from: options.from }, (result) => {
        const r = result as { applied: string[]; baseline: string | null };
        return `imported from ${options.from} into "${options.db}": ${r.applied.length} applied${r.baseline ? `, baseline at version ${r.baseline}` : ''}\n`;
      });
    });

  program
    .command('backup')
    .description('take a backup of a database now: pg_dump to the configured store, verified by a full read-through, older ones beyond `keep` deleted')
    .addOption(dbOption())
    .option('--tables <list>', 'only these tables, comma-separated')
    .action(async (options: { db: string; tables?: string }) => {
      const { global, config, logger } = context();
      const tables = options.tables?.split(',').map((x) => x.trim()).filter(Boolean);
      exitCode = await viaTemporal({ global, config, logger }, async (pgconvoy) => {
        const result = await backup(pgconvoy, { db: options.db, ...(tables?.length ? { tables } : {}) });
        const m = result.manifest;
        print(
          global,
          result,
          `backup ${m.id} of "${m.db}": ${m.bytes} bytes, sha256 ${m.sha256}, verified\n` +
            `  ${result.location}/${m.key}\n  ${m.serverVersion === 'unknown' ? '' : `server ${m.serverVersion}, `}${m.pgDumpVersion}, ledger at ${m.ledgerVersion ?? 'no version'}` +
            `${m.tables ? `, tables ${m.tables.join(', ')}` : ''}\n` +
            (result.deleted.length ? `  deleted older backups: ${result.deleted.join(', ')}\n` : ''),
        );
        return ExitCode.ok;
      });
    });

  program
    .command('lint')
    .description('risk analysis: offline over the whole set (parser only), or with --db over the pending migrations with context from that database; exit 0 when nothing is above low risk, 11 for medium, 12 for high')
    .argument('[files...]', 'report only these files (the whole set is still read, in order)')
    .addOption(new Option('--format <format>', 'output format').choices(['human', 'json', 'github']).default('human'))
    .addOption(new Option('-d, --db <alias>', 'assess the pending migrations against this database: table sizes and blocking sessions move the levels').argParser(parseAlias))
    .action(async (files: string[], options: { format: 'human' | 'json' | 'github'; db?: string }) => {
      const { global, config } = context();
      const set = await readMigrationSet(config.migrationsDir);
      const prepared = [...(await prepareMigrations(set)).values()];
      const scripts = prepared.map((m) => ({ version: m.version, file: m.forward.file, script: m.forward.script }));
      let risk: Map<Version, { findings: Finding[] }>;
      let linted = prepared;
      if (options.db !== undefined) {
        const url = config.databases[options.db];
        if (url === undefined) throw new UsageError(`database alias "${options.db}" is not configured: lint --db connects directly; set ${databaseEnvName(options.db)}`);
        risk = await withClient({ alias: options.db, url }, async (client) => {
          const ledger = await readLedgerState(client);
          const plan = planMigrations(set.manifest, ledger.applied, { baseline: ledger.baseline });
          const pending = new Set(plan.pending.map((p) => p.version));
          linted = prepared.filter((m) => pending.has(m.version));
          return (await assessOnDatabase(client, scripts.filter((m) => pending.has(m.version)), config.risk)).risk;
        });
      } else {
        risk = new Map([...analyzeRisk(scripts)].map(([v, findings]) => [v, { findings }]));
      }
      const wanted = new Set(files.map((f) => basename(f)));
      const findings = linted
        .filter((m) => wanted.size === 0 || wanted.has(m.forward.file))
        .flatMap((m) => (risk.get(m.version)?.findings ?? []).map((f) => ({ file: m.forward.file, version: m.version, ...f })));
      const format = global.json ? 'json' : options.format;
      io.stdout(renderLint(findings, format, relative(cwd, config.migrationsDir) || '.'));
      const level = highestLevel(findings);
      exitCode = level === 'high' ? ExitCode.lintHigh : level === 'medium' ? ExitCode.lintMedium : ExitCode.ok;
    });

  program
    .command('rehearse')
    .description('dress rehearsal on a SCRATCH database: seed, upgrade, verify, undo to the start, compare, upgrade again, compare')
    .addOption(dbOption())
    .option('--seed <file>', 'SQL file with sample data, loaded first')
    .action(async (options: { db: string; seed?: string }) => {
      const { global, config } = context();
      const url = config.databases[options.db];
      if (url === undefined) throw new UsageError(`database alias "${options.db}" is not configured: rehearse connects directly; set ${databaseEnvName(options.db)}`);
      const steps = await rehearse({ alias: options.db, url }, config.migrationsDir, options.seed);
      const failed = steps.find((s) => !s.ok);
      print(
        global,
        { ok: !failed, steps },
        steps.map((s) => `${s.ok ? 'ok    ' : 'FAILED'}  ${s.step.padEnd(15)} ${s.detail}`).join('\n') +
          `\n${failed ? `rehearsal failed at step "${failed.step}"` : 'rehearsal passed'}\n`,
      );
      exitCode = failed ? ExitCode.failed : ExitCode.ok;
    });

  program
    .command('worker')
    .description('run a worker for pgconvoy workflows against TEMPORAL_ADDRESS until SIGINT/SIGTERM')
    .addOption(new Option('--task-queue <name>', 'task queue (default: from the config, else pgconvoy)'))
    .action(async (options: { taskQueue?: string }) => {
      const { config, logger } = context('info');
      exitCode = await runWorker(config, logger, io, options.taskQueue);
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? ExitCode.ok : ExitCode.badInput;
    }
    if (error instanceof UsageError) {
      io.stderr(`pgconvoy: ${error.message}\n`);
      return ExitCode.badInput;
    }
    return reportFailure(io, program.opts<GlobalOptions>(), error);
  }
}

async function runWorker(config: Config, logger: Logger, io: Io, taskQueue: string | undefined): Promise<ExitCode> {
  if (config.temporal.address === undefined) {
    io.stderr('pgconvoy worker: set TEMPORAL_ADDRESS (or temporal.address in the config) to the Temporal frontend to serve\n');
    return ExitCode.badInput;
  }
  installRuntime(logger, 'INFO');
  const { worker, connection } = await createWorker({ config, logger, ...(taskQueue ? { taskQueue } : {}) });
  logger.info({ event: 'worker.started', address: config.temporal.address, taskQueue: taskQueue ?? config.temporal.taskQueue });
  try {
    await worker.run(); // returns after SIGINT/SIGTERM once in-flight tasks are done
  } finally {
    await connection.close();
  }
  logger.info({ event: 'worker.stopped' });
  return ExitCode.ok;
}

/** A failed `up`: the full report, with the last ledger entries read back through a worker. */
async function reportRunFailure(io: Io, global: GlobalOptions, pgconvoy: PgconvoyClient, config: Config, db: string, error: unknown, workflowId: string): Promise<ExitCode> {
  const failure = summarizeFailure(error);
  const code = exitCodeForFailure(failure.type, failure.details);
  if (global.json) {
    io.stdout(JSON.stringify({ status: 'failed', workflowId, error: failure }, null, 2) + '\n');
    return code;
  }
  let history;
  if (failure.type === 'MigrationFailed' || failure.type === 'LockTimeout') {
    history = await inspect(pgconvoy, { db, migrationsDir: config.migrationsDir, historyLast: 5 }).then(
      (s) => s.history,
      () => undefined,
    );
  }
  io.stderr(renderFailureReport({ failure, db, migrationsDir: config.migrationsDir, workflowId, ...(history ? { history } : {}) }));
  return code;
}

/** Tells the person at the terminal when the run stops to wait for approval (--require-approval or the risk gate), and why. */
async function announceWait(pgconvoy: PgconvoyClient, db: string, finished: Promise<unknown>, io: Io): Promise<void> {
  let done = false;
  finished.then(
    () => (done = true),
    () => (done = true),
  );
  while (!done) {
    const progress = await runningProgress(pgconvoy, db).catch(() => null);
    if (progress && progress.phase !== 'planning') {
      if (progress.phase === 'awaiting-approval') io.stderr(`pgconvoy: ${renderWaiting(progress)}\n`);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

/** Prints a line whenever the running migration's progress changes, until it ends. */
async function watch(pgconvoy: PgconvoyClient, db: string, global: GlobalOptions, io: Io): Promise<void> {
  let last = '';
  for (;;) {
    const progress = await runningProgress(pgconvoy, db);
    if (progress === null) return;
    const line = renderProgressLine(progress);
    if (line !== last) {
      if (!global.json) io.stderr(`${new Date().toISOString()}  ${line}\n`);
      last = line;
    }
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

function reportFailure(io: Io, global: GlobalOptions, error: unknown): ExitCode {
  const failure = summarizeFailure(error);
  if (global.json) io.stdout(JSON.stringify({ status: 'failed', error: failure }, null, 2) + '\n');
  else io.stderr(`pgconvoy: ${failure.type ? `[${failure.type}] ` : ''}${failure.message}\n`);
  return exitCodeForFailure(failure.type, failure.details);
}

export function main(): void {
  const io: Io = { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t) };
  // Exit explicitly: a Temporal runtime that was installed but never got to
  // run a worker (a dev server that failed to start) keeps the process alive.
  run(process.argv.slice(2), process.env, process.cwd(), io).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`pgconvoy: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(ExitCode.failed);
    },
  );
}
