import { rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from '../../src/worker/dev-server';
import { asPostgres, postgresOwnedDir, startPrivatePostgres } from './private-postgres';
import { waitFor } from './workers';

export interface Replicated {
  primaryUrl: string;
  standbyUrl: string;
  /** The standby's name in the primary's pg_stat_replication. */
  standbyName: string;
  stop(): void;
}

/**
 * A primary of the test's own (the machine's PostgreSQL binaries) and a real
 * standby streaming from it: `pg_basebackup -R` (a standby.signal and the
 * primary_conninfo it writes), started on a port of its own, reporting its
 * positions every second. Ready once the primary sees it streaming.
 */
export async function startPrimaryWithStandby(): Promise<Replicated> {
  const primary = await startPrivatePostgres({ settings: { wal_level: 'replica', max_wal_senders: 4 } });
  const dir = postgresOwnedDir('pgconvoy-standby-');
  const data = join(dir, 'data');
  const port = await freePort();
  const standbyName = 'standby1';
  const ctl = (action: string, extra: string[] = []) =>
    asPostgres(`${primary.bin}/pg_ctl`, ['-D', data, '-l', join(dir, 'log'), '-w', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c hot_standby=on -c cluster_name=${standbyName} -c wal_receiver_status_interval=1`, ...extra, action]);
  const stop = () => {
    try {
      ctl('stop', ['-m', 'immediate']);
    } catch {
      // not started, or gone already
    } finally {
      rmSync(dir, { recursive: true, force: true });
      primary.stop();
    }
  };
  try {
    asPostgres(`${primary.bin}/pg_basebackup`, ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '-D', data, '-R', '-X', 'stream', '-c', 'fast', '--no-sync']);
    ctl('start');
    const client = new pg.Client({ connectionString: primary.url });
    await client.connect();
    try {
      await waitFor('the standby to stream', async () => ((await client.query(`SELECT 1 FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'`, [standbyName])).rowCount ? true : undefined), 30_000);
    } finally {
      await client.end();
    }
  } catch (error) {
    stop();
    throw error;
  }
  return { primaryUrl: primary.url, standbyUrl: `postgres://postgres@127.0.0.1:${port}/postgres`, standbyName, stop };
}
