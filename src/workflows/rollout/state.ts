import { ApplicationFailure, setHandler } from '@temporalio/workflow';
import {
  databaseStates,
  describeCrossings,
  type AbortRolloutInput,
  type DatabaseMessageInput,
  type DatabaseState,
  type RolloutAck,
  type RolloutDatabase,
  type RolloutInput,
  type RolloutMessageInput,
  type RolloutStatus,
  type RolloutStatusName,
  type RunEvent,
} from '../../contracts';
import { runFailure } from '../failures';
import { runEventSignal } from '../messages';
import { amountOf } from './waves';
import { abortRolloutUpdate, approveRolloutUpdate, pauseRolloutUpdate, resumeRolloutUpdate, retryDatabaseUpdate, rolloutStatusQuery, skipDatabaseUpdate } from './messages';

/** What a rollout carries into its next run when it continues as new. */
export interface RolloutCarry {
  status: RolloutStatus;
  /** Databases in the order their last runs ended (compensation goes the other way). */
  endOrder: string[];
  /** When each busy database is tried again (workflow time). */
  retryAt: Record<string, number>;
}

const failedStates: DatabaseState[] = ['failed', 'diverged'];
/** States a database leaves only by a retry or a skip, or never. */
const settledStates: DatabaseState[] = ['succeeded', 'up-to-date', 'failed', 'diverged', 'skipped', 'not-run', 'compensated', 'compensation-failed'];

/**
 * The rollout's state and the messages that change it, in one class (the
 * shape of the safe-message-handlers sample): the handlers only record
 * decisions; the main loop acts on them. `tick` moves with every change, so
 * the loop waits for "anything happened" with one condition.
 */
export class RolloutState {
  readonly input: RolloutInput;
  readonly status: RolloutStatus;
  readonly endOrder: string[];
  readonly retryAt: Record<string, number>;
  tick = 0;
  /** Runs started and not yet ended (busy ones waiting for their timer are not in flight). */
  inFlight = 0;
  /** Webhook deliveries on their way; the rollout ends (or continues as new) only once they are done. */
  readonly notifications: Array<Promise<void>> = [];
  /** When the rollout began to wait for a decision on failed databases (the decision timeout counts from it). */
  decisionSince: number | undefined;
  /** What the rollout waits for an approval of now: the rollout (null) or a wave; undefined when nothing waits. */
  approvalFor: number | null | undefined = undefined;

  constructor(input: RolloutInput, carried?: RolloutCarry) {
    this.input = input;
    this.status = carried?.status ?? {
      deployId: input.deployId,
      status: 'planning',
      waitingFor: null,
      manifestDigest: null,
      mode: input.mode ?? 'auto',
      selector: input.selector ?? null,
      strategy: input.strategy,
      wave: 0,
      waves: 0,
      counts: Object.fromEntries(databaseStates.map((s) => [s, 0])) as Record<DatabaseState, number>,
      databases: input.targets.map((db) => ({ db, wave: null, state: 'pending', phase: null, versionBefore: null, version: null, pending: 0, risk: null, findings: [], wouldWaitForApproval: false, outcome: null, durationMs: null, waitingFor: null, failure: null, applied: 0, attempts: 0, startedAt: null, fingerprint: null })),
      drift: [],
      reference: null,
      problems: [],
      approvals: [],
      paused: false,
      abortRequested: null,
      startedAt: Date.now(),
      endedAt: null,
      continuedAsNew: 0,
    };
    if (carried) this.status.continuedAsNew += 1;
    this.endOrder = carried?.endOrder ?? [];
    this.retryAt = carried?.retryAt ?? {};
    this.count();
  }

  carry(): RolloutCarry {
    return { status: this.status, endOrder: this.endOrder, retryAt: this.retryAt };
  }

  db(alias: string): RolloutDatabase {
    const found = this.status.databases.find((d) => d.db === alias);
    if (!found) throw ApplicationFailure.nonRetryable(`"${alias}" is not a target of this rollout`, 'Internal');
    return found;
  }

  /** A run of `db` ended: it moves to the end of the order of ends. */
  ended(db: string): void {
    const at = this.endOrder.indexOf(db);
    if (at >= 0) this.endOrder.splice(at, 1);
    this.endOrder.push(db);
  }

  /** The databases this rollout changed (their version moved), the last to end first. */
  changedDatabases(): string[] {
    return [...this.endOrder].reverse().filter((db) => {
      const d = this.db(db);
      return d.version !== d.versionBefore;
    });
  }

  /** Something changed: recount, and wake the main loop. */
  changed(): void {
    this.count();
    this.tick += 1;
  }

  private count(): void {
    const counts = Object.fromEntries(databaseStates.map((s) => [s, 0])) as Record<DatabaseState, number>;
    for (const d of this.status.databases) counts[d.state] += 1;
    this.status.counts = counts;
  }

  setStatus(status: RolloutStatusName, waitingFor: string | null = null): void {
    this.status.status = status;
    this.status.waitingFor = waitingFor;
    this.changed();
  }

  failures(): number {
    return this.status.databases.filter((d) => failedStates.includes(d.state)).length;
  }

  /** The failure threshold is reached: nothing new starts. */
  thresholdReached(): boolean {
    return this.failures() >= amountOf(this.input.strategy.maxFailures, this.status.databases.length);
  }

  /** Every database of the waves up to `wave` has settled. */
  settledUpTo(wave: number): boolean {
    return this.status.databases.every((d) => d.wave === null || d.wave > wave || settledStates.includes(d.state));
  }

  /** Databases that may start now, in target order: pending in the waves so far, or busy with their wait over. */
  startable(now: number): RolloutDatabase[] {
    return this.status.databases.filter(
      (d) => d.wave !== null && d.wave <= this.status.wave && (d.state === 'pending' || (d.state === 'busy' && (this.retryAt[d.db] ?? 0) <= now)),
    );
  }

