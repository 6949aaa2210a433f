import { Option } from 'commander';
import { notifyAll, type Config } from '../../config/config';
import { parseDuration } from '../../core/directives';
import { databaseWorkflowId, executionModes, failurePolicies, outcomeOf, type ExecutionMode, type FailurePolicy, type PlanInput, type RunOutcome } from '../../contracts';
import { approve, cancel, inspect, readerThrough, runningProgress, startMigration, type DatabaseReader, type PgconvoyClient } from '../api';
import { ExitCode, exitCodeForFailure, exitCodeForSignal } from '../exit-codes';
import { rejectionOf, summarizeFailure } from '../failure';
import { renderProgressLine, renderWatchLine, renderStatus, renderWaiting } from '../render';
import { renderFailureReport } from '../report';
import { exitCodeFor, renderOutcome } from '../outcome';
import { answersWithoutServer, withTemporal, type Session } from '../session';
import { temporalClient } from '../temporal';
import { waitForResult } from '../wait';
import { dbOption, UsageError, versionArgument, whoAmI, type CliKit, type CommandContext, type GlobalOptions, type Io } from './kit';

/** up, status, approve, cancel: starting a run, watching it, deciding on it. */
export function registerRunCommands(kit: CliKit): void {
  kit.program
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
      const { global, config, logger } = kit.context();
      if (answersWithoutServer(config)) {
        const answered = await upToDateHere(kit, { global, config, logger }, { db: options.db, migrationsDir: config.migrationsDir, ...(target ? { target } : {}), ...(options.outOfOrder ? { allowOutOfOrder: true } : {}) });
        if (answered !== undefined) {
          kit.exitCode = answered;
          return;
        }
      }
      kit.exitCode = await withTemporal(config, logger, async (pgconvoy, session) => {
        const handle = await startMigration(pgconvoy, {
          db: options.db,
          migrationsDir: config.migrationsDir,
          ...(target ? { target } : {}),
          ...(options.group ? { group: true } : {}),
          ...(options.outOfOrder ? { allowOutOfOrder: true } : {}),
          mode: options.mode,
          onFailure: options.onFailure,
          // The risk gate waits too, not only --require-approval: the timeout holds for either.
          approvalTimeoutMs,
          ...(options.requireApproval ? { requireApproval: true } : {}),
          ...notifyAll(config),
        });
        if (!global.json) kit.io.stderr(`pgconvoy: migrating "${options.db}" from ${config.migrationsDir}\n`);
        const finished = waitForResult(handle, session, {
          db: options.db,
          onLost: () => kit.io.stderr(`pgconvoy: lost the connection to Temporal at ${session.address}; the run goes on there: reconnecting for up to ${Math.round(session.reconnectTimeoutMs / 1000)} s\n`),
          onBack: () => kit.io.stderr(`pgconvoy: reconnected to Temporal at ${session.address}; waiting for the run\n`),
          abandoned: session.interrupted,
        });
        const announced = global.json ? Promise.resolve() : announceWait(pgconvoy, options.db, Promise.race([finished, session.interrupted]), kit.io);
        const outcome = await Promise.race([
          finished.then(
            (result) => ({ result }),
            (error: unknown) => ({ error }),
          ),
          session.interrupted.then((signal) => ({ signal })),
        ]);
        // Its last query has ended before the connection closes.
        await announced;
        if ('signal' in outcome) return reportInterrupted(kit.io, global, pgconvoy, session, options.db, handle.workflowId, outcome.signal);
        const ended = 'error' in outcome ? outcome.error : outcome.result;
        const run = outcomeOf(ended);
        // Not an outcome: the run never got to plan (Temporal or a worker failed it), or it failed in a way no run ends.
        if (run === undefined) return reportRunFailure(kit.io, global, pgconvoy, config, options.db, ended, handle.workflowId);
        return reportOutcome(kit, global, pgconvoy, config, run, ended, options.detailedExitcode ?? false);
      }, { handlesInterrupts: true, warm: async () => (await import('../local-read')).warmSetHere(config) });
    });

  kit.program
    .command('status')
    .description("show a database's ledger, pending migrations and any running migration")
    .addOption(dbOption())
    .option('-w, --watch', 'follow a running migration live until it ends')
    .action(async (options: { db: string; watch?: boolean }) => {
      const { global, config, logger } = kit.context();
      const show = async (reader: DatabaseReader) => {
        const status = await reader.inspect({ db: options.db, migrationsDir: config.migrationsDir });
        const running = await reader.running(options.db);
        kit.print(global, { ...status, running }, renderStatus(status, running));
        return status.plan.problems.length > 0 ? ExitCode.badInput : ExitCode.ok;
      };
      kit.exitCode = options.watch
        ? await kit.viaTemporal(
            { global, config, logger },
            async (pgconvoy) => {
              await watch(pgconvoy, options.db, global, kit.io);
              return show(readerThrough(pgconvoy));
            },
            { attach: true },
          )
        : await kit.readDatabase({ global, config, logger }, show, { attach: true });
    });

  const runMessage = async (db: string, send: (pgconvoy: PgconvoyClient) => Promise<{ phase: string }>, done: string) => {
    const { global, config, logger } = kit.context();
    kit.exitCode = await withTemporal(
      config,
      logger,
      async (pgconvoy) => {
        try {
          const ack = await send(pgconvoy);
          kit.print(global, ack, `${done} (the run was ${ack.phase})\n`);
          return ExitCode.ok;
        } catch (error) {
          const refused = messageRefusal(error, db);
          if (refused) {
            if (global.json) kit.io.stdout(JSON.stringify({ status: 'rejected', reason: refused.reason, message: refused.message }, null, 2) + '\n');
            else kit.io.stderr(`pgconvoy: ${refused.message}\n`);
            return ExitCode.notApplicable;
          }
          const failure = summarizeFailure(error);
          kit.io.stderr(`pgconvoy: ${failure.message}\n`);
          return exitCodeForFailure(failure.type, failure.details);
        }
      },
      { attach: true },
    );
  };

  kit.program
    .command('approve')
    .description('approve the migration of a database that waits for approval')
    .addOption(dbOption())
    .option('--by <who>', 'who approves (default: user@host)')
    .option('--note <text>', 'recorded with the approval')
    .action(async (options: { db: string; by?: string; note?: string }) => {
      const by = options.by ?? whoAmI();
      await runMessage(options.db, (p) => approve(p, options.db, { by, ...(options.note ? { note: options.note } : {}) }), `approved the migration of "${options.db}" as ${by}`);
    });

  kit.program
    .command('cancel')
    .description('cancel the migration of a database: at once while it waits, otherwise after the migration in progress')
    .addOption(dbOption())
    .option('--by <who>', 'who cancels (default: user@host)')
    .option('--reason <text>', 'recorded with the cancellation')
    .action(async (options: { db: string; by?: string; reason?: string }) => {
      const by = options.by ?? whoAmI();
      await runMessage(options.db, (p) => cancel(p, options.db, { by, ...(options.reason ? { reason: options.reason } : {}) }), `asked the migration of "${options.db}" to stop`);
    });
}

