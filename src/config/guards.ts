/** The config's watch and guards (watch, guards, databases.<alias>.guards), part of the one config in config.ts. */
import { z } from 'zod';
import type { GuardName } from '../contracts/watch';

/** How the worker looks at a database while a migration or a backup runs. */
export const watchSchema = z.strictObject({
  /** Time between two samples. */
  intervalMs: z.number().int().min(200).max(600_000).default(5_000),
  /** Another session's statement counts as long past this. */
  longQueryMs: z.number().int().min(1).default(5_000),
});
export type WatchSettings = z.output<typeof watchSchema>;

/** The limits a sample is held to; unset: not watched for. */
const limits = {
  /** The largest replay lag of any standby (pg_stat_replication.replay_lag). */
  maxReplicationLagMs: z.number().int().min(0).optional(),
  /** Sessions waiting for a lock the migration holds. */
  maxBlockedSessions: z.number().int().min(0).optional(),
  /** How long the longest of them has waited. */
  maxBlockedMs: z.number().int().min(0).optional(),
  /** Growth of the database since the run's safeguard step. */
  maxDatabaseGrowthBytes: z.number().int().min(0).optional(),
};
export const guardNames = ['maxReplicationLagMs', 'maxBlockedSessions', 'maxBlockedMs', 'maxDatabaseGrowthBytes'] as const satisfies readonly GuardName[];
export type { GuardName };

const defaultGuardTimeoutMs = 600_000;

/** Limits over the config's: a database's own, or a `when` entry's. */
const overrides = { ...limits, guardTimeoutMs: z.number().int().min(0).optional() };

export const databaseGuardsSchema = z.strictObject(overrides);

export const guardsSchema = z.strictObject({
  ...limits,
  /** A guard still crossed this long after it first was fails the run. */
  guardTimeoutMs: z.number().int().min(0).default(defaultGuardTimeoutMs),
  /** Limits for the databases whose labels include all of `labels`, applied in order over the ones above. */
  when: z.array(z.strictObject({ labels: z.record(z.string(), z.string()), ...overrides })).default([]),
});

/** One database's guards, resolved: the defaults, then each matching `when`, then its own. */
export interface Guards {
  maxReplicationLagMs?: number;
  maxBlockedSessions?: number;
  maxBlockedMs?: number;
  maxDatabaseGrowthBytes?: number;
  guardTimeoutMs: number;
}

type GuardsFile = z.output<typeof guardsSchema>;
type DatabaseGuards = z.output<typeof databaseGuardsSchema>;

/** The guards of a database with these labels and its own settings. */
export function resolveGuards(file: GuardsFile, labels: Record<string, string>, own: DatabaseGuards | undefined): Guards {
  const layers: Array<Partial<Guards>> = [file, ...file.when.filter((w) => Object.entries(w.labels).every(([k, v]) => labels[k] === v)), own ?? {}];
  const guards: Guards = { guardTimeoutMs: file.guardTimeoutMs };
  for (const layer of layers) {
    for (const name of [...guardNames, 'guardTimeoutMs'] as const) {
      const value = layer[name];
      if (value !== undefined) guards[name] = value;
    }
  }
  return guards;
}

/** The guards a database's runs are held to (none for an alias the config does not know). */
export function guardsOf(config: { guards: Record<string, Guards> }, alias: string): Guards {
  return config.guards[alias] ?? { guardTimeoutMs: defaultGuardTimeoutMs };
}
