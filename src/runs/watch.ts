import pg from 'pg';
import { describeCrossings, type GuardCrossedDetails, type GuardCrossing, type WaitHealthyInput, type WaitHealthyResult, type WatchBaseline, type WatchReport, type WatchSample } from '../contracts';
import { guardsOf, type Guards } from '../config/config';
import { guardNames } from '../config/guards';
import { PgconvoyError } from '../core/errors';
import { DatabaseUnavailableError } from '../db/connection';
import { sampleDatabase } from '../db/watch';
import { targetOf, type RunDeps } from './deps';

/** A step stopped, or did not start, because its database is past a guard; the run holds until it is healthy again, then tries the step again. */
export class GuardCrossedError extends PgconvoyError {
  readonly type = 'GuardCrossed';
  constructor(details: GuardCrossedDetails) {
    super(`"${details.db}" is past its guards (${describeCrossings(details.crossings)})${details.cancelled ? '; the running statement was cancelled and rolled back' : '; the step did not start'}`, { ...details });
  }
}

/** The guards a sample is past, in the order of guardNames. */
export function crossedGuards(sample: WatchSample, guards: Guards): GuardCrossing[] {
  const crossings: GuardCrossing[] = [];
  for (const guard of guardNames) {
    const limit = guards[guard];
    if (limit === undefined) continue;
    if (guard === 'maxReplicationLagMs') {
      const worst = [...sample.replicas].sort((a, b) => (b.replayLagMs ?? 0) - (a.replayLagMs ?? 0))[0];
      if (worst && (worst.replayLagMs ?? 0) > limit) crossings.push({ guard, value: worst.replayLagMs!, limit, replica: worst.name });
      continue;
    }
    const value = guard === 'maxBlockedSessions' ? sample.blocked.count : guard === 'maxBlockedMs' ? sample.blocked.longestWaitMs : (sample.growthBytes ?? 0);
    if (value > limit) crossings.push({ guard, value, limit });
  }
  return crossings;
}

export const hasGuards = (guards: Guards): boolean => guardNames.some((g) => guards[g] !== undefined);

export interface WatchOptions {
  /** The backend doing the step's work (its sessions blocked are counted). */
  backendPid?: number;
  baseline?: WatchBaseline;
  /** Called with each sample past a guard; `cancel` cancels the watched backend's running statement. */
  onCrossed?: (crossings: GuardCrossing[], sample: WatchSample, cancel: () => Promise<void>) => void | Promise<void>;
}

/**
 * Samples a database every `watch.intervalMs` while a step runs, on a
 * connection other than the step's (none before the first sample: a step
 * shorter than the interval costs nothing), each sample in the step's
 * heartbeat (`watch`) and in the report the step returns. A sample that
 * fails (the database busy past the sample's own timeouts) is logged and the
 * next one tried.
 */
export class Watcher {
  private client: pg.Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private sampling: Promise<void> = Promise.resolve();
  private stopped = false;
  readonly report: WatchReport = { latest: null, crossings: [] };

  constructor(
    private readonly deps: RunDeps,
    private readonly alias: string,
    private readonly options: WatchOptions,
  ) {}

  get guards(): Guards {
    return guardsOf(this.deps.config, this.alias);
  }

  /** Starts the periodic samples. */
  start(): this {
    this.schedule();
    return this;
  }

  /** One sample now (and its guards); null when it could not be taken. */
  async sample(): Promise<{ sample: WatchSample; crossings: GuardCrossing[] } | null> {
    try {
      const { sample } = await this.onConnection((client) =>
        sampleDatabase(client, {
          ...(this.options.backendPid !== undefined ? { backendPid: this.options.backendPid } : {}),
          ...(this.options.baseline ? { baseline: this.options.baseline } : {}),
          longQueryMs: this.deps.config.watch.longQueryMs,
        }),
      );
      const crossings = crossedGuards(sample, this.guards);
      this.report.latest = sample;
      for (const c of crossings) this.report.crossings.push({ ...c, at: sample.at });
      this.deps.heartbeat({ watch: sample });
      if (crossings.length > 0) {
        this.deps.logger.warn({ event: 'guard.crossed', db: this.alias, crossings }, `"${this.alias}" is past its guards: ${describeCrossings(crossings)}`);
        await this.options.onCrossed?.(crossings, sample, () => this.cancelBackend());
      }
      return { sample, crossings };
    } catch (error) {
      this.deps.logger.warn({ event: 'watch.sample_failed', db: this.alias, error: error instanceof Error ? error.message : String(error) });
      return null;
    }
  }

