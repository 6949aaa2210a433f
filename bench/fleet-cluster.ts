/**
 * A large fleet on the production topology: --dbs N (default 1000) fresh
 * databases given the same --migrations M (default 10) small migrations
 * (each a table, ten rows, an index, as in run-cost), two ways, each on
 * fresh databases of its own:
 *
 *   1. a sequential loop of `psql -X -1` (every file with its own -f, all in
 *      one transaction, no ledger), one database after the other;
 *   2. pgconvoy: one `rollout` (a canary, then all the others in one wave,
 *      at most --max-parallel K (default 24) at once) on Temporal Server
 *      on PostgreSQL with its four services as processes of their own
 *      (scripts/temporal-cluster.sh), served by --workers W (default 3)
 *      `pgconvoy worker` processes, each capped at --connections C (default
 *      12) connections to the server. --backup none (default: the loop
 *      takes none; the reason is recorded with every version) or database.
 *
 * Prints the wall times, the events of each child run, the rollout's
 * history across continue-as-new (events and bytes per run), each worker's
 * peak memory (VmHWM) and the peak of PostgreSQL's connections (sampled
 * every 250 ms: all, pgconvoy's, Temporal's).
 *
 *   npm run build && node dist/bench/fleet-cluster.js [--dbs 1000] [--migrations 10] [--workers 3] [--max-parallel 24] [--connections 12] [--backup none]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import pg from 'pg';
import { getRollout, startRollout } from '../src/client/rollout';
import { databaseEnvName } from '../src/config/config';
import { databaseWorkflowId, rolloutWorkflowId, type RolloutStatus, type RolloutStrategy } from '../src/contracts';
import { startTemporalCluster, startWorkerProcess, type WorkerProcess } from '../test/helpers/cluster';
import { setFiles, tool, writeSet } from './run-cost';
import { adminUrl, databaseUrl, dropDatabases, freshDatabases, median, numberArg, runBench } from './support';

const dbCount = numberArg('dbs', 1000);
const migrations = numberArg('migrations', 10);
const workerCount = numberArg('workers', 3);
const maxParallel = numberArg('max-parallel', 24);
const connectionsPerWorker = numberArg('connections', 12);
const backupArg = process.argv.indexOf('--backup');
const backup = backupArg > 0 ? (process.argv[backupArg + 1] ?? 'none') : 'none';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const strategy: RolloutStrategy = { canary: { count: 1 }, bakeMs: 0, waveSize: { percent: 100 }, maxParallel, maxFailures: { count: 1 }, onFailure: 'halt', approveWaves: false };

/** Peak connections to the server while the rollout runs, sampled every 250 ms. */
function sampleConnections(): { stop(): Promise<{ all: number; pgconvoy: number; temporal: number }> } {
  const peak = { all: 0, pgconvoy: 0, temporal: 0 };
  let running = true;
  const loop = (async () => {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    try {
      while (running) {
        const { rows } = await client.query<{ all: number; pgconvoy: number; temporal: number }>(
          `SELECT count(*)::int AS all,
                  count(*) FILTER (WHERE application_name LIKE 'pgconvoy%' OR application_name = 'pg_dump')::int AS pgconvoy,
                  count(*) FILTER (WHERE usename = 'temporal')::int AS temporal
             FROM pg_stat_activity WHERE backend_type = 'client backend'`,
        );
        for (const key of ['all', 'pgconvoy', 'temporal'] as const) peak[key] = Math.max(peak[key], rows[0]![key]);
        await sleep(250);
      }
    } finally {
      await client.end();
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return peak;
    },
  };
}

/** A process's peak resident memory (VmHWM), in MiB. */
const peakMiB = (pid: number): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

async function rolloutResult(client: Client, deployId: string): Promise<RolloutStatus> {
  for (;;) {
    const s = await getRollout({ client, taskQueue: 'fleet' }, deployId).catch(() => undefined);
    if (s && ['completed', 'failed', 'compensated', 'compensation-failed', 'aborted', 'drift', 'refused', 'halted', 'awaiting-approval'].includes(s.status)) return s;
    await sleep(1_000);
  }
}

async function pgconvoyRollout(scratch: string, set: string, names: string[]) {
  const aliases = names.map((_, i) => `fleet_${String(i + 1).padStart(4, '0')}`);
  const cluster = await startTemporalCluster({ dir: join(scratch, 'cluster'), portOffset: 200, database: `temporal_bench_${process.pid}`, adminUrl });
  const workers: WorkerProcess[] = [];
  try {
    const env: NodeJS.ProcessEnv = {
      TEMPORAL_ADDRESS: cluster.address,
      PGCONVOY_TASK_QUEUE: 'fleet',
      PGCONVOY_STATE_DIR: join(scratch, 'state'),
      PGCONVOY_BACKUP_STORE: join(scratch, 'backups'),
      PGCONVOY_LOG_LEVEL: 'info', // startWorkerProcess waits for the worker.started line
      ...Object.fromEntries(aliases.map((alias, i) => [databaseEnvName(alias), databaseUrl(names[i]!)])),
    };
    const args = ['--max-connections-per-server', String(connectionsPerWorker)];
    if (backup === 'none') {
      writeFileSync(join(scratch, 'pgconvoy.config.json'), JSON.stringify({ backup: { scope: 'none', reason: 'benchmark: the psql loop takes no backup either' } }));
    }
    for (let i = 0; i < workerCount; i++) workers.push(await startWorkerProcess(`worker-${i + 1}`, { cwd: scratch, env, args, logDir: join(scratch, 'logs') }));
    const connection = await Connection.connect({ address: cluster.address });
    const client = new Client({ connection });
    try {
      const deployId = `fleet-${process.pid}`;
      const connections = sampleConnections();
      const t = performance.now();
      await startRollout({ client, taskQueue: 'fleet' }, { deployId, migrationsDir: set, targets: aliases, strategy });
      const status = await rolloutResult(client, deployId);
      const wallMs = performance.now() - t;
      const peakConnections = await connections.stop();
      if (status.status !== 'completed' || status.counts.succeeded !== aliases.length) {
        throw new Error(`the rollout ended ${status.status} with ${JSON.stringify(status.counts)}: ${status.problems.join('; ')}`);
      }
      // The rollout's runs, newest first, through each run's predecessor.
      const runs: Array<{ events: number; bytes: number }> = [];
      let runId: string | undefined;
      do {
        const handle = client.workflow.getHandle(rolloutWorkflowId(deployId), runId);
        const d = await handle.describe();
        runs.unshift({ events: d.historyLength, bytes: d.historySize ?? 0 });
        const first = (await handle.fetchHistory()).events?.[0];
        runId = first?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
      } while (runId);
      const childEvents: number[] = [];
      for (const alias of aliases) childEvents.push((await client.workflow.getHandle(databaseWorkflowId(alias)).describe()).historyLength);
      // What a child run's events are, by type, for the last database (a child like the others, not the canary).
      const kinds = new Map<string, number>();
      for (const e of (await client.workflow.getHandle(databaseWorkflowId(aliases.at(-1)!)).fetchHistory()).events ?? []) {
        // Named by its attributes' field (activityTaskScheduledEventAttributes: activityTaskScheduled).
        const kind = Object.keys(e).find((k) => k.endsWith('EventAttributes') && (e as Record<string, unknown>)[k])?.replace(/EventAttributes$/, '') ?? '?';
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      }
      const childKinds = [...kinds].sort((a, b) => b[1] - a[1]);
      return { wallMs, status, runs, childEvents, childKinds, peakConnections, workerPeaks: workers.map((w) => peakMiB(w.pid)) };
    } finally {
      await connection.close();
    }
  } finally {
    for (const w of workers) await w.kill('SIGTERM');
    await cluster.stop();
    await dropDatabases([`temporal_bench_${process.pid}`, `temporal_bench_${process.pid}_visibility`]);
  }
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'pgconvoy-bench-fleet-cluster-'));
  const all: string[] = [];
  try {
    const set = join(scratch, 'set');
    writeSet(set, migrations);
    const files = setFiles(set);
    const ms = (x: number) => `${(x / 1000).toFixed(1).padStart(7)} s`;
    console.log(`fleet on Temporal Server (services split, on PostgreSQL): ${dbCount} databases x ${migrations} migrations, each variant on fresh databases:`);

    let names = await freshDatabases('pgconvoy_bench_fc', 'psql', dbCount, all);
    const t = performance.now();
    for (const name of names) tool('psql', [databaseUrl(name), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-1', ...files.flatMap((f) => ['-f', f])]);
    const psqlMs = performance.now() - t;
    await dropDatabases(names);
    console.log(`  psql -X -1 -f ... loop (sequential, no ledger)             ${ms(psqlMs)}   1.00x`);

    names = await freshDatabases('pgconvoy_bench_fc', 'pgconvoy', dbCount, all);
    const run = await pgconvoyRollout(scratch, set, names);
    await dropDatabases(names);
    console.log(`  pgconvoy rollout (${workerCount} workers, K ${maxParallel}, backup ${backup})${' '.repeat(Math.max(0, 22 - String(maxParallel).length - backup.length))}${ms(run.wallMs)}   ${(run.wallMs / psqlMs).toFixed(2)}x`);
    console.log(`  events per child run: median ${median(run.childEvents)}, max ${Math.max(...run.childEvents)}; the last database's by type: ${run.childKinds.map(([k, n]) => `${k} ${n}`).join(', ')}`);
    console.log(
      `  rollout history: ${run.runs.length} runs (continued as new ${run.runs.length - 1} times); per run events ${run.runs.map((r) => r.events).join(' ')}; ` +
        `bytes ${run.runs.map((r) => `${(r.bytes / 1024).toFixed(0)} KiB`).join(' ')}; largest ${(Math.max(...run.runs.map((r) => r.bytes)) / 1024).toFixed(0)} KiB`,
    );
    console.log(`  peak worker memory (VmHWM): ${run.workerPeaks.map((m) => `${m.toFixed(0)} MiB`).join(', ')}`);
    console.log(`  peak PostgreSQL connections: ${run.peakConnections.all} in all, ${run.peakConnections.pgconvoy} pgconvoy's (cap ${workerCount} x ${connectionsPerWorker}), ${run.peakConnections.temporal} Temporal's`);
  } catch (error) {
    console.error(`the workers' and the services' logs are kept in ${scratch}`);
    scratchKept = true;
    throw error;
  } finally {
    await dropDatabases(all);
    if (!scratchKept) rmSync(scratch, { recursive: true, force: true });
  }
}

let scratchKept = false;

runBench(main);
