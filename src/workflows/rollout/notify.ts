import { log, uuid4 } from '@temporalio/workflow';
import type { RolloutEventName } from '../../contracts';
import { deliverWebhook } from '../activities';
import { message } from './failures';
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
  for (const webhook of r.input.notify ?? []) {
    r.notifications.push(
      deliverWebhook({ webhook, deliveryId: uuid4(), notification }).then(
        () => undefined,
        (error: unknown) => log.warn('a webhook was not delivered', { webhook, event, error: message(error) }),
      ),
    );
  }
}
