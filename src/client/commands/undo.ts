import { Option } from 'commander';
import { parseDuration } from '../../core/directives';
import { databaseWorkflowId, executionModes, type ExecutionMode, type RevertDatabaseResult } from '../../contracts';
import { revert } from '../api';
import { ExitCode } from '../exit-codes';
import { renderRevertResult } from '../render';
import { withTemporal } from '../session';
import { temporalClient } from '../temporal';
import { dbOption, UsageError, versionArgument, type CliKit } from './kit';

/** undo: take back applied versions with their undo scripts, newest first, and prove the schema is the one the ledger recorded. */
export function registerUndoCommand(kit: CliKit): void {
  kit.program
    .command('undo')
    .description('undo applied migrations with their undo scripts (newest first), then prove the schema equals the one the ledger recorded after the version it lands on')
    .addOption(dbOption())
    .option('--to <version>', 'undo every applied version above this one')
    .option('--steps <n>', 'undo the newest n applied versions')
    .addOption(new Option('--mode <mode>', 'what may run without approval (by the undo scripts\' risk)').choices(executionModes).default('auto'))
    .option('--require-approval', 'wait for `pgconvoy approve` before changing anything')
    .option('--approval-timeout <duration>', 'give up waiting for approval after this long (e.g. 30min, 24h)', '24h')
    .action(async (options: { db: string; to?: string; steps?: string; mode: ExecutionMode; requireApproval?: boolean; approvalTimeout: string }) => {
      if ((options.to === undefined) === (options.steps === undefined)) throw new UsageError('undo needs exactly one of --to <version> and --steps <n>');
      const to = versionArgument('--to', options.to);
      const steps = options.steps === undefined ? undefined : Number(options.steps);
      if (steps !== undefined && (!Number.isInteger(steps) || steps < 1)) throw new UsageError(`--steps must be a positive whole number, got "${options.steps}"`);
      const approvalTimeoutMs = parseDuration(options.approvalTimeout);
      if (approvalTimeoutMs === undefined || approvalTimeoutMs <= 0) throw new UsageError(`--approval-timeout needs a duration such as 30min or 24h, got "${options.approvalTimeout}"`);
      const { global, config, logger } = kit.context();
      kit.exitCode = await withTemporal(config, logger, async (pgconvoy) => {
        try {
          if (!global.json) kit.io.stderr(`pgconvoy: undoing on "${options.db}" from ${config.migrationsDir}\n`);
          const result = await revert(pgconvoy, {
            db: options.db,
            migrationsDir: config.migrationsDir,
            ...(to !== undefined ? { to } : {}),
            ...(steps !== undefined ? { steps } : {}),
            mode: options.mode,
            approvalTimeoutMs,
            ...(options.requireApproval ? { requireApproval: true } : {}),
          });
          kit.print(global, result, renderRevertResult(result));
          return exitCodeForRevert(result);
        } catch (error) {
          if (error instanceof temporalClient().WorkflowExecutionAlreadyStartedError) {
            kit.io.stderr(`pgconvoy: a migration of "${options.db}" is running (workflow ${databaseWorkflowId(options.db)}); undo when it has finished\n`);
            return ExitCode.failed;
          }
          return kit.reportFailure(global, error);
        }
      });
    });
}

function exitCodeForRevert(result: RevertDatabaseResult): ExitCode {
  return result.status === 'cancelled' ? ExitCode.cancelled : ExitCode.ok;
}
