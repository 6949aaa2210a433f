import { run } from '../../src/client/cli';
import type { ExitCode } from '../../src/client/exit-codes';

export interface InProcessResult {
  code: ExitCode;
  stdout: string;
  stderr: string;
}

/**
 * Runs the real CLI entry point in this process (fast: no new process, no
 * bundling); pair it with withWorker() and TEMPORAL_ADDRESS in `env`.
 * `live.stderr` grows while the command runs, for tests that wait for a message.
 */
export async function runInProcess(args: string[], env: NodeJS.ProcessEnv, cwd = process.cwd(), live?: { stderr: string }): Promise<InProcessResult> {
  let stdout = '';
  let stderr = '';
  const code = await run(args, env, cwd, {
    stdout: (t) => (stdout += t),
    stderr: (t) => {
      stderr += t;
      if (live) live.stderr += t;
    },
  });
  return { code, stdout, stderr };
}
