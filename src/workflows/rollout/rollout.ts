import { allHandlersFinished, condition, continueAsNew, log, startChild, workflowInfo, type ChildWorkflowHandle } from '@temporalio/workflow';
import { databaseWorkflowId, outcomeOf, type DatabaseSurvey, type MigrateDatabaseInput, type RolloutInput, type RolloutStatus, type RolloutStatusName, type RunOutcome } from '../../contracts';
import { compareSchemas, surveyDatabase } from '../activities';
import { describeGate, gatedMigrations } from '../gates';
import { migrateDatabase } from '../migrate-database';
import { cancelSignal } from '../messages';
import { bounded, childOptions, isBusy } from './children';
import { compensateStep } from './compensate';
import { converges } from './converge';
import { causeOf, describeFailure, message } from '../failures';
import { notify } from './notify';
import { RolloutState, type RolloutCarry } from './state';
import { assignWaves, findDrift } from './waves';

const day = 24 * 60 * 60 * 1000;

/**
 * One pinned migration set to many databases: plan every target and pin
 * the set's digest; report drift before anything changes; wait for an
 * approval when a migration needs one; then the canaries, the bake, and the
 * waves, at most `maxParallel` databases at once, each the `migrateDatabase`
 * run `up` starts, as a child with the database's own id. At the failure
 * threshold nothing new starts: `halt` waits for a retry, a skip or an
 * abort; `compensate` reverts every database the rollout changed, newest
 * first. Workflow id `pgconvoy/rollout/<deploy-id>`.
 */
export async function rollout(input: RolloutInput, carried?: RolloutCarry): Promise<RolloutStatus> {
  const r = new RolloutState(input, carried);
  r.install();
  if (!carried) {
    const ended = await planStep(r);
    if (ended) return end(r, ended);
    notify(r, 'started', `rollout ${input.deployId} started: ${r.status.databases.filter((d) => d.wave !== null).length} of ${input.targets.length} databases to migrate, ${r.status.waves} wave${r.status.waves === 1 ? '' : 's'} after the canaries`);
  }
  return end(r, await waveStep(r));
}

/** The rollout's last status; handlers still running (an update that arrived as it ended) finish first. */
async function end(r: RolloutState, status: RolloutStatusName): Promise<RolloutStatus> {
  for (const d of r.status.databases) if (d.state === 'pending' || d.state === 'busy') Object.assign(d, { state: 'not-run', waitingFor: null });
  r.status.endedAt = Date.now();
  r.setStatus(status);
  const c = r.status.counts;
  notify(r, status === 'completed' ? 'completed' : status === 'compensated' ? 'compensated' : 'ended', `rollout ${r.input.deployId} ${status}: ${c.succeeded} migrated, ${c['up-to-date']} up to date, ${c.failed + c.diverged} failed, ${c.compensated} compensated, ${c.skipped} skipped, ${c['not-run']} not run`);
  await Promise.all(r.notifications);
  await condition(allHandlersFinished);
  return r.status;
}

/**
 * Plan: survey every target, refuse what cannot run (problems, another set
 * than the pinned one), report drift, preview (dry run), and wait for an
 * approval when one is needed. Returns the status the rollout ends with
 * here, if it does.
 */
