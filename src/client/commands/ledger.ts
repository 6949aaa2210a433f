import { Option } from 'commander';
import { databaseWorkflowId, type LedgerChange, type LedgerSource } from '../../contracts';
import { changeLedger } from '../api';
import { ExitCode } from '../exit-codes';
import { withTemporal } from '../session';
import { temporalClient } from '../temporal';
import { dbOption, versionArgument, type CliKit } from './kit';

/** baseline, mark-applied, import: changes to the ledger, never to the schema. */
export function registerLedgerCommands(kit: CliKit): void {
  const ledgerCommand = async (db: string, change: LedgerChange, describe: (result: unknown) => string) => {
    const { global, config, logger } = kit.context();
    kit.exitCode = await withTemporal(config, logger, async (pgconvoy) => {
      try {
        const result = await changeLedger(pgconvoy, { db, migrationsDir: config.migrationsDir, change });
        kit.print(global, result, describe(result));
        return ExitCode.ok;
      } catch (error) {
        if (error instanceof temporalClient().WorkflowExecutionAlreadyStartedError) {
          kit.io.stderr(`pgconvoy: a migration of "${db}" is running (workflow ${databaseWorkflowId(db)}); change the ledger when it has finished\n`);
          return ExitCode.failed;
        }
        return kit.reportFailure(global, error);
      }
    });
  };

  kit.program
    .command('baseline')
    .description('adopt an existing database: record that everything up to <version> is already in it')
    .argument('<version>', 'the version the database is at')
    .addOption(dbOption())
    .option('--reason <text>', 'why, recorded in the ledger', 'baseline of an existing database')
    .action(async (raw: string, options: { db: string; reason: string }) => {
      const version = versionArgument('<version>', raw)!;
      await ledgerCommand(options.db, { kind: 'baseline', version, reason: options.reason }, () => `database "${options.db}" baselined at version ${version}: migrations up to it will not run\n`);
    });

  kit.program
    .command('mark-applied')
    .description('record a migration as applied without running it (it was applied by hand); the reason is recorded')
    .argument('<version>', 'the version to record')
    .addOption(dbOption())
    .requiredOption('--reason <text>', 'why it is recorded without running')
    .action(async (raw: string, options: { db: string; reason: string }) => {
      const version = versionArgument('<version>', raw)!;
      await ledgerCommand(options.db, { kind: 'mark-applied', version, reason: options.reason }, () => `version ${version} recorded as applied in "${options.db}" (not run)\n`);
    });

  kit.program
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
}
