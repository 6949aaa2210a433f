/**
 * SQL callbacks, by Flyway's names: files `hooks/<event>[__description].sql`
 * beside the migrations. The run-level hooks beforeMigrate, afterMigrate and
 * afterMigrateError run in a transaction of their own with the run's lease
 * held; several files for one event run in the order of their names. They
 * are part of the set's digest: a run refuses hook files changed after it
 * planned. Flyway's other events (beforeEachMigrate, afterEachMigrate,
 * beforeUndo, afterUndo) are known by name and refused until runs call them.
 */
export const hookEvents = ['beforeMigrate', 'beforeEachMigrate', 'afterEachMigrate', 'afterMigrate', 'afterMigrateError', 'beforeUndo', 'afterUndo'] as const;
export type HookEvent = (typeof hookEvents)[number];

/** The events whose hooks a run calls now; a file for another is refused by name, never ignored. */
export const supportedHookEvents: ReadonlyArray<HookEvent> = ['beforeMigrate', 'afterMigrate', 'afterMigrateError'];

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
  if (!supportedHookEvents.includes(event)) {
    return { ok: false, reason: `${event} hooks are not run by this version of pgconvoy (only ${supportedHookEvents.join(', ')} are): remove or rename the file rather than have it ignored` };
  }
  return { ok: true, event, description: (match[2] ?? '').replace(/_/g, ' ') };
}

/** The hooks of one event, in the order they run (by file name). */
export function hooksFor(hooks: readonly HookScript[], event: HookEvent): HookScript[] {
  return hooks.filter((h) => h.event === event).sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
}