async function planStep(r: RolloutState): Promise<RolloutStatusName | undefined> {
  const { input, status } = r;
  const surveys = new Map<string, DatabaseSurvey>();
  await bounded(input.targets, Math.max(1, input.strategy.maxParallel), async (db) => {
    try {
      surveys.set(db, await surveyDatabase({ db, migrationsDir: input.migrationsDir }));
    } catch (error) {
      status.problems.push(`${db}: ${message(error)}`);
    }
  });
  const digests = [...new Set([...surveys.values()].map((s) => s.manifestDigest))];
  if (digests.length > 1) status.problems.push(`the workers read different migration sets (${digests.map((d) => d.slice(0, 12)).join(', ')}) from ${input.migrationsDir}`);
  status.manifestDigest = digests[0] ?? null;
  if (input.expect && status.manifestDigest !== null && input.expect.manifestDigest !== status.manifestDigest) {
    status.problems.push(`the rollout was started for manifest ${input.expect.manifestDigest.slice(0, 12)}, but the workers read ${status.manifestDigest.slice(0, 12)} in ${input.migrationsDir}`);
  }
  for (const db of input.targets) for (const p of surveys.get(db)?.problems ?? []) status.problems.push(`${db}: ${p}`);

  const mode = status.mode === 'dry-run' ? 'auto' : status.mode;
  const order = ['low', 'medium', 'high'] as const;
  for (const d of status.databases) {
    const s = surveys.get(d.db);
    if (!s) continue;
    d.versionBefore = s.version;
    d.version = s.version;
    d.pending = s.pending.length;
    d.fingerprint = s.fingerprint;
    const levels = s.pending.map((p) => p.risk?.level ?? 'high');
    d.risk = levels.length === 0 ? null : order[Math.max(...levels.map((l) => order.indexOf(l)))]!;
    d.findings = s.pending.flatMap((p) =>
      d.risk === null || d.risk === 'low' || p.risk?.level !== d.risk
        ? []
        : p.risk.findings.filter((f) => f.allowed === null && f.level === d.risk).map((f) => `V${p.version} ${f.rule} (${f.level}) at line ${f.line}${f.context ? `: ${f.context}` : f.table ? ` on ${f.table}` : ''}`),
    );
    d.wouldWaitForApproval = gatedMigrations(mode, s.pending).length > 0;
    if (s.pending.length === 0) d.state = 'up-to-date';
  }
  const waves = assignWaves(input.targets, (db) => (surveys.get(db)?.pending.length ?? 0) > 0, input.strategy);
  for (const d of status.databases) d.wave = waves.get(d.db) ?? null;
  status.waves = Math.max(0, ...waves.values());
  r.changed();
  if (status.problems.length > 0) return 'refused';

  const drift = findDrift(input.targets.flatMap((db) => surveys.get(db) ?? []));
  for (const report of drift) {
    const { compareWith, ...rest } = report;
    const compared = compareWith === null ? undefined : await compareSchemas({ db: report.db, reference: compareWith }).catch(() => undefined);
    status.drift.push({ ...rest, differences: compared ? [`compared with ${compareWith}:`, ...compared.differences, ...(compared.total > compared.differences.length ? [`... ${compared.total - compared.differences.length} more`] : [])] : [] });
  }
  r.changed();
  if (status.mode === 'dry-run') return 'dry-run';
  if (drift.length > 0 && (input.onDrift ?? 'halt') === 'halt') return 'drift';

  const gated = input.targets.flatMap((db) => surveys.get(db) ?? []).filter((s) => gatedMigrations(mode, s.pending).length > 0);
  if (input.requireApproval || gated.length > 0) {
    const why = [
      ...(input.requireApproval ? ['the rollout was started with --require-approval'] : []),
      ...(gated.length > 0 ? [`${gated.length} database${gated.length === 1 ? '' : 's'} (${gated.slice(0, 3).map((s) => s.db).join(', ')}${gated.length > 3 ? ', ...' : ''}): ${describeGate(mode, gatedMigrations(mode, gated[0]!.pending))}`] : []),
    ].join('\n');
    const decided = await awaitApproval(r, null, why);
    if (decided !== 'go') return decided;
  }
  return undefined;
}

/** Waits for an approval of the rollout (null) or of a wave; an abort or the timeout ends the wait. */
async function awaitApproval(r: RolloutState, wave: number | null, why: string): Promise<'go' | 'aborted' | 'approval-timed-out'> {
  r.approvalFor = wave;
  r.setStatus('awaiting-approval', `approval${wave === null ? '' : ` of wave ${wave}`}: ${why}`);
  notify(r, 'approval-needed', `rollout ${r.input.deployId} waits for an approval${wave === null ? '' : ` of wave ${wave}`}: ${why.split('\n')[0]}`);
  const decided = await condition(() => r.approvalFor === undefined || r.status.abortRequested !== null, r.input.decisionTimeoutMs ?? day);
  r.approvalFor = undefined;
  if (r.status.abortRequested) return 'aborted';
  return decided ? 'go' : 'approval-timed-out';
}

