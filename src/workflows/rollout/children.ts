import { condition } from '@temporalio/workflow';
import { databaseWorkflowId, runSearchAttributes, type RolloutInput } from '../../contracts';

/** At most `limit` of `items` at once, each through `fn`; one loop starts them all, so the bound holds. */
export async function bounded<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let running = 0;
  const all: Array<Promise<void>> = [];
  for (const item of items) {
    await condition(() => running < limit);
    running += 1;
    all.push(fn(item).finally(() => void (running -= 1)));
  }
  await Promise.all(all);
}

/** The options every child of the rollout starts with: the database's own id, its search attributes, and a life of its own. */
export function childOptions(input: RolloutInput, db: string) {
  return {
    workflowId: databaseWorkflowId(db),
    workflowIdReusePolicy: 'ALLOW_DUPLICATE' as const,
    // A database's run ends on its own terms (its lease, its compensation), whatever becomes of the rollout.
    parentClosePolicy: 'ABANDON' as const,
    ...(input.searchAttributes ? { typedSearchAttributes: [{ key: runSearchAttributes.db, value: db }, { key: runSearchAttributes.rollout, value: input.deployId }] } : {}),
  };
}

/** Starting a child whose id another run of the database holds: the database is busy. */
export const isBusy = (error: unknown): boolean => (error as Error | undefined)?.name === 'WorkflowExecutionAlreadyStartedError';
