import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isAlive } from './workers';

export const pgconvoyBin = join(__dirname, '..', '..', '..', 'bin', 'pgconvoy');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Environment for a CLI child: the caller's, minus anything that would point it elsewhere. */
export function cliEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) {
    if (key.startsWith('PGCONVOY_DB_') || key === 'TEMPORAL_ADDRESS' || key === 'TEMPORAL_NAMESPACE' || key === 'PGCONVOY_TASK_QUEUE') delete env[key];
  }
  return { ...env, ...extra };
}

/** Runs the real `pgconvoy` binary to completion. */
export function runCli(args: string[], options: { env: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; wrap?: string[] }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    // `wrap`: a command that runs pgconvoy (its path and arguments follow the wrapper's).
    const [command, ...prefix] = [...(options.wrap ?? []), pgconvoyBin];
    const child = spawn(command, [...prefix, ...args], { env: options.env, cwd: options.cwd ?? process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`pgconvoy ${args.join(' ')} did not finish in time\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts a long-running `pgconvoy` (a worker); the caller stops it. */
export function startCli(args: string[], env: NodeJS.ProcessEnv, cwd?: string): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(pgconvoyBin, args, { env, stdio: ['ignore', 'pipe', 'pipe'], ...(cwd ? { cwd } : {}) });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/**
 * A folder for a test that runs embedded commands, removed after it once
 * the dev server the last command left stopping has let go of the state
 * folder in it (a command ends without waiting for its server to stop).
 */
export function scratchDir(t: { after(fn: () => Promise<void>): void }, prefix = 'pgconvoy-cli-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(async () => {
    const server = serverInLock(join(dir, 'state', 'embedded.lock'));
    for (let i = 0; i < 200 && server !== undefined && isAlive(server); i++) await new Promise((r) => setTimeout(r, 100));
    rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  });
  return dir;
}

/** The dev server an embedded lock names, if the lock is there and readable. */
export function serverInLock(lockFile: string): number | undefined {
  try {
    return (JSON.parse(readFileSync(lockFile, 'utf8')) as { serverPid?: number }).serverPid;
  } catch {
    return undefined;
  }
}
