import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Client, Connection } from '@temporalio/client';
import { temporalClient } from './temporal';
import { PgconvoyError } from '../core/errors';
import type { Config } from '../config/config';
import type { DevServer } from '../worker/dev-server';
import type { Logger } from '../logging/logger';
import type { PgconvoyClient } from './api';

export class StateDirBusyError extends PgconvoyError {
  readonly type = 'StateDirBusy';
}

/** The Temporal frontend does not answer (at the start, or for longer than the reconnect timeout while waiting). */
export class TemporalUnavailableError extends PgconvoyError {
  readonly type = 'TemporalUnavailable';
}

/** The command was stopped by SIGINT or SIGTERM. */
export class InterruptedError extends PgconvoyError {
  readonly type = 'Interrupted';
  constructor(readonly signal: NodeJS.Signals) {
    super(`stopped by ${signal}`, { signal });
  }
}

/** How long to wait for a Temporal frontend to answer before saying it cannot be reached. */
export const connectTimeoutMs = 5_000;

/** Connects to Temporal, or says which address does not answer. */
export async function connectTemporal(address: string, timeoutMs = connectTimeoutMs): Promise<Connection> {
  try {
    return await temporalClient().Connection.connect({ address, connectTimeout: timeoutMs });
  } catch (error) {
    throw new TemporalUnavailableError(
      `cannot reach Temporal at ${address} within ${Math.round(timeoutMs / 1000)} s: check that the server runs there (TEMPORAL_ADDRESS, or temporal.address in the config)`,
      { address },
      { cause: error },
    );
  }
}

/** What a command learns about its Temporal session besides the client. */
export interface Session {
  /** The frontend's address, to reconnect after an outage. */
  address: string;
  namespace: string;
  /** The CLI runs the dev server and the worker itself (no TEMPORAL_ADDRESS). */
  embedded: boolean;
  stateDir: string;
  reconnectTimeoutMs: number;
  /**
   * Settles with the first SIGINT or SIGTERM. A command that passes
   * `handlesInterrupts` reacts to it itself; any other is stopped with an
   * InterruptedError. Either way the worker and dev server are shut down
   * before the process exits; a second signal ends it at once.
   */
  interrupted: Promise<NodeJS.Signals>;
}

/** Present while the last embedded session left no workflow open in the state directory. */
const settledFile = (stateDir: string) => join(stateDir, 'settled');

/**
 * Whether an embedded command may answer from the database itself without
 * starting the dev server (a read, or an `up` with nothing to do): no
 * Temporal address is configured, no pgconvoy runs on the state directory
 * now, and the last one that did left no workflow open there. A run left
 * unfinished (its command killed) is not read past: the next command starts
 * the server, whose worker resumes it.
 */
export function answersWithoutServer(config: Config): boolean {
  if (config.temporal.address !== undefined) return false;
  const holder = readLock(join(config.stateDir, 'embedded.lock'));
  if (holder && !holder.stopping && isAlive(holder.pid)) return false;
  return existsSync(settledFile(config.stateDir));
}

/** At the end of an embedded session: the state directory is settled when no workflow is open in it. */
async function markIfSettled(client: Client, stateDir: string): Promise<void> {
  try {
    const { count } = await client.workflow.count(`ExecutionStatus = 'Running'`);
    if (count === 0) writeFileSync(settledFile(stateDir), '');
  } catch {
    // Unknown: the next command starts the server, as it would without the mark.
  }
}

/** Listens for SIGINT/SIGTERM once while a command runs (without listeners, Node would die without cleaning up). */
function listenForSignals(): { interrupted: Promise<NodeJS.Signals>; dispose(): void } {
  let handler: (signal: NodeJS.Signals) => void = () => undefined;
  const interrupted = new Promise<NodeJS.Signals>((resolve) => (handler = resolve));
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
  const onSignal = (signal: NodeJS.Signals) => {
    for (const s of signals) process.off(s, onSignal);
    handler(signal);
  };
  for (const s of signals) process.on(s, onSignal);
  return { interrupted, dispose: () => signals.forEach((s) => process.off(s, onSignal)) };
}

export interface SessionOptions {
  /** A short command (approve, cancel, status) may use the embedded server of a pgconvoy running now. */
  attach?: boolean;
  /** The command reacts to SIGINT/SIGTERM itself (session.interrupted). */
  handlesInterrupts?: boolean;
  /**
   * Embedded only: work for this process's worker that can be done while the
   * dev server starts (reading and parsing the migration set the run's first
   * activity needs). Its failure is ignored: the activity does it again and
   * reports it.
   */
  warm?: () => Promise<void>;
  /** Embedded only: fixed ports for the dev server's frontend and its Web UI (`pgconvoy dev`); else a free port, headless. */
  devServer?: { port?: number; uiPort?: number };
}

