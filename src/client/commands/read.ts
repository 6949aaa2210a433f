import { Option } from 'commander';
import { basename, relative } from 'node:path';
import { databaseEnvName } from '../../config/config';
import { lockTaken } from '../../core/locks';
import { checkTarget } from '../../core/plan';
import { prepareMigrations, type PreparedMigration } from '../../core/prepare';
import { analyzeRisk, analyzeUndo, highestLevel, type Finding } from '../../core/risk';
import { compareVersions, type Version } from '../../core/version';
import { readChecks } from '../../source/read-checks';
import { readMigrationSet } from '../../source/read-migration-set';
import { ExitCode } from '../exit-codes';
import { renderHistory, renderPlan, type PlannedMigration } from '../render';
import { renderLint } from '../render-lint';
import { dbOption, parseAlias, UsageError, versionArgument, type CliKit } from './kit';

/**
 * The worker plans from its own copy of the files, this command reads them
 * here: a plan or a check joins the two, so they must be the same set.
 */
function differentFiles(here: string, worker: string, directory: string, db: string): string | undefined {
  if (here === worker) return undefined;
  return (
    `the worker read other migration files than this command: ${directory} is manifest ${worker.slice(0, 12)} on the worker and ${here.slice(0, 12)} here; ` +
    `checking "${db}" needs the same files on both (deploy these to the worker, or run the command where the worker's files are)`
  );
}

