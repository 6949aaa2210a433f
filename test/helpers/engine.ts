import { buildMigrationSet } from '../../src/core/migration-set';
import { defaultExecutionSettings, type ExecutionSettings } from '../../src/core/execution-settings';
import { prepareMigrations, type PreparedMigration } from '../../src/core/prepare';
import type { EngineContext, EngineEvent } from '../../src/db/execute';

/** Parses an in-memory migration set, as the activities do from disk. */
export async function prepared(files: Record<string, string>): Promise<PreparedMigration[]> {
  const set = buildMigrationSet('mem', Object.entries(files).map(([name, content]) => ({ name, content: Buffer.from(content) })));
  return [...(await prepareMigrations(set)).values()];
}

/** An engine context with real sleeps whose events are kept for assertions. */
export function engineContext(settings: Partial<ExecutionSettings> = {}, runId = 'run'): EngineContext & { events: EngineEvent[] } {
  const events: EngineEvent[] = [];
  return {
    events,
    settings: { ...defaultExecutionSettings, ...settings },
    run: { workflowId: 'test', runId },
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    onEvent: (event) => events.push(event),
  };
}
