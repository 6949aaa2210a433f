/**
 * Runs in a worker thread (see prepare-off-thread.ts): parses a migration
 * set and posts the result, or the problems found, back.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { InvalidMigrationSetError } from '../core/errors';
import type { MigrationSet } from '../core/migration-set';
import { prepareMigrations } from '../core/prepare';
import type { Version } from '../core/version';

const { set, only } = workerData as { set: MigrationSet; only: Version[] | null };
prepareMigrations(set, only ? new Set(only) : undefined).then(
  (prepared) => parentPort!.postMessage({ ok: true, prepared: [...prepared.entries()] }),
  (error: unknown) =>
    parentPort!.postMessage(
      error instanceof InvalidMigrationSetError
        ? { ok: false, directory: error.directory, problems: error.problems }
        : { ok: false, message: error instanceof Error ? error.message : String(error) },
    ),
);
