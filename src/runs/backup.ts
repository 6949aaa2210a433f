import type { BackupInput, BackupResult, RestoreInput } from '../contracts';
import { applyRetention, backupDatabase, BackupCorruptError, drillRestore, listBackups, restoreDatabase, verifyBackup } from '../backup/backup';
import { openStore } from '../backup/open-store';
import { backupToolsFor, checkPgTools } from '../backup/pg-tools';
import { withClient } from '../db/connection';
import { checkFence } from '../db/lease';
import { serverOf, serverSlots } from '../db/server-slots';
import { readLedgerState } from '../db/ledger';
import { targetOf, type RunDeps } from './deps';
import { Watcher } from './watch';

/** pg_dump to the configured store, verified by a full read-through, then older backups beyond `keep` deleted. */
export async function takeBackup(deps: RunDeps, input: BackupInput): Promise<BackupResult> {
  const { config, logger } = deps;
  const db = targetOf(config, input.db);
  const { serverVersion, ledgerVersion, tools } = await withClient(db, async (client) => {
    const { server, tools } = await backupToolsFor(client, input.db, config.backup.pgBinDir);
    // The plan checked this already; a worker with other tools may run this step.
    await checkPgTools(tools, server);
    const ledger = await readLedgerState(client);
    return { serverVersion: server.version, ledgerVersion: ledger.applied.at(-1)?.version ?? ledger.baseline, tools };
  });
  const store = await openStore(config.backup);
  try {
    let tables = input.tables;
    if (!tables && input.touched && config.backup.scope === 'touched-tables') {
      // Only tables that exist now: the run may create the others.
      tables = await withClient(db, async (client) => {
        const existing: string[] = [];
        for (const t of input.touched!) if ((await client.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [t])).rows[0]?.ok) existing.push(t);
        return existing;
      });
      if (tables.length === 0) tables = undefined;
    }
    // The watch looks on while pg_dump reads (its crossings are reported: a dump holds no lock that blocks writers).
    // pg_dump's connection is one of the worker's to the server: it waits for a slot under the cap like a step's own.
    const slot = await serverSlots.acquire(serverOf(db.url), 'step', deps.signal);
    const watcher = new Watcher(deps, input.db, input.watchBaseline ? { baseline: input.watchBaseline } : {}).start();
    const manifest = await backupDatabase({ alias: input.db, url: db.url, store, serverVersion, ledgerVersion, tools, ...(tables ? { tables } : {}) }).finally(() => {
      slot();
      return watcher.stop();
    });
    logger.info({ event: 'backup.taken', db: input.db, id: manifest.id, bytes: manifest.bytes, location: store.location });
    const verified = await verifyBackup(store, manifest, tools);
    logger.info({ event: 'backup.verified', db: input.db, id: manifest.id });
    let drill: string | undefined;
    if (config.backup.drill) {
      const result = await withClient(db, (client) => drillRestore({ alias: input.db, url: db.url, store, manifest, tools }, (sql) => client.query(sql)));
      drill = `restored into ${result.database} in ${Math.round(result.ms)} ms`;
      logger.info({ event: 'backup.drilled', db: input.db, id: manifest.id, ms: Math.round(result.ms) });
    }
    const deleted = await applyRetention(store, input.db, config.backup.keep);
    const watch = watcher.report;
    return { manifest, location: store.location, verified, deleted, ...(drill ? { drill } : {}), ...(watch.latest ? { watch } : {}) };
  } finally {
    store.close(); // an S3 client's sockets end with the step
  }
}

/** Puts the backup taken before the run back, under the run's lease. */
export async function restoreFromBackup(deps: RunDeps, input: RestoreInput): Promise<void> {
  const { config, logger } = deps;
  const db = targetOf(config, input.db);
  const store = await openStore(config.backup);
  try {
    const manifest = (await listBackups(store, input.db)).find((m) => m.key === input.backupKey);
    if (!manifest) throw new BackupCorruptError(`backup ${input.backupKey} of "${input.db}" is gone from ${store.location}`, { key: input.backupKey });
    await withClient(db, async (client) => {
      await checkFence(client, { alias: input.db, token: input.leaseToken });
      const { tools } = await backupToolsFor(client, input.db, config.backup.pgBinDir);
      await restoreDatabase(
        {
          tools,
          alias: input.db,
          url: db.url,
          store,
          manifest,
          // A cancelled or timed-out attempt rolls its restore back instead of racing the next one.
          ...(deps.signal ? { signal: deps.signal } : {}),
          lockTimeoutMs: config.execution.lockTimeoutMs,
          fenceToken: input.leaseToken,
          onTerminate: (sessions) =>
            logger.warn({ event: 'restore.terminating_sessions', db: input.db, sessions }, `terminating ${sessions.length} other session(s) of "${input.db}" before restoring backup ${manifest.id}`),
        },
        async (sql) => (await client.query<Record<string, unknown>>(sql)).rows,
      );
    });
    logger.warn({ event: 'compensation.restored', db: input.db, backup: manifest.id });
  } finally {
    store.close();
  }
}
