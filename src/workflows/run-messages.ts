import { setHandler } from '@temporalio/workflow';
import { runFailure } from './failures';
import { approveSignal, approveUpdate, cancelSignal, cancelUpdate } from './messages';
import type { ApproveInput, CancelInput, MessageAck, Progress } from '../contracts';

/** Records who approved the run, when and why: an `approve` message, or an approval given with the run's input. */
export function recordApproval(progress: Progress, { by, note }: ApproveInput): void {
  progress.approval.approvedBy = by;
  progress.approval.approvedAt = Date.now();
  progress.approval.note = note ?? null;
}

/** What the last step runs: one migration, or (inline, together) the short ones from the current to the last. */
function lastRunning(progress: Progress): string {
  const from = progress.current?.version ?? '?';
  const to = progress.pending.at(-1)?.version;
  return to !== undefined && to !== from ? `migrations (V${from} to V${to}, together) are` : `migration (V${from}) is`;
}

/**
 * approve and cancel, as updates (a CLI, a deploy service) and as signals (a
 * parent workflow, which can only signal its children): one logic behind
 * both. An update that does not apply is rejected (nothing is recorded in the
 * history); a signal that does not apply is not obeyed but recorded in
 * `progress.refusedSignals`.
 */
export function handleRunMessages(progress: Progress, group: boolean): { lastStepRunning: (last: boolean) => void } {
  // The step running now is the last one: a cancel would take effect after it, when nothing is left to skip.
  let lastStep = false;
  const approveRefusal = (): string | null => (progress.phase === 'awaiting-approval' ? null : `nothing to approve: the run is ${progress.phase}`);
  const cancelRefusal = (): string | null => {
    if (progress.phase === 'done' || progress.phase === 'failed' || progress.phase === 'cancelled') return `nothing to cancel: the run is ${progress.phase}`;
    // Past the last migration a cancel would change nothing: say so instead of acknowledging it.
    if (progress.phase === 'verifying') return 'too late to cancel: every migration is applied and the run is verifying them (a failed verification rolls the run back on its own)';
    if (progress.phase === 'compensating') return 'too late to cancel: the run failed and is rolling back what it applied; it ends on its own';
    if (progress.phase === 'applying' && lastStep) {
      return group
        ? 'too late to cancel: the --group run applies every pending migration in one transaction, running now; a run is never stopped mid-migration'
        : `too late to cancel: the last pending ${lastRunning(progress)} running, and a run is never stopped mid-migration; nothing would be left to skip`;
    }
    return null;
  };
  const approve = (input: ApproveInput): MessageAck => {
    recordApproval(progress, input);
    return { accepted: true, phase: progress.phase };
  };
  const cancel = ({ by, reason }: CancelInput): MessageAck => {
    progress.cancelRequested = { by, reason: reason ?? null };
    return { accepted: true, phase: progress.phase };
  };
  // The client tells a rejected update from other failures by this type.
  const reject = (why: string | null) => {
    if (why) throw runFailure('MessageRejected', why);
  };
  const refused = (signal: 'approve' | 'cancel', by: string, reason: string) => {
    progress.refusedSignals = [...(progress.refusedSignals ?? []), { signal, by, reason }];
  };
  setHandler(approveUpdate, approve, { validator: (_input: ApproveInput) => reject(approveRefusal()) });
  setHandler(cancelUpdate, cancel, { validator: (_input: CancelInput) => reject(cancelRefusal()) });
  setHandler(approveSignal, (input) => {
    const why = approveRefusal();
    if (why) refused('approve', input.by, why);
    else approve(input);
  });
  setHandler(cancelSignal, (input) => {
    const why = cancelRefusal();
    if (why) refused('cancel', input.by, why);
    else cancel(input);
  });
  return { lastStepRunning: (last) => (lastStep = last) };
}
