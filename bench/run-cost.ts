/**
 * What a run costs per migration, with a worker already running: --sizes
 * (default 50,200,800) small migrations (a table, ten rows, an index) on a
 * fresh database (with --schema-tables N, one that already has N tables)
 * through the migrateDatabase workflow, against psql on the same files (all
 * in one transaction, and once per file). The apply phase comes from the
 * ledger (first migration started to last finished), the steps around it
 * from the run's history. Also through node-pg-migrate (a pinned
 * devDependency) and, when bench/provision-peers.sh has built them, goose
 * and golang-migrate.
 *
 * With --runs R, each size runs R rounds, every tool once per round
 * (interleaved), and the figures are medians (psql once per file runs in the
 * first round only).
 *
 * With --real-history N, also a set shaped like a real history (20-digit
 * versions, empty files, renamed tables, PL/pgSQL, CONCURRENTLY) against psql
 * once per file: no peer here takes 20-digit versions.
 *
 * With --guarded, also a run whose worker holds the database to a guard
 * that is never crossed: what the watch's sample before each migration costs.
 *
 *   npm run build && node dist/bench/run-cost.js [--sizes 50,200,800] [--runs 5] [--schema-tables 1000] [--real-history 346] [--guarded]
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { History } from '@temporalio/common/lib/proto-utils';
import { startMigration } from '../src/client/api';
import { startDevServer } from '../src/worker/dev-server';
import { activitySteps } from '../test/helpers/histories';
import { realHistory } from '../test/helpers/real-history';
import { adminUrl, databaseUrl, dropDatabases, median, numberArg, query, runBench } from './support';

const sizes = (process.argv.includes('--sizes') ? process.argv[process.argv.indexOf('--sizes') + 1]! : '50,200,800')
  .split(',')
  .map(Number)
  .filter((n) => Number.isInteger(n) && n > 0);
/** Tables every database starts with, so the cost per migration can be seen against the size of the schema. */
const schemaTables = numberArg('schema-tables', 0);
/** With --real-history N: also a set shaped like a real project's history (test/helpers/real-history.ts), N pairs. */
const realHistoryPairs = numberArg('real-history', 0);
/** Rounds per size, each running every tool once (interleaved); figures are medians. psql once per file runs in the first round only. */
const rounds = Math.max(1, numberArg('runs', 1));
/** With --guarded: also a run whose worker holds the database to a guard (one that is never crossed): a watch sample before each migration. */
const guarded = process.argv.includes('--guarded');
const bin = join(__dirname, '..', '..', 'bin', 'pgconvoy');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `n` small migrations in `dir` (V<i>__t<i>.sql): a table, ten rows, an index. */
export function writeSet(dir: string, n: number): void {
  mkdirSync(dir);
  for (let i = 1; i <= n; i++) {
    writeFileSync(
      join(dir, `V${i}__t${i}.sql`),
      `CREATE TABLE t${i} (id int PRIMARY KEY, v text);\nINSERT INTO t${i} SELECT g, 'row ' || g FROM generate_series(1, 10) g;\nCREATE INDEX t${i}_v ON t${i} (v);\n`,
    );
  }
}

/** The files of a set writeSet made, in version order. */
export function setFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort((a, b) => Number(a.slice(1).split('__')[0]) - Number(b.slice(1).split('__')[0]))
    .map((f) => join(dir, f));
}

