import { setMaxListeners } from 'node:events';
import { constants } from 'node:fs';
import { lstat, open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Stats } from 'node:fs';
import { InvalidMigrationSetError, type SetProblem } from '../core/errors';
import { defaultFileLimits, type FileLimits } from '../core/file-limits';
import type { SourceFile } from '../core/migration-set';

/** A `.sql` name in any letter case: `V2__x.SQL` is a misnamed migration, not a file to ignore. */
export const sqlExtension = /\.sql$/i;

/** What the reader needs from the file system (tests replace it to simulate a hung one). */
export interface SourceFs {
  readdir(path: string): Promise<Array<{ name: string; isDirectory(): boolean }>>;
  lstat(path: string): Promise<Stats>;
  stat(path: string): Promise<Stats>;
  open(path: string, flags: number): Promise<Pick<FileHandle, 'stat' | 'readFile' | 'close'>>;
}

export const nodeFs: SourceFs = {
  readdir: (path) => readdir(path, { withFileTypes: true }),
  lstat,
  stat,
  open: (path, flags) => open(path, flags),
};

export interface ReadOptions {
  limits?: FileLimits;
  fs?: SourceFs;
  /** Names in problems are prefixed with this (`checks/`). */
  prefix?: string;
  /** A missing directory reads as empty instead of a problem. */
  missingIsEmpty?: boolean;
}

/**
 * Reads the `.sql` files directly inside `directory`, never opening anything
 * that is not a regular file (a FIFO would block the read forever; a device
 * or socket is no migration), refusing files over `maxFileBytes` before
 * reading them, and giving up after `readTimeoutMs` for the whole directory.
 * Every problem is reported, by file name; `setDirectory` names the set in
 * the error.
 */
export async function readSqlFiles(setDirectory: string, directory: string, options: ReadOptions = {}): Promise<{ files: SourceFile[]; problems: SetProblem[] }> {
  const limits = options.limits ?? defaultFileLimits;
  const fs = options.fs ?? nodeFs;
  const prefix = options.prefix ?? '';
  const deadline = new Deadline(limits.readTimeoutMs);
  // The files being read now; a timeout names the first of them.
  const reading = new Set<string>();
  const timedOut = (): InvalidMigrationSetError => {
    const current = [...reading][0];
    return new InvalidMigrationSetError(setDirectory, [
      {
        file: current === undefined ? directory : `${prefix}${current}`,
        message:
          `reading the migration set took longer than ${limits.readTimeoutMs} ms (files.readTimeoutMs) and was given up ` +
          `${current === undefined ? 'while listing the directory' : 'while reading this file'}; is the file system hung or very slow?`,
      },
    ]);
  };
  try {
    let entries;
    try {
      entries = await deadline.race(fs.readdir(directory), timedOut);
    } catch (error) {
      if (error instanceof InvalidMigrationSetError) throw error;
      if (options.missingIsEmpty && (error as NodeJS.ErrnoException).code === 'ENOENT') return { files: [], problems: [] };
      throw new InvalidMigrationSetError(setDirectory, [{ file: directory, message: `cannot read the migration directory: ${describe(error)}` }]);
    }
    const names = entries
      .filter((entry) => !entry.isDirectory() && sqlExtension.test(entry.name))
      .map((entry) => entry.name)
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    // A few files at a time: each read is five round trips through libuv's
    // thread pool, and a history of hundreds of files is read before every step.
    const results: Array<Awaited<ReturnType<typeof readOne>>> = [];
    let next = 0;
    const reader = async () => {
      for (let i = next++; i < names.length; i = next++) {
        const name = names[i]!;
        reading.add(name);
        results[i] = await readOne(fs, join(directory, name), limits, deadline.signal);
        reading.delete(name);
      }
    };
    await deadline.race(Promise.all(Array.from({ length: Math.min(readConcurrency, names.length) }, reader)), timedOut);
    const problems: SetProblem[] = [];
    const files: SourceFile[] = [];
    names.forEach((name, i) => {
      const result = results[i]!;
      if ('problem' in result) problems.push({ file: `${prefix}${name}`, message: result.problem });
      else if (result.content) files.push({ name: `${prefix}${name}`, content: result.content });
    });
    return { files, problems };
  } finally {
    deadline.clear();
  }
}

