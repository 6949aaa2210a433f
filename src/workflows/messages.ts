import { defineQuery } from '@temporalio/workflow';
import type { ManifestEntry } from '../core/migration-set';
import type { Version } from '../core/version';

export type Phase = 'planning' | 'applying' | 'done' | 'failed';

export interface AppliedStep {
  version: Version;
  description: string;
  status: 'applied' | 'skipped';
  durationMs: number;
}

export interface Progress {
  db: string;
  phase: Phase;
  /** The migration being applied now, if any. */
  current: ManifestEntry | null;
  pending: ManifestEntry[];
  completed: AppliedStep[];
  /** Workflow time (ms since epoch) at which the run started and each phase began. */
  startedAt: number;
  phaseStartedAt: number;
}

export const progressQuery = defineQuery<Progress>('progress');

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
}

/** `version` is the highest applied version after the run, null for an empty ledger. */
export type MigrateDatabaseResult =
  | { status: 'up-to-date'; db: string; manifestDigest: string; version: Version | null; applied: [] }
  | { status: 'applied'; db: string; manifestDigest: string; version: Version; applied: AppliedStep[] };

export function databaseWorkflowId(db: string): string {
  return `pgconvoy/db/${db}`;
}