/**
 * Runs `fn` with a Temporal client. With an address configured it only talks
 * to that cluster, and a separate `pgconvoy worker` does the work. Without
 * one (the embedded default) it starts a local dev server, keeping its state
 * in the state directory so interrupted runs resume, and runs a worker in
 * this process for as long as `fn` takes.
 */
export async function withTemporal<T>(
  config: Config,
  logger: Logger,
  fn: (pgconvoy: PgconvoyClient, session: Session) => Promise<T>,
  options: SessionOptions = {},
): Promise<T> {
  const signals = listenForSignals();
  try {
    return await session(config, logger, fn, options, signals.interrupted);
  } finally {
    signals.dispose();
  }
}

async function session<T>(
  config: Config,
  logger: Logger,
  fn: (pgconvoy: PgconvoyClient, session: Session) => Promise<T>,
  options: SessionOptions,
  interrupted: Promise<NodeJS.Signals>,
): Promise<T> {
  const taskQueue = config.temporal.taskQueue;
  const run = async (client: Client, address: string, embedded: boolean): Promise<T> => {
    const info: Session = { address, namespace: config.temporal.namespace, embedded, stateDir: config.stateDir, reconnectTimeoutMs: config.temporal.reconnectTimeoutMs, interrupted };
    const calls = new AbortController();
    try {
      const done = client.connection.withAbortSignal(calls.signal, () => fn({ client, taskQueue }, info));
      if (options.handlesInterrupts) return await done;
      done.catch(() => undefined); // settles after the interruption; nobody waits for it any more
      return await Promise.race([done, interrupted.then((signal) => Promise.reject(new InterruptedError(signal)))]);
    } finally {
      // End calls still in flight (a long poll for a result, a progress query
      // in the background) before the connection closes: the SDK would retry
      // them on the closed channel and crash the process.
      calls.abort();
    }
  };
  const asClient = async (address: string) => {
    const connection = await connectTemporal(address);
    try {
      return await run(new (temporalClient().Client)({ connection, namespace: config.temporal.namespace }), address, false);
    } finally {
      await connection.close();
    }
  };
  if (config.temporal.address !== undefined) return asClient(config.temporal.address);

  // A short command (approve, cancel, status) may use the embedded server of
  // a pgconvoy that is running now; that process's worker does the work.
  if (options.attach) {
    const holder = readLock(join(config.stateDir, 'embedded.lock'));
    if (holder?.address && !holder.stopping && isAlive(holder.pid)) return asClient(holder.address);
  }

  const dbFile = join(config.stateDir, 'temporal.db');
  const lock = await lockStateDir(config.stateDir, dbFile, logger);
  // Unsettled from here until this session ends with no workflow open.
  rmSync(settledFile(config.stateDir), { force: true });
  let server: DevServer | undefined;
  let interruptedBy: NodeJS.Signals | undefined;
  void interrupted.then((signal) => (interruptedBy = signal));
  try {
    logger.debug({ event: 'devserver.starting', stateDir: config.stateDir });
    let spawned = (): void => undefined;
    const { startDevServer } = await import('../worker/dev-server');
    const starting = startDevServer({
      dbFile,
      logFile: join(config.stateDir, 'temporal.log'),
      ...(config.temporalBin ? { temporalBin: config.temporalBin } : {}),
      ...(options.devServer?.port !== undefined ? { port: options.devServer.port } : {}),
      ...(options.devServer?.uiPort !== undefined ? { uiPort: options.devServer.uiPort } : {}),
      onSpawn: () => spawned(),
    });
    starting.catch(() => undefined); // awaited below, where its failure is reported
    await Promise.race([new Promise<void>((resolve) => (spawned = resolve)), starting]);
    // The worker's modules (about a third of a second) and what the command
    // warms load while the server process starts; a command against a
    // running cluster never loads them.
    const warming = options.warm?.().catch(() => undefined);
    const { createWorker, installRuntime } = await import('../worker/worker');
    // The CLI reports failures itself; the SDK's own warnings would repeat them.
    // It also handles SIGINT/SIGTERM itself (listenForSignals): the SDK's
    // handler would stop the worker under a waiting command and fail it with
    // an SDK message.
    installRuntime(logger, 'ERROR', { shutdownSignals: [] });
    server = await starting;
    logger.debug({ event: 'devserver.ready', address: server.address });
    lock.record({ pid: process.pid, serverPid: server.pid, address: server.address });
    const address = server.address;
    // Creating the worker mostly waits (its threads, the server): what is
    // being warmed goes on meanwhile, and is ready before the first activity
    // asks for it (else that activity would read and parse it again); so does
    // the command's own connection (and loading the client for it).
    const connecting = connectTemporal(address);
    connecting.catch(() => undefined); // awaited below, where its failure is reported
    const { worker, connection: workerConnection } = await createWorker({ config, logger, address }).catch(async (error: unknown) => {
      await connecting.then((c) => c.close(), () => undefined);
      throw error;
    });
    let connection: Connection | undefined;
    try {
      await warming;
      logger.debug({ event: 'worker.ready' });
      connection = await connecting;
      const client = new (temporalClient().Client)({ connection, namespace: config.temporal.namespace });
      try {
        return await worker.runUntil(run(client, address, true));
      } finally {
        await markIfSettled(client, config.stateDir);
      }
    } finally {
      await connection?.close();
      await workerConnection.close();
    }
  } finally {
    if (server && interruptedBy === undefined) {
      // The command is done: the server stops in the background, and the lock
      // passes to it until it has (the next command waits for that).
      lock.record({ pid: server.pid, serverPid: server.pid, stopping: true });
      server.stopInBackground();
    } else {
      await server?.stop();
      lock.release();
    }
  }
}

