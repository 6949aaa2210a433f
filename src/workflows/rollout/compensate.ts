import { sleep, startChild } from '@temporalio/workflow';
import { databaseWorkflowId, type RolloutStatusName } from '../../contracts';
import { revertDatabase } from '../revert-database';
import { bounded, childOptions, isBusy } from './children';
import { causeOf } from '../failures';
import type { RolloutState } from './state';

/**
 * Compensation: every database this rollout changed goes back to its
 * version before the rollout with `revertDatabase` (undo scripts, proven
 * against the fingerprint the ledger recorded), newest completion first, at
 * most `maxParallel` at once.
 */
export async function compensateStep(r: RolloutState): Promise<RolloutStatusName> {
  const { input, status } = r;
  r.setStatus('compensating');
  const changed = r.changedDatabases();
  await bounded(changed, Math.max(1, input.strategy.maxParallel), async (db) => {
    const d = r.db(db);
    d.state = 'compensating';
    d.waitingFor = null;
    r.changed();
    for (;;) {
      try {
        const handle = await startChild(revertDatabase, {
          ...childOptions(input, db),
          // Back to its version before the rollout: every version above it (with neither `to` nor `steps`, all of them: it had none).
          args: [{ db, migrationsDir: input.migrationsDir, ...(d.versionBefore !== null ? { to: d.versionBefore } : {}), mode: 'aggressive' }],
        });
        const result = await handle.result();
        d.version = result.versionAfter;
        d.state = 'compensated';
        break;
      } catch (error) {
        if (isBusy(error)) {
          d.waitingFor = `another run of the database (${databaseWorkflowId(db)})`;
          r.changed();
          await sleep(input.busyRetryMs ?? 30_000);
          continue;
        }
        d.state = 'compensation-failed';
        d.failure = `compensation failed: ${causeOf(error)}`;
        break;
      }
    }
    d.waitingFor = null;
    r.changed();
  });
  return status.databases.some((d) => d.state === 'compensation-failed') ? 'compensation-failed' : 'compensated';
}
