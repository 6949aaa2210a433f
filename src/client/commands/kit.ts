import { Option, type Command } from 'commander';
import { hostname, userInfo } from 'node:os';
import { aliasPattern, type Config } from '../../config/config';
import { parseVersion, type Version } from '../../core/version';
import type { Logger } from '../../logging/logger';
import type { DatabaseReader, PgconvoyClient } from '../api';
import type { ExitCode } from '../exit-codes';
import type { Session } from '../session';

export interface GlobalOptions {
  config?: string;
  migrations?: string;
  json?: boolean;
}

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/** Bad usage: the message is printed as it is, exit 2. */
export class UsageError extends Error {}

export function parseAlias(value: string): string {
  if (!aliasPattern.test(value)) throw new UsageError(`invalid database alias "${value}": use lower-case letters, digits, "_", "." or "-"`);
  return value;
}

export function versionArgument(what: string, value: string | undefined): Version | undefined {
  if (value === undefined) return undefined;
  const version = parseVersion(value);
  if (version === undefined) throw new UsageError(`${what} must be a version: a whole number ≥ 0, got "${value}"`);
  return version;
}

/** Who is at the keyboard, for the approval record. */
export function whoAmI(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `unknown@${hostname()}`;
  }
}

export const dbOption = () => new Option('-d, --db <alias>', 'database alias').argParser(parseAlias).makeOptionMandatory();


export interface CommandContext {
  global: GlobalOptions;
  config: Config;
  logger: Logger;
}

/** What every command gets from the program: its options, output, and the way to Temporal. */
export interface CliKit {
  program: Command;
  io: Io;
  cwd: string;
  /** Global options and the config, read when the command runs (after parsing). */
  context(defaultLogLevel?: string, defaultFormat?: 'json' | 'human'): CommandContext;
  /** JSON with --json, the human text otherwise. */
  print(global: GlobalOptions, json: unknown, human: string): void;
  /**
   * Runs a read of a database: embedded and settled (answersWithoutServer),
   * here without starting the dev server; otherwise, or when that read
   * fails (its failure is then reported as a worker reports it), through
   * Temporal. A failure becomes its report and exit code.
   */
  readDatabase(c: CommandContext, fn: (reader: DatabaseReader) => Promise<ExitCode>, options?: { attach?: boolean }): Promise<ExitCode>;
  /** Runs a command against Temporal; a failure becomes its report and exit code. */
  viaTemporal(c: CommandContext, fn: (pgconvoy: PgconvoyClient, session: Session) => Promise<ExitCode>, options?: { attach?: boolean; handlesInterrupts?: boolean }): Promise<ExitCode>;
  reportFailure(global: GlobalOptions, error: unknown): ExitCode;
  /** What the process exits with; the command's action sets it. */
  exitCode: ExitCode;
}