/**
 * Why the run did not take an approve or cancel, when it is the run's state
 * and not a failure: no run of the database (none started, or it ended), or
 * the run's validator refused the message in its current phase. Nothing
 * changed in either case.
 */
function messageRefusal(error: unknown, db: string): { reason: 'no-run' | 'rejected'; message: string } | undefined {
  if (error instanceof temporalClient().WorkflowNotFoundError) return { reason: 'no-run', message: `no migration of "${db}" is running` };
  const rejected = rejectionOf(error);
  return rejected === undefined ? undefined : { reason: 'rejected', message: rejected };
}

/**
 * An embedded `up` with nothing to do, answered from the ledger without
 * starting the dev server (session.ts, answersWithoutServer): the outcome the
 * workflow would return, with no run. Undefined when there is something to
 * do, a problem to report, or the read failed: the workflow does it, as always.
 */
async function upToDateHere(kit: CliKit, c: CommandContext, input: PlanInput): Promise<ExitCode | undefined> {
  const { planHere } = await import('../local-read');
  const plan = await planHere(c.config, c.logger, input).catch((error: unknown) => {
    c.logger.debug({ event: 'plan.through_worker', reason: String(error) });
    return undefined;
  });
  if (plan === undefined || plan.problems.length > 0 || plan.pending.length > 0) return undefined;
  const version = plan.applied.at(-1)?.version ?? plan.baseline ?? null;
  const outcome: RunOutcome = {
    status: 'up-to-date',
    db: input.db,
    workflowId: databaseWorkflowId(input.db),
    runId: null,
    manifestDigest: plan.manifestDigest,
    versionBefore: version,
    versionAfter: version,
    migrations: [],
    version,
    applied: [],
  };
  if (c.global.json) kit.io.stdout(JSON.stringify(outcome, null, 2) + '\n');
  else {
    const { stream, text } = renderOutcome(outcome, { migrationsDir: c.config.migrationsDir });
    kit.io[stream](text);
  }
  return exitCodeFor(outcome);
}

