import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { PgconvoyError } from '../core/errors';
import type { Config } from '../config/config';
import { startDevServer, type DevServer } from '../worker/dev-server';
import type { Logger } from '../worker/logger';
import { createWorker, installRuntime } from '../worker/worker';
import type { PgconvoyClient } from './api';

export class StateDirBusyError extends PgconvoyError {
  readonly type = 'StateDirBusy';
  readonly retryable = true;
}

/**
 * Runs `fn` with a Temporal client. With an address configured it only talks
 * to that cluster, and a separate `pgconvoy worker` does the work. Without
 * one (the embedded default) it starts a local dev server, keeping its state
 * in the state directory so interrupted runs resume, and runs a worker in
 * this process for as long as `fn` takes.
 */
export async function withTemporal<T>(config: Config, logger: Logger, fn: (pgconvoy: PgconvoyClient) => Promise<T>): Promise<T> {
  const taskQueue = config.temporal.taskQueue;
  if (config.temporal.address !== undefined) {
    const connection = await Connection.connect({ address: config.temporal.address });
    try {
      return await fn({ client: new Client({ connection, namespace: config.temporal.namespace }), taskQueue });
    } finally {
      await connection.close();
    }
  }

  // The CLI reports failures itself; the SDK's own warnings would repeat them.
  installRuntime(logger, 'ERROR');
  const releaseLock = lockStateDir(config.stateDir);
  let server: DevServer | undefined;
  try {
    logger.debug({ event: 'devserver.starting', stateDir: config.stateDir });
    server = await startDevServer({
      dbFile: join(config.stateDir, 'temporal.db'),
      logFile: join(config.stateDir, 'temporal.log'),
      ...(config.temporalBin ? { temporalBin: config.temporalBin } : {}),
    });
    const address = server.address;
    const { worker, connection: workerConnection } = await createWorker({ config, logger, address });
    const connection = await Connection.connect({ address });
    try {
      const client = new Client({ connection, namespace: config.temporal.namespace });
      return await worker.runUntil(fn({ client, taskQueue }));
    } finally {
      await connection.close();
      await workerConnection.close();
    }
  } finally {
    await server?.stop();
    releaseLock();
  }
}

/**
 * One embedded dev server per state directory: its SQLite file cannot be
 * shared by two servers. A lock left by a process that died is taken over.
 */
function lockStateDir(stateDir: string): () => void {
  mkdirSync(stateDir, { recursive: true });
  const lock = join(stateDir, 'embedded.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(lock, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(readFileSync(lock, 'utf8').trim());
      if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) {
        throw new StateDirBusyError(
          `another pgconvoy (pid ${holder}) is running with the embedded Temporal server in ${stateDir}; ` +
            'wait for it to finish, or run a shared server and set TEMPORAL_ADDRESS',
          { stateDir, pid: holder },
        );
      }
      rmSync(lock, { force: true });
    }
  }
  throw new StateDirBusyError(`cannot lock ${lock}`, { stateDir });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
