import type { ChangeLedgerInput, HistoryInput, HistoryRow, LedgerChangeResult } from '../contracts';
import { leaseHolder } from '../contracts';
import { withClient } from '../db/connection';
import { acquireLease, releaseLease } from '../db/lease';
import { ensureLedger, readHistory as readHistoryInDb } from '../db/ledger';
import { changeLedger as changeLedgerInDb } from '../db/ledger-admin';
import { readMigrationSet } from '../source/read-migration-set';
import { targetOf, type RunDeps } from './deps';

/** baseline, mark-applied or import, under a lease of its own. */
export async function changeLedger(deps: RunDeps, input: ChangeLedgerInput): Promise<LedgerChangeResult> {
  const { config, logger, execution } = deps;
  const set = await readMigrationSet(input.migrationsDir, config.files);
  const holder = execution ? leaseHolder(execution) : `pgconvoy/ledger/${input.db}`;
  return withClient(targetOf(config, input.db), async (client) => {
    await ensureLedger(client);
    const lease = await acquireLease(client, input.db, holder, config.lease.ttlMs);
    const fence = { alias: input.db, token: lease.token };
    try {
      const result = await changeLedgerInDb(client, set, input.change, execution ? { workflowId: execution.workflowId, runId: execution.runId } : {}, fence);
      logger.info({ event: 'ledger.changed', db: input.db, ...result });
      return result;
    } finally {
      await releaseLease(client, fence).catch(() => undefined);
    }
  });
}

export async function readHistory(deps: RunDeps, input: HistoryInput): Promise<HistoryRow[]> {
  return withClient(targetOf(deps.config, input.db), (client) => readHistoryInDb(client, input.last === undefined ? {} : { last: input.last }));
}
