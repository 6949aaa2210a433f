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

/** A local activity's marker data (as the SDK's core records it). */
interface LocalActivityMarker {
  activity_type?: string;
  activityType?: string;
  attempt?: number;
}

/**
 * The activities a run ran, in the order the history records them: regular
 * ones when scheduled, local ones (a migration predicted short runs inline)
 * by their marker, with the attempt that ended them.
 */
export function activitySteps(history: History): Array<{ name: string; attempt: number; local: boolean }> {
  const steps: Array<{ name: string; attempt: number; local: boolean }> = [];
  const byScheduledId = new Map<string, { name: string; attempt: number; local: boolean }>();
  for (const event of history.events ?? []) {
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled) {
      const step = { name: scheduled.activityType?.name ?? '?', attempt: 0, local: false };
      byScheduledId.set(String(event.eventId), step);
      steps.push(step);
    }
    const started = event.activityTaskStartedEventAttributes;
    if (started) byScheduledId.get(String(started.scheduledEventId))!.attempt = started.attempt ?? 0;
    const marker = event.markerRecordedEventAttributes;
    if (marker?.markerName === 'core_local_activity') {
      const payload = marker.details?.data?.payloads?.[0];
      const data = JSON.parse(Buffer.from(payload?.data ?? new Uint8Array()).toString('utf8')) as LocalActivityMarker;
      steps.push({ name: data.activity_type ?? data.activityType ?? '?', attempt: data.attempt ?? 0, local: true });
    }
  }
  return steps;
}

/**
 * The steps' names in order, a local activity's marked " (inline)".
 * Migrations predicted short run inline, consecutive ones together in one
 * call that reports after about a second's work: a loaded machine may need
 * two calls for what one did on another, so consecutive inline calls count
 * as one.
 */
export function stepNames(history: History): string[] {
  return activitySteps(history)
    .map((s) => `${s.name}${s.local ? ' (inline)' : ''}`)
    .filter((name, i, all) => !(name === 'applyMigrations (inline)' && all[i - 1] === name));
}
