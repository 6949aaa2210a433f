import { Option } from 'commander';
import { notifyAll } from '../../config/config';
import { parseDuration } from '../../core/directives';
import { endedRolloutStatuses, executionModes, type Amount, type ExecutionMode, type RolloutAck, type RolloutStatus, type RolloutStatusName, type RolloutStrategy } from '../../contracts';
import type { PgconvoyClient } from '../api';
import { ExitCode, exitCodeForSignal } from '../exit-codes';
import { summarizeFailure } from '../failure';
import { renderRollout, renderRolloutChanges } from '../render-rollout';
import { abortRollout, approveRollout, getRollout, pauseRollout, resumeRollout, retryRolloutDatabase, selectTargets, skipRolloutDatabase, startRollout } from '../rollout';
import type { Session } from '../session';
import { temporalClient } from '../temporal';
import { parseAlias, UsageError, whoAmI, type CliKit, type GlobalOptions } from './kit';

/** How a rollout's end reads as an exit code. */
export const rolloutExitCodes: Record<RolloutStatusName, ExitCode> = {
  completed: ExitCode.ok,
  'dry-run': ExitCode.ok,
  drift: ExitCode.badInput,
  refused: ExitCode.badInput,
  failed: ExitCode.failed,
  halted: ExitCode.failed,
  compensated: ExitCode.rolledBack,
  'compensation-failed': ExitCode.failed,
  aborted: ExitCode.cancelled,
  'approval-timed-out': ExitCode.failed,
  planning: ExitCode.ok,
  'awaiting-approval': ExitCode.ok,
  canary: ExitCode.ok,
  baking: ExitCode.ok,
  running: ExitCode.ok,
  paused: ExitCode.ok,
  compensating: ExitCode.ok,
};

/** `25%` or `5`. */
export function parseAmount(what: string, value: string): Amount {
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(value);
  if (percent) {
    const p = Number(percent[1]);
    if (p <= 0 || p > 100) throw new UsageError(`${what} must be a percentage from 1% to 100%, got "${value}"`);
    return { percent: p };
  }
  if (/^\d+$/.test(value) && Number(value) >= 1) return { count: Number(value) };
  throw new UsageError(`${what} must be a number of databases (5) or a percentage (25%), got "${value}"`);
}

const positive = (what: string, value: string): number => {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new UsageError(`${what} must be a whole number ≥ 1, got "${value}"`);
  return Number(value);
};

/** A duration as PostgreSQL writes it (30s, 5min, 24h), or with `m` for minutes as most deploy tools do (5m). */
export const duration = (what: string, value: string, allowZero = false): number => {
  const ms = value === '0' ? 0 : parseDuration(value.replace(/^(\d+(?:\.\d+)?)m$/, '$1min'));
  if (ms === undefined || ms < 0 || (!allowZero && ms === 0)) throw new UsageError(`${what} needs a duration such as 30s, 5min or 24h, got "${value}"`);
  return ms;
};

/** A Temporal server that cannot be reached now (it may be restarting). */
function unavailable(error: unknown): boolean {
  const { ServiceError } = temporalClient();
  const text = String(error instanceof ServiceError ? (error.cause ?? error) : error);
  return error instanceof ServiceError || /UNAVAILABLE|DEADLINE_EXCEEDED|ECONNREFUSED|connect/i.test(text);
}

/** Whether the rollout needs nobody now and has not ended: a command that follows it keeps following. */
const stillGoing = (s: RolloutStatus) => !endedRolloutStatuses.includes(s.status) && !(s.status === 'halted' && s.waitingFor?.startsWith('a decision'));

interface StartOptions {
  deployId: string;
  db?: string;
  select?: string;
  all?: boolean;
  canary: string;
  bake: string;
  waveSize: string;
  maxParallel: string;
  maxFailures: string;
  onFailure: 'halt' | 'compensate';
  approveWaves?: boolean;
  mode: ExecutionMode;
  onDrift: 'halt' | 'warn';
  requireApproval?: boolean;
  decisionTimeout: string;
  detach?: boolean;
}