const readConcurrency = 16;

/** The file's bytes; nothing for a directory (a sub-folder named like a file is ignored, as sub-folders are). */
async function readOne(fs: SourceFs, path: string, limits: FileLimits, signal: AbortSignal): Promise<{ content?: Buffer } | { problem: string }> {
  let info: Stats;
  let link = '';
  try {
    info = await fs.lstat(path);
    if (info.isSymbolicLink()) {
      link = 'a symbolic link to ';
      info = await fs.stat(path);
    }
  } catch (error) {
    return { problem: `cannot read file: ${describe(error)}` };
  }
  if (info.isDirectory()) return {};
  if (!info.isFile()) return { problem: notRegular(link, info) };
  if (info.size > limits.maxFileBytes) return { problem: tooLarge(info.size, limits) };
  let handle;
  try {
    // O_NONBLOCK: should the file have been replaced by a FIFO since the
    // stat, opening it returns at once instead of waiting for a writer.
    handle = await fs.open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    return { problem: `cannot read file: ${describe(error)}` };
  }
  try {
    const opened = await handle.stat();
    if (!opened.isFile()) return { problem: notRegular(link, opened) };
    if (opened.size > limits.maxFileBytes) return { problem: tooLarge(opened.size, limits) };
    const content = await handle.readFile({ signal });
    if (content.length > limits.maxFileBytes) return { problem: tooLarge(content.length, limits) };
    return { content };
  } catch (error) {
    if (signal.aborted) return {}; // the deadline passed: the caller reports it
    return { problem: `cannot read file: ${describe(error)}` };
  } finally {
    await handle.close().catch(() => undefined);
  }
}

function notRegular(link: string, info: Stats): string {
  const kind = info.isFIFO()
    ? 'a FIFO (named pipe)'
    : info.isSocket()
      ? 'a socket'
      : info.isCharacterDevice()
        ? 'a character device'
        : info.isBlockDevice()
          ? 'a block device'
          : 'not a regular file';
  return `${link}${kind}, not a regular file; pgconvoy reads only regular files (or symbolic links to them) and never opens anything else`;
}

function tooLarge(size: number, limits: FileLimits): string {
  return (
    `file is ${size} bytes (${mib(size)}), over the limit of ${limits.maxFileBytes} bytes (${mib(limits.maxFileBytes)}, setting files.maxFileBytes); ` +
    'split it into smaller migrations, or raise the limit in the config'
  );
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/** One time limit for a whole read: each step races it, and reads in progress are aborted when it passes. */
class Deadline {
  private readonly controller = new AbortController();
  private readonly expired: Promise<typeof expiredMark>;
  private timer: NodeJS.Timeout | undefined;

  constructor(ms: number) {
    // Every file read in flight listens to the signal (readConcurrency of them, and the callers'):
    // that is expected, not a leak.
    setMaxListeners(readConcurrency * 2, this.controller.signal);
    this.expired = new Promise((resolve) => {
      this.timer = setTimeout(() => {
        this.controller.abort();
        resolve(expiredMark);
      }, ms);
    });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  async race<T>(step: Promise<T>, onExpired: () => Error): Promise<T> {
    const result = await Promise.race([step, this.expired]);
    if (result === expiredMark || this.controller.signal.aborted) {
      step.catch(() => undefined); // a hung step may still fail later; nobody is listening
      throw onExpired();
    }
    return result;
  }

  clear(): void {
    clearTimeout(this.timer);
  }
}

const expiredMark = Symbol('expired');

export function describe(error: unknown): string {
  if (error instanceof Error && 'code' in error) return `${String(error.code)} (${error.message})`;
  return String(error);
}
