/** Exit codes of the CLI; scripts may rely on them. */
export const ExitCode = {
  /** Migrations applied, or nothing to apply. */
  ok: 0,
  /** A migration failed; the failure report says where. */
  failed: 1,
  /** The migration set, the config or the command line is wrong; nothing ran. */
  badInput: 2,
  /** A service (Temporal, PostgreSQL) could not be reached; nothing ran. */
  unavailable: 3,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

const badInputTypes = new Set([
  'InvalidMigrationSet',
  'InvalidConfig',
  'UnknownDatabase',
  'IntegrityCheckFailed',
  'ChecksumMismatch',
  'ManifestChanged',
]);

export function exitCodeForFailure(type: string | undefined): ExitCode {
  if (type !== undefined && badInputTypes.has(type)) return ExitCode.badInput;
  if (type === 'DatabaseUnavailable' || type === 'DevServerFailed') return ExitCode.unavailable;
  return ExitCode.failed;
}