/** The waves: start what may start, wait for anything to happen, move on when a wave has settled. */
async function waveStep(r: RolloutState): Promise<RolloutStatusName> {
  const { input, status } = r;
  const children = new Map<string, ChildWorkflowHandle<typeof migrateDatabase>>();
  const limit = Math.max(1, input.strategy.maxParallel);
  for (;;) {
    if (status.abortRequested) {
      // Runs whose start is still on its way are cancelled as soon as they have started (runDatabase).
      for (const [db, child] of children) await cancelRun(r, db, child);
      await condition(() => r.inFlight === 0);
      return status.abortRequested.compensate && r.changedDatabases().length > 0 ? compensateStep(r) : 'aborted';
    }
    const atEnd = r.settledUpTo(status.wave) && status.wave >= status.waves;
    // A canary that failed stops the rollout whatever the threshold: the waves would run the set that just failed.
    const canaryFailed = status.wave === 0 && r.settledUpTo(0) && status.databases.some((d) => d.wave === 0 && (d.state === 'failed' || d.state === 'diverged'));
    if (r.thresholdReached() || canaryFailed || (atEnd && r.failures() > 0)) {
      if (r.inFlight > 0) {
        r.setStatus('halted', `the ${r.inFlight} run${r.inFlight === 1 ? '' : 's'} in flight`);
        await condition(() => r.inFlight === 0 || status.abortRequested !== null);
        continue;
      }
      if ((r.thresholdReached() || canaryFailed) && input.strategy.onFailure === 'compensate') return compensateStep(r);
      // Failed databases need a person: run them again, leave them out, or abort; within the decision timeout, counted from when the wait began.
      if (r.decisionSince === undefined) {
        r.decisionSince = Date.now();
        notify(r, 'halted', `rollout ${input.deployId} halted: ${r.failures()} database${r.failures() === 1 ? '' : 's'} failed; it waits for retry, skip or abort`);
      }
      r.setStatus('halted', `a decision: ${r.failures()} database${r.failures() === 1 ? '' : 's'} failed${canaryFailed ? ' (a canary)' : ''}; retry or skip ${r.failures() === 1 ? 'it' : 'them'}, or abort`);
      const seen = r.tick;
      const left = r.decisionSince + (input.decisionTimeoutMs ?? day) - Date.now();
      if (left <= 0 || !(await condition(() => r.tick !== seen, left))) return 'failed';
      continue;
    }
    r.decisionSince = undefined;
    if (r.settledUpTo(status.wave)) {
      if (status.databases.some((d) => d.wave === status.wave)) notify(r, 'wave-done', `rollout ${input.deployId}: ${status.wave === 0 ? 'the canaries' : `wave ${status.wave} of ${status.waves}`} done`);
      if (atEnd) return 'completed';
      if (status.wave === 0 && input.strategy.bakeMs > 0 && status.databases.some((d) => d.wave === 0)) {
        r.setStatus('baking', `the bake: ${Math.round(input.strategy.bakeMs / 1000)} s after the canaries`);
        await condition(() => status.abortRequested !== null, input.strategy.bakeMs);
        if (status.abortRequested) continue;
      }
      if (input.strategy.approveWaves) {
        const decided = await awaitApproval(r, status.wave + 1, `wave ${status.wave + 1} of ${status.waves} waits for an approval (--approve-waves)`);
        if (decided === 'aborted') continue;
        if (decided !== 'go') return decided;
      }
      status.wave += 1;
      r.changed();
      continue;
    }
    const suggested = workflowInfo().continueAsNewSuggested || (input.historyLimit !== undefined && workflowInfo().historyLength > input.historyLimit);
    if (suggested && r.inFlight === 0) {
      await Promise.all(r.notifications);
      await condition(allHandlersFinished);
      return continueAsNew<typeof rollout>(input, r.carry());
    }
    if (!status.paused && !suggested) {
      for (const d of r.startable(Date.now())) {
        if (r.inFlight >= limit) break;
        runDatabase(r, d.db, children);
      }
    }
    r.setStatus(status.paused ? 'paused' : status.wave === 0 ? 'canary' : 'running', status.paused ? 'a resume' : null);
    const seen = r.tick;
    // A busy database's timer matters only when it could start then: paused, full or about to continue as new, only a change wakes the loop.
    const retry = status.paused || suggested || r.inFlight >= limit ? undefined : r.nextRetry();
    if (retry === undefined) await condition(() => r.tick !== seen);
    else await condition(() => r.tick !== seen, Math.max(1, retry - Date.now()));
  }
}

/**
 * One database's run, as a child with the database's own id: busy when
 * another run of it is going (tried again on a timer), then what its
 * outcome says, and whether it converged on the canary's schema.
 */
