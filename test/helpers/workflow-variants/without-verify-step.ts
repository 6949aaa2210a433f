/**
 * The run's activities with one step taken out: `verifyRun` resolves at once
 * instead of scheduling its activity, as if the verify step were deleted from
 * the workflow. The replay test swaps this in for src/workflows/activities to
 * prove that the recorded histories catch such a change.
 */
export * from '../../../src/workflows/activities';
export const verifyRun = (): Promise<{ fingerprint: string }> => Promise.resolve({ fingerprint: '' });