  /** The earliest time a busy database is tried again. */
  nextRetry(): number | undefined {
    const times = this.status.databases.filter((d) => d.state === 'busy').map((d) => this.retryAt[d.db] ?? 0);
    return times.length > 0 ? Math.min(...times) : undefined;
  }

  /** The approval the children of `wave` run with: the wave's own, else the rollout's. */
  approvalOf(wave: number): { by: string; note?: string } | undefined {
    const given = this.status.approvals.find((a) => a.wave === wave) ?? this.status.approvals.find((a) => a.wave === null);
    return given ? { by: given.by, ...(given.note ? { note: given.note } : {}) } : undefined;
  }

  /** A child's event: its phase, its version as it goes, what it waits for. */
  onRunEvent(event: RunEvent): void {
    const d = this.status.databases.find((x) => x.db === event.db);
    if (!d || (d.state !== 'running' && d.state !== 'compensating')) return;
    if (event.type === 'migration-done' && event.status === 'applied' && d.state === 'running') d.version = event.version;
    if (event.type === 'ended' && d.state === 'running') d.version = event.versionAfter;
    if (event.type === 'guard' || event.type === 'watch') d.watch = event.sample;
    if (event.type === 'awaiting-approval') d.waitingFor = `approval: ${event.reason.split('\n')[0]}`;
    else if (event.type === 'locking') d.waitingFor = 'the lease (another holder may have it)';
    else if (event.type === 'guard' && event.state === 'held') d.waitingFor = `its guards: ${describeCrossings(event.crossings)}`;
    else if (event.type !== 'watch') d.waitingFor = null;
    const phases: Partial<Record<RunEvent['type'], RolloutDatabase['phase']>> = { planned: 'planning', 'awaiting-approval': 'awaiting-approval', locking: 'locking', 'backing-up': 'backing-up', applying: 'applying', verifying: 'verifying', compensating: 'compensating' };
    const phase = phases[event.type];
    if (phase) d.phase = phase;
    this.changed();
  }

  /** The messages: updates for people and deploy services, each refused (nothing recorded) when it does not apply. */
  install(): void {
    const s = this.status;
    const reject = (why: string | null) => {
      if (why) throw runFailure('MessageRejected', why);
    };
    const ended = () => s.endedAt !== null;
    const ack = (): RolloutAck => ({ accepted: true, status: s.status });
    setHandler(rolloutStatusQuery, () => s);
    setHandler(runEventSignal, (events) => {
      for (const event of events) this.onRunEvent(event);
    });
    setHandler(
      pauseRolloutUpdate,
      (_input: RolloutMessageInput) => {
        s.paused = true;
        this.changed();
        return ack();
      },
      { validator: (_input: RolloutMessageInput) => reject(ended() ? `the rollout has ended (${s.status})` : s.paused ? 'the rollout is already paused' : s.abortRequested ? 'the rollout is being aborted' : null) },
    );
    setHandler(
      resumeRolloutUpdate,
      (_input: RolloutMessageInput) => {
        s.paused = false;
        this.changed();
        return ack();
      },
      { validator: (_input: RolloutMessageInput) => reject(ended() ? `the rollout has ended (${s.status})` : !s.paused ? 'the rollout is not paused' : null) },
    );
    setHandler(
      abortRolloutUpdate,
      (input: AbortRolloutInput) => {
        s.abortRequested = { by: input.by, reason: input.note ?? null, compensate: input.compensate ?? false };
        this.changed();
        return ack();
      },
      { validator: (_input: AbortRolloutInput) => reject(ended() ? `the rollout has ended (${s.status})` : s.abortRequested ? 'the rollout is already being aborted' : s.status === 'compensating' ? 'the rollout is compensating; it ends on its own' : null) },
    );
    setHandler(
      approveRolloutUpdate,
      (input: RolloutMessageInput) => {
        s.approvals.push({ by: input.by, at: Date.now(), wave: this.approvalFor ?? null, note: input.note ?? null });
        this.approvalFor = undefined;
        this.changed();
        return ack();
      },
      { validator: (_input: RolloutMessageInput) => reject(this.approvalFor === undefined ? `nothing to approve: the rollout is ${s.status}` : null) },
    );
    const failedDb = (input: DatabaseMessageInput, action: string, also: DatabaseState[] = []): string | null => {
      if (ended()) return `the rollout has ended (${s.status})`;
      const d = s.databases.find((x) => x.db === input.db);
      if (!d) return `"${input.db}" is not a target of this rollout`;
      if (s.status === 'compensating' || s.abortRequested) return `cannot ${action} "${input.db}": the rollout is ${s.abortRequested ? 'being aborted' : 'compensating'}`;
      return [...failedStates, ...also].includes(d.state) ? null : `cannot ${action} "${input.db}": it is ${d.state}, not failed`;
    };
    setHandler(
      retryDatabaseUpdate,
      (input: DatabaseMessageInput) => {
        const d = this.db(input.db);
        d.state = 'pending';
        d.failure = null;
        // One that had nothing to apply (and diverged) runs in the wave going on now.
        d.wave ??= s.wave;
        this.changed();
        return ack();
      },
      { validator: (input: DatabaseMessageInput) => reject(failedDb(input, 'retry')) },
    );
    setHandler(
      skipDatabaseUpdate,
      (input: DatabaseMessageInput) => {
        const d = this.db(input.db);
        d.state = 'skipped';
        d.waitingFor = null;
        this.changed();
        return ack();
      },
      { validator: (input: DatabaseMessageInput) => reject(failedDb(input, 'skip', ['pending', 'busy'])) },
    );
  }
}
