import { Option } from 'commander';
import { databaseEnvName, type Config } from '../../config/config';
import type { Logger } from '../../logging/logger';
import { backup } from '../api';
import { ExitCode } from '../exit-codes';
import { dbOption, UsageError, type CliKit, type Io } from './kit';

/** backup, rehearse, worker. */
export function registerOperationCommands(kit: CliKit): void {
  kit.program
    .command('backup')
    .description('take a backup of a database now: pg_dump to the configured store, verified by a full read-through, older ones beyond `keep` deleted')
    .addOption(dbOption())
    .option('--tables <list>', 'only these tables, comma-separated')
    .action(async (options: { db: string; tables?: string }) => {
      const { global, config, logger } = kit.context();
      const tables = options.tables?.split(',').map((x) => x.trim()).filter(Boolean);
      kit.exitCode = await kit.viaTemporal({ global, config, logger }, async (pgconvoy) => {
        const result = await backup(pgconvoy, { db: options.db, ...(tables?.length ? { tables } : {}) });
        const m = result.manifest;
        kit.print(
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

  kit.program
    .command('rehearse')
    .description('dress rehearsal on a SCRATCH database: seed, upgrade, verify, undo to the start, compare, upgrade again, compare')
    .addOption(dbOption())
    .option('--seed <file>', 'SQL file with sample data, loaded first')
    .action(async (options: { db: string; seed?: string }) => {
      const { global, config, logger } = kit.context();
      if (config.databases[options.db] === undefined) throw new UsageError(`database alias "${options.db}" is not configured: rehearse connects directly; set ${databaseEnvName(options.db)}`);
      const { localDeps, rehearse } = await import('../../runs');
      const steps = await rehearse(localDeps(config, logger), { db: options.db, migrationsDir: config.migrationsDir, ...(options.seed ? { seedFile: options.seed } : {}) });
      const failed = steps.find((s) => !s.ok);
      kit.print(
        global,
        { ok: !failed, steps },
        steps.map((s) => `${s.ok ? 'ok    ' : 'FAILED'}  ${s.step.padEnd(15)} ${s.detail}`).join('\n') +
          `\n${failed ? `rehearsal failed at step "${failed.step}"` : 'rehearsal passed'}\n`,
      );
      kit.exitCode = failed ? ExitCode.failed : ExitCode.ok;
    });

  kit.program
    .command('worker')
    .description('run a worker for pgconvoy workflows against TEMPORAL_ADDRESS until SIGINT/SIGTERM')
    .addOption(new Option('--task-queue <name>', 'task queue (default: from the config, else pgconvoy)'))
    .addOption(new Option('--max-activities <n>', 'activities at once: two per database in flight (default: worker.maxConcurrentActivities, 100)'))
    .addOption(new Option('--max-workflow-tasks <n>', 'workflow tasks at once (default: worker.maxConcurrentWorkflowTasks, 40)'))
    .addOption(new Option('--max-connections-per-server <n>', 'connections open to one PostgreSQL server at once, over all its databases (default: worker.maxConnectionsPerServer, 20)'))
    .action(async (options: WorkerFlags) => {
      const { config, logger } = kit.context('info', 'json');
      kit.exitCode = await runWorker({ ...config, worker: sized(config, options) }, logger, kit.io, options.taskQueue);
    });
}

interface WorkerFlags {
  taskQueue?: string;
  maxActivities?: string;
  maxWorkflowTasks?: string;
  maxConnectionsPerServer?: string;
}

/** The config's worker sizing with the command line's over it. */
function sized(config: Config, flags: WorkerFlags): Config['worker'] {
  const atLeast = (flag: string, value: string | undefined, min: number): number | undefined => {
    if (value === undefined) return undefined;
    if (!/^\d+$/.test(value) || Number(value) < min) throw new UsageError(`${flag} must be a whole number ≥ ${min}, got "${value}"`);
    return Number(value);
  };
  const activities = atLeast('--max-activities', flags.maxActivities, 2);
  const workflowTasks = atLeast('--max-workflow-tasks', flags.maxWorkflowTasks, 2);
  const connections = atLeast('--max-connections-per-server', flags.maxConnectionsPerServer, 4);
  return {
    ...config.worker,
    ...(activities === undefined ? {} : { maxConcurrentActivities: activities }),
    ...(workflowTasks === undefined ? {} : { maxConcurrentWorkflowTasks: workflowTasks }),
    ...(connections === undefined ? {} : { maxConnectionsPerServer: connections }),
  };
}

async function runWorker(config: Config, logger: Logger, io: Io, taskQueue: string | undefined): Promise<ExitCode> {
  if (config.temporal.address === undefined) {
    io.stderr('pgconvoy worker: set TEMPORAL_ADDRESS (or temporal.address in the config) to the Temporal frontend to serve\n');
    return ExitCode.badInput;
  }
  const { createWorker, installRuntime } = await import('../../worker/worker');
  installRuntime(logger, 'INFO');
  const { worker, connection } = await createWorker({ config, logger, ...(taskQueue ? { taskQueue } : {}) });
  logger.info({ event: 'worker.started', address: config.temporal.address, taskQueue: taskQueue ?? config.temporal.taskQueue, ...config.worker });
  try {
    await worker.run(); // returns after SIGINT/SIGTERM once in-flight tasks are done
  } finally {
    await connection.close();
  }
  logger.info({ event: 'worker.stopped' });
  return ExitCode.ok;
}

