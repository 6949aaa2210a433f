/**
 * What a run costs per migration, with a worker already running: --sizes
 * (default 50,200) small migrations (a table, ten rows, an index) on a fresh
 * database through the migrateDatabase workflow, against psql on the same
 * files (all in one transaction, and once per file). From the run's history:
 * the apply phase (first applyMigration scheduled to last completed) and the
 * steps around it. Also through node-pg-migrate (a pinned devDependency) and,
 * when bench/provision-peers.sh has built them, goose and golang-migrate.
 *
 *   npm run build && node dist/bench/run-cost.js [--sizes 50,200]
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { startMigration } from '../src/client/api';
import { startDevServer } from '../src/worker/dev-server';
import { adminUrl, databaseUrl, dropDatabases, query, runBench } from './support';

const sizes = (process.argv.find((a) => a.startsWith('--sizes='))?.slice(8) ?? process.argv[process.argv.indexOf('--sizes') + 1] ?? '50,200')
  .split(',')
  .map(Number)
  .filter((n) => Number.isInteger(n) && n > 0);
const bin = join(__dirname, '..', '..', 'bin', 'pgconvoy');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function writeSet(dir: string, n: number): void {
  mkdirSync(dir);
  for (let i = 1; i <= n; i++) {
    writeFileSync(
      join(dir, `V${i}__t${i}.sql`),
      `CREATE TABLE t${i} (id int PRIMARY KEY, v text);\nINSERT INTO t${i} SELECT g, 'row ' || g FROM generate_series(1, 10) g;\nCREATE INDEX t${i}_v ON t${i} (v);\n`,
    );
  }
}

function timed(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

async function freshDb(name: string): Promise<string> {
  await query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await query(`CREATE DATABASE ${name}`);
  return databaseUrl(name);
}

function psql(url: string, args: string[]): void {
  const r = spawnSync('psql', [url, '-q', '-v', 'ON_ERROR_STOP=1', ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`psql ${args.join(' ')} failed`);
}

/**
 * The same set through goose and golang-migrate (when bench/provision-peers.sh
 * has built them into .tools/bin) and node-pg-migrate, each on a fresh
 * database: files renamed and annotated as each expects, each migration in
 * its own transaction.
 */
async function runPeers(scratch: string, set: string, files: string[], n: number, dbs: string[]): Promise<Map<string, number>> {
  const tools = join(__dirname, '..', '..', '.tools', 'bin');
  const times = new Map<string, number>();
  const sql = (f: string) => readFileSync(join(set, f), 'utf8');
  if (existsSync(join(tools, 'goose'))) {
    const dir = join(scratch, `goose${n}`);
    mkdirSync(dir);
    files.forEach((f, i) => writeFileSync(join(dir, `${String(i + 1).padStart(5, '0')}_t${i + 1}.sql`), `-- +goose Up\n${sql(f)}`));
    const name = `pgconvoy_bench_rc_${process.pid}_${n}_goose`;
    dbs.push(name);
    const url = await freshDb(name);
    times.set('goose up', timed(() => tool(join(tools, 'goose'), ['-dir', dir, 'postgres', url, 'up'])));
  }
  if (existsSync(join(tools, 'migrate'))) {
    const dir = join(scratch, `migrate${n}`);
    mkdirSync(dir);
    files.forEach((f, i) => writeFileSync(join(dir, `${i + 1}_t${i + 1}.up.sql`), sql(f)));
    const name = `pgconvoy_bench_rc_${process.pid}_${n}_migrate`;
    dbs.push(name);
    const url = await freshDb(name);
    times.set('golang-migrate up', timed(() => tool(join(tools, 'migrate'), ['-path', dir, '-database', `${url}?sslmode=disable`, 'up'])));
  }
  const nodePgMigrate = join(__dirname, '..', '..', 'node_modules', '.bin', 'node-pg-migrate');
  if (existsSync(nodePgMigrate)) {
    const dir = join(scratch, `npm${n}`);
    mkdirSync(dir);
    files.forEach((f, i) => writeFileSync(join(dir, `${i + 1}_t${i + 1}.sql`), `-- Up Migration\n${sql(f)}\n-- Down Migration\n`));
    const name = `pgconvoy_bench_rc_${process.pid}_${n}_npm`;
    dbs.push(name);
    const url = await freshDb(name);
    times.set('node-pg-migrate up', timed(() => tool(nodePgMigrate, ['up', '-m', dir, '--no-single-transaction', '--no-verbose'], { ...process.env, DATABASE_URL: url })));
  }
  return times;
}

