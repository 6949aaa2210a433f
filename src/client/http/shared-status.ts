import type { PgconvoyClient } from '../api';
import type { RolloutStatus } from '../../contracts';
import { getRollout } from '../rollout';

/**
 * One status query per rollout at a time, shared by every request that
 * arrives while it is fresh. A rollout's status is a Temporal query that
 * its workflow answers on a worker, between its own tasks: fifty pipelines
 * and pages polling one rollout would otherwise be fifty queries queued on
 * the workflow, slowing each other and the rollout. A query started less
 * than `freshMs` ago (or still running) is joined; after a message sent
 * through this server (approve, pause...) the next request asks again.
 */
export class SharedStatus {
  private readonly inFlight = new Map<string, { startedAt: number; settled: boolean; result: Promise<RolloutStatus> }>();

  constructor(
    private readonly pgconvoy: PgconvoyClient,
    private readonly freshMs = 250,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get(deployId: string): Promise<RolloutStatus> {
    const shared = this.inFlight.get(deployId);
    if (shared && (!shared.settled || this.now() - shared.startedAt < this.freshMs)) return shared.result;
    const startedAt = this.now();
    // Each query under a signal of its own (the client keeps a listener per call on a signal).
    const result = this.pgconvoy.client.connection.withAbortSignal(new AbortController().signal, () => getRollout(this.pgconvoy, deployId));
    const entry = { startedAt, settled: false, result };
    this.inFlight.set(deployId, entry);
    const forget = () => {
      if (this.inFlight.get(deployId) === entry) this.inFlight.delete(deployId);
    };
    // Kept while fresh, then let go; a failure is not kept: the next request asks again.
    result.then(
      () => {
        entry.settled = true;
        setTimeout(forget, Math.max(0, this.freshMs - (this.now() - startedAt))).unref();
      },
      forget,
    );
    return result;
  }

  /** The rollout changed through this server: the next request asks it. */
  changed(deployId: string): void {
    this.inFlight.delete(deployId);
  }
}