interface LockContent {
  pid: number;
  serverPid?: number;
  address?: string;
  /** The command ended and its dev server is stopping; `pid` is the server's. */
  stopping?: boolean;
}

/**
 * One embedded dev server per state directory: its SQLite file cannot be
 * shared by two servers. A lock left by a process that died is taken over,
 * and the dev server it leaves running (a child outlives a SIGKILLed parent)
 * is stopped first.
 */
async function lockStateDir(stateDir: string, dbFile: string, logger: Logger): Promise<{ record(content: LockContent): void; release(): void }> {
  mkdirSync(stateDir, { recursive: true });
  const lock = join(stateDir, 'embedded.lock');
  const handle = {
    record: (content: LockContent) => writeFileSync(lock, JSON.stringify(content)),
    release: () => rmSync(lock, { force: true }),
  };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, JSON.stringify({ pid: process.pid } satisfies LockContent));
      closeSync(fd);
      return handle;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = readLock(lock);
      if (holder?.stopping && isAlive(holder.pid) && isOurDevServer(holder.pid, dbFile)) {
        // The last command's server, stopping: wait for it to let go of the state file.
        await terminate(holder.pid, false);
        rmSync(lock, { force: true });
        continue;
      }
      if (holder && isAlive(holder.pid)) {
        throw new StateDirBusyError(
          `another pgconvoy (pid ${holder.pid}) is running with the embedded Temporal server in ${stateDir}; ` +
            'wait for it to finish (status, approve and cancel can talk to it meanwhile), or run a shared server and set TEMPORAL_ADDRESS',
          { stateDir, pid: holder.pid },
        );
      }
      if (holder?.serverPid !== undefined && isOurDevServer(holder.serverPid, dbFile)) {
        logger.warn({ event: 'devserver.orphan_stopped', pid: holder.serverPid, stateDir }, 'stopping a dev server left by a pgconvoy that died');
        await terminate(holder.serverPid);
      }
      rmSync(lock, { force: true });
    }
  }
  throw new StateDirBusyError(`cannot lock ${lock}`, { stateDir });
}

function readLock(lock: string): LockContent | undefined {
  try {
    const parsed = JSON.parse(readFileSync(lock, 'utf8')) as Partial<LockContent>;
    if (typeof parsed.pid !== 'number') return undefined;
    return {
      pid: parsed.pid,
      ...(typeof parsed.serverPid === 'number' ? { serverPid: parsed.serverPid } : {}),
      ...(typeof parsed.address === 'string' ? { address: parsed.address } : {}),
      ...(parsed.stopping === true ? { stopping: true } : {}),
    };
  } catch {
    return undefined;
  }
}

function isOurDevServer(pid: number, dbFile: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return cmdline.includes('start-dev') && cmdline.includes(dbFile);
  } catch {
    return false;
  }
}

/** Stops a process (SIGTERM unless it was sent already), and SIGKILLs it when it has not ended after 10 s. */
async function terminate(pid: number, signal = true): Promise<void> {
  if (signal) process.kill(pid, 'SIGTERM');
  for (let waited = 0; waited < 10_000 && isAlive(pid); waited += 100) await new Promise((r) => setTimeout(r, 100));
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
}

/**
 * Whether a process still runs. A zombie does not: a dev server that outlived
 * its command is reparented, and stays a zombie until the machine's init
 * reaps it (in some containers, seconds later).
 */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // /proc/<pid>/stat: "pid (comm) state ..."; comm may hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc here: what kill said
  }
}