function timed(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

/** A fresh database, from a template with --schema-tables tables when asked. */
async function freshDb(name: string): Promise<string> {
  await query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await query(`CREATE DATABASE ${name}${schemaTables > 0 ? ` TEMPLATE ${template}` : ''}`);
  return databaseUrl(name);
}

const template = `pgconvoy_bench_rc_${process.pid}_template`;

async function createTemplate(): Promise<void> {
  await query(`CREATE DATABASE ${template}`);
  await query(
    `DO $$ BEGIN FOR i IN 1..${schemaTables} LOOP
       EXECUTE format('CREATE TABLE existing_%s (id bigserial PRIMARY KEY, name text NOT NULL DEFAULT ''x'', n int, at timestamptz DEFAULT now(), doc jsonb)', i);
       EXECUTE format('CREATE INDEX ON existing_%s (n)', i);
     END LOOP; END $$`,
    databaseUrl(template),
  );
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
async function runPeers(scratch: string, set: string, files: string[], n: string, dbs: string[]): Promise<Map<string, number>> {
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

export function tool(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): void {
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
    if (schemaTables > 0) {
      dbs.push(template);
      await createTemplate();
    }
    for (const n of sizes) {
      const set = join(scratch, `set${n}`);
      writeSet(set, n);
      const files = readdirSync(set).sort((a, b) => Number(a.slice(1).split('__')[0]) - Number(b.slice(1).split('__')[0]));
      const all = join(scratch, `all${n}.sql`);
      writeFileSync(all, files.map((f) => `\\i ${join(set, f)}`).join('\n') + '\n');
      const samples = new Map<string, number[]>();
      const add = (label: string, ms: number) => samples.set(label, [...(samples.get(label) ?? []), ms]);
      let lastRun: Awaited<ReturnType<typeof runWithWorker>> | undefined;
      let steps = '';
      for (let round = 0; round < rounds; round++) {
        const tag = `${n}_${round}`;
        const names = [`pgconvoy_bench_rc_${process.pid}_${tag}_a`, `pgconvoy_bench_rc_${process.pid}_${tag}_b`, `pgconvoy_bench_rc_${process.pid}_${tag}_c`];
        dbs.push(...names);
        const oneTx = await freshDb(names[0]!);
        add('psql -1 -f (one transaction, no ledger)', timed(() => psql(oneTx, ['-1', '-f', all])));
        if (round === 0) {
          const perFile = await freshDb(names[1]!);
          add('psql -f once per file', timed(() => files.forEach((f) => psql(perFile, ['-f', join(set, f)]))));
        }
        for (const [peer, ms] of await runPeers(scratch, set, files, tag, dbs)) add(peer, ms);
        // The whole command with nothing running: its own dev server and worker (state in the scratch folder).
        const embeddedDb = `pgconvoy_bench_rc_${process.pid}_${tag}_embedded`;
        dbs.push(embeddedDb);
        const embeddedEnv: NodeJS.ProcessEnv = { ...process.env, PGCONVOY_STATE_DIR: join(scratch, `state${tag}`), PGCONVOY_LOG_LEVEL: 'warn', PGCONVOY_DB_RC: await freshDb(embeddedDb) };
        delete embeddedEnv.TEMPORAL_ADDRESS;
        add('pgconvoy up, embedded (whole command)', timed(() => tool(bin, ['--migrations', set, 'up', '--db', 'rc'], embeddedEnv)));
        const target = await freshDb(names[2]!);
        const run = await runWithWorker(client, server.address, set, `bench${tag}`, target);
        lastRun = run;
        add('pgconvoy run, whole (worker running)', run.total);
        // The apply phase as the ledger saw it: the first migration started to the last finished (the database's clock).
        const ledger = await query<{ apply_ms: number; engine_ms: number }>(
          `SELECT (extract(epoch FROM max(finished_at) - min(started_at)) * 1000)::float8 AS apply_ms, sum(execution_ms)::float8 AS engine_ms FROM pgconvoy.history WHERE status = 'applied'`,
          target,
        );
        add('pgconvoy apply phase', ledger.rows[0]!.apply_ms);
        add('in transactions', ledger.rows[0]!.engine_ms);
        if (guarded) {
          const config = join(scratch, 'guarded.json');
          writeFileSync(config, JSON.stringify({ migrations: set, guards: { maxBlockedSessions: 1_000_000 } }));
          const guardedDb = `pgconvoy_bench_rc_${process.pid}_${tag}_guarded`;
          dbs.push(guardedDb);
          const target = await freshDb(guardedDb);
          add('pgconvoy run, guarded (worker running)', (await runWithWorker(client, server.address, set, `bench${tag}g`, target, config)).total);
          const phase = await query<{ apply_ms: number }>(`SELECT (extract(epoch FROM max(finished_at) - min(started_at)) * 1000)::float8 AS apply_ms FROM pgconvoy.history WHERE status = 'applied'`, target);
          add('pgconvoy apply phase, guarded', phase.rows[0]!.apply_ms);
        }
        steps = stepsOf(run.events);
      }
      const medianOf = (label: string) => {
        const xs = samples.get(label);
        return xs === undefined ? undefined : median(xs);
      };
      const psqlOne = medianOf('psql -1 -f (one transaction, no ledger)')!;
      const total = medianOf('pgconvoy run, whole (worker running)')!;
      const applyMs = medianOf('pgconvoy apply phase')!;
      const engineMs = medianOf('in transactions')!;
      const line = (label: string, ms: number, extra = '') => console.log(`  ${label.padEnd(42)}${ms.toFixed(0).padStart(7)} ms   ${(ms / psqlOne).toFixed(2)}x${extra}`);
      console.log(
        `${n} migrations${schemaTables > 0 ? ` on a schema of ${schemaTables} tables` : ''} (worker running; ${adminUrl.replace(/\/[^/]*$/, '')}${rounds > 1 ? `; median of ${rounds} interleaved runs, psql once per file run once` : ''}):`,
      );
      for (const label of samples.keys()) if (label !== 'in transactions' && !label.startsWith('pgconvoy apply phase')) line(label, medianOf(label)!);
      line('pgconvoy apply phase', applyMs, `   ${(applyMs / n).toFixed(1)} ms per migration`);
      const guardedMs = medianOf('pgconvoy apply phase, guarded');
      if (guardedMs !== undefined) line('pgconvoy apply phase, guarded', guardedMs, `   ${(guardedMs / n).toFixed(1)} ms per migration, ${(guardedMs / applyMs).toFixed(2)}x unguarded`);
      console.log(
        `    ${lastRun!.inline} inline (in ${lastRun!.calls} local activities), ${lastRun!.regular} through the task queue; per migration ${(engineMs / n).toFixed(1)} ms in its transaction, ${((applyMs - engineMs) / n).toFixed(1)} ms around it`,
      );
      const goose = medianOf('goose up');
      if (goose) console.log(`  against goose: the run ${(total / goose).toFixed(1)}x, the apply phase ${(applyMs / goose).toFixed(1)}x`);
      console.log(`  steps${rounds > 1 ? ' (the last run)' : ''}: ${steps}`);
    }
    if (realHistoryPairs > 0) await realHistoryRun(scratch, client, server.address, dbs);
  } finally {
    await connection.close();
    await server.stop();
    await dropDatabases(dbs);
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** A history event's time, in ms since the epoch (the server's clock). */
export const eventMs = (e: NonNullable<History['events']>[number]): number => Number(e.eventTime?.seconds ?? 0) * 1000 + Math.round((e.eventTime?.nanos ?? 0) / 1e6);

/** Each completed activity in a history, by type: its scheduled to completed time. */
export function activitySpans(events: NonNullable<History['events']>): Array<{ name: string; from: number; to: number }> {
  const scheduled = new Map<number, string>();
  const spans: Array<{ name: string; from: number; to: number }> = [];
  for (const e of events) {
    const s = e.activityTaskScheduledEventAttributes;
    if (s) scheduled.set(Number(e.eventId), s.activityType?.name ?? '?');
    const done = e.activityTaskCompletedEventAttributes;
    if (done) {
      const id = Number(done.scheduledEventId);
      spans.push({ name: scheduled.get(id) ?? '?', from: eventMs(events.find((x) => Number(x.eventId) === id)!), to: eventMs(e) });
    }
  }
  return spans;
}

/** The run's steps around the apply phase, from its history: each activity's scheduled to completed time. */
function stepsOf(events: NonNullable<History['events']>): string {
  const spans = activitySpans(events);
  const step = (name: string) => spans.filter((s) => s.name === name).reduce((sum, s) => sum + (s.to - s.from), 0);
  return `plan ${step('planDatabase')} ms, lease ${step('acquireLease')} ms, fingerprint ${step('beginRun')} ms, backup ${step('takeBackup')} ms, verify ${step('verifyRun')} ms, release ${step('releaseLease')} ms`;
}

/** The real-history-shaped set: psql once per forward file (in version order), then a pgconvoy run with a worker running. */
async function realHistoryRun(scratch: string, client: Client, address: string, dbs: string[]): Promise<void> {
  const history = realHistory(realHistoryPairs);
  const set = join(scratch, 'real');
  mkdirSync(set);
  for (const [name, content] of Object.entries(history.files)) writeFileSync(join(set, name), content);
  const versionOf = (f: string) => BigInt(f.slice(1).split('__')[0]!);
  const forward = Object.keys(history.files)
    .filter((f) => f.startsWith('V'))
    .sort((a, b) => (versionOf(a) < versionOf(b) ? -1 : versionOf(a) > versionOf(b) ? 1 : 0));
  const [each, run] = [`pgconvoy_bench_rc_${process.pid}_real_psql`, `pgconvoy_bench_rc_${process.pid}_real_run`];
  dbs.push(each, run);
  const eachUrl = await freshDb(each);
  const psqlEach = timed(() => forward.forEach((f) => psql(eachUrl, ['-f', join(set, f)])));
  const { total, inline, calls, regular } = await runWithWorker(client, address, set, 'bench-real', await freshDb(run));
  console.log(`a real-history-shaped set: ${forward.length} migrations (${history.plpgsqlLines} lines of PL/pgSQL; worker running):`);
  console.log(`  psql -f once per file                     ${psqlEach.toFixed(0).padStart(7)} ms   1.00x`);
  console.log(`  pgconvoy run, whole (worker running)      ${total.toFixed(0).padStart(7)} ms   ${(total / psqlEach).toFixed(2)}x   ${(total / forward.length).toFixed(1)} ms per migration`);
  console.log(`    ${inline} inline (in ${calls} local activities), ${regular} through the task queue`);
}

/** A run of `set` on `targetUrl` through a `pgconvoy worker` process already polling: how long it took, its history, how its migrations ran. */
async function runWithWorker(client: Client, address: string, set: string, taskQueue: string, targetUrl: string, configFile?: string) {
  const env = { ...process.env, TEMPORAL_ADDRESS: address, PGCONVOY_TASK_QUEUE: taskQueue, PGCONVOY_LOG_LEVEL: 'warn', PGCONVOY_DB_RC: targetUrl };
  const worker = spawn(bin, [...(configFile ? ['--config', configFile] : []), '--migrations', set, 'worker'], { env, stdio: 'ignore' });
  try {
    await sleep(3_000); // polling
    const t = performance.now();
    const handle = await startMigration({ client, taskQueue }, { db: 'rc', migrationsDir: set });
    const result = await handle.result();
    const total = performance.now() - t;
    if (result.status !== 'applied') throw new Error(`the run ended ${result.status}`);
    const history = await handle.fetchHistory();
    const steps = activitySteps(history);
    // Migrations predicted short run inline, consecutive ones together in one applyMigrations call; the others one applyMigration each.
    const regular = steps.filter((s) => s.name === 'applyMigration' && !s.local).length;
    return { total, events: history.events ?? [], inline: result.applied.length - regular, calls: steps.filter((s) => s.name === 'applyMigrations').length, regular };
  } finally {
    worker.kill('SIGKILL');
  }
}

if (require.main === module) runBench(main);
