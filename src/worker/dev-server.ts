import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { Connection } from '@temporalio/client';
import { PgconvoyError } from '../core/errors';
import { runSearchAttributes } from '../contracts';

export class DevServerError extends PgconvoyError {
  readonly type = 'DevServerFailed';
}

export interface DevServer {
  address: string;
  pid: number;
  uiPort?: number;
  /** Stops the server and waits for it to exit. */
  stop(): Promise<void>;
  /**
   * Asks the server to stop (SIGTERM) without waiting for it: a graceful
   * stop takes about a second, which a command need not spend. Whoever uses
   * the state file next waits for the server's exit (src/client/session.ts).
   */
  stopInBackground(): void;
}

export interface DevServerOptions {
  /** SQLite file that keeps namespaces and histories across restarts. */
  dbFile: string;
  temporalBin?: string;
  /** Where the server's own output goes. */
  logFile: string;
  port?: number;
  /** Serve the Web UI on this port; headless when unset. */
  uiPort?: number;
  readyTimeoutMs?: number;
  /** Called once the server process is started, before it is ready: work that does not need it can overlap its start. */
  onSpawn?: () => void;
  /** Namespaces to create at start, besides "default". */
  namespaces?: string[];
}

/** The project's built binary first, then $PATH. */
export function findTemporalBinary(explicit?: string): string {
  if (explicit) return explicit;
  const built = resolve(__dirname, '../../../.tools/bin/temporal');
  if (existsSync(built)) return built;
  return 'temporal';
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Starts `temporal server start-dev` and waits until its frontend answers.
 * The caller owns the process and must call stop().
 */
export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  // A free port can be taken by someone else before the server binds it: try
  // again on fresh ports when the server dies at start (not with a fixed port).
  const attempts = options.port === undefined ? 3 : 1;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (error) {
      if (!(error instanceof DevServerError) || !error.message.includes('before it was ready') || attempt >= attempts) throw error;
    }
  }
}

async function distinctFreePorts(count: number, taken: number[] = []): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) {
    const port = await freePort();
    if (!ports.includes(port) && !taken.includes(port)) ports.push(port);
  }
  return ports;
}

async function startOnce(options: DevServerOptions): Promise<DevServer> {
  const bin = findTemporalBinary(options.temporalBin);
  const fixed = options.port === undefined ? [] : [options.port];
  const [httpPort, metricsPort, ...rest] = await distinctFreePorts(options.port === undefined ? 3 : 2, fixed);
  const port = options.port ?? rest[0]!;
  const args = [
    'server', 'start-dev',
    '--db-filename', options.dbFile,
    '--ip', '127.0.0.1',
    '--port', String(port),
    '--http-port', String(httpPort!),
    '--metrics-port', String(metricsPort!),
    '--log-level', 'warn',
    // A write-ahead log, synced at checkpoints rather than at every commit:
    // a server starts on a new state file in about 0.3 s instead of 0.5-0.7,
    // and each workflow task and activity result costs no fsync of its own.
    // A crash of either process loses nothing committed; a power cut may
    // lose the last moments of history, never the file (and what a run
    // applied is in the database's ledger, which a run reads before it acts).
    '--sqlite-pragma', 'journal_mode=wal',
    '--sqlite-pragma', 'synchronous=normal',
    // The search attributes a run keeps up to date (src/contracts/events.ts).
    ...Object.values(runSearchAttributes).flatMap((key) => ['--search-attribute', `${key.name}=Keyword`]),
    ...(options.namespaces ?? []).flatMap((namespace) => ['--namespace', namespace]),
  ];
  if (options.uiPort === undefined) args.push('--headless');
  else args.push('--ui-port', String(options.uiPort));

  mkdirSync(join(options.logFile, '..'), { recursive: true });
  const log = openSync(options.logFile, 'a');
  let child: ChildProcess;
  try {
    // Its own process group: a Ctrl-C at the terminal reaches only pgconvoy,
    // which then stops the server itself after saying where the run stands.
    child = spawn(bin, args, { stdio: ['ignore', log, log], detached: true });
  } finally {
    closeSync(log);
  }
  options.onSpawn?.();
  const exited = new Promise<number | null>((resolveExit) => child.once('exit', (code) => resolveExit(code)));
  const spawnError = new Promise<Error>((resolveError) => child.once('error', resolveError));
  const address = `127.0.0.1:${port}`;
  const watchdog = child.pid === undefined ? undefined : endWithParent(child.pid);
  child.once('exit', () => watchdog?.kill('SIGKILL')); // a server gone by itself needs no watching

  const stop = async () => {
    watchdog?.kill('SIGKILL');
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
  };

  const stopInBackground = () => {
    watchdog?.kill('SIGKILL');
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    child.unref(); // this process may end before the server has
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  for (;;) {
    const failure = await Promise.race([
      spawnError.then((e) => `cannot start ${bin}: ${e.message} (run "npm run setup" to build it)`),
      exited.then((code) => `${bin} exited with code ${String(code)} before it was ready; see ${options.logFile}`),
      // A gRPC connect to a port nobody listens on yet waits out its timeout
      // (about a second lost at every start): ask for health only once the port takes connections.
      accepts(port).then(async (open) => (open && (await healthy(address)) ? null : undefined)),
    ]);
    if (failure === null) return { address, pid: child.pid!, ...(options.uiPort !== undefined ? { uiPort: options.uiPort } : {}), stop, stopInBackground };
    if (typeof failure === 'string') throw new DevServerError(failure);
    if (Date.now() > deadline) {
      await stop();
      throw new DevServerError(`Temporal dev server at ${address} not ready after ${options.readyTimeoutMs ?? 30_000} ms; see ${options.logFile}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Whether something accepts TCP connections on the port (127.0.0.1). */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolveOpen) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolveOpen(true);
    });
    socket.once('error', () => resolveOpen(false));
  });
}

/**
 * The server ends with the process that started it, however that ends (a
 * SIGKILL included): a watchdog in its own process group reads a pipe from
 * this process until it closes, which the kernel does when this process is
 * gone, then stops the server (SIGTERM; SIGKILL after 10 s). The server's
 * state file stays for the next command. A normal stop kills the watchdog
 * first.
 */
function endWithParent(serverPid: number): ChildProcess {
  const script = 'cat >/dev/null; kill -TERM "$0" 2>/dev/null || exit 0; i=0; while kill -0 "$0" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; kill -KILL "$0" 2>/dev/null; exit 0';
  const watchdog = spawn('sh', ['-c', script, String(serverPid)], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
  watchdog.on('error', () => undefined);
  watchdog.stdin?.on('error', () => undefined);
  // Neither keeps this process running: only its death (or stop()) ends the watchdog's input.
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  return watchdog;
}

async function healthy(address: string): Promise<boolean> {
  let connection: Connection | undefined;
  try {
    connection = await Connection.connect({ address, connectTimeout: 1_000 });
    const response = await connection.healthService.check({});
    return Number(response.status) === 1; // grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING
  } catch {
    return false;
  } finally {
    await connection?.close().catch(() => undefined);
  }
}
