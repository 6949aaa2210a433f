import type { RunChanges, RunChangesInput, UndoInput, UndoResult } from '../contracts';
import { withClient } from '../db/connection';
import { appliedByRun, changedByOthersSince, ledgerExists } from '../db/ledger';
import { undoMigration as undoInDb } from '../db/undo';
import { cancellable, runIdOf, targetOf, workflowIdOf, type RunDeps } from './deps';
import { pinnedVersions } from './files';

/** Runs a version's undo script, proves the schema is back to before it, and records it (all in one transaction). */
export async function undoMigration(deps: RunDeps, input: UndoInput): Promise<UndoResult> {
  const { migrations: [m], hooks } = await pinnedVersions(deps, input.migrationsDir, input.manifestDigest, [input.version]);
  const result = await withClient(targetOf(deps.config, input.db), (client) => undoInDb(client, m!, runIdOf(deps), { alias: input.db, token: input.leaseToken }, { hooks, ...workflowIdOf(deps) }), cancellable(deps));
  deps.logger.warn({ event: result.status === 'undone' ? 'compensation.undone' : 'compensation.undo_skipped', db: input.db, version: input.version, file: m!.undo?.file });
  return result;
}

/** What this run changed, as the ledger says: versions applied and a no-transaction file left part-way; and what others changed since `since`. */
export async function runChanges(deps: RunDeps, input: RunChangesInput): Promise<RunChanges> {
  return withClient(targetOf(deps.config, input.db), async (client) => {
    const runId = runIdOf(deps);
    if (!(await ledgerExists(client))) return { applied: [], partial: [], others: [] };
    return { ...(await appliedByRun(client, runId)), others: input.since === undefined ? [] : await changedByOthersSince(client, runId, input.since) };
  });
}