/**
 * How a run ended, for the person or the script that started it: the
 * outcome, rendered once (src/client/outcome.ts), with the last ledger
 * entries read back through a worker when a migration failed, and its exit
 * code.
 */
async function reportOutcome(kit: CliKit, global: GlobalOptions, pgconvoy: PgconvoyClient, config: Config, outcome: RunOutcome, ended: unknown, detailedExitcode: boolean): Promise<ExitCode> {
  const code = exitCodeFor(outcome, { detailedExitcode });
  if (global.json) {
    const failed = 'failure' in outcome;
    kit.io.stdout(JSON.stringify(failed ? { status: 'failed', workflowId: outcome.workflowId, error: summarizeFailure(ended), outcome } : outcome, null, 2) + '\n');
    return code;
  }
  let history;
  if ('failure' in outcome && (outcome.failure.type === 'MigrationFailed' || outcome.failure.type === 'LockTimeout')) {
    history = await inspect(pgconvoy, { db: outcome.db, migrationsDir: config.migrationsDir, historyLast: 5 }).then(
      (s) => s.history,
      () => undefined,
    );
  }
  const { stream, text } = renderOutcome(outcome, { migrationsDir: config.migrationsDir, ...(history ? { history } : {}) });
  kit.io[stream](text);
  return code;
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

/**
 * `up` was stopped by SIGINT/SIGTERM: one line that says where the run
 * stands and what to do. Only the waiting ends here: the run itself stays
 * (on the Temporal server, or in the embedded state directory).
 */
async function reportInterrupted(io: Io, global: GlobalOptions, pgconvoy: PgconvoyClient, session: Session, db: string, workflowId: string, signal: NodeJS.Signals): Promise<ExitCode> {
  const calls = new AbortController();
  const query = pgconvoy.client.connection.withAbortSignal(calls.signal, () => runningProgress(pgconvoy, db)).catch(() => null);
  const progress = await Promise.race([query, new Promise<null>((resolve) => setTimeout(() => resolve(null), 3_000).unref())]);
  calls.abort();
  await query; // ended before the connection closes
  const phase = progress?.phase ?? null;
  const unchanged = phase === 'planning' || phase === 'awaiting-approval';
  const where = phase === null ? `the state of the run of "${db}" is unknown` : phase === 'awaiting-approval' ? `the run of "${db}" waits for approval` : `the run of "${db}" was ${phase}`;
  let next: string;
  if (phase === null) next = `check with \`pgconvoy status --db ${db}\``;
  else if (session.embedded) {
    next =
      `the run is kept in ${session.stateDir}: \`pgconvoy up --db ${db}\` picks it up again` +
      (phase === 'awaiting-approval' ? ` (then \`pgconvoy approve --db ${db}\`), \`pgconvoy cancel --db ${db}\` drops it` : ' from its last checkpoint');
  } else {
    next =
      phase === 'awaiting-approval'
        ? `it still waits on the Temporal server: \`pgconvoy approve --db ${db}\` or \`pgconvoy cancel --db ${db}\``
        : `it goes on on the Temporal server: follow it with \`pgconvoy status --db ${db} --watch\``;
  }
  const message = `stopped by ${signal} while ${where}${unchanged ? ': nothing was changed' : ''}; ${next}`;
  if (global.json) io.stdout(JSON.stringify({ status: 'interrupted', signal, workflowId, phase, message }, null, 2) + '\n');
  else io.stderr(`pgconvoy: ${message}\n`);
  return exitCodeForSignal(signal);
}

/** Tells the person at the terminal when the run stops to wait for approval (--require-approval or the risk gate), and why. */
async function announceWait(pgconvoy: PgconvoyClient, db: string, finished: Promise<unknown>, io: Io): Promise<void> {
  let done = false;
  // A query still in flight when the command ends is cancelled, so the SDK
  // does not retry it on a connection that is closed by then.
  const calls = new AbortController();
  const end = () => {
    done = true;
    calls.abort();
  };
  finished.then(end, end);
  while (!done) {
    const progress = await pgconvoy.client.connection.withAbortSignal(calls.signal, () => runningProgress(pgconvoy, db)).catch(() => null);
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
    const watched = renderWatchLine(progress);
    const line = renderProgressLine(progress) + (watched ? `\n  ${watched}` : '');
    if (line !== last) {
      if (!global.json) io.stderr(`${new Date().toISOString()}  ${line}\n`);
      last = line;
    }
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

