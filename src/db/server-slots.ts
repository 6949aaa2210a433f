/**
 * What a connection is for, as the cap sees it. A `step` holds its
 * connection for as long as a step runs (a migration may run for hours); a
 * `short` one holds it for a statement or two: a lease renewal, a watch
 * sample, a cancel. Steps never take the last slots of a server, so a
 * lease renewal or a guard's cancel never waits behind a migration.
 */
export type SlotKind = 'step' | 'short';

/** The server a connection string points at: host and port (a socket directory in `?host=` counts as the host). */
export function serverOf(url: string): string {
  try {
    const parsed = new URL(url);
    const host = parsed.searchParams.get('host') ?? decodeURIComponent(parsed.hostname);
    return `${host || 'localhost'}:${parsed.searchParams.get('port') ?? (parsed.port || '5432')}`;
  } catch {
    return url;
  }
}

interface Waiter {
  kind: SlotKind;
  grant: (release: () => void) => void;
}

/** How many of a server's slots only short connections may take: a tenth, at least one. */
export const reservedFor = (cap: number): number => Math.max(1, Math.floor(cap / 10));

/**
 * A cap on the connections this process has open to each PostgreSQL
 * server at once, across every database on it: a worker with
 * `worker.maxConnectionsPerServer` C never holds more than C connections
 * to a server, whatever a rollout's `maxParallel`. A connection past the
 * cap waits (FIFO, short ones first) for one to close; the activity
 * heartbeats meanwhile, and its cancellation ends the wait. Before
 * waiting, idle kept connections to the server are closed (`reclaim`).
 * No cap until `configure` sets one: a CLI command opens what it needs.
 */
export class ServerSlots {
  private cap = Number.POSITIVE_INFINITY;
  private readonly open = new Map<string, number>();
  private readonly queues = new Map<string, Waiter[]>();
  private readonly reclaimers = new Set<(server: string) => boolean>();
  private readonly peak = new Map<string, number>();

  configure(cap: number | undefined): void {
    this.cap = cap ?? Number.POSITIVE_INFINITY;
  }

  /** A keeper of idle connections: asked to close one to `server`; true if it did. */
  onPressure(reclaim: (server: string) => boolean): () => void {
    this.reclaimers.add(reclaim);
    return () => this.reclaimers.delete(reclaim);
  }

  /** Whether a connection to `server` waits for a slot: a connection to it that is done with should close, not be kept idle. */
  waited(server: string): boolean {
    return this.queue(server).length > 0;
  }

  /** Connections open to `server` now, and the most at once since the process started. */
  usage(server: string): { open: number; peak: number } {
    return { open: this.open.get(server) ?? 0, peak: this.peak.get(server) ?? 0 };
  }

  /** Waits for a slot on `server`; the returned release is idempotent. */
  async acquire(server: string, kind: SlotKind, signal?: AbortSignal): Promise<() => void> {
    const ahead = this.queue(server).some((w) => kind === 'step' || w.kind === 'short');
    if (!ahead && this.fits(server, kind)) return this.take(server);
    signal?.throwIfAborted();
    for (const reclaim of this.reclaimers) if (reclaim(server)) break;
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        kind,
        grant: (release) => {
          signal?.removeEventListener('abort', abandon);
          resolve(release);
        },
      };
      const abandon = () => {
        const queue = this.queue(server);
        const at = queue.indexOf(waiter);
        if (at >= 0) queue.splice(at, 1);
        reject(signal?.reason instanceof Error ? signal.reason : new Error('the wait for a connection was abandoned'));
      };
      signal?.addEventListener('abort', abandon, { once: true });
      this.queue(server).push(waiter);
      this.wake(server);
    });
  }

  private fits(server: string, kind: SlotKind): boolean {
    const open = this.open.get(server) ?? 0;
    const limit = kind === 'short' || !Number.isFinite(this.cap) ? this.cap : this.cap - reservedFor(this.cap);
    return open < limit;
  }

  private take(server: string): () => void {
    const open = (this.open.get(server) ?? 0) + 1;
    this.open.set(server, open);
    if (open > (this.peak.get(server) ?? 0)) this.peak.set(server, open);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.open.set(server, (this.open.get(server) ?? 1) - 1);
      this.wake(server);
    };
  }

  /** Grants what fits, short waiters before steps, each kind in arrival order. */
  private wake(server: string): void {
    const queue = this.queue(server);
    for (const kind of ['short', 'step'] as const) {
      for (let i = 0; i < queue.length && this.fits(server, kind); ) {
        const waiter = queue[i]!;
        if (waiter.kind !== kind) {
          i += 1;
          continue;
        }
        queue.splice(i, 1);
        waiter.grant(this.take(server));
      }
    }
  }

  private queue(server: string): Waiter[] {
    let queue = this.queues.get(server);
    if (!queue) {
      queue = [];
      this.queues.set(server, queue);
    }
    return queue;
  }
}

/** The process's cap: one worker per process (createWorker configures it). */
export const serverSlots = new ServerSlots();
