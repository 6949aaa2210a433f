/**
 * What a run says as it goes: a closed set of events. The workflow's one
 * `emit` turns each into its progress, a log line, its search attributes
 * (PgconvoyDb, PgconvoyPhase, PgconvoyVersion) and, when the run is a child,
 * a signal to its parent (`runEventSignalName`, a batch per workflow task).
 */
import type { Version } from '../core/version';
import type { RunOutcome } from './outcome';
import type { GuardCrossing, WatchSample } from './watch';

interface At {
  db: string;
  /** 1, 2, 3, ... in the order the run emitted them (signals to a parent may arrive in another). */
  seq: number;
  /** Workflow time, ms since the epoch. */
  at: number;
}

export type RunEvent = At &
  (
    | { type: 'planned'; manifestDigest: string; versionBefore: Version | null; pending: Version[] }
    | { type: 'awaiting-approval'; reason: string }
    | { type: 'approved'; by: string }
    | { type: 'locking' }
    | { type: 'backing-up' }
    | { type: 'applying'; version: Version }
    | { type: 'migration-done'; version: Version; status: 'applied' | 'skipped'; durationMs: number }
    | { type: 'verifying' }
    | { type: 'compensating' }
    /**
     * A run-level event's SQL callbacks ran (status ok) or one of them failed
     * (its error: file, statement, SQLSTATE); or, with `version`, the
     * each-migration or undo hooks that ran with that version (a failing one
     * fails the version itself).
     */
    | { type: 'hook'; event: string; version?: Version; files: string[]; durationMs: number; status: 'ok' | 'failed'; error: string | null }
    /** The run holds because its database is past a guard (its step did not start, or its statement was cancelled), or it is healthy again and goes on. */
    | { type: 'guard'; state: 'held' | 'cleared'; crossings: GuardCrossing[]; sample: WatchSample; cancelled: boolean }
    /** A step's last sample of the watch, and the guards it crossed without being stopped (a backup, a no-transaction migration). */
    | { type: 'watch'; sample: WatchSample; crossings: GuardCrossing[] }
    | { type: 'ended'; status: RunOutcome['status']; versionAfter: Version | null }
  );

export type RunEventType = RunEvent['type'];

/**
 * The signal a child run sends its parent with its events: the events of
 * one workflow task in one signal, in the order of their `seq` (an inline
 * batch of ten migrations is one signal, not twenty).
 */
export const runEventSignalName = 'pgconvoy-run-events';

/**
 * The search attributes a run keeps up to date, when they are registered on
 * the Temporal server (the dev server pgconvoy starts registers them; on
 * your own: `temporal operator search-attribute create --name PgconvoyDb --type Keyword`, and so on).
 */
export const runSearchAttributes = {
  db: { name: 'PgconvoyDb', type: 'KEYWORD' },
  phase: { name: 'PgconvoyPhase', type: 'KEYWORD' },
  version: { name: 'PgconvoyVersion', type: 'KEYWORD' },
  /** The deploy id of the rollout a run belongs to. */
  rollout: { name: 'PgconvoyRollout', type: 'KEYWORD' },
} as const;
