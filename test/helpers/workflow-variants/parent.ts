/**
 * pgconvoy's workflows plus a small parent, as a rollout would use them: it
 * starts migrateDatabase as a child, approves it by signal once the child
 * says it waits, collects the child's events and reads its outcome.
 */
import { ApplicationFailure, condition, setHandler, startChild, workflowInfo } from '@temporalio/workflow';
import { outcomeOf, runSearchAttributes, type MigrateDatabaseInput, type RunEvent, type RunOutcome } from '../../../src/contracts';
import { approveSignal, runEventSignal } from '../../../src/workflows/messages';
import { migrateDatabase } from '../../../src/workflows/migrate-database';

export * from '../../../src/workflows';

export interface ParentResult {
  childWorkflowId: string;
  events: RunEvent[];
  outcome: RunOutcome | null;
}

export async function parentOfOne(child: MigrateDatabaseInput): Promise<ParentResult> {
  const events: RunEvent[] = [];
  setHandler(runEventSignal, (batch) => {
    events.push(...batch);
  });
  const childWorkflowId = `${workflowInfo().workflowId}/child`;
  const handle = await startChild(migrateDatabase, {
    args: [child],
    workflowId: childWorkflowId,
    typedSearchAttributes: [{ key: runSearchAttributes.db, value: child.db }],
  });
  const waiting = await condition(() => events.some((e) => e.type === 'awaiting-approval' || e.type === 'ended'), '2 minutes');
  if (waiting && events.some((e) => e.type === 'awaiting-approval')) await handle.signal(approveSignal, { by: 'parent', note: 'approved by the test parent' });
  const outcome = await handle.result().then(
    (result): RunOutcome => result,
    (error: unknown) => outcomeOf(error) ?? null,
  );
  // A child ends only once its parent heard its last event.
  if (!events.some((e) => e.type === 'ended')) throw ApplicationFailure.nonRetryable('the child ended before its parent heard its last event');
  return { childWorkflowId, events, outcome };
}
