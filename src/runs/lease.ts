import type { HeldLeaseInput, Lease, LeaseInput } from '../contracts';
import { withClient } from '../db/connection';
import { ensureLedger } from '../db/ledger';
import { acquireLease as acquire, releaseLease as release, renewLease } from '../db/lease';
import { targetOf, type RunDeps } from './deps';

/** Takes the database's lease for the run (or renews it, when the run already holds it). */
export async function acquireLease(deps: RunDeps, input: LeaseInput): Promise<Lease> {
  return withClient(targetOf(deps.config, input.db), async (client) => {
    await ensureLedger(client);
    const lease = await acquire(client, input.db, input.holder, deps.config.lease.ttlMs);
    deps.logger.info({ event: 'lease.acquired', db: input.db, holder: input.holder, token: lease.token });
    return lease;
  });
}

/**
 * Keeps the lease alive for as long as the run needs it: renews it every
 * renewEveryMs until the step is cancelled (its sleep throws then). If its
 * worker dies, Temporal runs it again elsewhere after the heartbeat timeout,
 * well within the lease's lifetime.
 */
export async function holdLease(deps: RunDeps, input: HeldLeaseInput): Promise<void> {
  const { lease } = deps.config;
  const fence = { alias: input.db, token: input.token };
  return withClient(targetOf(deps.config, input.db), async (client) => {
    // A renewal that cannot finish fails fast and closes its connection
    // before the retry opens another: the lease costs one connection.
    await client.query(`SELECT set_config('lock_timeout', $1, false), set_config('statement_timeout', $2, false)`, [
      `${Math.max(500, Math.floor(lease.renewEveryMs))}ms`,
      `${Math.max(1_000, lease.renewEveryMs * 2)}ms`,
    ]);
    for (;;) {
      await renewLease(client, fence, lease.ttlMs);
      deps.heartbeat();
      await deps.sleep(lease.renewEveryMs);
    }
  });
}

export async function releaseLease(deps: RunDeps, input: HeldLeaseInput): Promise<boolean> {
  return withClient(targetOf(deps.config, input.db), async (client) => {
    const released = await release(client, { alias: input.db, token: input.token });
    deps.logger.info({ event: 'lease.released', db: input.db, token: input.token, released });
    return released;
  });
}
