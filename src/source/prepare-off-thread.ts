import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { InvalidMigrationSetError, type SetProblem } from '../core/errors';
import type { MigrationSet } from '../core/migration-set';
import { prepareMigrations, type PreparedMigration, type PrepareOptions } from '../core/prepare';
import type { Version } from '../core/version';

/**
 * Below this many bytes of SQL a set is parsed on the calling thread: a few
 * milliseconds, less than starting a thread. Above it (a seed file of
 * megabytes takes seconds to parse) it is parsed in a worker thread, so the
 * worker's event loop keeps heartbeating and serving other activities; only
 * receiving the parse trees back blocks it, for about a third of the parse.
 */
export const offThreadBytes = 256 * 1024;

type ThreadAnswer = { ok: true; prepared: Array<[Version, PreparedMigration]> } | { ok: false; directory?: string; problems?: SetProblem[]; message?: string };

/**
 * prepareMigrations, off the event loop for large sets. An aborted signal
 * (the activity was cancelled or timed out) terminates the thread at once:
 * nothing keeps parsing for an attempt that was given up.
 */
export async function prepareOffThread(set: MigrationSet, only?: ReadonlySet<Version>, options: PrepareOptions = {}): Promise<Map<Version, PreparedMigration>> {
  const chosen = only ? set.migrations.filter((m) => only.has(m.version)) : set.migrations;
  const bytes = chosen.reduce((sum, m) => sum + m.forward.sql.length + (m.undo?.sql.length ?? 0), 0);
  if (bytes < offThreadBytes) return prepareMigrations(set, only, options);
  options.signal?.throwIfAborted();

  const worker = new Worker(join(__dirname, 'prepare-thread.js'), {
    workerData: { set: { ...set, migrations: chosen }, only: only ? [...only] : null },
  });
  try {
    const answer = await new Promise<ThreadAnswer>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the parser thread exited with code ${code} before answering`)));
      options.signal?.addEventListener('abort', () => reject(options.signal!.reason instanceof Error ? options.signal!.reason : new Error('the parse was given up')), { once: true });
    });
    if (answer.ok) return new Map(answer.prepared);
    if (answer.problems) throw new InvalidMigrationSetError(answer.directory ?? set.directory, answer.problems);
    throw new Error(answer.message ?? 'the parser thread failed');
  } finally {
    await worker.terminate();
  }
}
