/**
 * How long a large migration file keeps the worker's event loop from
 * heartbeating: parsing it on the event loop against parsing it in a worker
 * thread (prepareOffThread), against `psql --single-transaction -f` on the
 * same file as the reference. Median of --runs runs.
 *
 *   npm run build && node dist/bench/parse-large-file.js [--mib 4] [--runs 3]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildMigrationSet } from '../src/core/migration-set';
import { prepareMigrations } from '../src/core/prepare';
import { prepareOffThread } from '../src/source/prepare-off-thread';
import { databaseUrl, median, numberArg, query } from './support';

async function measure(work: () => Promise<unknown>): Promise<{ ms: number; blockedMs: number }> {
  let longest = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 10);
  const started = performance.now();
  await work();
  clearInterval(timer);
  return { ms: performance.now() - started, blockedMs: Math.max(longest, performance.now() - last) };
}

async function main(): Promise<void> {
  const mib = numberArg('--mib', 4);
  const runs = numberArg('--runs', 3);
  const lines = ['CREATE TABLE seed (id int, name text, note text);\n'];
  let size = lines[0]!.length;
  for (let i = 0; size < mib * 1024 * 1024 - 200; i++) {
    const line = `INSERT INTO seed (id, name, note) VALUES (${i}, 'name ${i}', 'a note of moderate length, number ${i}');\n`;
    lines.push(line);
    size += line.length;
  }
  const sql = lines.join('');
  const set = buildMigrationSet('bench', [{ name: 'V1__seed.sql', content: Buffer.from(sql) }]);
  const dir = mkdtempSync(join(tmpdir(), 'pgconvoy-bench-parse-'));
  const file = join(dir, 'seed.sql');
  writeFileSync(file, sql);
  const db = `pgconvoy_bench_parse_${process.pid}`;
  const results = { psql: [] as number[], on: [] as Array<{ ms: number; blockedMs: number }>, off: [] as Array<{ ms: number; blockedMs: number }> };
  try {
    for (let r = 0; r < runs; r++) {
      await query(`DROP DATABASE IF EXISTS ${db}`);
      await query(`CREATE DATABASE ${db}`);
      const started = performance.now();
      execFileSync('psql', ['--no-psqlrc', '--quiet', '--single-transaction', '--set=ON_ERROR_STOP=1', `--dbname=${databaseUrl(db)}`, `--file=${file}`]);
      results.psql.push(performance.now() - started);
      results.on.push(await measure(() => prepareMigrations(set)));
      results.off.push(await measure(() => prepareOffThread(set)));
    }
  } finally {
    await query(`DROP DATABASE IF EXISTS ${db}`);
    rmSync(dir, { recursive: true, force: true });
  }
  const psql = median(results.psql);
  const row = (name: string, xs: Array<{ ms: number; blockedMs: number }>) => {
    const ms = median(xs.map((x) => x.ms));
    const blocked = median(xs.map((x) => x.blockedMs));
    return `${name.padEnd(36)} ${ms.toFixed(0).padStart(6)} ms  ${(ms / psql).toFixed(2)}x psql   event loop blocked ${blocked.toFixed(0).padStart(5)} ms`;
  };
  process.stdout.write(`${mib} MiB file, ${lines.length} statements, median of ${runs} runs\n`);
  process.stdout.write(`${'psql -1 -f (parse and run)'.padEnd(36)} ${psql.toFixed(0).padStart(6)} ms  1.00x psql\n`);
  process.stdout.write(row('parse on the event loop', results.on) + '\n');
  process.stdout.write(row('parse in a worker thread', results.off) + '\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
