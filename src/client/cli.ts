import { Command, CommanderError } from 'commander';
import { databaseEnvName, loadConfig, type Config } from '../config/config';
import { createLogger } from '../logging/logger';
import { readerThrough, type DatabaseReader, type PgconvoyClient } from './api';
import { registerLedgerCommands } from './commands/ledger';
import { registerOperationCommands } from './commands/operations';
import { registerReadCommands } from './commands/read';
import { registerRolloutCommands } from './commands/rollout';
import { registerRunCommands } from './commands/run';
import { registerServeCommand } from './commands/serve';
import { registerUndoCommand } from './commands/undo';
import { UsageError, type CliKit, type CommandContext, type GlobalOptions, type Io } from './commands/kit';
import { ExitCode, exitCodeForFailure } from './exit-codes';
import { summarizeFailure } from './failure';
import { answersWithoutServer, withTemporal, type Session } from './session';

export async function run(argv: string[], env: NodeJS.ProcessEnv, cwd: string, io: Io): Promise<ExitCode> {
  const program = new Command('pgconvoy')
    .description('Versioned SQL migrations for PostgreSQL through durable Temporal workflows')
    .option('-c, --config <file>', 'config file (default: pgconvoy.config.json if present)')
    .option('-m, --migrations <dir>', 'migration directory (default: from the config, else ./migrations)')
    .option('--json', 'print machine-readable JSON on stdout')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError();

  // A worker logs JSON for log shippers; the other commands print their few log lines for people.
  const context = (defaultLogLevel = 'warn', defaultFormat: 'json' | 'human' = 'human') => {
    const global = program.opts<GlobalOptions>();
    const config = loadConfig({ cwd, env, ...(global.config ? { configFile: global.config } : {}), ...(global.migrations ? { migrationsDir: global.migrations } : {}) });
    return { global, config, logger: createLogger(config.logLevel ?? defaultLogLevel, config.logFormat ?? defaultFormat, io.stderr) };
  };
  const print = (global: GlobalOptions, json: unknown, human: string) => io.stdout(global.json ? JSON.stringify(json, null, 2) + '\n' : human);
  /** Runs a command against Temporal; a failure becomes its report and exit code. */
  const viaTemporal = (
    c: CommandContext,
    fn: (pgconvoy: PgconvoyClient, session: Session) => Promise<ExitCode>,
    options: { attach?: boolean; handlesInterrupts?: boolean } = {},
  ): Promise<ExitCode> =>
    withTemporal(
      c.config,
      c.logger,
      async (pgconvoy, session) => {
        try {
          return await fn(pgconvoy, session);
        } catch (error) {
          return reportFailure(io, c.global, error, workerSide(c.config, error));
        }
      },
      options,
    );

  const readDatabase = async (c: CommandContext, fn: (reader: DatabaseReader) => Promise<ExitCode>, options: { attach?: boolean } = {}): Promise<ExitCode> => {
    if (answersWithoutServer(c.config)) {
      const here = await readHere(io, c, fn);
      if (here !== undefined) return here;
    }
    return viaTemporal(c, (pgconvoy) => fn(readerThrough(pgconvoy)), options);
  };

  const kit: CliKit = { program, io, cwd, context, print, viaTemporal, readDatabase, reportFailure: (global, error) => reportFailure(io, global, error), exitCode: ExitCode.ok };
  registerRunCommands(kit);
  registerUndoCommand(kit);
  registerReadCommands(kit);
  registerLedgerCommands(kit);
  registerOperationCommands(kit);
  registerRolloutCommands(kit);
  registerServeCommand(kit);

  try {
    await program.parseAsync(argv, { from: 'user' });
    return kit.exitCode;
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

/**
 * The read answered here (no workflow can be open: nothing runs). Undefined
 * when reading the database failed: the same read through a worker then
 * reports that failure as it always does, retries included.
 */
async function readHere(io: Io, c: CommandContext, fn: (reader: DatabaseReader) => Promise<ExitCode>): Promise<ExitCode | undefined> {
  const { inspectHere } = await import('./local-read');
  const failed = new Error('read failed');
  const reader: DatabaseReader = {
    inspect: (input) => inspectHere(c.config, c.logger, input).catch((error: unknown) => {
      c.logger.debug({ event: 'read.through_worker', reason: String(error) });
      throw failed;
    }),
    running: () => Promise.resolve(null),
  };
  try {
    return await fn(reader);
  } catch (error) {
    if (error === failed) return undefined;
    return reportFailure(io, c.global, error);
  }
}

function reportFailure(io: Io, global: GlobalOptions, error: unknown, hint?: string): ExitCode {
  const summary = summarizeFailure(error);
  const failure = hint ? { ...summary, message: `${summary.message}\n${hint}` } : summary;
  if (global.json) io.stdout(JSON.stringify({ status: 'failed', error: failure }, null, 2) + '\n');
  else io.stderr(`pgconvoy: ${failure.type ? `[${failure.type}] ` : ''}${failure.message}\n`);
  return exitCodeForFailure(failure.type, failure.details);
}

/**
 * An alias this command knows that the worker does not: the worker said
 * "set PGCONVOY_DB_X", and it is set, here. Say where it is missing.
 */
function workerSide(config: Config, error: unknown): string | undefined {
  const failure = summarizeFailure(error);
  const alias = (failure.details as { alias?: string } | undefined)?.alias;
  if (failure.type !== 'UnknownDatabase' || alias === undefined || config.databases[alias] === undefined) return undefined;
  return (
    `"${alias}" is configured for this command (${databaseEnvName(alias)} or the config file here), but not for the worker that ran it ` +
    `(task queue "${config.temporal.taskQueue}" at ${config.temporal.address ?? 'the embedded dev server'}): ` +
    `a worker reads only its own config file and environment; configure "${alias}" there and restart it`
  );
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
