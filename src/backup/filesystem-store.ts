import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BackupStore } from './store';

/** Backups as files under one directory (the default: .pgconvoy/backups). */
export class FilesystemStore implements BackupStore {
  readonly location: string;
  constructor(private readonly root: string) {
    this.location = `file://${root}`;
  }

  /** Nothing is held open between calls. */
  close(): void {}

  private path(key: string): string {
    return join(this.root, ...key.split('/'));
  }

  async put(key: string, body: Readable): Promise<void> {
    const path = this.path(key);
    await mkdir(dirname(path), { recursive: true });
    // Written under a temporary name and renamed when complete: a reader never sees half a file.
    const partial = `${path}.partial`;
    try {
      await pipeline(body, createWriteStream(partial));
      await rename(partial, path);
    } catch (error) {
      await rm(partial, { force: true });
      throw error;
    }
  }

  get(key: string): Promise<Readable> {
    const stream = createReadStream(this.path(key));
    return new Promise((resolve, reject) => {
      stream.once('open', () => resolve(stream));
      stream.once('error', reject);
    });
  }

  async list(prefix: string): Promise<string[]> {
    const base = this.path(prefix);
    const out: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw error;
      }
      for (const e of entries) {
        const full = join(dir, e.name);
        if (e.isDirectory()) await walk(full);
        else if (!e.name.endsWith('.partial')) out.push(relative(this.root, full).split(sep).join('/'));
      }
    };
    await walk(base);
    return out;
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }
}
