/** What the worker sees of a database while a run changes it, and the guards it holds a run to. */

/** One look at a database while a run changes it (a migration's or a backup's backend). */
export interface WatchSample {
  at: number;
  /** Sessions waiting for a lock the watched backend holds (pg_blocking_pids), and how long the longest of them has waited. */
  blocked: { count: number; longestWaitMs: number; pids: number[] };
  /** The longest wait for any lock in the database, whoever holds it. */
  longestLockWaitMs: number;
  /** Statements of other sessions running longer than `longQueryMs`, longest first (at most five, their text cut to 200 characters). */
  longQueries: Array<{ pid: number; durationMs: number; waiting: boolean; query: string }>;
  databaseBytes: number;
  /** Since the baseline (the run's safeguard step), when there is one. */
  growthBytes: number | null;
  /** WAL written by the whole server since the baseline (null on a standby, or without a baseline). */
  walBytes: number | null;
  /** Each standby streaming from this server: how far its replay is behind, in bytes of WAL and as the server's replay_lag. */
  replicas: Array<{ name: string; state: string; lagBytes: number; replayLagMs: number | null }>;
}

/** What later samples are measured from: the database's size and the WAL position at the first one. */
export interface WatchBaseline {
  databaseBytes: number;
  walLsn: string | null;
}

export type GuardName = 'maxReplicationLagMs' | 'maxBlockedSessions' | 'maxBlockedMs' | 'maxDatabaseGrowthBytes';

/** A guard a sample is past: its name, the sample's value and the limit (and the standby, for replication lag). */
export interface GuardCrossing {
  guard: GuardName;
  value: number;
  limit: number;
  replica?: string;
}

/** What a step that watched its database saw: its last sample and every crossing, in order. */
export interface WatchReport {
  latest: WatchSample | null;
  crossings: Array<GuardCrossing & { at: number }>;
}

/** Details of a GuardCrossed failure: a step stopped (or did not start) because a guard was crossed; the run holds, then tries again. */
export interface GuardCrossedDetails {
  db: string;
  crossings: GuardCrossing[];
  sample: WatchSample;
  guardTimeoutMs: number;
  /** Whether a running statement was cancelled (else the step had not started it). */
  cancelled: boolean;
}

export interface WaitHealthyInput {
  db: string;
  /** Gives up (healthy: false) after this long. */
  timeoutMs: number;
  baseline?: WatchBaseline;
}

export interface WaitHealthyResult {
  healthy: boolean;
  sample: WatchSample;
  crossings: GuardCrossing[];
}

/** `maxReplicationLagMs 4200 > 1000 (standby1), maxBlockedSessions 3 > 2` */
export function describeCrossings(crossings: readonly GuardCrossing[]): string {
  return crossings.map((c) => `${c.guard} ${c.value} > ${c.limit}${c.replica ? ` (${c.replica})` : ''}`).join(', ');
}

const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** A sample in one line: `blocked 2 (longest 3.1 s), lock wait 3.1 s, size 24.0 MB (+8.2 MB), WAL 40.3 MB, standby1 lag 5.2 s (12.0 MB)`. */
export function describeSample(sample: WatchSample): string {
  const parts = [
    `blocked ${sample.blocked.count}${sample.blocked.count > 0 ? ` (longest ${seconds(sample.blocked.longestWaitMs)})` : ''}`,
    `lock wait ${seconds(sample.longestLockWaitMs)}`,
    `size ${mb(sample.databaseBytes)}${sample.growthBytes !== null ? ` (${sample.growthBytes >= 0 ? '+' : '-'}${mb(Math.abs(sample.growthBytes))})` : ''}`,
    ...(sample.walBytes !== null ? [`WAL ${mb(sample.walBytes)}`] : []),
    ...sample.replicas.map((r) => `${r.name} lag ${r.replayLagMs === null ? '-' : seconds(r.replayLagMs)} (${mb(r.lagBytes)})`),
    ...(sample.longQueries.length > 0 ? [`${sample.longQueries.length} long ${sample.longQueries.length === 1 ? 'query' : 'queries'}`] : []),
  ];
  return parts.join(', ');
}
