import type { RolloutEventName } from '../../contracts';
import { deliverToEach } from '../webhooks';
import type { RolloutState } from './state';

/**
 * Tells the webhooks named in the input (a delivery each, retried with
 * backoff by its activity); the rollout goes on without waiting, and waits
 * for them all only before it ends or continues as new. A webhook that never
 * answers costs a log line, never the rollout.
 */
export function notify(r: RolloutState, event: RolloutEventName, text: string, about?: { db: string; failure: string | null }): void {
  const { status } = r;
  const notification = { deployId: status.deployId, event, text, status: status.status, wave: status.wave, waves: status.waves, counts: status.counts, ...(about ? { db: about.db, failure: about.failure } : {}), at: Date.now() };
  r.notifications.push(...deliverToEach(r.input.notify ?? [], notification).map((delivered) => delivered.then(() => undefined)));
}
