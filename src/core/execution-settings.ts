import type { Directives } from './directives';

/**
 * How long a migration may wait and run. Lock waits are the dangerous part:
 * while a DDL statement waits for its lock, every query on that table queues
 * behind it. So each attempt waits at most `lock_timeout`, starting short and
 * growing, with a pause between attempts that lets the queue drain.
 */
export interface ExecutionSettings {
  /** lock_timeout of the first attempt. */
  lockTimeoutInitialMs: number;
  /** lock_timeout never grows past this (a file's `pgconvoy:lock-timeout` overrides it). */
  lockTimeoutMs: number;
  /** Attempts per statement (no-transaction) or per transaction before giving up. */
  lockRetryMaxAttempts: number;
  /** Pause after the first lock timeout; doubles after each, up to lockRetryMaxPauseMs. */
  lockRetryPauseMs: number;
  lockRetryMaxPauseMs: number;
  /** statement_timeout; 0 disables it. A file's `pgconvoy:statement-timeout` overrides it. */
  statementTimeoutMs: number;
}

export const defaultExecutionSettings: ExecutionSettings = {
  lockTimeoutInitialMs: 1_000,
  lockTimeoutMs: 5_000,
  lockRetryMaxAttempts: 8,
  lockRetryPauseMs: 1_000,
  lockRetryMaxPauseMs: 30_000,
  statementTimeoutMs: 30 * 60_000,
};

export interface LockAttempt {
  /** 1-based. */
  attempt: number;
  lockTimeoutMs: number;
  /** Pause before the next attempt if this one times out; null for the last. */
  pauseAfterMs: number | null;
}

/** The bounded schedule of lock attempts for one file. */
export function lockSchedule(settings: ExecutionSettings, directives?: Pick<Directives, 'lockTimeoutMs'>): LockAttempt[] {
  const max = directives?.lockTimeoutMs ?? settings.lockTimeoutMs;
  const initial = Math.min(settings.lockTimeoutInitialMs, max);
  const attempts: LockAttempt[] = [];
  for (let i = 0; i < settings.lockRetryMaxAttempts; i++) {
    const last = i === settings.lockRetryMaxAttempts - 1;
    attempts.push({
      attempt: i + 1,
      lockTimeoutMs: Math.min(initial * 2 ** i, max),
      pauseAfterMs: last ? null : Math.min(settings.lockRetryPauseMs * 2 ** i, settings.lockRetryMaxPauseMs),
    });
  }
  return attempts;
}

export function statementTimeoutFor(settings: ExecutionSettings, directives?: Pick<Directives, 'statementTimeoutMs'>): number {
  return directives?.statementTimeoutMs ?? settings.statementTimeoutMs;
}
