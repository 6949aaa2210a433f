import { InvalidMigrationSetError, type SetProblem } from './errors';
import type { Migration, MigrationScript, MigrationSet } from './migration-set';
import { analyzeScript, type Script } from './statements';
import type { Version } from './version';

export interface PreparedScript {
  file: string;
  checksum: string;
  script: Script;
}

/** A migration whose files have been through the parser: ready to run. */
export interface PreparedMigration {
  version: Version;
  description: string;
  forward: PreparedScript;
  undo?: PreparedScript;
}

async function prepareScript(script: MigrationScript, problems: SetProblem[]): Promise<PreparedScript | undefined> {
  const result = await analyzeScript(script.sql);
  if (!result.ok) {
    for (const message of result.problems) problems.push({ file: script.file, message });
    return undefined;
  }
  return { file: script.file, checksum: script.checksum, script: result.script };
}

export interface PrepareOptions {
  /** An attempt that was given up (an activity cancelled or timed out) stops at the next file instead of parsing on. */
  signal?: AbortSignal;
}

/**
 * Parses the given migrations (default: the whole set) and collects every
 * problem before anything runs, each naming its file and line. Between
 * files it lets the event loop run (heartbeats, other activities) and stops
 * once `signal` is aborted.
 */
export async function prepareMigrations(set: MigrationSet, only?: ReadonlySet<Version>, options: PrepareOptions = {}): Promise<Map<Version, PreparedMigration>> {
  const problems: SetProblem[] = [];
  const prepared = new Map<Version, PreparedMigration>();
  const chosen: Migration[] = only ? set.migrations.filter((m) => only.has(m.version)) : set.migrations;
  const next = async () => {
    await new Promise<void>((resolve) => setImmediate(resolve));
    options.signal?.throwIfAborted();
  };
  for (const m of chosen) {
    await next();
    const forward = await prepareScript(m.forward, problems);
    if (m.undo) await next();
    const undo = m.undo ? await prepareScript(m.undo, problems) : undefined;
    if (forward) prepared.set(m.version, { version: m.version, description: m.description, forward, ...(undo ? { undo } : {}) });
  }
  if (problems.length > 0) throw new InvalidMigrationSetError(set.directory, problems);
  return prepared;
}