/** plan, validate, history, lint: what would run, and whether it should. */
export function registerReadCommands(kit: CliKit): void {
  kit.program
    .command('plan')
    .description('dry run: what `up` would run, statement by statement, with transaction mode and the lock each statement takes')
    .addOption(dbOption())
    .option('-t, --target <version>', 'stop at this version')
    .option('--out-of-order', 'allow pending versions lower than the highest applied one')
    .action(async (options: { db: string; target?: string; outOfOrder?: boolean }) => {
      const target = versionArgument('--target', options.target);
      const { global, config, logger } = kit.context();
      // Statements are read here, from the files: SQL text never travels through workflow history.
      const set = await readMigrationSet(config.migrationsDir, config.files);
      if (target) checkTarget(set.directory, set.manifest, target);
      const prepared = await prepareMigrations(set);
      kit.exitCode = await kit.readDatabase({ global, config, logger }, async (reader) => {
        const { plan } = await reader.inspect({ db: options.db, migrationsDir: config.migrationsDir, historyLast: 0, ...(options.outOfOrder ? { allowOutOfOrder: true } : {}) });
        const differ = differentFiles(set.digest, plan.manifestDigest, config.migrationsDir, options.db);
        if (differ) {
          kit.io.stderr(`pgconvoy: ${differ}\n`);
          return ExitCode.badInput;
        }
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
        kit.print(
          global,
          { db: options.db, version, pending: planned, tables: plan.tableContext ?? [], problems: plan.problems, ...(plan.backup ? { backup: plan.backup } : {}) },
          renderPlan(options.db, version, planned, plan.problems, plan.backup),
        );
        // A backup that cannot be taken refuses the run as surely as a problem with the files.
        return plan.problems.length > 0 || (planned.length > 0 && plan.backup?.problem) ? ExitCode.badInput : ExitCode.ok;
      });
    });

  kit.program
    .command('validate')
    .description('check the migration set (names, duplicates, SQL syntax, transaction modes, directives); with --db, also against the ledger')
    .addOption(new Option('-d, --db <alias>', 'also check the ledger of this database').argParser(parseAlias))
    .option('--out-of-order', 'allow pending versions lower than the highest applied one')
    .action(async (options: { db?: string; outOfOrder?: boolean }) => {
      const { global, config, logger } = kit.context();
      const set = await readMigrationSet(config.migrationsDir, config.files);
      const prepared = await prepareMigrations(set);
      await readChecks(config.migrationsDir, config.files);
      const summary = `${set.migrations.length} migrations in ${config.migrationsDir} are valid (${[...prepared.values()].filter((m) => m.undo).length} with undo scripts; manifest ${set.digest.slice(0, 12)})`;
      if (options.db === undefined) {
        kit.print(global, { valid: true, migrations: set.migrations.length, manifestDigest: set.digest }, summary + '\n');
        return;
      }
      const db = options.db;
      kit.exitCode = await kit.readDatabase({ global, config, logger }, async (reader) => {
        const { plan } = await reader.inspect({ db, migrationsDir: config.migrationsDir, historyLast: 0, ...(options.outOfOrder ? { allowOutOfOrder: true } : {}) });
        const differ = differentFiles(set.digest, plan.manifestDigest, config.migrationsDir, db);
        if (differ) {
          kit.io.stderr(`pgconvoy: ${differ}\n`);
          return ExitCode.badInput;
        }
        const ok = plan.problems.length === 0;
        kit.print(
          global,
          { valid: ok, migrations: set.migrations.length, manifestDigest: set.digest, problems: plan.problems },
          ok ? `${summary}; the ledger of "${db}" agrees (${plan.pending.length} pending)\n` : `the ledger of "${db}" and the files disagree:\n${plan.problems.map((p) => `  ${p}`).join('\n')}\n`,
        );
        return ok ? ExitCode.ok : ExitCode.badInput;
      });
    });

  kit.program
    .command('history')
    .description("show a database's ledger, every attempt, oldest first")
    .addOption(dbOption())
    .option('--last <n>', 'only the newest n entries')
    .action(async (options: { db: string; last?: string }) => {
      const last = options.last === undefined ? undefined : Number(options.last);
      if (last !== undefined && (!Number.isInteger(last) || last < 1)) throw new UsageError(`--last must be a positive whole number, got "${options.last}"`);
      const { global, config, logger } = kit.context();
      kit.exitCode = await kit.readDatabase({ global, config, logger }, async (reader) => {
        const { history } = await reader.inspect({ db: options.db, migrationsDir: config.migrationsDir, ...(last ? { historyLast: last } : {}) });
        kit.print(global, history, renderHistory(options.db, history));
        return ExitCode.ok;
      });
    });

  kit.program
    .command('lint')
    .description('risk analysis: offline over the whole set (parser only), or with --db over the pending migrations with context from that database; exit 0 when nothing is above low risk, 11 for medium, 12 for high')
    .argument('[files...]', 'report only these files (the whole set is still read, in order)')
    .addOption(new Option('--format <format>', 'output format').choices(['human', 'json', 'github']).default('human'))
    .addOption(new Option('-d, --db <alias>', 'assess the pending migrations against this database: table sizes and blocking sessions move the levels').argParser(parseAlias))
    .action(async (files: string[], options: { format: 'human' | 'json' | 'github'; db?: string }) => {
      const { global, config, logger } = kit.context();
      let risk: Map<Version, { findings: Finding[] }>;
      let linted: PreparedMigration[];
      if (options.db !== undefined) {
        if (config.databases[options.db] === undefined) throw new UsageError(`database alias "${options.db}" is not configured: lint --db connects directly; set ${databaseEnvName(options.db)}`);
        // Loaded only here: the other commands never need the database code.
        const { assessPending, localDeps } = await import('../../runs');
        ({ pending: linted, risk } = await assessPending(localDeps(config, logger), { db: options.db, migrationsDir: config.migrationsDir }));
      } else {
        const set = await readMigrationSet(config.migrationsDir, config.files);
        linted = [...(await prepareMigrations(set)).values()];
        const scripts = linted.map((m) => ({ version: m.version, file: m.forward.file, script: m.forward.script }));
        risk = new Map([...analyzeRisk(scripts)].map(([v, findings]) => [v, { findings }]));
      }
      // Undo scripts too, each as it would run right after its version (the set's objects up to there are new).
      const undoRisk = analyzeUndo(
        linted.map((m) => ({ version: m.version, file: m.forward.file, script: m.forward.script, ...(m.undo ? { undo: { version: m.version, file: m.undo.file, script: m.undo.script } } : {}) })),
      );
      const wanted = new Set(files.map((f) => basename(f)));
      const findings = linted.flatMap((m) => [
        ...(wanted.size === 0 || wanted.has(m.forward.file) ? (risk.get(m.version)?.findings ?? []).map((f) => ({ file: m.forward.file, version: m.version, ...f })) : []),
        ...(m.undo && (wanted.size === 0 || wanted.has(m.undo.file)) ? (undoRisk.get(m.version) ?? []).map((f) => ({ file: m.undo!.file, version: m.version, ...f })) : []),
      ]);
      const format = global.json ? 'json' : options.format;
      kit.io.stdout(renderLint(findings, format, relative(kit.cwd, config.migrationsDir) || '.'));
      const level = highestLevel(findings);
      kit.exitCode = level === 'high' ? ExitCode.lintHigh : level === 'medium' ? ExitCode.lintMedium : ExitCode.ok;
    });
}
