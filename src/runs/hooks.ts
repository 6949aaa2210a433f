import type { HookRunRecord, RunHooksInput } from '../contracts';
import { ManifestChangedError, InvalidMigrationSetError } from '../core/errors';
import { hookEvents, hooksFor, type HookEvent } from '../core/hooks';
import type { MigrationSet } from '../core/migration-set';
import { analyzeScript } from '../core/statements';
import { withClient } from '../db/connection';
import { runHooks as runHooksInDb, type PreparedHook, type VersionHooks } from '../db/hooks';
import { ensureLedger } from '../db/ledger';
import { cachedMigrationSet } from '../source/set-cache';
import { cancellable, targetOf, type RunDeps } from './deps';

/** The hook files of `event` in the set the run planned with, parsed (every problem named by file and line). */
export async function pinnedHooks(deps: RunDeps, migrationsDir: string, digest: string, event: HookEvent): Promise<PreparedHook[]> {
  const { set } = await cachedMigrationSet(migrationsDir, deps.config.files);
  if (set.digest !== digest) throw new ManifestChangedError(migrationsDir, digest, set.digest);
  return (await preparedHooks(set, migrationsDir)).get(event) ?? [];
}

/** The hooks that run with each version (its migration or its undo script), of a set already pinned. */
export async function versionHooksOf(set: MigrationSet, migrationsDir: string): Promise<VersionHooks> {
  const byEvent = await preparedHooks(set, migrationsDir);
  const of = (event: HookEvent) => byEvent.get(event) ?? [];
  return { beforeEachMigrate: of('beforeEachMigrate'), afterEachMigrate: of('afterEachMigrate'), beforeUndo: of('beforeUndo'), afterUndo: of('afterUndo') };
}

/** Parsed once per set read: each-migration hooks run with every step. */
const parsed = new WeakMap<MigrationSet, Promise<Map<HookEvent, PreparedHook[]>>>();

/** A set's hook files by event, in the order they run, parsed; every problem named by file and line. */
function preparedHooks(set: MigrationSet, migrationsDir: string): Promise<Map<HookEvent, PreparedHook[]>> {
  let found = parsed.get(set);
  if (found === undefined) {
    found = parseHooks(set, migrationsDir);
    parsed.set(set, found);
    // A failure is thrown to every caller, and read again by the next one.
    void found.catch(() => parsed.delete(set));
  }
  return found;
}

async function parseHooks(set: MigrationSet, migrationsDir: string): Promise<Map<HookEvent, PreparedHook[]>> {
  const byEvent = new Map<HookEvent, PreparedHook[]>();
  const problems: Array<{ file: string; message: string }> = [];
  for (const event of hookEvents) {
    const prepared: PreparedHook[] = [];
    for (const hook of hooksFor(set.hooks, event)) {
      const analyzed = await analyzeScript(hook.sql);
      if (!analyzed.ok) problems.push(...analyzed.problems.map((message) => ({ file: hook.file, message })));
      else if (analyzed.script.mode !== 'transaction') problems.push({ file: hook.file, message: `a ${event} hook runs in a transaction: ${analyzed.script.statements.find((s) => s.nonTransactional)?.nonTransactional ?? 'pgconvoy:no-transaction'} cannot` });
      else prepared.push({ file: hook.file, event, checksum: hook.checksum, script: analyzed.script });
    }
    if (prepared.length > 0) byEvent.set(event, prepared);
  }
  if (problems.length > 0) throw new InvalidMigrationSetError(migrationsDir, problems);
  return byEvent;
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
