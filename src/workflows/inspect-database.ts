import { proxyActivities } from '@temporalio/workflow';
import type { Activities, DatabaseStatus, InspectDatabaseInput } from '../contracts';
import { nonRetryableTypes } from './failures';

const { planDatabase, readHistory } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 3, nonRetryableErrorTypes: nonRetryableTypes },
});

/**
 * Reads a database's ledger and plan on a worker, which alone holds the
 * connection strings; the client that asks never needs them.
 */
export async function inspectDatabase(input: InspectDatabaseInput): Promise<DatabaseStatus> {
  const plan = await planDatabase({ db: input.db, migrationsDir: input.migrationsDir, ...(input.allowOutOfOrder ? { allowOutOfOrder: true } : {}) });
  const history = await readHistory({ db: input.db, ...(input.historyLast === undefined ? {} : { last: input.historyLast }) });
  return { plan, history };
}
