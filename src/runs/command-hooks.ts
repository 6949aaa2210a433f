import { spawn } from 'node:child_process';
import type { CommandHookRun, CommandHooksInput } from '../contracts';
import { PgconvoyError } from '../core/errors';
import { targetOf, type RunDeps } from './deps';

/** A command hook exited non-zero, was killed, or ran past its timeout. */
export class CommandHookFailedError extends PgconvoyError {
  readonly type = 'CommandHookFailed';
}

/** What a hook's output keeps: its last bytes. */
const outputLimit = 4096;

/**
 * Runs the config's commands for a run's event (hooks.<event>), one after
 * another, each through /bin/sh in the worker's working directory, with the
 * run's facts in PGCONVOY_* variables and no connection string unless the
 * hook names a variable for it (connectionEnv). The last 4 KiB of each
 * one's output is kept. The first that fails stops the rest.
 */
export async function runCommandHooks(deps: RunDeps, input: CommandHooksInput): Promise<CommandHookRun[]> {
  const hooks = deps.config.hooks[input.event];
  const ran: CommandHookRun[] = [];
  for (const [i, hook] of hooks.entries()) {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      LANG: process.env.LANG,
      PGCONVOY_EVENT: input.event,
      PGCONVOY_DB: input.db,
      PGCONVOY_WORKFLOW_ID: input.facts.workflowId,
      PGCONVOY_VERSION_BEFORE: input.facts.versionBefore ?? '',
      PGCONVOY_VERSION_AFTER: input.facts.versionAfter ?? '',
      PGCONVOY_PENDING: String(input.facts.pending),
      PGCONVOY_OUTCOME: input.facts.outcome ?? '',
      PGCONVOY_ERROR: input.facts.error ?? '',
      ...(hook.connectionEnv ? { [hook.connectionEnv]: targetOf(deps.config, input.db).url } : {}),
    };
    const name = `hooks.${input.event}[${i}] "${hook.run}"`;
    const started = performance.now();
    const { code, signal, output, timedOut } = await runOne(hook.run, env, hook.timeoutMs);
    const run: CommandHookRun = { run: hook.run, exitCode: code, durationMs: Math.round(performance.now() - started), output };
    deps.logger.info({ event: 'hook.command', db: input.db, hookEvent: input.event, run: hook.run, exitCode: code, durationMs: run.durationMs });
    if (timedOut || code !== 0) {
      const why = timedOut ? `ran past its ${hook.timeoutMs} ms and was killed` : code === null ? `was killed by ${signal}` : `exited with ${code}`;
      const last = output.trim().split('\n').at(-1) ?? '';
      throw new CommandHookFailedError(`${name} ${why}${last ? `: ${last}` : ''}`, { event: input.event, run: hook.run, exitCode: code, output });
    }
    ran.push(run);
  }
  return ran;
}

function runOne(command: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string; timedOut: boolean }> {
  return new Promise((resolve, reject) => {
    // Its own process group, so a timeout ends whatever the command started too.
    const child = spawn('/bin/sh', ['-c', command], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = Buffer.alloc(0);
    const keep = (chunk: Buffer) => {
      output = Buffer.concat([output, chunk]);
      if (output.length > outputLimit) output = output.subarray(output.length - outputLimit);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    const kill = (signal: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        // gone already
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill('SIGTERM');
      setTimeout(() => kill('SIGKILL'), 5_000).unref();
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output: output.toString('utf8'), timedOut });
    });
  });
}
