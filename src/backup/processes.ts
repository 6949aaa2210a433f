import { spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

export interface ToolExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The end of what it wrote to stderr. */
  stderr: string;
}

/** A child process (pg_dump, pg_restore, psql) whose end is always awaited by whoever started it. */
export interface Tool {
  readonly command: string;
  stdout: Readable;
  stdin: Writable;
  /** Resolves once the process is gone and its pipes are closed; never rejects. */
  exit: Promise<ToolExit>;
  /** Whether the process is still running (its exit not yet seen). */
  running(): boolean;
  kill(signal?: NodeJS.Signals): void;
  /** Ends it with SIGKILL unless it is gone already, and waits until it is. */
  stop(): Promise<ToolExit>;
}

export function runTool(command: string, args: string[], env: NodeJS.ProcessEnv): Tool {
  const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  // A child that exits early makes writes to its stdin fail with EPIPE; the
  // caller learns that from the exit, and an 'error' without a listener
  // would crash the worker.
  child.stdin.on('error', () => undefined);
  child.stdout.on('error', () => undefined);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  let done = false;
  const exit = new Promise<ToolExit>((resolve) => {
    child.once('error', (error) => {
      done = true;
      resolve({ code: -1, signal: null, stderr: `${stderr}${error.message}` });
    });
    child.once('close', (code, signal) => {
      done = true;
      resolve({ code, signal, stderr: stderr.trim() });
    });
  });
  const kill = (signal: NodeJS.Signals = 'SIGTERM') => {
    if (!done) child.kill(signal);
  };
  return {
    command,
    stdout: child.stdout,
    stdin: child.stdin,
    exit,
    running: () => !done,
    kill,
    stop: async () => {
      kill('SIGKILL');
      // 'close' waits for every pipe: unread output would hold it open.
      child.stdin.destroy();
      child.stdout.destroy();
      return exit;
    },
  };
}

/** How a tool ended, for a message: `exit 1: <stderr>` or `killed by SIGKILL`. */
export function describeExit(exit: ToolExit): string {
  const how = exit.signal ? `killed by ${exit.signal}` : `exit ${String(exit.code)}`;
  return exit.stderr ? `${how}: ${exit.stderr}` : how;
}
