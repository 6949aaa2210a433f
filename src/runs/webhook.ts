import { createHmac } from 'node:crypto';
import type { DeliverWebhookInput } from '../contracts';
import { PgconvoyError } from '../core/errors';
import type { RunDeps } from './deps';

export class WebhookFailedError extends PgconvoyError {
  readonly type = 'WebhookFailed';
}
export class UnknownWebhookError extends PgconvoyError {
  readonly type = 'UnknownWebhook';
}

/** The signature of a body: `sha256=` and the hex HMAC-SHA256 of its bytes with the webhook's secret. */
export const signatureOf = (secret: string, body: string): string => `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`;

/**
 * Sends one rollout event to one webhook: JSON (or Slack's `{"text"}`),
 * signed with HMAC-SHA256 (`x-pgconvoy-signature`), with its delivery id
 * (`x-pgconvoy-delivery`, the same on every attempt). Anything but a 2xx
 * within ten seconds fails the attempt, and the activity's retries try again
 * with backoff; the rollout does not wait for it on its way.
 */
export async function deliverWebhook(deps: RunDeps, input: DeliverWebhookInput): Promise<{ status: 'delivered' | 'not-subscribed'; httpStatus?: number }> {
  const hook = deps.config.webhooks[input.webhook];
  if (!hook) throw new UnknownWebhookError(`no webhook "${input.webhook}" in this worker's config (notify.webhooks)`, { webhook: input.webhook });
  if (hook.events && !hook.events.includes(input.notification.event)) return { status: 'not-subscribed' };
  const body = hook.format === 'slack' ? JSON.stringify({ text: input.notification.text }) : JSON.stringify(input.notification);
  let response: Response;
  try {
    response = await fetch(hook.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': 'pgconvoy',
        'x-pgconvoy-event': input.notification.event,
        'x-pgconvoy-delivery': input.deliveryId,
        'x-pgconvoy-signature': signatureOf(hook.secret, body),
      },
      body,
      signal: AbortSignal.timeout(10_000),
    });
  } catch (error) {
    throw new WebhookFailedError(`webhook "${input.webhook}": ${(error as Error).message}`, { webhook: input.webhook, deliveryId: input.deliveryId });
  }
  await response.arrayBuffer().catch(() => undefined);
  if (!response.ok) throw new WebhookFailedError(`webhook "${input.webhook}" answered ${response.status}`, { webhook: input.webhook, deliveryId: input.deliveryId, httpStatus: response.status });
  deps.logger.info({ event: 'webhook.delivered', webhook: input.webhook, deliveryId: input.deliveryId, rolloutEvent: input.notification.event });
  return { status: 'delivered', httpStatus: response.status };
}
