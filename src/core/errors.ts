import { errorTypes, type ErrorType } from '../contracts/errors';

/**
 * Errors with a stable `type`, one of the table in src/contracts/errors.ts.
 * At the activity edge they become ApplicationFailures of the same type;
 * `retryable` (from that table) says whether trying again can help.
 */
export abstract class PgconvoyError extends Error {
  abstract readonly type: ErrorType;
  get retryable(): boolean {
    return errorTypes[this.type].retryable === true;
  }
  /** Facts safe to put in workflow history and on screen (no SQL text, no secrets). */
  readonly details: Record<string, unknown>;

  constructor(message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.details = details;
  }
}

export interface SetProblem {
  file: string;
  message: string;
}

/** The migration set on disk is malformed; every problem found is listed. */
export class InvalidMigrationSetError extends PgconvoyError {
  readonly type = 'InvalidMigrationSet';
  constructor(readonly directory: string, readonly problems: SetProblem[]) {
    super(
      `invalid migration set in ${directory}:\n` + problems.map((p) => `  ${p.file}: ${p.message}`).join('\n'),
      { directory, problems },
    );
  }
}

/** The files changed between planning and applying (DESIGN: the manifest digest pins a run). */
export class ManifestChangedError extends PgconvoyError {
  readonly type = 'ManifestChanged';
  constructor(readonly directory: string, readonly expected: string, readonly actual: string) {
    super(
      `migration files in ${directory} changed after the run was planned ` +
        `(planned manifest ${expected.slice(0, 12)}, now ${actual.slice(0, 12)}); start a new run`,
      { directory, expected, actual },
    );
  }
}

export class UnknownDatabaseError extends PgconvoyError {
  readonly type = 'UnknownDatabase';
  constructor(readonly alias: string, envName: string) {
    super(
      `database alias "${alias}" is not configured: add it under "databases" in the config file or set ${envName}`,
      { alias },
    );
  }
}

/**
 * A target beyond the last migration of the set: most likely a typo or the
 * wrong directory, and running "everything" instead would be a guess.
 */
export class TargetBeyondSetError extends PgconvoyError {
  readonly type = 'TargetBeyondSet';
  constructor(readonly directory: string, readonly target: string, readonly highest: string | null) {
    super(
      `target version ${target} is beyond the last migration in ${directory} ` +
        `(${highest === null ? 'the set is empty' : `version ${highest}`}); nothing was changed: ` +
        'name a version up to the last one, or leave out the target to apply everything',
      { directory, target, highest },
    );
  }
}
