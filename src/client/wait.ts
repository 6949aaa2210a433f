import type { Connection } from '@temporalio/client';
import { temporalClient } from './temporal';
import { connectTemporal, TemporalUnavailableError, type Session } from './session';

/** gRPC codes that mean the server went away, not that it answered no. */
const connectionLost = new Set([
  14, // UNAVAILABLE
  4, // DEADLINE_EXCEEDED
]);

/** Whether `error` (or one of its causes) says Temporal could not be reached. */
export function isConnectionLoss(error: unknown): boolean {
  for (let current: unknown = error; current instanceof Error; current = current.cause) {
    if (temporalClient().isGrpcServiceError(current) && connectionLost.has(current.code)) return true;
    if (current instanceof TemporalUnavailableError) return true;
  }
  return false;
}

export interface WaitOptions {
  db: string;
  /** Told once per outage, and when the connection is back. */
  onLost(): void;
  onBack(): void;
  /** Settles when nobody waits any more (the command was interrupted): stop reconnecting. */
  abandoned?: Promise<unknown>;
}

interface ResultHandle<T> {
  workflowId: string;
  firstExecutionRunId: string;
  result(): Promise<T>;
}

/**
 * Waits for a workflow's result through Temporal outages. The SDK retries a
 * lost connection for about twenty seconds and then gives up, although the
 * run goes on on the server (and, once the server is back, finishes). So when
 * the connection is lost this keeps reconnecting, with a fresh connection
 * each time, for up to `session.reconnectTimeoutMs`; when it gives up it says
 * that the run may still be going and how to look (TemporalUnavailable, exit 3).
 */
export async function waitForResult<T>(handle: ResultHandle<T>, session: Session, options: WaitOptions): Promise<T> {
  let abandoned = false;
  const calls = new AbortController();
  void options.abandoned?.then(() => {
    abandoned = true;
    calls.abort();
  });
  let current: () => Promise<T> = () => handle.result();
  let connection: Connection | undefined;
  try {
    for (;;) {
      try {
        return await current();
      } catch (error) {
        if (!isConnectionLoss(error) || abandoned) throw error;
      }
      options.onLost();
      const lostAt = Date.now();
      for (;;) {
        const left = session.reconnectTimeoutMs - (Date.now() - lostAt);
        if (abandoned) throw new TemporalUnavailableError('stopped waiting for the run', { address: session.address });
        if (left <= 0) {
          throw new TemporalUnavailableError(
            `lost the connection to Temporal at ${session.address} and could not reconnect within ${Math.round(session.reconnectTimeoutMs / 1000)} s; ` +
              `the run of "${options.db}" may still be going: check with \`pgconvoy status --db ${options.db}\``,
            { address: session.address, workflowId: handle.workflowId },
          );
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(1_000, left)));
        try {
          const fresh = await connectTemporal(session.address, Math.max(1_000, Math.min(5_000, left)));
          await connection?.close().catch(() => undefined);
          connection = fresh;
          const again = new (temporalClient().Client)({ connection: fresh, namespace: session.namespace }).workflow.getHandle<() => Promise<T>>(handle.workflowId, undefined, {
            firstExecutionRunId: handle.firstExecutionRunId,
          });
          current = () => fresh.withAbortSignal(calls.signal, () => again.result());
          options.onBack();
          break;
        } catch {
          // Still down: try again until the deadline.
        }
      }
    }
  } finally {
    await connection?.close().catch(() => undefined);
  }
}
