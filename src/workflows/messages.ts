import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { BackupPlan, PendingMigration } from '../activities';
import type { RiskLevel } from '../core/risk';
import type { Version } from '../core/version';
import type { GatedMigration } from './gates';

export type Phase =
  | 'planning'
  | 'awaiting-approval'
  | 'locking'
  | 'backing-up'
  | 'applying'
  | 'verifying'
  | 'compensating'
  | 'done'
  | 'failed'
  | 'cancelled';

/** On failure: `restore` from the verified backup (default), `undo` with U scripts when every applied step has one (else restore), or `halt`. */
export type FailurePolicy = 'restore' | 'undo' | 'halt';
export const failurePolicies: FailurePolicy[] = ['restore', 'undo', 'halt'];

/**
 * What may run without an explicit approval, by the risk of each pending
 * migration (with context from the live database): `safe` only low, `auto`
 * low and medium, `aggressive` everything; `dry-run` plans and stops.
 */
export type ExecutionMode = 'safe' | 'auto' | 'aggressive' | 'dry-run';
export const executionModes: ExecutionMode[] = ['safe', 'auto', 'aggressive', 'dry-run'];

export interface AppliedStep {
  version: Version;
  description: string;
  status: 'applied' | 'skipped';
  durationMs: number;
}

export interface ApprovalState {
  required: boolean;
  /** Why the run waits, in words: --require-approval and/or the risk gate. */
  reason: string | null;
  /** The migrations the execution mode does not let run without an approval. */
  gated?: GatedMigration[];
  /** Workflow time (ms since epoch) the wait began. */
  waitingSince: number | null;
  approvedBy: string | null;
  approvedAt: number | null;
  note: string | null;
}

export interface Progress {
  db: string;
  mode: ExecutionMode;
  phase: Phase;
  /** The migration being applied now, if any. */
  current: PendingMigration | null;
  pending: PendingMigration[];
  completed: AppliedStep[];
  approval: ApprovalState;
  cancelRequested: { by: string; reason: string | null } | null;
  /** Signals that did not apply (a cancel after the last migration, an approve with nothing waiting), newest last. */
  refusedSignals?: Array<{ signal: 'approve' | 'cancel'; by: string; reason: string }>;
  /** The backup the run takes before its first change, or that it takes none and why (once planned). */
  backup?: BackupPlan;
  /** Workflow time (ms since epoch) at which the run started and the current phase began. */
  startedAt: number;
  phaseStartedAt: number;
}

export const progressQuery = defineQuery<Progress>('progress');

export interface ApproveInput {
  by: string;
  note?: string;
}
export interface CancelInput {
  by: string;
  reason?: string;
}
export interface MessageAck {
  accepted: true;
  phase: Phase;
}

/** Lets a run that waits for approval go on; recorded with who approved and when. */
export const approveUpdate = defineUpdate<MessageAck, [ApproveInput]>('approve');
/** Stops a run: at once while it waits, otherwise after the migration in progress (never mid-migration). */
export const cancelUpdate = defineUpdate<MessageAck, [CancelInput]>('cancel');
/**
 * The same two as signals, for a parent workflow (which can only signal its
 * children). One logic behind both: a signal the update would refuse is
 * ignored, and `progress.refusedSignals` says why.
 */
export const approveSignal = defineSignal<[ApproveInput]>('approve-signal');
export const cancelSignal = defineSignal<[CancelInput]>('cancel-signal');

export interface MigrateDatabaseInput {
  /** Database alias; activities resolve it to a connection string. Never a URL. */
  db: string;
  /** Migration directory as the worker sees it. */
  migrationsDir: string;
  target?: Version;
  /** Apply all pending migrations in one transaction: all or none. */
  group?: boolean;
  /** Apply pending versions lower than the highest applied one. */
  allowOutOfOrder?: boolean;
  /** Default `auto`. */
  mode?: ExecutionMode;
  /** Wait for an `approve` before changing anything. */
  requireApproval?: boolean;
  /** How long to wait for approval before failing (default 24 hours). */
  approvalTimeoutMs?: number;
  /**
   * An approval given before the run starts: by a deploy service, or by a
   * rollout that was approved once for all its databases or for a wave. It
   * covers gated migrations up to `upTo` (default `high`: all) and
   * --require-approval; a migration above it still waits. Recorded like an
   * `approve` update.
   */
  approved?: { by: string; note?: string; upTo?: RiskLevel };
  /** Default `restore`. */
  onFailure?: FailurePolicy;
  /** Refuse to run unless the worker reads exactly this set (a rollout pins every database to the set it planned). */
  expect?: { manifestDigest: string };
}

/** `version` is the highest applied version after the run, null for an empty ledger. */
export type MigrateDatabaseResult =
  | { status: 'up-to-date'; db: string; manifestDigest: string; version: Version | null; applied: [] }
  | { status: 'applied'; db: string; manifestDigest: string; version: Version; applied: AppliedStep[]; approvedBy?: string; backup?: RunBackup }
  | { status: 'dry-run'; db: string; manifestDigest: string; version: Version | null; applied: []; pending: PendingMigration[]; backup?: BackupPlan }
  | { status: 'cancelled'; db: string; manifestDigest: string; version: Version | null; applied: AppliedStep[]; cancelledBy: string; reason: string | null };

/** The backup a run took before its first change, or none and why. */
export type RunBackup = { key: string } | { none: string };

/** How the ledger records a run's backup: its key, or `none: <reason>`. */
export function describeRunBackup(backup: RunBackup): string {
  return 'key' in backup ? backup.key : `none: ${backup.none}`;
}

export function databaseWorkflowId(db: string): string {
  return `pgconvoy/db/${db}`;
}
