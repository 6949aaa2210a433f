/**
 * The HTTP API under a deploy service's load: `pgconvoy serve` in front of a
 * rollout of --dbs N (default 20) fresh databases × --migrations M (default
 * 5), with a worker and a dev server of the benchmark's own.
 *
 *   1. --triggers T (default 10) clients POST the same deploy id at once:
 *      exactly one rollout must exist (one 201, the others 200 attached);
 *   2. while the rollout waits for its wave's approval (a steady state),
 *      --pollers P (default 50) clients poll GET /v1/rollouts/<id> back to
 *      back for --seconds S (default 10); then the same number of loops ask
 *      the typed client (getRollout, no HTTP) for as long: what HTTP adds;
 *   3. approved, the wave runs while the P clients keep polling over HTTP,
 *      until the rollout ends: the latency a poller sees while the worker
 *      shares the machine.
 *
 * Prints p50/p95/p99 of each, HTTP's p99 as a ratio of the typed client's,
 * and requests per second. The serve rate limit is raised for the
 * benchmark (every client has one token; a real pipeline polls far less).
 *
 *   npm run build && node dist/bench/http-load.js [--dbs 20] [--migrations 5] [--pollers 50] [--triggers 10] [--seconds 10]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { tokenHash } from '../src/client/http/auth';
import { buildServer } from '../src/client/http/server';
import { getRollout } from '../src/client/rollout';
import { databaseEnvName, loadConfig, type Config } from '../src/config/config';
import { endedRolloutStatuses, rolloutWorkflowId } from '../src/contracts';
import { createLogger } from '../src/logging/logger';
import { startDevServer } from '../src/worker/dev-server';
import { createWorker, installRuntime } from '../src/worker/worker';
import { writeSet } from './run-cost';
import { databaseUrl, dropDatabases, numberArg, query, runBench } from './support';

const dbCount = numberArg('dbs', 20);
const migrations = numberArg('migrations', 5);
const pollers = numberArg('pollers', 50);
const triggers = numberArg('triggers', 10);
const seconds = numberArg('seconds', 10);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function percentiles(xs: number[]): { n: number; p50: number; p95: number; p99: number } {
  const sorted = [...xs].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
  return { n: sorted.length, p50: at(50), p95: at(95), p99: at(99) };
}

/** `loops` clients, each calling `call` back to back until `until()` says stop: every call's latency. */
async function closedLoops(loops: number, call: () => Promise<void>, until: () => boolean): Promise<number[]> {
  const latencies: number[] = [];
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (!until()) {
        const t = performance.now();
        await call();
        latencies.push(performance.now() - t);
      }
    }),
  );
  return latencies;
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'pgconvoy-bench-http-'));
  const names = Array.from({ length: dbCount }, (_, i) => `pgconvoy_bench_http_${process.pid}_${i + 1}`);
  const server = await startDevServer({ dbFile: join(scratch, 'temporal.db'), logFile: join(scratch, 'temporal.log') });
  try {
    for (let i = 0; i < dbCount; i += 5) await Promise.all(names.slice(i, i + 5).map((name) => query(`CREATE DATABASE ${name}`)));
    const set = join(scratch, 'set');
    writeSet(set, migrations);
    const aliases = names.map((_, i) => `http_${String(i + 1).padStart(3, '0')}`);
    const env: NodeJS.ProcessEnv = {
      TEMPORAL_ADDRESS: server.address,
      PGCONVOY_TASK_QUEUE: 'http-load',
      PGCONVOY_STATE_DIR: join(scratch, 'state'),
      PGCONVOY_BACKUP_STORE: join(scratch, 'backups'),
      PGCONVOY_LOG_LEVEL: 'error',
      ...Object.fromEntries(aliases.map((alias, i) => [databaseEnvName(alias), databaseUrl(names[i]!)])),
    };
    const loaded = loadConfig({ cwd: scratch, env, migrationsDir: set });
    const deployToken = 'bench-deploy-token';
    const config: Config = { ...loaded, serve: { ...loaded.serve, rateLimitPerMinute: 1_000_000, tokens: [{ name: 'deployer', sha256: tokenHash(deployToken), scopes: ['admin'] }] } };
    const logger = createLogger('error');
    installRuntime(logger, 'ERROR');
    const connection = await Connection.connect({ address: server.address });
    const client = new Client({ connection, namespace: config.temporal.namespace });
    const pgconvoy = { client, taskQueue: config.temporal.taskQueue };
    const app = await buildServer({ config, pgconvoy, logger });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const headers = { authorization: `Bearer ${deployToken}`, 'content-type': 'application/json' };
    const deployId = `http-load-${process.pid}`;
    const status = async () => {
      const response = await fetch(`${base}/v1/rollouts/${deployId}`, { headers });
      if (response.status !== 200) throw new Error(`GET status ${response.status}: ${await response.text()}`);
      return (await response.json()) as { status: string };
    };
    const { worker, connection: workerConnection } = await createWorker({ config, logger });
    try {
      await worker.runUntil(async () => {
        while (worker.getState() !== 'RUNNING') await sleep(20);
        console.log(`http load: ${dbCount} databases x ${migrations} migrations, ${triggers} triggers, ${pollers} pollers, serve at ${base}`);

        // 1. The same deploy id, T times at once.
        const body = JSON.stringify({ deployId, all: true, canary: 1, waveSize: '100%', maxParallel: 4, approveWaves: true });
        const started = await Promise.all(Array.from({ length: triggers }, () => fetch(`${base}/v1/rollouts`, { method: 'POST', headers, body }).then(async (r) => ({ status: r.status, body: (await r.json()) as { workflowId: string } }))));
        const codes = started.map((s) => s.status).sort();
        const { count: executions } = await client.workflow.count(`WorkflowId = '${rolloutWorkflowId(deployId)}'`);
        console.log(`  ${triggers} concurrent POST /v1/rollouts, one deploy id: responses ${codes.join(' ')}; workflow ids ${new Set(started.map((s) => s.body.workflowId)).size}; rollouts ${executions}`);
        if (executions !== 1 || codes.filter((c) => c === 201).length !== 1 || codes.some((c) => c !== 201 && c !== 200)) throw new Error('the same deploy id must give exactly one rollout');

        while ((await status()).status !== 'awaiting-approval') await sleep(100);

        // 2. Steady state: P pollers over HTTP, then P loops of the typed client, S seconds each.
        const line = (label: string, xs: number[], ms: number) => {
          const p = percentiles(xs);
          console.log(`  ${label.padEnd(50)} n ${String(p.n).padStart(6)}   p50 ${p.p50.toFixed(1).padStart(6)} ms   p95 ${p.p95.toFixed(1).padStart(6)} ms   p99 ${p.p99.toFixed(1).padStart(6)} ms   ${(p.n / (ms / 1000)).toFixed(0).padStart(5)} req/s`);
          return p;
        };
        let t = performance.now();
        let end = t + seconds * 1000;
        const http = await closedLoops(pollers, async () => void (await status()), () => performance.now() > end);
        const httpP = line(`HTTP GET status, ${pollers} pollers, waiting`, http, performance.now() - t);
        t = performance.now();
        end = t + seconds * 1000;
        const direct = await closedLoops(pollers, async () => void (await getRollout(pgconvoy, deployId)), () => performance.now() > end);
        const directP = line(`typed client getRollout, ${pollers} loops, waiting`, direct, performance.now() - t);

        // 3. The wave runs while P pollers keep asking.
        const approved = await fetch(`${base}/v1/rollouts/${deployId}/approve`, { method: 'POST', headers, body: '{}' });
        if (approved.status !== 200) throw new Error(`approve: ${approved.status} ${await approved.text()}`);
        let last = '';
        t = performance.now();
        const during = await closedLoops(
          pollers,
          async () => {
            last = (await status()).status;
          },
          () => last === 'halted' || (endedRolloutStatuses as string[]).includes(last),
        );
        const waveMs = performance.now() - t;
        const duringP = line(`HTTP GET status, ${pollers} pollers, wave running`, during, waveMs);
        if (last !== 'completed') throw new Error(`the rollout ended ${last}`);
        console.log(`  the wave of ${dbCount - 1} databases took ${(waveMs / 1000).toFixed(1)} s under the pollers`);
        console.log(`  HTTP p99 / typed client p99 (waiting): ${(httpP.p99 / directP.p99).toFixed(2)}x; p99 while the wave runs / waiting: ${(duringP.p99 / httpP.p99).toFixed(2)}x`);
      });
    } finally {
      await app.close();
      await workerConnection.close();
      await connection.close();
    }
  } finally {
    await server.stop();
    await dropDatabases(names);
    rmSync(scratch, { recursive: true, force: true });
  }
}

runBench(main);
