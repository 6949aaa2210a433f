import { Command, CommanderError, Option } from 'commander';
import { loadConfig, type Config } from '../config/config';
import { parseVersion } from '../core/version';
import { createLogger, type Logger } from '../worker/logger';
import { createWorker, installRuntime } from '../worker/worker';
import { inspect, runningProgress, startMigration } from './api';
import { ExitCode, exitCodeForFailure } from './exit-codes';
import { summarizeFailure } from './failure';
import { renderMigrateResult, renderStatus } from './render';
import { withTemporal } from './session';
import { aliasPattern } from '../config/config';

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

  program
    .command('up')
    .description('apply pending migrations to a database through the migrateDatabase workflow')
    .requiredOption('-d, --db <alias>', 'database alias', parseAlias)
    .option('-t, --target <version>', 'stop at this version')
    .action(async (options: { db: string; target?: string }) => {
      const { global, config, logger } = context();
      const target = options.target === undefined ? undefined : parseVersion(options.target);
      if (options.target !== undefined && target === undefined) throw new UsageError(`--target must be a positive integer version, got "${options.target}"`);
      exitCode = await withTemporal(config, logger, async (pgconvoy) => {
        const handle = await startMigration(pgconvoy, { db: options.db, migrationsDir: config.migrationsDir, ...(target ? { target } : {}) });
        if (!global.json) io.stderr(`pgconvoy: migrating "${options.db}" from ${config.migrationsDir}\n`);
        try {
          const result = await handle.result();
          io.stdout(global.json ? JSON.stringify({ workflowId: handle.workflowId, ...result }, null, 2) + '\n' : renderMigrateResult(result, handle.workflowId));
          return ExitCode.ok;
        } catch (error) {
          return reportFailure(io, global, error, handle.workflowId);
        }
      });
    });

  program
    .command('status')
    .description("show a database's ledger, pending migrations and any running migration")
    .requiredOption('-d, --db <alias>', 'database alias', parseAlias)
    .action(async (options: { db: string }) => {
      const { global, config, logger } = context();
      exitCode = await withTemporal(config, logger, async (pgconvoy) => {
        try {
          const status = await inspect(pgconvoy, { db: options.db, migrationsDir: config.migrationsDir });
          const running = await runningProgress(pgconvoy, options.db);
          io.stdout(global.json ? JSON.stringify({ ...status, running }, null, 2) + '\n' : renderStatus(status, running));
          return status.plan.problems.length > 0 ? ExitCode.badInput : ExitCode.ok;
        } catch (error) {
          return reportFailure(io, global, error);
        }
      });
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

function reportFailure(io: Io, global: GlobalOptions, error: unknown, workflowId?: string): ExitCode {
  const failure = summarizeFailure(error);
  if (global.json) {
    io.stdout(JSON.stringify({ status: 'failed', ...(workflowId ? { workflowId } : {}), error: failure }, null, 2) + '\n');
  } else {
    io.stderr(`pgconvoy: ${failure.type ? `[${failure.type}] ` : ''}${failure.message}\n`);
    if (workflowId) io.stderr(`workflow: ${workflowId}\n`);
  }
  return exitCodeForFailure(failure.type);
}

export function main(): void {
  const io: Io = { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t) };
  run(process.argv.slice(2), process.env, process.cwd(), io).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`pgconvoy: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = ExitCode.failed;
    },
  );
}
