/**
 * A rollout: one pinned migration set to many databases, as the workflow,
 * the client and a dashboard see it. Each database's run is the
 * `migrateDatabase` run `up` starts, as a child with the database's id.
 */
import type { RiskLevel } from '../core/risk';
import type { Version } from '../core/version';
import type { PendingMigration } from './activities';
import type { RunOutcome } from './outcome';
import type { ExecutionMode, Phase } from './run';
import type { WatchSample } from './watch';

/** A number of databases, or a share of the rollout's targets (rounded up, at least one). */
export type Amount = { count: number } | { percent: number };

export interface RolloutStrategy {
  /** The first databases, alone: a count (the first targets with work to do) or named aliases. Default one. */
  canary: { count: number } | { aliases: string[] };
  /** How long to wait after the canaries succeeded before the first wave. */
  bakeMs: number;
  /** The size of each wave after the canaries. */
  waveSize: Amount;
  /** At most this many databases run at once. */
  maxParallel: number;
  /** At this many failed (or diverged) databases, nothing new starts. */
  maxFailures: Amount;
  /** `halt`: databases already migrated stay migrated; `compensate`: every database this rollout changed is reverted, newest first. */
  onFailure: 'halt' | 'compensate';
  /** Every wave after the canaries waits for an `approve`, which is passed to its databases. */
  approveWaves: boolean;
}

export type DriftPolicy = 'halt' | 'warn';

export interface RolloutInput {
  /** Names the rollout: workflow id `pgconvoy/rollout/<deployId>`. */
  deployId: string;
  migrationsDir: string;
  /** Database aliases, in the order they are taken; never connection strings. */
  targets: string[];
  /** How the targets were chosen (`tier=prod,region=eu`, `all`), for people. */
  selector?: string;
  strategy: RolloutStrategy;
  /** The children's execution mode (default `auto`); `dry-run` previews the fleet and changes nothing. */
  mode?: ExecutionMode;
  onDrift?: DriftPolicy;
  /** Wait for an `approve` before the first database, whatever the risk. */
  requireApproval?: boolean;
  /** How long an approval (of the rollout or a wave) or a decision on a halted rollout may be waited for (default 24 hours). */
  decisionTimeoutMs?: number;
  /** Refuse unless the workers read exactly this set. */
  expect?: { manifestDigest: string };
  /** The server has pgconvoy's search attributes: the children get PgconvoyDb and PgconvoyRollout. */
  searchAttributes?: boolean;
  /** How long a database that another run holds is waited for before it is tried again (default 30 s). */
  busyRetryMs?: number;
  /** Continue as new past this many history events (default: when the server suggests it). */
  historyLimit?: number;
  /** Webhooks (their names in the workers' config) told of the rollout's events. */
  notify?: string[];
}

export type RolloutEventName = 'started' | 'approval-needed' | 'wave-done' | 'database-failed' | 'halted' | 'compensated' | 'completed' | 'ended';
/** A single database's run (`pgconvoy up`, POST /v1/databases/<alias>/up); the runs of a rollout are told of by the rollout. */
export type RunEventName = 'run-started' | 'run-approval-needed' | 'run-completed' | 'run-failed' | 'run-compensated' | 'run-ended';
/** Every event a webhook may ask for (notify.webhooks[].events). */
export const webhookEvents: ReadonlyArray<RolloutEventName | RunEventName> = ['started', 'approval-needed', 'wave-done', 'database-failed', 'halted', 'compensated', 'completed', 'ended', 'run-started', 'run-approval-needed', 'run-completed', 'run-failed', 'run-compensated', 'run-ended'];

/** What a webhook receives: the event, in words, and the rollout's counts; never SQL, URLs or secrets. */
export interface RolloutNotification {
  deployId: string;
  event: RolloutEventName;
  /** One line for people (a Slack message). */
  text: string;
  status: RolloutStatusName;
  wave: number;
  waves: number;
  counts: Record<DatabaseState, number>;
  /** The database the event is about, and its failure. */
  db?: string;
  failure?: string | null;
  at: number;
}

/** What a webhook is told of a single database's run. */
export interface RunNotification {
  db: string;
  workflowId: string;
  event: RunEventName;
  /** One line for people (a Slack message). */
  text: string;
  /** How the run ended (null before it has). */
  status: RunOutcome['status'] | null;
  versionBefore: Version | null;
  versionAfter: Version | null;
  /** The migrations it planned to apply. */
  pending: number;
  /** Why it failed: the database, file, statement and SQLSTATE where they apply. */
  failure: string | null;
  at: number;
}

export interface DeliverWebhookInput {
  /** Its name in the worker's config. */
  webhook: string;
  /** The same for every attempt, so a receiver can drop a repeat. */
  deliveryId: string;
  notification: RolloutNotification | RunNotification;
}

