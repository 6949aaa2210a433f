/**
 * Backup and restore figures for databases of about 100 MB and 1 GB:
 * throughput of pgconvoy's backup (pg_dump streamed through a sha256 into the
 * store) to the local store and to S3 (a MinIO started here), against
 * `pg_dump -Fc > file` in the same run; peak RSS growth of the process doing
 * the backup; verification and restore time.
 *
 *   npm run build && node dist/bench/backup.js [--sizes 100,1000]   (MB)
 */
import { execSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { backupDatabase, libpqEnv, restoreDatabase, verifyBackup } from '../src/backup/backup';
import { FilesystemStore } from '../src/backup/filesystem-store';
import { S3Store } from '../src/backup/s3-store';
import { freePort } from '../src/worker/dev-server';
import { startMinio } from '../test/helpers/minio';
import { databaseUrl, query, runBench } from './support';

const sizesArg = process.argv.includes('--sizes') ? process.argv[process.argv.indexOf('--sizes') + 1]! : '100,1000';
const sizes = sizesArg.split(',').map(Number);
const mb = (bytes: number) => bytes / 1024 / 1024;


/** Runs fn while sampling RSS; returns its duration and the peak RSS growth over the start. */
async function measured<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number; rssGrowthMb: number }> {
  global.gc?.();
  const base = process.memoryUsage().rss;
  let peak = base;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const start = performance.now();
  try {
    const value = await fn();
    return { value, ms: performance.now() - start, rssGrowthMb: mb(Math.max(peak, process.memoryUsage().rss) - base) };
  } finally {
    clearInterval(sampler);
  }
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'pgconvoy-bench-backup-'));
  const minio = await startMinio(join(scratch, 'minio'), await freePort());
  const credentials = { accessKeyId: minio.accessKey, secretAccessKey: minio.secretKey };
  const s3 = new S3Client({ region: 'us-east-1', endpoint: minio.endpoint, forcePathStyle: true, credentials });
  await s3.send(new CreateBucketCommand({ Bucket: 'bench' }));
  const lines: string[] = [];
  try {
    for (const sizeMb of sizes) {
      const name = `pgconvoy_bench_backup_${process.pid}_${sizeMb}`;
      await query(`DROP DATABASE IF EXISTS ${name}`);
      await query(`CREATE DATABASE ${name}`);
      try {
        const url = databaseUrl(name);
        const rows = Math.round(sizeMb * 8_000);
        const t0 = performance.now();
        await query<Record<string, string>>(`CREATE TABLE events (id bigint PRIMARY KEY, a text, b text, note text);
          INSERT INTO events SELECT g, md5(g::text), md5((g * 3)::text), 'event number ' || g FROM generate_series(1, ${rows}) g;`, url);
        const dbBytes = Number((await query<Record<string, string>>('SELECT pg_database_size(current_database())::text AS n', url)).rows[0]?.n);
        process.stderr.write(`${sizeMb} MB: generated ${mb(dbBytes).toFixed(0)} MB in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);

        const file = join(scratch, `${name}.dump`);
        const plain = await measured(() => Promise.resolve(execSync(`pg_dump -Fc > ${file}`, { env: libpqEnv(url), shell: '/bin/sh' })));
        const plainBytes = statSync(file).size;
        rmSync(file);
        const local = new FilesystemStore(join(scratch, 'store'));
        const toLocal = await measured(() => backupDatabase({ alias: name, url, store: local, serverVersion: '15', ledgerVersion: null }));
        const verified = await measured(() => verifyBackup(local, toLocal.value));
        const store = new S3Store({ bucket: 'bench', prefix: 'b', region: 'us-east-1', endpoint: minio.endpoint, credentials, partSizeBytes: 16 * 1024 * 1024, queueSize: 2 });
        const toS3 = await measured(() => backupDatabase({ alias: name, url, store, serverVersion: '15', ledgerVersion: null }));
        store.destroy();
        const c = new pg.Client({ connectionString: url });
        await c.connect();
        const restored = await measured(() =>
          restoreDatabase({ alias: name, url, store: local, manifest: toLocal.value }, async (sql) => (await c.query<Record<string, unknown>>(sql)).rows),
        );
        await c.end();
        const restoredRows = Number((await query<Record<string, string>>('SELECT count(*)::text AS n FROM events', url)).rows[0]?.n);
        if (restoredRows !== rows) throw new Error(`restore lost rows: ${restoredRows} of ${rows}`);

        const rate = (bytes: number, ms: number) => `${(mb(bytes) / (ms / 1000)).toFixed(1)} MB/s`;
        lines.push(
          `database ${mb(dbBytes).toFixed(0)} MB (dump ${mb(plainBytes).toFixed(0)} MB):`,
          `  pg_dump -Fc > file             ${(plain.ms / 1000).toFixed(1)} s  ${rate(dbBytes, plain.ms)}  1.00x`,
          `  backup to local store           ${(toLocal.ms / 1000).toFixed(1)} s  ${rate(dbBytes, toLocal.ms)}  ${(toLocal.ms / plain.ms).toFixed(2)}x  peak RSS +${toLocal.rssGrowthMb.toFixed(0)} MB`,
          `  backup to S3 (MinIO, 16 MiB parts) ${(toS3.ms / 1000).toFixed(1)} s  ${rate(dbBytes, toS3.ms)}  ${(toS3.ms / plain.ms).toFixed(2)}x  peak RSS +${toS3.rssGrowthMb.toFixed(0)} MB`,
          `  verification (sha256 + pg_restore read-through) ${(verified.ms / 1000).toFixed(1)} s`,
          `  restore (one transaction)       ${(restored.ms / 1000).toFixed(1)} s`,
        );
      } finally {
        await query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      }
    }
    console.log(lines.join('\n'));
  } finally {
    s3.destroy();
    await minio.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}

runBench(main);
