import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

/** The checkout (this file runs from dist/test/helpers). */
export const checkout = join(__dirname, '..', '..', '..');
const clusterScript = join(checkout, 'scripts', 'temporal-cluster.sh');
const run = promisify(execFile);

export type TemporalService = 'frontend' | 'history' | 'matching' | 'worker';

export interface TemporalCluster {
  address: string;
  /** Restarts one service (scripts/temporal-cluster.sh restart); resolves with how long it took, in ms. */
  restart(service: TemporalService): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Temporal Server on the machine's PostgreSQL, its four services as
 * processes of their own (scripts/temporal-cluster.sh), in `dir`, on ports
 * offset by `portOffset`, in databases named `database` and
 * `<database>_visibility`, which are dropped first: every start is a new
 * cluster.
 */
export async function startTemporalCluster(options: { dir: string; portOffset: number; database: string; adminUrl: string; sqlMaxConns?: number }): Promise<TemporalCluster> {
  const env = {
    ...process.env,
    TEMPORAL_CLUSTER_DIR: options.dir,
    TEMPORAL_PORT_OFFSET: String(options.portOffset),
    TEMPORAL_DB: options.database,
    TEMPORAL_VISIBILITY_DB: `${options.database}_visibility`,
    TEMPORAL_PG_ADMIN_URL: options.adminUrl,
    TEMPORAL_SQL_MAX_CONNS: String(options.sqlMaxConns ?? 10),
  };
  const admin = new pg.Client({ connectionString: options.adminUrl });
  await admin.connect();
  try {
    for (const db of [options.database, `${options.database}_visibility`]) await admin.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
  const script = async (...args: string[]) => {
    try {
      await run('bash', [clusterScript, ...args], { env, maxBuffer: 16 * 1024 * 1024 });
    } catch (error) {
      const { stderr } = error as { stderr?: string };
      throw new Error(`scripts/temporal-cluster.sh ${args.join(' ')} failed: ${stderr ?? String(error)}`);
    }
  };
  // What each service said last (for a start that failed).
  const tails = () =>
    (['frontend', 'history', 'matching', 'worker'] as const)
      .map((service) => {
        const log = join(options.dir, `${service}.log`);
        return `--- ${service}.log (last lines)\n${existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-5).join('\n') : '(no log)'}`;
      })
      .join('\n');
  // A start that fails is said with the services' last lines, stopped, and tried once more.
  for (let attempt = 1; ; attempt++) {
    try {
      await script('start');
      break;
    } catch (error) {
      const said = `${(error as Error).message}\n${tails()}`;
      await script('stop').catch(() => undefined);
      if (attempt === 2) throw new Error(said);
      process.stderr.write(`the Temporal cluster did not start; starting it again. ${said}\n`);
    }
  }
  return {
    address: `127.0.0.1:${7233 + options.portOffset}`,
    restart: async (service) => {
      const t = performance.now();
      await script('restart', service);
      return performance.now() - t;
    },
    stop: () => script('stop'),
  };
}

export interface WorkerProcess {
  readonly pid: number;
  readonly log: string;
  /** Sends `signal` and waits for the process to exit. */
  kill(signal: NodeJS.Signals): Promise<void>;
}

/**
 * A `pgconvoy worker` of the checkout's build in a process of its own,
 * with `env` as its whole configuration (it runs in `cwd`, and reads a
 * config file only if one is there); resolves once it polls (its
 * `worker.started` log line).
 */
export async function startWorkerProcess(name: string, options: { cwd: string; env: NodeJS.ProcessEnv; args?: string[]; logDir: string }): Promise<WorkerProcess> {
  mkdirSync(options.logDir, { recursive: true });
  const log = join(options.logDir, `${name}.log`);
  const out = createWriteStream(log, { flags: 'a' });
  const child: ChildProcess = spawn(process.execPath, [join(checkout, 'bin', 'pgconvoy'), 'worker', ...(options.args ?? [])], {
    cwd: options.cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, PGCONVOY_LOG_FORMAT: 'json', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`worker ${name} did not start in 60 s; its log: ${log}`)), 60_000);
    // Its logs are JSON lines on stderr.
    child.stderr!.on('data', (chunk: Buffer) => {
      out.write(chunk);
      if (seen.length < 1_000_000) seen += chunk.toString('utf8');
      if (seen.includes('"worker.started"')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stdout!.on('data', (chunk: Buffer) => out.write(chunk));
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`worker ${name} exited (${signal ?? code}) before it started; its log: ${log}`));
    });
  });
  return {
    pid: child.pid!,
    log,
    kill: async (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
      out.end();
    },
  };
}
