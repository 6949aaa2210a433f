import type { Readable } from 'node:stream';

/**
 * Where backups live. A store only moves bytes; hashing, manifests and the
 * rule that a backup exists only once its manifest does are backup.ts's.
 */
export interface BackupStore {
  /** Human-readable location, e.g. `file:///var/backups` or `s3://bucket/prefix`. */
  readonly location: string;
  /** Writes `body` to `key`; rejects (leaving nothing usable) if the stream fails. */
  put(key: string, body: Readable, contentType: string): Promise<void>;
  get(key: string): Promise<Readable>;
  /** Keys under `prefix`, in no particular order. */
  list(prefix: string): Promise<string[]>;
  delete(key: string): Promise<void>;
  /** Releases what the store holds open (an S3 client's sockets); call it once done with the store. */
  close(): void;
}
