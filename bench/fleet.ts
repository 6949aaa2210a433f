/**
 * A fleet: --dbs N (default 100) fresh databases given the same --migrations
 * M (default 10) small migrations (each a table, ten rows, an index, as
 * run-cost's), three ways, each on fresh databases of its own:
 *
 *   1. pgconvoy: one `rollout` (a canary, no bake, then all the others in one
 *      wave, at most --max-parallel K (default 8) databases at once, halting
 *      at the first failure) on a dev server of the benchmark's own, with a
 *      worker in the benchmark's process;
 *   2. a sequential loop of `psql -X -1` (every file with its own -f, all in
 *      one transaction, no ledger), one database after the other: the floor;
 *   3. a sequential loop of `goose up`, when bench/provision-peers.sh has
 *      built goose into .tools/bin.
 *
 * Prints each wall time, pgconvoy's against the loops', and where a
 * database's time goes in the rollout: the median per database of each step
 * of its child run (`pgconvoy/db/<alias>`), from the child's history.
 *
 *   npm run build && node dist/bench/fleet.js [--dbs 100] [--migrations 10] [--max-parallel 8]
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { History } from '@temporalio/common/lib/proto-utils';
import { getRollout, startRollout } from '../src/client/rollout';
import { databaseEnvName, loadConfig } from '../src/config/config';
import { databaseWorkflowId, type RolloutStatus, type RolloutStrategy } from '../src/contracts';
import { createLogger } from '../src/logging/logger';
import { startDevServer } from '../src/worker/dev-server';
import { createWorker, installRuntime } from '../src/worker/worker';
import { maxOverlap } from '../test/helpers/fleet';
import { activitySpans, eventMs, setFiles, tool, writeSet } from './run-cost';
import { adminUrl, databaseUrl, dropDatabases, freshDatabases, median, numberArg, runBench } from './support';

const dbCount = numberArg('dbs', 100);
const migrations = numberArg('migrations', 10);
const maxParallel = numberArg('max-parallel', 8);
const goose = join(__dirname, '..', '..', '.tools', 'bin', 'goose');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const strategy: RolloutStrategy = { canary: { count: 1 }, bakeMs: 0, waveSize: { percent: 100 }, maxParallel, maxFailures: { count: 1 }, onFailure: 'halt', approveWaves: false };

/** The steps of a database's run, as the breakdown names them, by the activities that make them. */
const parts = {
  plan: ['planDatabase'],
  lease: ['acquireLease'],
  backup: ['beginRun', 'takeBackup'],
  migrations: ['applyMigration', 'applyMigrations', 'applyGroup'],
  verification: ['verifyRun'],
  release: ['releaseLease'],
} as const;
type Part = keyof typeof parts;