/** What the rollout learned of one database before changing anything. */
export interface DatabaseSurvey {
  db: string;
  manifestDigest: string;
  /** The highest applied version, or the baseline. */
  version: Version | null;
  pending: PendingMigration[];
  /** The schema's fingerprint now, and the one the ledger recorded after `version` (null: none recorded). */
  fingerprint: string;
  recordedFingerprint: string | null;
  /** Integrity problems and a backup that cannot be taken: the run would be refused. */
  problems: string[];
}

export type DatabaseState =
  | 'pending'
  | 'running'
  | 'busy'
  | 'succeeded'
  | 'up-to-date'
  | 'failed'
  | 'diverged'
  | 'skipped'
  | 'not-run'
  | 'compensating'
  | 'compensated'
  | 'compensation-failed';

export const databaseStates: DatabaseState[] = ['pending', 'running', 'busy', 'succeeded', 'up-to-date', 'failed', 'diverged', 'skipped', 'not-run', 'compensating', 'compensated', 'compensation-failed'];

/** One database in the rollout, as a dashboard shows it. */
export interface RolloutDatabase {
  db: string;
  /** 0: the canaries; 1, 2, ...: the waves; null: not in any (nothing to do, or not planned yet). */
  wave: number | null;
  state: DatabaseState;
  /** The phase of its run while one is going. */
  phase: Phase | null;
  versionBefore: Version | null;
  /** As its run last said. */
  version: Version | null;
  pending: number;
  risk: RiskLevel | null;
  /** The findings at its highest risk (above low), with their table context, not accepted in the file. */
  findings: string[];
  /** A pending migration is above what the mode runs unapproved: its run would wait for an approval (the rollout's covers it). */
  wouldWaitForApproval: boolean;
  /** How its last run ended. */
  outcome: RunOutcome['status'] | null;
  durationMs: number | null;
  /** What it waits for, in words (another run of the database, an approval). */
  waitingFor: string | null;
  /** Why it failed or diverged: the database, file, statement and SQLSTATE where they apply. */
  failure: string | null;
  /** The versions its run applied, for compensation. */
  applied: number;
  attempts: number;
  /** Workflow time its current (or last) run started. */
  startedAt: number | null;
  /** Its schema's fingerprint: as surveyed, then after its run. */
  fingerprint: string | null;
  /** The watch's latest sample its run reported (each step that lasted one, each hold for its guards). */
  watch?: WatchSample;
}

export interface DriftReport {
  db: string;
  version: Version | null;
  fingerprint: string;
  /** What it differs from, in words, and the first differing lines. */
  reason: string;
  differences: string[];
}

export type RolloutStatusName =
  | 'planning'
  | 'awaiting-approval'
  | 'canary'
  | 'baking'
  | 'running'
  | 'paused'
  | 'halted'
  | 'compensating'
  | 'completed'
  | 'failed'
  | 'compensated'
  | 'compensation-failed'
  | 'aborted'
  | 'drift'
  | 'refused'
  | 'dry-run'
  | 'approval-timed-out';

/** The statuses a rollout ends in. */
export const endedRolloutStatuses: RolloutStatusName[] = ['completed', 'failed', 'compensated', 'compensation-failed', 'aborted', 'drift', 'refused', 'dry-run', 'approval-timed-out'];

/** The one compact answer for dashboards and `rollout status`; also what the rollout returns. */
export interface RolloutStatus {
  deployId: string;
  status: RolloutStatusName;
  /** What it waits for now, in words (an approval, the bake, a decision on failed databases). */
  waitingFor: string | null;
  manifestDigest: string | null;
  mode: ExecutionMode;
  selector: string | null;
  strategy: RolloutStrategy;
  /** The wave running (0: the canaries) and how many there are after the canaries. */
  wave: number;
  waves: number;
  counts: Record<DatabaseState, number>;
  databases: RolloutDatabase[];
  drift: DriftReport[];
  /** The fingerprint every database must reach, by version: the canary's. */
  reference: { db: string; version: Version | null; fingerprint: string } | null;
  /** Refusals before anything ran (integrity problems, a set other than the one expected). */
  problems: string[];
  approvals: Array<{ by: string; at: number; wave: number | null; note: string | null }>;
  paused: boolean;
  abortRequested: { by: string; reason: string | null; compensate: boolean } | null;
  startedAt: number;
  endedAt: number | null;
  /** How many times the rollout continued as new. */
  continuedAsNew: number;
}

export interface RolloutMessageInput {
  by: string;
  note?: string;
}
export interface AbortRolloutInput extends RolloutMessageInput {
  /** Also revert every database the rollout changed. */
  compensate?: boolean;
}
export interface DatabaseMessageInput extends RolloutMessageInput {
  db: string;
}
export interface RolloutAck {
  accepted: true;
  status: RolloutStatusName;
}
