import { ActivityFailure, ApplicationFailure } from '@temporalio/workflow';
import { describeCrossings, describeSample, type GuardCrossedDetails, type WatchBaseline, type WatchReport } from '../contracts';
import { waitHealthy } from './activities';
import type { RunEventBody } from './events';
import { runFailure } from './failures';

/** The details of a step that ended because its database is past a guard, or undefined for any other failure. */
function guardCrossedIn(error: unknown): GuardCrossedDetails | undefined {
  // An activity's failure wraps it once; a local activity's may come as it is.
  const failure = error instanceof ActivityFailure ? error.cause : error;
  if (!(failure instanceof ApplicationFailure) || failure.type !== 'GuardCrossed') return undefined;
  return failure.details?.[0] as GuardCrossedDetails | undefined;
}

/**
 * Runs a step; when it ends because the database is past a guard (it did
 * not start, or its statement was cancelled and rolled back), the run
 * holds: an event, then a wait for a healthy sample, then the step again.
 * A hold longer than the database's guardTimeoutMs fails the run
 * (GuardTimeout) with the last sample in its message.
 */
export async function guarded<T>(db: string, baseline: WatchBaseline | undefined, emit: (event: RunEventBody) => void, step: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await step();
    } catch (error) {
      const held = guardCrossedIn(error);
      if (!held) throw error;
      emit({ type: 'guard', state: 'held', crossings: held.crossings, sample: held.sample, cancelled: held.cancelled });
      const waited = await waitHealthy({ db, timeoutMs: held.guardTimeoutMs, ...(baseline ? { baseline } : {}) });
      if (!waited.healthy) {
        // An unhealthy wait ends with a sample past a guard: its crossings are the ones that stayed.
        const { crossings } = waited;
        throw runFailure('GuardTimeout', `"${db}" stayed past its guards for ${held.guardTimeoutMs} ms (guardTimeoutMs): ${describeCrossings(crossings)}; last sample: ${describeSample(waited.sample)}`, {
          db,
          crossings,
          sample: waited.sample,
          guardTimeoutMs: held.guardTimeoutMs,
        });
      }
      emit({ type: 'guard', state: 'cleared', crossings: [], sample: waited.sample, cancelled: false });
    }
  }
}

/** A step's watch report as events: its last sample, and what it crossed without being stopped (a backup, a no-transaction migration). */
export function emitReport(report: WatchReport | undefined, emit: (event: RunEventBody) => void): void {
  if (!report?.latest) return;
  emit({ type: 'watch', sample: report.latest, crossings: report.crossings.map(({ at: _at, ...c }) => c) });
}
