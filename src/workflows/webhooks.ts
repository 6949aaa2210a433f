import { log, uuid4 } from '@temporalio/workflow';
import type { DeliverWebhookInput } from '../contracts';
import { deliverWebhook } from './activities';
import { message } from './failures';

/**
 * One notice to each webhook: a delivery activity each (retried with backoff,
 * the same delivery id on every attempt). Each promise says whether its
 * webhook got the notice; one that never did costs a log line, never the
 * workflow.
 */
export function deliverToEach(webhooks: readonly string[], notification: DeliverWebhookInput['notification']): Array<Promise<boolean>> {
  return webhooks.map((webhook) =>
    deliverWebhook({ webhook, deliveryId: uuid4(), notification }).then(
      () => true,
      (error: unknown) => {
        log.warn('a webhook was not delivered', { webhook, event: notification.event, error: message(error) });
        return false;
      },
    ),
  );
}
