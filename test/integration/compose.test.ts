/**
 * docker-compose.yml, run as local processes: no container engine here, so
 * the test reads the file as `docker-compose config` renders it and starts
 * the same programs with the same settings (ports, environment, commands,
 * health checks): the init script on the machine's PostgreSQL 15, Temporal
 * Server 1.29.1 on it after the same schema script, the same setup script,
 * MinIO and the same bucket script, and pgconvoy's worker and serve with the
 * services' environment; then a rollout through the HTTP API. Host names
 * become 127.0.0.1 and container paths the project's; the databases get
 * names of this run (the machine's PostgreSQL is shared), which the test
 * drops. The Temporal Web UI (an image of its own) is not started here.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { parse } from 'yaml';
import { tokenHash } from '../../src/client/http/auth';
import { adminQuery } from '../helpers/database';
import { waitFor } from '../helpers/workers';

const root = join(__dirname, '..', '..', '..');
const tools = join(root, '.tools');

interface Service {
  image?: string;
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  ports?: Array<{ published: number; target: number }>;
  volumes?: string[];
  healthcheck?: { test: string[]; interval?: string; retries?: number };
  depends_on?: Record<string, { condition: string }>;
}

const run = `${process.env.PGCONVOY_TEST_RUN ?? 'x'}_${process.pid}`;
/** The run's names for the compose file's databases (the server is shared with everything else on the machine). */
const names: Record<string, string> = { temporal: `pgconvoy_compose_temporal_${run}`, temporal_visibility: `pgconvoy_compose_visibility_${run}`, app: `pgconvoy_compose_app_${run}` };
/** The run's name for the compose file's `temporal` role. */
const role = `pgconvoy_compose_${run}`;

/** Settings that name a host, and settings that name a database. */
const hostKeys = ['SQL_HOST', 'POSTGRES_SEEDS'];
const roleKeys = ['TEMPORAL_DB_USER', 'SQL_USER', 'POSTGRES_USER'];
const databaseKeys = ['TEMPORAL_DB', 'TEMPORAL_VISIBILITY_DB', 'DBNAME', 'VISIBILITY_DBNAME', 'APP_DB'];

