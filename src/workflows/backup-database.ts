import { proxyActivities } from '@temporalio/workflow';
import type { Activities, BackupInput, BackupResult } from '../contracts';
import { nonRetryableTypes } from './failures';

const { takeBackup } = proxyActivities<Activities>({
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '5s', backoffCoefficient: 2, maximumInterval: '2 minutes', maximumAttempts: 3, nonRetryableErrorTypes: nonRetryableTypes },
});

/** An on-demand backup of one database: dump, verify, keep the last N. */
export async function backupDatabase(input: BackupInput): Promise<BackupResult> {
  return takeBackup(input);
}
