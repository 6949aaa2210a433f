import { getExternalWorkflowHandle, log, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { runSearchAttributes, type HookRunRecord, type Phase, type Progress, type RunEvent, type Version } from '../contracts';
import { runEventSignal } from './messages';

/** An event as a step says it; `emit` adds the database, its sequence number and the time. */
type OmitEach<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type RunEventBody = OmitEach<RunEvent, 'db' | 'seq' | 'at'>;

/** The phase an event puts the run in, if it changes it. */
function phaseAfter(event: RunEvent): Phase | undefined {
  switch (event.type) {
    case 'awaiting-approval':
    case 'locking':
    case 'backing-up':
    case 'applying':
    case 'verifying':
    case 'compensating':
      return event.type;
    case 'ended':
      return event.status === 'cancelled' ? 'cancelled' : event.status === 'up-to-date' || event.status === 'dry-run' || event.status === 'applied' ? 'done' : 'failed';
    default:
      return undefined;
  }
}

/** The run's one way to report what happens, and a way to wait until its parent has heard all of it. */
export interface Emitter {
  emit: (event: RunEventBody) => void;
  /** Resolves once every event so far reached the parent (at once without one); a run awaits it before it ends. */
  flush: () => Promise<void>;
}

/**
 * Each event updates the run's progress (phase, current migration,
 * completed ones), goes to the workflow logger, upserts the run's search
 * attributes (when they were set at its start, so registered on the server)
 * and, when the run is a child, is signalled to its parent: the events of
 * one workflow activation together, in one signal sent after the
 * activation's own code (each signal is two events in this history and one
 * in the parent's, and a rollout's parent hears from every database). Signals
 * sent in one workflow task may arrive in any order: `seq` orders them. A
 * parent that is gone only costs a log line.
 */
export function eventEmitter(progress: Progress): Emitter {
  let seq = 0;
  const inFlight: Array<Promise<void>> = [];
  const parent = workflowInfo().parent;
  const upsertAttributes = attributeUpserts();
  let batch: RunEvent[] = [];
  const send = () => {
    if (!parent || batch.length === 0) return;
    const events = batch;
    batch = [];
    inFlight.push(
      getExternalWorkflowHandle(parent.workflowId, parent.runId)
        .signal(runEventSignal, events)
        .catch((error: unknown) => log.warn('could not tell the parent workflow', { parent: parent.workflowId, error: String(error) })),
    );
  };
  const emit = (body: RunEventBody) => {
    const event = { ...body, db: progress.db, seq: ++seq, at: Date.now() };
    const phase = phaseAfter(event);
    if (phase !== undefined) {
      progress.phase = phase;
      progress.phaseStartedAt = event.at;
    }
    if (event.type === 'applying') progress.current = progress.pending.find((p) => p.version === event.version) ?? null;
    if (event.type === 'guard' || event.type === 'watch') progress.watch = event.sample;
    if (event.type === 'guard') progress.heldBy = event.crossings;
    if (event.type === 'migration-done') {
      progress.completed.push({ version: event.version, description: progress.pending.find((p) => p.version === event.version)?.description ?? '', status: event.status, durationMs: event.durationMs });
      progress.current = null;
    }
    log.info(`run ${event.type}`, { ...event });
    upsertAttributes(event, phase);
    if (parent) {
      // The first event of an activation schedules the send, as the search attributes' flush.
      if (batch.length === 0) void Promise.resolve().then(send);
      batch.push(event);
    }
  };
  const flush = async () => {
    send();
    await Promise.all(inFlight);
  };
  return { emit, flush };
}

/** The hooks that ran with a version (an activity's result says which): a `hook` event for each of their events, in the order they ran. */
export function emitVersionHooks(emit: Emitter['emit'], version: Version, hooks: HookRunRecord[] | undefined): void {
  for (const event of [...new Set((hooks ?? []).map((h) => h.event))]) {
    const ran = hooks!.filter((h) => h.event === event);
    emit({ type: 'hook', event, version, files: ran.map((h) => h.file), durationMs: ran.reduce((sum, h) => sum + h.durationMs, 0), status: 'ok', error: null });
  }
}

/**
 * Keeps the run's search attributes (phase, version) up to date: once per
 * workflow activation, with the values its last event left and only those
 * that changed. Each upsert is an event in the history and an update of the
 * server's visibility store, and the server applies an activation's commands
 * together anyway: an inline batch of 70 migrations emits 140 events in one
 * activation, which upserted 140 times.
 */
function attributeUpserts(): (event: RunEvent, phase: Phase | undefined) => void {
  let pending: { phase?: string; version?: string | null } | undefined;
  const flush = () => {
    const latest = pending ?? {};
    pending = undefined;
    const attributes = workflowInfo().typedSearchAttributes;
    const updates = [
      ...(latest.phase !== undefined && attributes.get(runSearchAttributes.phase) !== latest.phase ? [{ key: runSearchAttributes.phase, value: latest.phase }] : []),
      ...(latest.version !== undefined && (attributes.get(runSearchAttributes.version) ?? null) !== latest.version ? [{ key: runSearchAttributes.version, value: latest.version }] : []),
    ];
    if (updates.length > 0) upsertSearchAttributes(updates);
  };
  return (event, phase) => {
    if (workflowInfo().typedSearchAttributes.get(runSearchAttributes.db) === undefined) return;
    const version = event.type === 'migration-done' && event.status === 'applied' ? event.version : event.type === 'ended' ? event.versionAfter : undefined;
    if (phase === undefined && version === undefined) return;
    // The first event of an activation schedules the flush: it runs after the activation's own code, before its commands are sent.
    if (pending === undefined) void Promise.resolve().then(flush);
    pending = { ...pending, ...(phase !== undefined ? { phase } : {}), ...(version !== undefined ? { version } : {}) };
  };
}
