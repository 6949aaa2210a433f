import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { historyToJSON, type History } from '@temporalio/common/lib/proto-utils';

/** Recorded histories live in the source tree (test/histories), replayed by test/unit/replay.test.ts. */
export const historiesDir = join(__dirname, '..', '..', '..', 'test', 'histories');

/**
 * With PGCONVOY_RECORD_HISTORIES=1, saves a real run's history for the replay
 * test. Record anew only for a deliberate, compatible workflow change: a
 * history recorded before the change is what proves running workflows survive it.
 */
export function maybeRecordHistory(name: string, history: History): void {
  if (process.env.PGCONVOY_RECORD_HISTORIES !== '1') return;
  writeFileSync(join(historiesDir, `${name}.json`), historyToJSON(history));
}