function runDatabase(r: RolloutState, db: string, children: Map<string, ChildWorkflowHandle<typeof migrateDatabase>>): void {
  const { input, status } = r;
  const d = r.db(db);
  d.state = 'running';
  d.phase = 'planning';
  d.attempts += 1;
  d.startedAt = Date.now();
  d.waitingFor = null;
  r.inFlight += 1;
  r.changed();
  const approved = r.approvalOf(d.wave ?? 0);
  const child: MigrateDatabaseInput = {
    db,
    migrationsDir: input.migrationsDir,
    mode: status.mode,
    expect: { manifestDigest: status.manifestDigest! },
    ...(approved ? { approved: { ...approved, upTo: 'high' } } : {}),
    ...(input.decisionTimeoutMs !== undefined ? { approvalTimeoutMs: input.decisionTimeoutMs } : {}),
  };
  const go = async () => {
    let handle: ChildWorkflowHandle<typeof migrateDatabase>;
    try {
      handle = await startChild(migrateDatabase, { ...childOptions(input, db), args: [child] });
    } catch (error) {
      if (!isBusy(error)) throw error;
      d.state = 'busy';
      d.phase = null;
      d.waitingFor = `another run of the database (${databaseWorkflowId(db)}); tried again every ${Math.round((input.busyRetryMs ?? 30_000) / 1000)} s`;
      r.retryAt[db] = Date.now() + (input.busyRetryMs ?? 30_000);
      return;
    }
    children.set(db, handle);
    if (status.abortRequested) await cancelRun(r, db, handle);
    let ended: unknown;
    try {
      ended = await handle.result();
    } catch (error) {
      ended = error;
    } finally {
      children.delete(db);
    }
    await settle(r, db, outcomeOf(ended), ended);
  };
  void go()
    .catch((error: unknown) => {
      d.state = 'failed';
      d.failure = `could not run: ${message(error)}`;
    })
    .finally(() => {
      r.inFlight -= 1;
      if (d.state === 'running') d.state = 'failed';
      d.phase = null;
      r.changed();
    });
}

/** Asks a run to stop between two migrations (never in one): the rollout was aborted. */
async function cancelRun(r: RolloutState, db: string, child: ChildWorkflowHandle<typeof migrateDatabase>): Promise<void> {
  const by = r.status.abortRequested?.by ?? 'pgconvoy';
  await child.signal(cancelSignal, { by, reason: `the rollout ${r.status.deployId} was aborted` }).catch((e: unknown) => log.warn('could not cancel a run', { db, error: message(e) }));
}

/** A run's end, as the rollout counts it; an applied database must have the canary's schema. */
async function settle(r: RolloutState, db: string, outcome: RunOutcome | undefined, ended: unknown): Promise<void> {
  const d = r.db(db);
  d.durationMs = Date.now() - (d.startedAt ?? Date.now());
  d.outcome = outcome?.status ?? null;
  if (outcome) d.version = outcome.versionAfter;
  if (outcome?.fingerprintAfter) d.fingerprint = outcome.fingerprintAfter;
  d.applied = outcome?.migrations.filter((m) => m.status === 'applied').length ?? 0;
  // In the order runs ended, whatever their end: compensation goes the other way, over those whose version moved.
  r.ended(db);
  if (!outcome) {
    d.state = 'failed';
    d.failure = `the run ended without an outcome: ${message(ended)}`;
    return;
  }
  if (outcome.status === 'applied' || outcome.status === 'up-to-date') {
    let diverged: string | undefined;
    try {
      diverged = await converges(r, db, outcome);
    } catch (error) {
      diverged = `could not compare its schema with the canary's: ${causeOf(error)}`;
    }
    d.state = diverged ? 'diverged' : outcome.status === 'applied' ? 'succeeded' : 'up-to-date';
    d.failure = diverged ?? null;
    if (diverged) notify(r, 'database-failed', `rollout ${r.input.deployId}: ${db} diverged: ${diverged}`, { db, failure: diverged });
    return;
  }
  d.state = 'failed';
  d.failure = outcome.status === 'cancelled' ? `cancelled by ${outcome.cancelledBy}` : 'failure' in outcome ? describeFailure(outcome.failure, outcome.status) : outcome.status;
  notify(r, 'database-failed', `rollout ${r.input.deployId}: ${db} failed: ${d.failure}`, { db, failure: d.failure });
}