function timed(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

/** A local activity's marker (as the SDK's core records it): its type and when it was first scheduled. */
interface LocalActivityMarker {
  activity_type?: string;
  original_schedule_time?: { seconds?: number | string; nanos?: number } | string;
}

const markerMs = (t: LocalActivityMarker['original_schedule_time']): number | undefined =>
  t === undefined ? undefined : typeof t === 'string' ? Date.parse(t) : Number(t.seconds ?? 0) * 1000 + Math.round((t.nanos ?? 0) / 1e6);

/** The local activities (migrations run inline) in a history, by their markers: first scheduled to recorded in the history. */
function localActivitySpans(events: NonNullable<History['events']>): Array<{ name: string; from: number; to: number }> {
  const spans: Array<{ name: string; from: number; to: number }> = [];
  for (const e of events) {
    const marker = e.markerRecordedEventAttributes;
    if (marker?.markerName !== 'core_local_activity') continue;
    const payload = marker.details?.data?.payloads?.[0];
    const data = JSON.parse(Buffer.from(payload?.data ?? new Uint8Array()).toString('utf8')) as LocalActivityMarker;
    const from = markerMs(data.original_schedule_time);
    if (from === undefined) throw new Error(`a local activity marker without its schedule time: ${JSON.stringify(data)}`);
    spans.push({ name: data.activity_type ?? '?', from, to: eventMs(e) });
  }
  return spans;
}

/** A child run's steps (ms): each part's activities from scheduled to completed, the run's whole span, and what the parts leave of it. */
function childBreakdown(history: History): Record<Part | 'other' | 'total', number> & { start: number; close: number } {
  const events = history.events ?? [];
  const spans = [...activitySpans(events), ...localActivitySpans(events)];
  const sum = (names: readonly string[]) => spans.filter((s) => names.includes(s.name)).reduce((ms, s) => ms + (s.to - s.from), 0);
  const start = eventMs(events[0]!);
  const close = eventMs(events.at(-1)!);
  const of = Object.fromEntries(Object.entries(parts).map(([part, names]) => [part, sum(names)])) as Record<Part, number>;
  const total = close - start;
  return { ...of, other: total - Object.values(of).reduce((a, b) => a + b, 0), total, start, close };
}

/** Waits for the rollout's result; one that halts or waits for an approval (which this benchmark never gives) ends the benchmark. */
async function rolloutResult(result: Promise<RolloutStatus>, status: () => Promise<RolloutStatus>): Promise<RolloutStatus> {
  let done = false;
  const watch = async (): Promise<never> => {
    for (;;) {
      await sleep(5_000);
      if (done) return new Promise<never>(() => undefined);
      const s = await status();
      if (s.status === 'halted' || s.status === 'awaiting-approval' || s.status === 'paused') {
        const failures = s.databases.filter((d) => d.failure !== null).map((d) => `${d.db}: ${d.failure}`);
        throw new Error(`the rollout is ${s.status}: ${s.waitingFor ?? ''}\n${failures.join('\n')}`);
      }
    }
  };
  try {
    return await Promise.race([result, watch()]);
  } finally {
    done = true;
  }
}

/**
 * The rollout on `names`: a dev server in the scratch folder, a worker in
 * this process on a config of the benchmark's own (the backup store in the
 * scratch folder), the clock from the start of the rollout to its result.
 */
async function pgconvoyRollout(scratch: string, set: string, names: string[]) {
  const aliases = names.map((_, i) => `fleet_${String(i + 1).padStart(3, '0')}`);
  const server = await startDevServer({ dbFile: join(scratch, 'temporal.db'), logFile: join(scratch, 'temporal.log') });
  try {
    const env: NodeJS.ProcessEnv = {
      TEMPORAL_ADDRESS: server.address,
      PGCONVOY_TASK_QUEUE: 'fleet',
      PGCONVOY_STATE_DIR: join(scratch, 'state'),
      PGCONVOY_BACKUP_STORE: join(scratch, 'backups'),
      // The SDK warns, past the end of each child run, of its lease's hold activity completing late: not the benchmark's output.
      PGCONVOY_LOG_LEVEL: 'error',
      ...(process.env.PGCONVOY_PG_BIN_DIR ? { PGCONVOY_PG_BIN_DIR: process.env.PGCONVOY_PG_BIN_DIR } : {}),
      ...Object.fromEntries(aliases.map((alias, i) => [databaseEnvName(alias), databaseUrl(names[i]!)])),
    };
    // The scratch folder as the working directory: no config file of the checkout's is read.
    const config = loadConfig({ cwd: scratch, env, migrationsDir: set });
    const logger = createLogger(config.logLevel ?? 'error');
    installRuntime(logger, 'ERROR');
    const connection = await Connection.connect({ address: server.address });
    const client = new Client({ connection, namespace: config.temporal.namespace });
    const pgconvoy = { client, taskQueue: config.temporal.taskQueue };
    try {
      // Bundles the workflow code when the build has no bundle of its own (a second or two, before the clock starts).
      const { worker, connection: workerConnection } = await createWorker({ config, logger });
      try {
        return await worker.runUntil(async () => {
          while (worker.getState() !== 'RUNNING') await sleep(20);
          const deployId = `fleet-${process.pid}`;
          const t = performance.now();
          const { handle } = await startRollout(pgconvoy, { deployId, migrationsDir: set, targets: aliases, strategy });
          const status = await rolloutResult(handle.result(), () => getRollout(pgconvoy, deployId));
          const wallMs = performance.now() - t;
          if (status.status !== 'completed' || status.counts.succeeded !== aliases.length) {
            throw new Error(`the rollout ended ${status.status} with ${JSON.stringify(status.counts)}: ${status.problems.join('; ')}`);
          }
          // The surveys are in the rollout's first run: at a large fleet it continues as new, and the handle gives the last.
          const surveys: ReturnType<typeof activitySpans> = [];
          let runId: string | undefined;
          do {
            const history: History = await client.workflow.getHandle(handle.workflowId, runId).fetchHistory();
            const events = history.events ?? [];
            surveys.push(...activitySpans(events).filter((s) => s.name === 'surveyDatabase'));
            runId = events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
          } while (runId);
          const children = new Map<string, ReturnType<typeof childBreakdown>>();
          for (const alias of aliases) children.set(alias, childBreakdown(await client.workflow.getHandle(databaseWorkflowId(alias)).fetchHistory()));
          const canary = status.databases.find((d) => d.wave === 0)!.db;
          return { wallMs, status, children, canary, surveyMs: Math.max(...surveys.map((s) => s.to)) - Math.min(...surveys.map((s) => s.from)) };
        });
      } finally {
        await workerConnection.close();
      }
    } finally {
      await connection.close();
    }
  } finally {
    await server.stop();
  }
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'pgconvoy-bench-fleet-'));
  const all: string[] = [];
  try {
    const set = join(scratch, 'set');
    writeSet(set, migrations);
    const files = setFiles(set);
    const ms = (x: number) => `${x.toFixed(0).padStart(7)} ms`;
    console.log(`fleet: ${dbCount} databases x ${migrations} migrations (each a table, ten rows, an index; ${adminUrl.replace(/\/[^/]*$/, '')}), each variant on fresh databases:`);

    // 2. The floor: one psql per database, every file in one transaction, one database after the other.
    let names = await freshDatabases('pgconvoy_bench_fl', 'psql', dbCount, all);
    const psqlMs = timed(() => names.forEach((name) => tool('psql', [databaseUrl(name), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-1', ...files.flatMap((f) => ['-f', f])])));
    await dropDatabases(names);
    const line = (label: string, x: number) => console.log(`  ${label.padEnd(52)}${ms(x)}   ${(x / psqlMs).toFixed(2)}x psql loop   ${ms(x / dbCount)} per database`);
    line('psql -X -1 -f ... loop (sequential, no ledger)', psqlMs);

    // 3. goose up per database, each migration in its own transaction, one database after the other.
    let gooseMs: number | undefined;
    if (existsSync(goose)) {
      const dir = join(scratch, 'goose');
      mkdirSync(dir);
      files.forEach((f, i) => writeFileSync(join(dir, `${String(i + 1).padStart(5, '0')}_t${i + 1}.sql`), `-- +goose Up\n${readFileSync(f, 'utf8')}`));
      names = await freshDatabases('pgconvoy_bench_fl', 'goose', dbCount, all);
      gooseMs = timed(() => names.forEach((name) => tool(goose, ['-dir', dir, 'postgres', databaseUrl(name), 'up'])));
      await dropDatabases(names);
      line('goose up loop (sequential)', gooseMs);
    } else {
      console.log(`  goose up loop: skipped, no ${goose} (bash bench/provision-peers.sh builds it)`);
    }

    // 1. pgconvoy: one rollout, the canary then everything, at most K at once.
    names = await freshDatabases('pgconvoy_bench_fl', 'pgconvoy', dbCount, all);
    const run = await pgconvoyRollout(scratch, set, names);
    await dropDatabases(names);
    line(`pgconvoy rollout (canary 1, then all, K ${maxParallel})`, run.wallMs);
    console.log(`  pgconvoy / psql loop: ${(run.wallMs / psqlMs).toFixed(2)}x`);
    console.log(`  pgconvoy / goose loop: ${gooseMs === undefined ? 'n/a (goose not built)' : `${(run.wallMs / gooseMs).toFixed(2)}x`}`);

    const children = [...run.children.values()];
    const canary = run.children.get(run.canary)!;
    const rest = children.filter((c) => c !== canary);
    console.log(
      `  rollout (continued as new ${run.status.continuedAsNew} times): survey of ${dbCount} databases ${run.surveyMs} ms; canary ${canary.total} ms; the other ${rest.length} in ${rest.length > 0 ? Math.max(...rest.map((c) => c.close)) - Math.min(...rest.map((c) => c.start)) : 0} ms, at most ${maxOverlap(children.map((c) => ({ start: c.start, close: c.close })))} at once`,
    );
    const steps = (of: (key: Part | 'other' | 'total') => number) =>
      `plan ${of('plan')} ms, lease ${of('lease')} ms, backup ${of('backup')} ms, migrations ${of('migrations')} ms, verification ${of('verification')} ms, release ${of('release')} ms, other ${of('other')} ms; child run ${of('total')} ms`;
    console.log(`  per database (median of ${children.length} child runs, from their histories): ${steps((key) => median(children.map((c) => c[key])))}`);
    console.log(`  the canary, alone: ${steps((key) => canary[key])}`);
  } finally {
    await dropDatabases(all);
    rmSync(scratch, { recursive: true, force: true });
  }
}

runBench(main);
