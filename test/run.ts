/**
 * The test harness: starts one Temporal dev server for the whole run (free
 * port, throw-away state file), runs Node's test runner over the compiled
 * tests, and tears everything down however the tests end, dropping any
 * per-test database a crashed test left behind.
 *
 *   node dist/test/run.js                      # unit and integration
 *   node dist/test/run.js dist/test/unit       # a subset (files or folders)
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, startDevServer, type DevServer } from '../src/worker/dev-server';
import { startMinio, type Minio } from './helpers/minio';
import { newerServerBinDir, startPrivatePostgres } from './helpers/private-postgres';
import { testNamespace } from './helpers/services';

const adminUrl = process.env.PGCONVOY_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function dropLeftovers(runId: string): Promise<number> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [`pgconvoy_test_${runId}%`]);
    for (const { datname } of rows) await client.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    return rows.length;
  } finally {
    await client.end();
  }
}

async function main(): Promise<number> {
  const runId = randomBytes(2).toString('hex');
  const scratch = mkdtempSync(join(tmpdir(), 'pgconvoy-test-run-'));
  const root = join(__dirname, '..', '..');
  const targets = process.argv.slice(2);
  let server: DevServer | undefined;
  let minio: Minio | undefined;
  let newer: { url: string; stop(): void } | undefined;
  const cleanup = async () => {
    await server?.stop();
    await minio?.stop();
    try {
      newer?.stop();
    } catch {
      // its folder is gone with the scratch folder below
    }
    const dropped = await dropLeftovers(runId).catch(() => 0);
    if (dropped > 0) process.stderr.write(`test harness: dropped ${dropped} database(s) left by failed tests\n`);
    rmSync(scratch, { recursive: true, force: true });
  };
  try {
    // A namespace per test file: files run two at a time, and many name their database "app" (one workflow id).
    const testFiles = ['unit', 'integration'].flatMap((dir) => readdirSync(join(__dirname, dir)).filter((f) => f.endsWith('.test.js')));
    server = await startDevServer({ dbFile: join(scratch, 'temporal.db'), logFile: join(scratch, 'temporal.log'), namespaces: testFiles.map(testNamespace) });
    minio = await startMinio(join(scratch, 'minio'), await freePort());
    // A server newer than the machine's pg_dump: the engine's tests run on it too.
    newer = await startPrivatePostgres({ binDir: newerServerBinDir() });
    process.stderr.write(`test harness: Temporal dev server at ${server.address}, MinIO at ${minio.endpoint}, PostgreSQL 18 at ${newer.url}, run ${runId}\n`);
    const child = spawn(
      process.execPath,
      ['--enable-source-maps', '--test', '--test-concurrency=2', '--test-timeout=600000', '--test-force-exit', ...(targets.length > 0 ? targets : ['dist/test/unit', 'dist/test/integration'])],
      {
        cwd: root,
        stdio: 'inherit',
        env: {
          ...process.env,
          PGCONVOY_TEST_TEMPORAL_ADDRESS: server.address,
          PGCONVOY_TEST_RUN: runId,
          PGCONVOY_TEST_PG_URL: adminUrl,
          PGCONVOY_TEST_PG18_URL: newer.url,
          PGCONVOY_TEST_SCRATCH: scratch,
          PGCONVOY_TEST_S3_ENDPOINT: minio.endpoint,
          PGCONVOY_TEST_S3_ACCESS_KEY: minio.accessKey,
          PGCONVOY_TEST_S3_SECRET_KEY: minio.secretKey,
        },
      },
    );
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    const code = await new Promise<number>((resolve) => child.once('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0))));
    return code;
  } finally {
    await cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`test harness failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
