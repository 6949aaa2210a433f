import { proxyActivities } from '@temporalio/workflow';
import type { Activities, ChangeLedgerInput, LedgerChangeResult } from '../contracts';
import { nonRetryableTypes } from './failures';

const { changeLedger: change } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 5, nonRetryableErrorTypes: nonRetryableTypes },
});

/**
 * baseline, mark-applied and import. Started with the database's workflow id
 * (`pgconvoy/db/<alias>`), so it cannot run while a migration of the same
 * database does.
 */
export async function changeLedger(input: ChangeLedgerInput): Promise<LedgerChangeResult> {
  return change(input);
}