/** rollout start|status|pause|resume|abort|approve|retry|skip. */
export function registerRolloutCommands(kit: CliKit): void {
  const rollout = kit.program.command('rollout').description('roll one migration set out to many databases: canary, waves, bounded parallelism, halt or compensate');

  rollout
    .command('start')
    .description('start (or attach to) the rollout of a deploy and follow it until it ends or needs a decision')
    .requiredOption('--deploy-id <id>', 'names the rollout; starting the same deploy again attaches to it')
    .option('-d, --db <aliases>', 'the databases, comma-separated')
    .option('--select <labels>', 'the databases whose labels match, e.g. tier=prod,region=eu')
    .option('--all', 'every configured database')
    .option('--canary <n|aliases>', 'the first databases, alone: a count or comma-separated aliases', '1')
    .option('--bake <duration>', 'wait this long after the canaries succeeded', '0')
    .option('--wave-size <n|p%>', 'databases per wave after the canaries', '25%')
    .option('--max-parallel <k>', 'at most this many databases at once', '4')
    .option('--max-failures <n|p%>', 'stop starting databases at this many failures', '1')
    .addOption(new Option('--on-failure <policy>', 'halt: migrated databases stay migrated; compensate: revert every database the rollout changed').choices(['halt', 'compensate']).default('halt'))
    .option('--approve-waves', 'every wave after the canaries waits for `pgconvoy rollout approve`')
    .addOption(new Option('--mode <mode>', 'what may run without approval; dry-run previews the fleet').choices(executionModes).default('auto'))
    .addOption(new Option('--on-drift <policy>', 'databases at one version with different schemas: halt before anything changes, or warn').choices(['halt', 'warn']).default('halt'))
    .option('--require-approval', 'wait for `pgconvoy rollout approve` before the first database')
    .option('--decision-timeout <duration>', 'how long an approval or a decision on failed databases is waited for', '24h')
    .option('--detach', 'start it and return; follow with `pgconvoy rollout status <id> --watch`')
    .action(async (options: StartOptions) => {
      const { global, config, logger } = kit.context();
      const choice = { ...(options.db ? { dbs: options.db.split(',').map((a) => parseAlias(a.trim())) } : {}), ...(options.select !== undefined ? { select: options.select } : {}), ...(options.all ? { all: true } : {}) };
      if ([options.db, options.select, options.all].filter((x) => x !== undefined).length !== 1) throw new UsageError('choose the databases with exactly one of --db a,b, --select key=value,... or --all');
      const strategy: RolloutStrategy = {
        canary: /^\d+$/.test(options.canary) ? { count: Number(options.canary) } : { aliases: options.canary.split(',').map((a) => parseAlias(a.trim())) },
        bakeMs: duration('--bake', options.bake, true),
        waveSize: parseAmount('--wave-size', options.waveSize),
        maxParallel: positive('--max-parallel', options.maxParallel),
        maxFailures: parseAmount('--max-failures', options.maxFailures),
        onFailure: options.onFailure,
        approveWaves: options.approveWaves ?? false,
      };
      const decisionTimeoutMs = duration('--decision-timeout', options.decisionTimeout);
      const { targets, selector } = selectTargets(config, choice);
      if ('aliases' in strategy.canary) {
        const outside = strategy.canary.aliases.filter((a) => !targets.includes(a));
        if (outside.length > 0) throw new UsageError(`--canary names databases that are not targets: ${outside.join(', ')}`);
      }
      // The set as this command reads it: the rollout refuses to run another, and the deploy id is refused for another.
      const { cachedMigrationSet } = await import('../../source/set-cache');
      const { set } = await cachedMigrationSet(config.migrationsDir, config.files);
      kit.exitCode = await kit.viaTemporal(
        { global, config, logger },
        async (pgconvoy, session) => {
          const { handle, attached } = await startRollout(pgconvoy, {
            deployId: options.deployId,
            migrationsDir: config.migrationsDir,
            targets,
            selector,
            strategy,
            mode: options.mode,
            onDrift: options.onDrift,
            decisionTimeoutMs,
            expect: { manifestDigest: set.digest },
            ...notifyAll(config),
            ...(options.requireApproval ? { requireApproval: true } : {}),
          });
          if (!global.json) kit.io.stderr(`pgconvoy: ${attached ? 'attached to' : 'started'} rollout ${options.deployId} (workflow ${handle.workflowId}) of ${targets.length} database${targets.length === 1 ? '' : 's'}\n`);
          if (options.detach) {
            kit.print(global, { deployId: options.deployId, workflowId: handle.workflowId, attached }, `follow it with: pgconvoy rollout status ${options.deployId} --watch\n`);
            return ExitCode.ok;
          }
          return follow(kit, global, pgconvoy, session, options.deployId);
        },
        { handlesInterrupts: true },
      );
    });

  rollout
    .command('status')
    .description('show a rollout: counts, the wave, and each database (phase, version, duration, risk, outcome)')
    .argument('<deploy-id>')
    .option('-w, --watch', 'follow it live until it ends or needs a decision')
    .action(async (deployId: string, options: { watch?: boolean }) => {
      const { global, config, logger } = kit.context();
      kit.exitCode = await kit.viaTemporal(
        { global, config, logger },
        async (pgconvoy, session) => {
          if (options.watch) return follow(kit, global, pgconvoy, session, deployId);
          const s = await getRollout(pgconvoy, deployId);
          kit.print(global, s, renderRollout(s));
          return rolloutExitCodes[s.status];
        },
        { attach: true, handlesInterrupts: true },
      );
    });

  const message = (name: string, what: string, send: (pgconvoy: PgconvoyClient, deployId: string, by: string, options: Record<string, string | boolean | undefined>) => Promise<RolloutAck>, extra: (c: ReturnType<typeof rollout.command>) => void = () => undefined) => {
    const command = rollout.command(name).description(what).argument('<deploy-id>').option('--by <who>', 'who decides (default: user@host)').option('--note <text>', 'recorded with the decision');
    extra(command);
    command.action(async (deployId: string, options: Record<string, string | boolean | undefined>) => {
      const { global, config, logger } = kit.context();
      const by = typeof options.by === 'string' ? options.by : whoAmI();
      kit.exitCode = await kit.viaTemporal(
        { global, config, logger },
        async (pgconvoy) => {
          try {
            const ack = await send(pgconvoy, deployId, by, options);
            kit.print(global, ack, `${name}: accepted by rollout ${deployId} (it was ${ack.status})\n`);
            return ExitCode.ok;
          } catch (error) {
            const failure = summarizeFailure(error);
            if (failure.type !== 'MessageRejected') throw error;
            if (global.json) kit.io.stdout(JSON.stringify({ status: 'rejected', message: failure.message }, null, 2) + '\n');
            else kit.io.stderr(`pgconvoy: ${failure.message}\n`);
            return ExitCode.notApplicable;
          }
        },
        { attach: true },
      );
    });
  };
  const note = (o: Record<string, string | boolean | undefined>) => (typeof o.note === 'string' ? { note: o.note } : {});
  const db = (o: Record<string, string | boolean | undefined>) => parseAlias(String(o.db));
  message('pause', 'finish what is in flight and start nothing new', (p, id, by, o) => pauseRollout(p, id, { by, ...note(o) }));
  message('resume', 'go on after a pause', (p, id, by, o) => resumeRollout(p, id, { by, ...note(o) }));
  message('approve', 'approve the rollout, or the wave that waits (--approve-waves)', (p, id, by, o) => approveRollout(p, id, { by, ...note(o) }));
  message('abort', 'stop after the migrations in flight; --compensate also reverts every database the rollout changed', (p, id, by, o) => abortRollout(p, id, { by, ...note(o), compensate: o.compensate === true }), (c) => c.option('--compensate', 'revert every database the rollout changed'));
  message('retry', 'run a failed database again', (p, id, by, o) => retryRolloutDatabase(p, id, { by, db: db(o), ...note(o) }), (c) => c.requiredOption('-d, --db <alias>', 'the failed database'));
  message('skip', 'leave a failed (or not yet started) database out; it no longer counts as failed', (p, id, by, o) => skipRolloutDatabase(p, id, { by, db: db(o), ...note(o) }), (c) => c.requiredOption('-d, --db <alias>', 'the database'));
}

