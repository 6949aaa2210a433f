import type { HookRunRecord, RunHooksInput } from '../contracts';
import { ManifestChangedError, InvalidMigrationSetError } from '../core/errors';
import { hooksFor, type HookEvent } from '../core/hooks';
import { analyzeScript } from '../core/statements';
import { withClient } from '../db/connection';
import { runHooks as runHooksInDb, type PreparedHook } from '../db/hooks';
import { ensureLedger } from '../db/ledger';
import { cachedMigrationSet } from '../source/set-cache';
import { cancellable, targetOf, type RunDeps } from './deps';

/** The hook files of `event` in the set the run planned with, parsed (every problem named by file and line). */
export async function pinnedHooks(deps: RunDeps, migrationsDir: string, digest: string, event: HookEvent): Promise<PreparedHook[]> {
  const { set } = await cachedMigrationSet(migrationsDir, deps.config.files);
  if (set.digest !== digest) throw new ManifestChangedError(migrationsDir, digest, set.digest);
  const prepared: PreparedHook[] = [];
  const problems: Array<{ file: string; message: string }> = [];
  for (const hook of hooksFor(set.hooks, event)) {
    const analyzed = await analyzeScript(hook.sql);
    if (!analyzed.ok) problems.push(...analyzed.problems.map((message) => ({ file: hook.file, message })));
    else if (analyzed.script.mode !== 'transaction') problems.push({ file: hook.file, message: `a ${event} hook runs in a transaction: ${analyzed.script.statements.find((s) => s.nonTransactional)?.nonTransactional ?? 'pgconvoy:no-transaction'} cannot` });
    else prepared.push({ file: hook.file, event, checksum: hook.checksum, script: analyzed.script });
  }
  if (problems.length > 0) throw new InvalidMigrationSetError(migrationsDir, problems);
  return prepared;
}

/** A run-level event's SQL callbacks (beforeMigrate, afterMigrate, ...), in one transaction of their own, under the run's lease. */
export async function runHooks(deps: RunDeps, input: RunHooksInput): Promise<HookRunRecord[]> {
  const hooks = await pinnedHooks(deps, input.migrationsDir, input.manifestDigest, input.event);
  if (hooks.length === 0) return [];
  const { execution } = deps;
  return withClient(
    targetOf(deps.config, input.db),
    async (client) => {
      await ensureLedger(client);
      const ran = await runHooksInDb(client, hooks, {
        settings: deps.config.execution,
        ...(input.leaseToken ? { fence: { alias: input.db, token: input.leaseToken } } : {}),
        run: execution ? { workflowId: execution.workflowId, runId: execution.runId } : {},
      });
      deps.logger.info({ event: 'hooks.ran', db: input.db, hookEvent: input.event, files: ran.map((r) => r.file) });
      return ran;
    },
    cancellable(deps),
  );
}