  /** Stops sampling and closes the watch's connection. */
  async stop(): Promise<WatchReport> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.sampling;
    await this.client?.end().catch(() => undefined);
    this.client = undefined;
    return this.report;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.sampling = this.sample().then(() => this.schedule());
    }, this.deps.config.watch.intervalMs);
  }

  /**
   * On one of the connections the worker keeps for the database (a sample
   * before each migration then costs a round trip, not a connection), or
   * without them (a command outside a worker) on one of the watch's own.
   */
  private async onConnection<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const target = targetOf(this.deps.config, this.alias);
    if (this.deps.connections) return this.deps.connections.use(target, (client) => fn(client), { kind: 'short' });
    if (!this.client) {
      const client = new pg.Client({ connectionString: target.url, application_name: 'pgconvoy-watch' });
      client.on('error', () => undefined); // a lost watch connection only costs samples; the next one reconnects
      await client.connect();
      this.client = client;
    }
    return fn(this.client);
  }

  private async cancelBackend(): Promise<void> {
    const pid = this.options.backendPid;
    if (pid === undefined) return;
    await this.onConnection((client) => client.query('SELECT pg_catalog.pg_cancel_backend($1)', [pid]));
  }
}

/**
 * Samples a database until no guard is crossed (healthy: true, at once if
 * it is already) or `timeoutMs` passes (healthy: false, with the last
 * sample): what a run holding for its guards waits on.
 */
export async function waitHealthy(deps: RunDeps, input: WaitHealthyInput): Promise<WaitHealthyResult> {
  const watcher = new Watcher(deps, input.db, input.baseline ? { baseline: input.baseline } : {});
  const deadline = Date.now() + input.timeoutMs;
  try {
    for (;;) {
      const seen = await watcher.sample();
      if (seen && seen.crossings.length === 0) return { healthy: true, ...seen };
      if (Date.now() >= deadline) {
        if (seen) return { healthy: false, ...seen };
        throw new DatabaseUnavailableError(input.db, new Error('no sample of it could be taken while the run held for its guards'));
      }
      await deps.sleep(Math.min(deps.config.watch.intervalMs, Math.max(0, deadline - Date.now())));
    }
  } finally {
    await watcher.stop();
  }
}

const backendPids = new WeakMap<pg.Client, number>();

/** The connection's backend pid (asked once per connection). */
async function backendPidOf(client: pg.Client): Promise<number> {
  let pid = backendPids.get(client);
  if (pid === undefined) {
    pid = (await client.query<{ pid: number }>('SELECT pg_catalog.pg_backend_pid() AS pid')).rows[0]!.pid;
    backendPids.set(client, pid);
  }
  return pid;
}

/**
 * Runs a step's work on `client` under the watch. With guards configured it
 * first samples once: a database already past a guard does not start the
 * step (GuardCrossed, `cancelled: false`). Then it samples every interval;
 * when `cancelOnCross` (a transactional migration) and a sample is past a
 * guard, it cancels the backend's running statement and the step ends with
 * GuardCrossed (`cancelled: true`): rolled back, nothing in the ledger. The
 * run holds and tries it again (waitHealthy). Otherwise crossings are only
 * reported.
 */
export async function watchStep<T>(
  deps: RunDeps,
  step: { db: string; baseline?: WatchBaseline; cancelOnCross: boolean },
  client: pg.Client,
  work: (interrupted: () => Error | undefined) => Promise<T>,
): Promise<{ result: T; report: WatchReport }> {
  const guards = guardsOf(deps.config, step.db);
  let stop: GuardCrossedError | undefined;
  let running = false;
  const crossed = (crossings: GuardCrossing[], sample: WatchSample, cancelled: boolean) => new GuardCrossedError({ db: step.db, crossings, sample, guardTimeoutMs: guards.guardTimeoutMs, cancelled });
  const watcher = new Watcher(deps, step.db, {
    backendPid: await backendPidOf(client),
    ...(step.baseline ? { baseline: step.baseline } : {}),
    onCrossed: async (crossings, sample, cancel) => {
      if (!running || !step.cancelOnCross || stop) return;
      stop = crossed(crossings, sample, true);
      await cancel();
    },
  });
  try {
    if (hasGuards(guards)) {
      const first = await watcher.sample();
      if (first && first.crossings.length > 0) throw crossed(first.crossings, first.sample, false);
    }
    running = true;
    watcher.start();
    // The engine ends the migration with `stop` wherever the cancel lands (a statement, a hook, its ledger row, its commit).
    const result = await work(() => stop);
    return { result, report: watcher.report };
  } finally {
    await watcher.stop();
  }
}