/**
 * Follows a rollout: a line per change on stderr, until it ends or halts
 * for a decision; then its table (or JSON) and the exit code of its status.
 * An interrupt leaves it going on.
 */
async function follow(kit: CliKit, global: GlobalOptions, pgconvoy: PgconvoyClient, session: Session, deployId: string): Promise<ExitCode> {
  let last: RolloutStatus | undefined;
  let interrupted: NodeJS.Signals | undefined;
  // Each poll under an abort signal of its own: the client adds a listener to a call's signal and never removes it, so one signal for a watch of hours would gather thousands.
  let poll = new AbortController();
  void session.interrupted.then((signal) => {
    interrupted = signal;
    poll.abort();
  });
  let lostSince: number | undefined;
  for (;;) {
    if (interrupted) {
      kit.io.stderr(`pgconvoy: stopped following; rollout ${deployId} goes on${session.embedded ? ' while a pgconvoy command or worker runs' : ''}: pgconvoy rollout status ${deployId} --watch\n`);
      return exitCodeForSignal(interrupted);
    }
    poll = new AbortController();
    let s: RolloutStatus | undefined;
    try {
      s = await pgconvoy.client.connection.withAbortSignal(poll.signal, () => getRollout(pgconvoy, deployId));
      lostSince = undefined;
    } catch (error) {
      // Only a server that is away for a while is waited for (and an interrupted poll); anything else is the answer.
      if (!interrupted && !unavailable(error)) throw error;
      lostSince ??= Date.now();
      if (!interrupted && Date.now() - lostSince > session.reconnectTimeoutMs) throw error;
    }
    if (s && !global.json) for (const line of renderRolloutChanges(last, s)) kit.io.stderr(`${line}\n`);
    last = s ?? last;
    if (last && !stillGoing(last)) break;
    await Promise.race([new Promise((resolve) => setTimeout(resolve, 1000)), session.interrupted]);
  }
  kit.print(global, last, renderRollout(last));
  if (last.status === 'halted' && !global.json) kit.io.stderr(`pgconvoy: rollout ${deployId} halted; decide with pgconvoy rollout retry|skip ${deployId} --db <alias>, or pgconvoy rollout abort ${deployId} [--compensate]\n`);
  return rolloutExitCodes[last.status];
}