function tool(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): void {
  const r = spawnSync(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${r.stderr.toString()}`);
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'pgconvoy-bench-run-cost-'));
  const server = await startDevServer({ dbFile: join(scratch, 'temporal.db'), logFile: join(scratch, 'temporal.log') });
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  const dbs: string[] = [];
  try {
    for (const n of sizes) {
      const set = join(scratch, `set${n}`);
      writeSet(set, n);
      const files = readdirSync(set).sort((a, b) => Number(a.slice(1).split('__')[0]) - Number(b.slice(1).split('__')[0]));
      const names = [`pgconvoy_bench_rc_${process.pid}_${n}_a`, `pgconvoy_bench_rc_${process.pid}_${n}_b`, `pgconvoy_bench_rc_${process.pid}_${n}_c`];
      dbs.push(...names);
      const oneTx = await freshDb(names[0]!);
      const all = join(scratch, `all${n}.sql`);
      writeFileSync(all, files.map((f) => `\\i ${join(set, f)}`).join('\n') + '\n');
      const psqlOne = timed(() => psql(oneTx, ['-1', '-f', all]));
      const perFile = await freshDb(names[1]!);
      const psqlEach = timed(() => files.forEach((f) => psql(perFile, ['-f', join(set, f)])));

      const peers = await runPeers(scratch, set, files, n, dbs);
      const target = await freshDb(names[2]!);
      const env = { ...process.env, TEMPORAL_ADDRESS: server.address, PGCONVOY_TASK_QUEUE: `bench${n}`, PGCONVOY_LOG_LEVEL: 'warn', PGCONVOY_DB_RC: target };
      const worker = spawn(bin, ['--migrations', set, 'worker'], { env, stdio: 'ignore' });
      try {
        await sleep(3_000); // polling
        const t = performance.now();
        const handle = await startMigration({ client, taskQueue: `bench${n}` }, { db: 'rc', migrationsDir: set });
        const result = await handle.result();
        const total = performance.now() - t;
        if (result.status !== 'applied') throw new Error(`the run ended ${result.status}`);
        const events = (await handle.fetchHistory()).events ?? [];
        const at = (e: (typeof events)[number]) => Number(e.eventTime?.seconds ?? 0) * 1000 + Math.round((e.eventTime?.nanos ?? 0) / 1e6);
        const scheduled = new Map<number, string>();
        const started = new Map<number, number>();
        const spans: Array<{ name: string; from: number; started: number; to: number }> = [];
        for (const e of events) {
          const s = e.activityTaskScheduledEventAttributes;
          if (s) scheduled.set(Number(e.eventId), s.activityType?.name ?? '?');
          const st = e.activityTaskStartedEventAttributes;
          if (st) started.set(Number(st.scheduledEventId), at(e));
          const done = e.activityTaskCompletedEventAttributes;
          if (done) {
            const id = Number(done.scheduledEventId);
            const from = at(events.find((x) => Number(x.eventId) === id)!);
            spans.push({ name: scheduled.get(id) ?? '?', from, started: started.get(id) ?? from, to: at(e) });
          }
        }
        const applies = spans.filter((s) => s.name === 'applyMigration');
        const applyMs = Math.max(...applies.map((s) => s.to)) - Math.min(...applies.map((s) => s.from));
        const inside = applies.reduce((sum, s) => sum + (s.to - s.from), 0);
        const waiting = applies.reduce((sum, s) => sum + (s.started - s.from), 0);
        const step = (name: string) => spans.filter((s) => s.name === name).reduce((sum, s) => sum + (s.to - s.from), 0);
        console.log(`${n} migrations (worker running; ${adminUrl.replace(/\/[^/]*$/, '')}):`);
        console.log(`  psql -1 -f (one transaction, no ledger)   ${psqlOne.toFixed(0).padStart(7)} ms   1.00x`);
        console.log(`  psql -f once per file                     ${psqlEach.toFixed(0).padStart(7)} ms   ${(psqlEach / psqlOne).toFixed(2)}x`);
        for (const [peer, ms] of peers) console.log(`  ${peer.padEnd(42)}${ms.toFixed(0).padStart(7)} ms   ${(ms / psqlOne).toFixed(2)}x`);
        console.log(`  pgconvoy run, whole                       ${total.toFixed(0).padStart(7)} ms   ${(total / psqlOne).toFixed(2)}x`);
        console.log(`  pgconvoy apply phase                      ${applyMs.toFixed(0).padStart(7)} ms   ${(applyMs / psqlOne).toFixed(2)}x   ${(applyMs / n).toFixed(1)} ms per migration`);
        console.log(`    per migration: ${(waiting / n).toFixed(1)} ms from scheduled to started, ${((inside - waiting) / n).toFixed(1)} ms from started to completed, ${((applyMs - inside) / n).toFixed(1)} ms between activities (workflow tasks)`);
        const goose = peers.get('goose up');
        if (goose) console.log(`  against goose: the run ${(total / goose).toFixed(1)}x, the apply phase ${(applyMs / goose).toFixed(1)}x`);
        console.log(`  steps: plan ${step('planDatabase')} ms, lease ${step('acquireLease')} ms, fingerprint ${step('beginRun')} ms, backup ${step('takeBackup')} ms, verify ${step('verifyRun')} ms, release ${step('releaseLease')} ms`);
      } finally {
        worker.kill('SIGKILL');
      }
    }
  } finally {
    await connection.close();
    await server.stop();
    await dropDatabases(dbs);
    rmSync(scratch, { recursive: true, force: true });
  }
}

runBench(main);
