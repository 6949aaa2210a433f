import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { runEventSignalName, type ApproveInput, type CancelInput, type MessageAck, type Progress, type RunEvent } from '../contracts';

export const progressQuery = defineQuery<Progress>('progress');

/** Lets a run that waits for approval go on; recorded with who approved and when. */
export const approveUpdate = defineUpdate<MessageAck, [ApproveInput]>('approve');
/** Stops a run: at once while it waits, otherwise after the migration in progress (never mid-migration). */
export const cancelUpdate = defineUpdate<MessageAck, [CancelInput]>('cancel');
/**
 * The same two as signals, for a parent workflow (which can only signal its
 * children). One logic behind both: a signal the update would refuse is
 * ignored, and `progress.refusedSignals` says why.
 */
export const approveSignal = defineSignal<[ApproveInput]>('approve-signal');
export const cancelSignal = defineSignal<[CancelInput]>('cancel-signal');


/** Sent by a child run to its parent with each of its events (src/contracts/events.ts). */
export const runEventSignal = defineSignal<[RunEvent[]]>(runEventSignalName);
