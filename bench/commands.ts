/**
 * How long a command takes as a whole process, when there is nothing to do:
 * `pgconvoy up` (no-op) and `pgconvoy status` on a database that is up to
 * date, embedded (the CLI starts its own dev server and worker) and against
 * a running dev server and worker; `psql -c 'SELECT 1'` as the floor of
 * starting any client. Median of --runs (default 5), one after another as a
 * person or a script would run them.
 *
 *   npm run build && node dist/bench/commands.js [--runs 5]
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDevServer } from '../src/worker/dev-server';
import { databaseUrl, dropDatabases, median, numberArg, query, runBench } from './support';

const runs = numberArg('runs', 5);
const bin = join(__dirname, '..', '..', 'bin', 'pgconvoy');
const migrations = join(__dirname, '..', '..', 'migrations');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function timedRun(command: string, args: string[], env: NodeJS.ProcessEnv): number {
  const t = performance.now();
  const r = spawnSync(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${String(r.status)}: ${r.stderr.toString()}`);
  return performance.now() - t;
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'pgconvoy-bench-commands-'));
  const name = `pgconvoy_bench_cmd_${process.pid}`;
  await query(`CREATE DATABASE ${name}`);
  const url = databaseUrl(name);
  const server = await startDevServer({ dbFile: join(scratch, 'temporal.db'), logFile: join(scratch, 'temporal.log') });
  const embedded: NodeJS.ProcessEnv = { ...process.env, PGCONVOY_DB_APP: url, PGCONVOY_STATE_DIR: join(scratch, 'state'), PGCONVOY_LOG_LEVEL: 'error' };
  delete embedded.TEMPORAL_ADDRESS;
  const remote = { ...embedded, TEMPORAL_ADDRESS: server.address, PGCONVOY_TASK_QUEUE: 'bench-commands' };
  const worker = spawn(bin, ['--migrations', migrations, 'worker'], { env: remote, stdio: 'ignore' });
  try {
    timedRun(bin, ['--migrations', migrations, 'up', '--db', 'app'], embedded); // applies the set once
    await sleep(3_000); // the worker polls
    const rows: Array<[string, number[]]> = [
      ['psql -c "SELECT 1"', []],
      ['up (nothing to do), embedded', []],
      ['status, embedded', []],
      ['up (nothing to do), worker running', []],
      ['status, worker running', []],
    ];
    for (let i = 0; i < runs; i++) {
      rows[0]![1].push(timedRun('psql', [url, '-qtAc', 'SELECT 1'], process.env));
      rows[1]![1].push(timedRun(bin, ['--migrations', migrations, 'up', '--db', 'app'], embedded));
      rows[2]![1].push(timedRun(bin, ['--migrations', migrations, 'status', '--db', 'app'], embedded));
      rows[3]![1].push(timedRun(bin, ['--migrations', migrations, 'up', '--db', 'app'], remote));
      rows[4]![1].push(timedRun(bin, ['--migrations', migrations, 'status', '--db', 'app'], remote));
    }
    const floor = median(rows[0]![1]);
    console.log(`median of ${runs} runs, each a whole process:`);
    for (const [what, times] of rows) console.log(`  ${what.padEnd(38)} ${median(times).toFixed(0).padStart(6)} ms  ${(median(times) / floor).toFixed(1).padStart(6)}x psql`);
  } finally {
    worker.kill('SIGKILL');
    await server.stop();
    await sleep(2_000); // the last embedded server stops in the background
    await dropDatabases([name]);
    rmSync(scratch, { recursive: true, force: true });
  }
}

runBench(main);
