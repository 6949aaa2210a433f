import { ActivityFailure, ApplicationFailure, CancellationScope, workflowInfo } from '@temporalio/workflow';
import { leaseHolder } from '../contracts';
import { acquireLease, holdLease, releaseLease } from './activities';

/** How often a step re-takes a lease it lost (it expired while the run stalled) before giving up. */
const maxLeaseRecoveries = 3;

/** The lease a run holds while it changes the database. */
export interface HeldLease {
  /** The current fencing token (a recovered lease has a new one). */
  token(): string;
  /**
   * Runs a step that writes under the lease. If the lease expired while the
   * run stalled (the step fails with LeaseLost), takes it again and runs the
   * step again, up to three times.
   */
  fenced<T>(step: (token: string) => Promise<T>): Promise<T>;
}

/**
 * Lock and release: takes the database's lease for this run, keeps it
 * renewed in the background while `fn` runs, and releases it when `fn` ends
 * however it ends (non-cancellable). The holder is the run, not the workflow
 * id: the same id on another Temporal cluster is another run, and must wait.
 */
export async function withLease<T>(db: string, fn: (lease: HeldLease) => Promise<T>): Promise<T> {
  const holder = leaseHolder(workflowInfo());
  let lease = await acquireLease({ db, holder });
  let keeper = keepLease(db, lease.token);
  const held: HeldLease = {
    token: () => lease.token,
    async fenced(step) {
      for (let recoveries = 0; ; recoveries++) {
        try {
          return await step(lease.token);
        } catch (error) {
          if (failureType(error) !== 'LeaseLost' || recoveries >= maxLeaseRecoveries) throw error;
          keeper.cancel();
          lease = await acquireLease({ db, holder });
          keeper = keepLease(db, lease.token);
        }
      }
    },
  };
  try {
    return await fn(held);
  } finally {
    keeper.cancel();
    const token = lease.token;
    await CancellationScope.nonCancellable(() => releaseLease({ db, token }));
  }
}

/** Renews the lease in the background until cancelled. */
function keepLease(db: string, token: string): { cancel(): void } {
  const scope = new CancellationScope();
  // It ends cancelled (by us, at release) or failed (the lease was lost: the
  // next ledger write is fenced and says so, and the run recovers there).
  scope.run(() => holdLease({ db, token })).catch(() => undefined);
  return { cancel: () => scope.cancel() };
}

function failureType(error: unknown): string | undefined {
  return error instanceof ActivityFailure && error.cause instanceof ApplicationFailure ? (error.cause.type ?? undefined) : undefined;
}
