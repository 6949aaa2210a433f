import { randomUUID } from 'node:crypto';
import { PgconvoyError } from '../core/errors';
import type { Client, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { SearchAttributePair } from '@temporalio/common';
import type { backupDatabase, changeLedger as changeLedgerWorkflow, inspectDatabase, migrateDatabase, revertDatabase } from '../workflows';
import { temporalClient } from './temporal';
import {
  backupWorkflowId,
  databaseWorkflowId,
  dryRunWorkflowId,
  inspectWorkflowId,
  runSearchAttributes,
  type ApproveInput,
  type BackupInput,
  type BackupResult,
  type CancelInput,
  type ChangeLedgerInput,
  type DatabaseStatus,
  type InspectDatabaseInput,
  type LedgerChangeResult,
  type MessageAck,
  type MigrateDatabaseInput,
  type MigrateDatabaseResult,
  type Progress,
  type RevertDatabaseInput,
  type RevertDatabaseResult,
  type WatchSample,
} from '../contracts';

/** The workflow's query and updates, loaded with the workflow library only by the commands that send them. */
const messages = () => import('../workflows/messages');

/**
 * The trigger side, for deploy services and the CLI. Inputs carry database
 * aliases, never connection strings: workflow history is readable by anyone
 * with access to the Temporal UI.
 */
export interface PgconvoyClient {
  client: Client;
  taskQueue: string;
}

/** Another run of the database is going with options other than the ones asked for: it is not adopted. */
export class RunConflictError extends PgconvoyError {
  readonly type = 'RunConflict';
}

/** The options that make a run what it is; attaching to a run is only right when they are the same. */
function runOptions(input: MigrateDatabaseInput): Record<string, unknown> {
  return {
    migrationsDir: input.migrationsDir,
    target: input.target ?? null,
    group: input.group ?? false,
    allowOutOfOrder: input.allowOutOfOrder ?? false,
    mode: input.mode ?? 'auto',
    onFailure: input.onFailure ?? 'restore',
    requireApproval: input.requireApproval ?? false,
  };
}

const registered = new WeakMap<Client, Promise<boolean>>();

/**
 * The run's search attributes at its start (PgconvoyDb), when the server
 * has them registered; the run keeps PgconvoyPhase and PgconvoyVersion up
 * to date only then. Asked once per client: a server without them (or a
 * caller not allowed to list them) gets runs without search attributes,
 * never runs that fail on them.
 */
async function searchAttributesFor(client: Client, db: string): Promise<{ typedSearchAttributes?: SearchAttributePair[] }> {
  return (await searchAttributesRegistered(client)) ? { typedSearchAttributes: [{ key: runSearchAttributes.db, value: db }] } : {};
}

/** Whether the server has pgconvoy's search attributes registered (asked once per client). */
export async function searchAttributesRegistered(client: Client): Promise<boolean> {
  let known = registered.get(client);
  if (known === undefined) {
    known = client.connection.operatorService.listSearchAttributes({ namespace: client.options.namespace }).then(
      (listed) => Object.values(runSearchAttributes).every((key) => listed.customAttributes?.[key.name] !== undefined),
      () => false,
    );
    registered.set(client, known);
  }
  return known;
}

/**
 * Starts the migration of one database, or attaches to the one already
 * running for it with the same options: the workflow id is the database, so
 * Temporal itself guarantees one migration per database at a time. A run
 * with other options (another mode, target, set, ...) is never passed off as
 * this one: that is refused. A dry run changes nothing and takes an id of its
 * own, so it neither blocks nor is mistaken for a real run.
 */
export async function startMigration(
  { client, taskQueue }: PgconvoyClient,
  input: MigrateDatabaseInput,
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof migrateDatabase>> {
  if (input.mode === 'dry-run') {
    return client.workflow.start<typeof migrateDatabase>('migrateDatabase', {
      workflowId: dryRunWorkflowId(input.db, randomUUID()),
      taskQueue,
      args: [input],
      ...(await searchAttributesFor(client, input.db)),
    });
  }
  const request = randomUUID();
  const options = runOptions(input);
  const handle = await client.workflow.start<typeof migrateDatabase>('migrateDatabase', {
    workflowId: databaseWorkflowId(input.db),
    taskQueue,
    args: [input],
    memo: { request, options },
    ...(await searchAttributesFor(client, input.db)),
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
  });
  const memo = (await handle.describe()).memo ?? {};
  if (memo.request === request) return handle;
  const theirs = (memo.options ?? {}) as Record<string, unknown>;
  const differing = Object.keys(options).filter((k) => JSON.stringify(options[k]) !== JSON.stringify(theirs[k] ?? null));
  if (differing.length > 0) {
    const show = (v: unknown) => (v === null || v === undefined ? 'none' : JSON.stringify(v).replace(/^"(.*)"$/, '$1'));
    throw new RunConflictError(
      `a migration of "${input.db}" is already running (workflow ${handle.workflowId}, run ${handle.firstExecutionRunId}) with other options: ` +
        differing.map((k) => `${k} ${show(theirs[k])} there, ${show(options[k])} here`).join('; ') +
        `; nothing was started. Wait for it (pgconvoy status --db ${input.db} --watch) or cancel it (pgconvoy cancel --db ${input.db}), then run again`,
      { db: input.db, workflowId: handle.workflowId, runId: handle.firstExecutionRunId, differing },
    );
  }
  return handle;
}

export async function migrate(pgconvoy: PgconvoyClient, input: MigrateDatabaseInput): Promise<MigrateDatabaseResult> {
  const handle = await startMigration(pgconvoy, input);
  return handle.result();
}

/**
 * `pgconvoy undo`: undoes applied versions with their undo scripts and
 * proves the result. It takes the database's workflow id, so it is refused
 * (WorkflowExecutionAlreadyStartedError) while a migration runs; a dry run
 * takes an id of its own.
 */
export async function revert({ client, taskQueue }: PgconvoyClient, input: RevertDatabaseInput): Promise<RevertDatabaseResult> {
  return client.workflow.execute<typeof revertDatabase>('revertDatabase', {
    workflowId: input.mode === 'dry-run' ? dryRunWorkflowId(input.db, randomUUID()) : databaseWorkflowId(input.db),
    taskQueue,
    args: [input],
    workflowIdConflictPolicy: 'FAIL',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    ...(await searchAttributesFor(client, input.db)),
  });
}

/**
 * baseline, mark-applied or import. It takes the database's workflow id, so
 * it is refused (WorkflowExecutionAlreadyStartedError) while a migration runs.
 */
export async function changeLedger({ client, taskQueue }: PgconvoyClient, input: ChangeLedgerInput): Promise<LedgerChangeResult> {
  return client.workflow.execute<typeof changeLedgerWorkflow>('changeLedger', {
    workflowId: databaseWorkflowId(input.db),
    taskQueue,
    args: [input],
    workflowIdConflictPolicy: 'FAIL',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
  });
}

/** Ledger, plan and integrity problems of one database, read by a worker. */
export async function inspect(
  { client, taskQueue }: PgconvoyClient,
  input: { db: string; migrationsDir: string; historyLast?: number; allowOutOfOrder?: boolean },
): Promise<DatabaseStatus> {
  return client.workflow.execute<typeof inspectDatabase>('inspectDatabase', {
    workflowId: inspectWorkflowId(input.db, randomUUID()),
    taskQueue,
    args: [input],
  });
}

/** What the read commands ask about a database: its plan and ledger, and the run in progress (null: none). */
export interface DatabaseReader {
  inspect(input: InspectDatabaseInput): Promise<DatabaseStatus>;
  running(db: string): Promise<Progress | null>;
}

/** The reads through Temporal: a worker reads the database, Temporal says what runs. */
export function readerThrough(pgconvoy: PgconvoyClient): DatabaseReader {
  return { inspect: (input) => inspect(pgconvoy, input), running: (db) => runningProgress(pgconvoy, db) };
}

/** Progress of the migration running for `db`, or null when none runs. */
export async function runningProgress({ client }: PgconvoyClient, db: string): Promise<Progress | null> {
  const handle = client.workflow.getHandle(databaseWorkflowId(db));
  try {
    const description = await handle.describe();
    if (description.status.name !== 'RUNNING') return null;
    const { progressQuery } = await messages();
    const progress = await handle.query(progressQuery);
    // The running step's latest sample is in its heartbeat; the workflow hears of one only when the step ends.
    const live = liveSample(description.raw.pendingActivities ?? [], client.options.loadedDataConverter.payloadConverter);
    return live && live.at > (progress.watch?.at ?? 0) ? { ...progress, watch: live } : progress;
  } catch (error) {
    if (error instanceof temporalClient().WorkflowNotFoundError) return null;
    throw error;
  }
}

/** The newest watch sample in the heartbeats of a run's running steps (a migration's, a backup's, a hold's). */
function liveSample(activities: Array<{ heartbeatDetails?: { payloads?: unknown[] | null } | null }>, converter: { fromPayload<T>(payload: never): T }): WatchSample | undefined {
  let newest: WatchSample | undefined;
  for (const a of activities) {
    for (const payload of a.heartbeatDetails?.payloads ?? []) {
      const details = converter.fromPayload<{ watch?: WatchSample } | null>(payload as never);
      if (details?.watch && details.watch.at > (newest?.at ?? 0)) newest = details.watch;
    }
  }
  return newest;
}

/** Approves the run of `db` that waits for approval; rejected when none waits. */
export async function approve({ client }: PgconvoyClient, db: string, input: ApproveInput): Promise<MessageAck> {
  const { approveUpdate } = await messages();
  return client.workflow.getHandle(databaseWorkflowId(db)).executeUpdate(approveUpdate, { args: [input] });
}

/** Cancels the run of `db`: at once while it waits, otherwise after the migration in progress. */
export async function cancel({ client }: PgconvoyClient, db: string, input: CancelInput): Promise<MessageAck> {
  const { cancelUpdate } = await messages();
  return client.workflow.getHandle(databaseWorkflowId(db)).executeUpdate(cancelUpdate, { args: [input] });
}

/** Takes a verified backup of one database on a worker (which alone holds its connection string). */
export async function backup({ client, taskQueue }: PgconvoyClient, input: BackupInput): Promise<BackupResult> {
  return client.workflow.execute<typeof backupDatabase>('backupDatabase', {
    workflowId: backupWorkflowId(input.db, randomUUID()),
    taskQueue,
    args: [input],
  });
}
