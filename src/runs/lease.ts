import type { HeldLeaseInput, Lease, LeaseInput } from '../contracts';
import type pg from 'pg';
import { withClient, withTransaction } from '../db/connection';
import { ensureLedger } from '../db/ledger';
import { acquireLease as acquire, releaseLease as release, renewLease } from '../db/lease';
import { cancellable, targetOf, type RunDeps } from './deps';

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
 * well within the lease's lifetime. Each renewal borrows a connection for
 * its one statement (a `short` one: under the worker's cap it never waits
 * behind a migration), so a database in flight does not hold one for its
 * lease between renewals; a renewal that cannot finish in time fails fast.
 */
export async function holdLease(deps: RunDeps, input: HeldLeaseInput): Promise<void> {
  const { lease } = deps.config;
  const fence = { alias: input.db, token: input.token };
  const target = targetOf(deps.config, input.db);
  const begin = `BEGIN; SELECT set_config('lock_timeout', '${Math.max(500, Math.floor(lease.renewEveryMs))}ms', true), set_config('statement_timeout', '${Math.max(1_000, Math.floor(lease.renewEveryMs * 2))}ms', true)` as const;
  const renew = (client: pg.Client) => withTransaction(client, () => renewLease(client, fence, lease.ttlMs), begin);
  for (;;) {
    await (deps.connections ? deps.connections.use(target, renew, { kind: 'short', ...cancellable(deps) }) : withClient(target, renew, { kind: 'short', ...cancellable(deps) }));
    deps.heartbeat();
    await deps.sleep(lease.renewEveryMs);
  }
}

export async function releaseLease(deps: RunDeps, input: HeldLeaseInput): Promise<boolean> {
  return withClient(targetOf(deps.config, input.db), async (client) => {
    const released = await release(client, { alias: input.db, token: input.token });
    deps.logger.info({ event: 'lease.released', db: input.db, token: input.token, released });
    return released;
  });
}