/** A value of the compose file as it is on this machine (`key`: the environment variable it is): hosts, container paths, database names. */
function local(value: string, key?: string): string {
  if (key !== undefined && hostKeys.includes(key)) return '127.0.0.1';
  if (key !== undefined && databaseKeys.includes(key)) return names[value] ?? value;
  if (key !== undefined && roleKeys.includes(key) && value === 'temporal') return role;
  return value
    .replace(/\b(postgresql|temporal|minio)(?=:\d+)/g, '127.0.0.1')
    .replace(/^\/app\/deploy\//, `${root}/deploy/`)
    .replace(/^\/deploy\//, `${root}/deploy/`)
    .replace(/^\/etc\/temporal\/schema$/, join(tools, 'temporal-server', 'schema'))
    .replace(/^(postgres:\/\/[^/]+\/)app$/, (_all, server: string) => `${server}${names.app}`);
}

const localEnv = (service: Service, extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${join(tools, 'bin')}:${process.env.PATH}` };
  for (const key of Object.keys(env)) if (key.startsWith('PGCONVOY_') || key.startsWith('TEMPORAL_') || key.startsWith('AWS_')) delete env[key];
  for (const [key, value] of Object.entries(service.environment ?? {})) env[key] = local(value, key);
  return { ...env, ...extra };
};

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

const seconds = (text: string | undefined) => Number(/^(\d+)s$/.exec(text ?? '5s')?.[1] ?? 5) * 1000;

/** Runs a service's health check here until it passes, as the engine would (interval × retries). */
async function healthy(name: string, service: Service, env: NodeJS.ProcessEnv, process_?: ChildProcess): Promise<void> {
  const [kind, command, ...args] = service.healthcheck!.test;
  assert.equal(kind, 'CMD', `${name}: the health check runs a program`);
  const program = command === 'node' ? process.execPath : command!;
  const interval = seconds(service.healthcheck!.interval);
  const retries = service.healthcheck!.retries ?? 3;
  for (let attempt = 1; ; attempt++) {
    try {
      await promisify(execFile)(program, args.map((a) => local(a)), { env, timeout: 5_000 });
      return;
    } catch (error) {
      if (process_ && process_.exitCode !== null) throw new Error(`${name} exited with ${process_.exitCode} before it was healthy`);
      if (attempt >= retries) throw new Error(`${name}: its health check failed ${retries} times: ${(error as Error).message}`);
      await new Promise((r) => setTimeout(r, Math.min(interval, 1_000)));
    }
  }
}

test('docker-compose.yml: its services as local processes with its settings (PostgreSQL init, Temporal Server on PostgreSQL, MinIO, worker, serve) run a rollout through the HTTP API', async (t) => {
  const scratch = mkdtempSync(join(tmpdir(), 'pgconvoy-compose-'));
  const children: ChildProcess[] = [];
  t.after(async () => {
    for (const child of children.reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    for (const db of Object.values(names)) await adminQuery(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`).catch(() => undefined);
    await adminQuery(`DROP ROLE IF EXISTS "${role}"`).catch(() => undefined);
    rmSync(scratch, { recursive: true, force: true });
  });
  const start = (name: string, program: string, args: string[], env: NodeJS.ProcessEnv, cwd = root) => {
    const log = openSync(join(scratch, `${name}.log`), 'a');
    const child = spawn(program, args, { env, cwd, stdio: ['ignore', log, log] });
    children.push(child);
    child.once('exit', (code) => code !== 0 && code !== null && process.stderr.write(`compose test: ${name} exited with ${code}\n${readFileSync(join(scratch, `${name}.log`), 'utf8').slice(-2000)}\n`));
    return child;
  };

  // The file as the engine would read it, with a token for serve.
  const token = `compose-token-${run}`;
  const rendered = execFileSync('docker-compose', ['-f', join(root, 'docker-compose.yml'), 'config'], {
    cwd: root,
    env: { ...process.env, PGCONVOY_SERVE_TOKENS: JSON.stringify([{ name: 'deployer', sha256: tokenHash(token), scopes: ['admin'] }]) },
  }).toString();
  const { services } = parse(rendered) as { services: Record<string, Service> };
  assert.deepEqual(Object.keys(services).sort(), ['backup-bucket', 'minio', 'postgresql', 'serve', 'temporal', 'temporal-schema', 'temporal-setup', 'temporal-ui', 'worker']);
  // docker-compose 1.x renders a published port as a number, 2.x as a string.
  const published = (name: string) => services[name]!.ports?.map((p) => Number(p.published)) ?? [];
  // The ports the services publish (and Temporal Server's own) must be free here: say which is taken rather than fail later.
  for (const port of [7233, 7234, 7235, 7239, 6933, 6934, 6935, 6939, 9000, 9001, 8080]) {
    assert.ok(await portFree(port), `port ${port} is taken on this machine (a pgconvoy dev, another Temporal or MinIO?): the compose test runs the services on their published ports`);
  }

  // postgresql: the machine's PostgreSQL 15 on the published port, with the init script.
  assert.deepEqual(published('postgresql'), [5432]);
  const postgres = services.postgresql!;
  await healthy('postgresql', postgres, localEnv(postgres));
  const init = postgres.volumes!.find((v) => v.includes('docker-entrypoint-initdb.d'))!.split(':')[0]!;
  execFileSync('sh', [init], { env: localEnv(postgres, { PGHOST: '127.0.0.1', PGPORT: '5432', POSTGRES_USER: 'postgres' }) });

  // temporal-schema, then temporal (all its services in one process, as the image runs them), then temporal-setup.
  const schema = services['temporal-schema']!;
  execFileSync('sh', [local(schema.entrypoint![1]!)], { env: localEnv(schema) });
  const temporal = services.temporal!;
  assert.deepEqual(published('temporal'), [7233]);
  const env = temporal.environment!;
  const configDir = join(scratch, 'config'); // the dynamic config's path is relative to the working directory
  cpSync(join(tools, 'temporal-server', 'config', 'dynamicconfig'), join(configDir, 'dynamicconfig'), { recursive: true });
  const template = readFileSync(join(tools, 'temporal-server', 'config', 'development-postgres12.yaml'), 'utf8');
  writeFileSync(
    join(configDir, 'development.yaml'),
    template
      .replace(/databaseName: "temporal"/, `databaseName: "${local(env.DBNAME!, 'DBNAME')}"`)
      .replace(/databaseName: "temporal_visibility"/, `databaseName: "${local(env.VISIBILITY_DBNAME!, 'VISIBILITY_DBNAME')}"`)
      .replace(/connectAddr: "127\.0\.0\.1:5432"/g, `connectAddr: "${local(env.POSTGRES_SEEDS!, 'POSTGRES_SEEDS')}:${env.DB_PORT}"`)
      .replace(/user: "temporal"/g, `user: "${local(env.POSTGRES_USER!, 'POSTGRES_USER')}"`)
      .replace(/password: "temporal"/g, `password: "${env.POSTGRES_PWD}"`)
      .replace(/pluginName: "postgres12"/g, `pluginName: "${env.DB}"`),
  );
  const server = start('temporal', join(tools, 'bin', 'temporal-server'), ['--root', scratch, '--config', 'config', '--env', 'development', '--allow-no-auth', 'start'], localEnv(temporal), scratch);
  await healthy('temporal', temporal, localEnv(temporal), server);
  const setup = services['temporal-setup']!;
  execFileSync('sh', [local(setup.entrypoint![1]!)], { env: localEnv(setup) });

  // minio (the binary `npm run setup` builds from the module the image builds), then backup-bucket.
  const minio = services.minio!;
  assert.deepEqual(published('minio'), [9000]);
  const [, ...minioArgs] = minio.command!;
  start('minio', join(tools, 'bin', 'minio'), ['server', ...minioArgs.slice(0, -1).map((a) => (a.startsWith(':') ? `127.0.0.1${a}` : a)), join(scratch, 'minio-data')], localEnv(minio));
  await healthy('minio', minio, localEnv(minio));
  const bucket = services['backup-bucket']!;
  execFileSync(process.execPath, [local(bucket.entrypoint![1]!)], { env: localEnv(bucket), cwd: root });

  // worker and serve: pgconvoy with the services' commands and environment.
  const state = (name: string) => ({ PGCONVOY_STATE_DIR: join(scratch, `${name}-state`) });
  const bin = join(root, 'bin', 'pgconvoy');
  start('worker', bin, services.worker!.command!.map((a) => local(a)), localEnv(services.worker!, state('worker')));
  const serve = services.serve!;
  assert.deepEqual(published('serve'), [8080]);
  start('serve', bin, serve.command!.map((a) => local(a)), localEnv(serve, state('serve')));
  await healthy('serve', serve, localEnv(serve));

  // A rollout through the HTTP API, as a deploy service starts it.
  const api = 'http://127.0.0.1:8080';
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const started = await fetch(`${api}/v1/rollouts`, { method: 'POST', headers, body: JSON.stringify({ deployId: `compose-${run}`, databases: ['app'] }) });
  assert.equal(started.status, 201, await started.text());
  const status = await waitFor('the rollout to end', async () => {
    const body = (await (await fetch(`${api}/v1/rollouts/compose-${run}`, { headers })).json()) as { status: string; databases: Array<{ version: string | null }> };
    return ['completed', 'failed', 'halted', 'refused'].includes(body.status) ? body : undefined;
  }, 120_000);
  assert.equal(status.status, 'completed', JSON.stringify(status));
  assert.equal(status.databases[0]?.version, '3', 'the sample set, applied');

  // The ledger in the database, the backup in MinIO.
  const appUrl = new URL(local(serve.environment!.PGCONVOY_DB_APP!));
  appUrl.password = '';
  const app = new pg.Client({ connectionString: appUrl.toString() });
  await app.connect();
  try {
    const { rows } = await app.query<{ version: string }>(`SELECT version::text FROM pgconvoy.history WHERE status = 'applied' ORDER BY version`);
    assert.deepEqual(rows.map((r) => r.version), ['1', '2', '3']);
  } finally {
    await app.end();
  }
  const workerEnv = localEnv(services.worker!);
  const s3 = new S3Client({ region: workerEnv.AWS_REGION!, endpoint: workerEnv.AWS_ENDPOINT_URL_S3!, forcePathStyle: true, credentials: { accessKeyId: workerEnv.AWS_ACCESS_KEY_ID!, secretAccessKey: workerEnv.AWS_SECRET_ACCESS_KEY! } });
  const store = /^s3:\/\/([^/]+)\/(.*)$/.exec(workerEnv.PGCONVOY_BACKUP_STORE!)!;
  const objects = await s3.send(new ListObjectsV2Command({ Bucket: store[1]!, Prefix: store[2]! }));
  assert.ok((objects.Contents ?? []).some((o) => o.Key!.endsWith('.manifest.json')), 'the backup before the migrations is in MinIO');
  for (const name of ['worker', 'serve']) assert.ok(!readFileSync(join(scratch, `${name}.log`), 'utf8').includes(token), `${name} logged no token`);
});
