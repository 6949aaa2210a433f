/**
 * Everything that crosses the Temporal boundary, in one place: workflows,
 * activities and the client import these types from here and from nowhere
 * else. Pure: nothing here does I/O, so workflow code may import it.
 */
export * from './activities';
export * from './errors';
export * from './ids';
export * from './records';
export * from './run';
export type { Version } from '../core/version';
export type { RiskLevel, Finding } from '../core/risk';
export type { MigrationRisk, TableContext } from '../core/risk-context';
export type { ManifestEntry } from '../core/migration-set';
export type { AppliedEntry, Divergence } from '../core/plan';
export type { TransactionMode } from '../core/statements';
export * from './outcome';
export * from './events';
export * from './rollout';
export * from './watch';
