/**
 * Bounds on reading a migration directory, so that no input can hang or
 * starve the process that reads it (a worker serving other databases too).
 */
export interface FileLimits {
  /**
   * The largest file (migration, undo script or check) pgconvoy reads. The
   * parser needs time and memory in proportion (about 1–2 s and 150 MB per
   * MiB), and a parse holds up everything else the process does.
   */
  maxFileBytes: number;
  /** How long reading the whole set (directory listing, every file, checks) may take before it is refused. */
  readTimeoutMs: number;
}

export const defaultFileLimits: FileLimits = {
  maxFileBytes: 4 * 1024 * 1024,
  readTimeoutMs: 30_000,
};
