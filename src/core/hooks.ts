/**
 * SQL callbacks, by Flyway's names: files `hooks/<event>[__description].sql`
 * beside the migrations; several files for one event run in the order of
 * their names. They are part of the set's digest: a run refuses hook files
 * changed after it planned.
 *
 * - Run-level (beforeMigrate, afterMigrate, afterMigrateError): in a
 *   transaction of their own, with the run's lease held.
 * - Per version (beforeEachMigrate, afterEachMigrate; beforeUndo, afterUndo):
 *   in the migration's (or undo script's) transaction, before its first
 *   statement and after its last, before its ledger row, so a failing hook
 *   rolls the version back with it. A no-transaction file has no such
 *   transaction: its hooks run in one of their own just before and just
 *   after its statements.
 */
export const hookEvents = ['beforeMigrate', 'beforeEachMigrate', 'afterEachMigrate', 'afterMigrate', 'afterMigrateError', 'beforeUndo', 'afterUndo'] as const;
export type HookEvent = (typeof hookEvents)[number];

/** The events whose hooks run around each version: its migration or its undo script. */
export const versionHookEvents = ['beforeEachMigrate', 'afterEachMigrate', 'beforeUndo', 'afterUndo'] as const satisfies ReadonlyArray<HookEvent>;
export type VersionHookEvent = (typeof versionHookEvents)[number];

/** The events whose hooks run in every migration's transaction: a set with any is read whole for each version and has no migration predicted short. */
export const eachMigrationEvents = ['beforeEachMigrate', 'afterEachMigrate'] as const satisfies ReadonlyArray<VersionHookEvent>;

export interface HookScript {
  /** `hooks/<name>`, relative to the migration directory. */
  file: string;
  event: HookEvent;
  description: string;
  checksum: string;
  sql: string;
}

/** The event and description of `hooks/<event>[__description].sql`, or why the name is not one. */
export function parseHookFileName(file: string): { ok: true; event: HookEvent; description: string } | { ok: false; reason: string } {
  const name = file.replace(/^hooks\//, '');
  const match = /^([A-Za-z]+)(?:__(.+))?\.sql$/.exec(name);
  const event = hookEvents.find((e) => e === match?.[1]);
  if (!match || event === undefined) {
    const near = match ? hookEvents.find((e) => e.toLowerCase() === match[1]!.toLowerCase()) : undefined;
    return {
      ok: false,
      reason: near
        ? `a hook's event is spelled "${near}" (its case matters), got "${match![1]}"; rename the file`
        : `a hook file is named <event>[__description].sql with <event> one of ${hookEvents.join(', ')}; rename or move the file`,
    };
  }
  return { ok: true, event, description: (match[2] ?? '').replace(/_/g, ' ') };
}

/** The hooks of one event, in the order they run (by file name). */
export function hooksFor(hooks: readonly HookScript[], event: HookEvent): HookScript[] {
  return hooks.filter((h) => h.event === event).sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}
