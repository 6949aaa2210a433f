import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { AbortRolloutInput, DatabaseMessageInput, RolloutAck, RolloutMessageInput, RolloutStatus } from '../../contracts';

/** The one compact answer for dashboards: counts by state, the wave, each database. */
export const rolloutStatusQuery = defineQuery<RolloutStatus>('rollout-status');

/** Finish what is in flight, start nothing new. */
export const pauseRolloutUpdate = defineUpdate<RolloutAck, [RolloutMessageInput]>('rollout-pause');
export const resumeRolloutUpdate = defineUpdate<RolloutAck, [RolloutMessageInput]>('rollout-resume');
/** Stop after the migrations in flight (their runs are cancelled between migrations); optionally revert what the rollout changed. */
export const abortRolloutUpdate = defineUpdate<RolloutAck, [AbortRolloutInput]>('rollout-abort');
/** Approve the rollout, or (with approveWaves) the wave that waits. */
export const approveRolloutUpdate = defineUpdate<RolloutAck, [RolloutMessageInput]>('rollout-approve');
/** Run a failed database again, or leave it out (it no longer counts as failed). */
export const retryDatabaseUpdate = defineUpdate<RolloutAck, [DatabaseMessageInput]>('rollout-retry');
export const skipDatabaseUpdate = defineUpdate<RolloutAck, [DatabaseMessageInput]>('rollout-skip');
