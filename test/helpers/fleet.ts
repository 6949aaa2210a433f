import type { Client } from '@temporalio/client';
import type { Config } from '../../src/config/config';
import { databaseWorkflowId, type RolloutInput, type RolloutStatus, type RolloutStrategy } from '../../src/contracts';
import { getRollout, startRollout } from '../../src/client/rollout';
import { createTestDatabase, type TestDatabase } from './database';
import { writeMigrations } from './migrations';
import { testConfig } from './temporal';
import { waitFor } from './workers';

export interface Fleet {
  dbs: Map<string, TestDatabase>;
  aliases: string[];
  set: { dir: string; remove(): void };
  config: Config;
}

/** `n` databases (aliases `<prefix>-01` ...), one migration set, a config that knows them all (with `labels`). */
export async function fleetFixture(
  t: { after(fn: () => unknown): void },
  n: number,
  files: Record<string, string>,
  options: { prefix?: string; labels?: (i: number) => Record<string, string>; config?: Partial<Config> } = {},
): Promise<Fleet> {
  const prefix = options.prefix ?? 'fleet';
  const aliases = Array.from({ length: n }, (_, i) => `${prefix}-${String(i + 1).padStart(2, '0')}`);
  const dbs = new Map<string, TestDatabase>();
  // A few at a time: CREATE DATABASE copies the template, and too many at once only queue.
  for (let i = 0; i < n; i += 5) {
    const made = await Promise.all(aliases.slice(i, i + 5).map(async (alias) => [alias, await createTestDatabase()] as const));
    for (const [alias, db] of made) {
      dbs.set(alias, db);
      t.after(() => db.drop());
    }
  }
  const set = writeMigrations(files);
  t.after(() => set.remove());
  const config = testConfig({
    ...options.config,
    databases: Object.fromEntries(aliases.map((a) => [a, dbs.get(a)!.url])),
    labels: Object.fromEntries(aliases.map((a, i) => [a, options.labels?.(i) ?? {}])),
    migrationsDir: set.dir,
  });
  return { dbs, aliases, set, config };
}

export const defaultStrategy: RolloutStrategy = { canary: { count: 1 }, bakeMs: 0, waveSize: { percent: 25 }, maxParallel: 4, maxFailures: { count: 1 }, onFailure: 'halt', approveWaves: false };

export function rolloutInput(fleet: Fleet, deployId: string, overrides: Omit<Partial<RolloutInput>, 'strategy'> & { strategy?: Partial<RolloutStrategy> } = {}): RolloutInput {
  return { deployId, migrationsDir: fleet.config.migrationsDir, targets: fleet.aliases, ...overrides, strategy: { ...defaultStrategy, ...overrides.strategy } };
}

/** Starts the rollout and waits for its result. */
export async function runRollout(client: Client, config: Config, input: RolloutInput): Promise<RolloutStatus> {
  const { handle } = await startRollout({ client, taskQueue: config.temporal.taskQueue }, input);
  return handle.result();
}

/** Waits until the rollout's status satisfies `check`. */
export async function rolloutReaches(client: Client, config: Config, deployId: string, what: string, check: (s: RolloutStatus) => boolean, timeoutMs = 60_000): Promise<RolloutStatus> {
  return waitFor(what, async () => {
    const s = await getRollout({ client, taskQueue: config.temporal.taskQueue }, deployId).catch(() => undefined);
    return s && check(s) ? s : undefined;
  }, timeoutMs);
}

/** Each database's child runs of the rollout, as [start, close] in ms, from Temporal's own record of them. */
export async function childSpans(client: Client, aliases: string[]): Promise<Map<string, { start: number; close: number }>> {
  const spans = new Map<string, { start: number; close: number }>();
  for (const alias of aliases) {
    const d = await client.workflow.getHandle(databaseWorkflowId(alias)).describe().catch(() => undefined);
    if (d?.closeTime) spans.set(alias, { start: d.startTime.getTime(), close: d.closeTime.getTime() });
  }
  return spans;
}

/** The most spans open at one instant. */
export function maxOverlap(spans: Iterable<{ start: number; close: number }>): number {
  const points = [...spans].flatMap((s) => [[s.start, 1] as const, [s.close, -1] as const]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let open = 0;
  let most = 0;
  for (const [, delta] of points) most = Math.max(most, (open += delta));
  return most;
}

/** The schema's fingerprint, read as the worker reads it. */
export async function schemaFingerprint(db: TestDatabase): Promise<string> {
  const { withClient } = await import('../../src/db/connection');
  const { fingerprint } = await import('../../src/db/fingerprint');
  return withClient({ alias: db.name, url: db.url }, async (client) => (await fingerprint(client)).sha256);
}

/** The highest applied version in the database's ledger, or null. */
export async function ledgerVersion(db: TestDatabase): Promise<string | null> {
  const exists = (await db.query<{ t: string | null }>(`SELECT to_regclass('pgconvoy.history')::text AS t`)).rows[0]?.t;
  if (!exists) return null;
  const row = (await db.query<{ v: string | null }>(`SELECT max(version)::text AS v FROM pgconvoy.history WHERE status = 'applied'`)).rows[0];
  return row?.v ?? null;
}
