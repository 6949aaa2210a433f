import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliEnv, startCli } from './cli';
import { services } from './services';

export interface WorkerProcess {
  pid: number;
  output(): string;
  kill(signal: NodeJS.Signals): void;
  exited: Promise<number | null>;
}

/**
 * Real `pgconvoy worker` processes on one task queue, with a config file of
 * their own (lease timings), for tests that kill, pause and restart workers.
 */
export function workerPool(options: { taskQueue: string; databases: Record<string, string>; migrationsDir: string; lease?: { ttlMs: number; renewEveryMs: number } }) {
  const dir = mkdtempSync(join(tmpdir(), 'pgconvoy-workers-'));
  const configFile = join(dir, 'pgconvoy.config.json');
  // The databases in the config file: an alias from the environment alone is read back lower-cased with "_" for "-".
  const databases = Object.fromEntries(Object.entries(options.databases).map(([alias, url]) => [alias, { url }]));
  writeFileSync(configFile, JSON.stringify({ migrations: options.migrationsDir, databases, ...(options.lease ? { lease: options.lease } : {}) }));
  const env = cliEnv({ ...services.temporalEnv, PGCONVOY_TASK_QUEUE: options.taskQueue });
  const started: WorkerProcess[] = [];
  return {
    configFile,
    start(): WorkerProcess {
      const { child, output, exited } = startCli(['--config', configFile, 'worker'], env);
      const worker: WorkerProcess = { pid: child.pid!, output, kill: (signal) => child.kill(signal), exited };
      started.push(worker);
      return worker;
    },
    async stopAll(): Promise<void> {
      for (const w of started) {
        w.kill('SIGCONT');
        w.kill('SIGKILL');
      }
      await Promise.all(started.map((w) => w.exited));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A workflow's result across a restart of the Temporal server: the client's long poll may see the server go away; it asks again. */
export async function resultThroughRestart<T>(handle: { result(): Promise<T> }): Promise<T> {
  for (;;) {
    try {
      return await handle.result();
    } catch (error) {
      if (!String(error).match(/UNAVAILABLE|unavailable|connect/)) throw error;
    }
  }
}

/** Polls `check` until it returns a value other than undefined. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Whether a process with this pid exists (signal 0 only asks). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
