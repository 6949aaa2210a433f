import { randomUUID } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import type { Config } from '../config/config';
import { PgconvoyError } from '../core/errors';
import { rolloutWorkflowId, type AbortRolloutInput, type DatabaseMessageInput, type RolloutAck, type RolloutInput, type RolloutMessageInput, type RolloutStatus } from '../contracts';
import type { rollout } from '../workflows';
import { searchAttributesRegistered, type PgconvoyClient } from './api';
import { rejectionOf } from './failure';
import { temporalClient } from './temporal';

/** The rollout's query and updates, loaded with the workflow library only by the calls that send them. */
const messages = () => import('../workflows/rollout/messages');

/** The deploy id is taken by a rollout of another set or other targets: it is not adopted. */
export class RolloutConflictError extends PgconvoyError {
  readonly type = 'RunConflict';
}

/** The rollout's workflow was terminated, timed out or failed instead of returning its status. */
export class RolloutEndedAbnormallyError extends PgconvoyError {
  readonly type = 'RolloutFailed';
}

/** No rollout has this deploy id. */
export class RolloutNotFoundError extends PgconvoyError {
  readonly type = 'UnknownRollout';
}

/** What makes a rollout the one it is: the same deploy id with other values is another rollout. */
function rolloutOptions(input: RolloutInput): Record<string, unknown> {
  return {
    migrationsDir: input.migrationsDir,
    targets: [...input.targets].sort(),
    manifestDigest: input.expect?.manifestDigest ?? null,
    mode: input.mode ?? 'auto',
  };
}

/**
 * Starts the rollout of a deploy, or attaches to it: the workflow id is the
 * deploy id, so triggering the same deploy twice (a retried webhook, a
 * second pipeline run) finds the rollout already going, or already ended,
 * and returns it. The same deploy id with another set, other targets or
 * another mode is refused. Inputs carry aliases only.
 */
export async function startRollout({ client, taskQueue }: PgconvoyClient, input: RolloutInput): Promise<{ handle: WorkflowHandle<typeof rollout>; attached: boolean }> {
  const request = randomUUID();
  const options = rolloutOptions(input);
  const workflowId = rolloutWorkflowId(input.deployId);
  let handle: WorkflowHandle<typeof rollout>;
  try {
    handle = await client.workflow.start<typeof rollout>('rollout', {
      workflowId,
      taskQueue,
      args: [{ ...input, searchAttributes: input.searchAttributes ?? (await searchAttributesRegistered(client)) }],
      memo: { request, options },
      workflowIdConflictPolicy: 'USE_EXISTING',
      // A deploy id is used once: starting an ended rollout again returns it.
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
    });
  } catch (error) {
    if (!(error instanceof temporalClient().WorkflowExecutionAlreadyStartedError)) throw error;
    handle = client.workflow.getHandle<typeof rollout>(workflowId);
  }
  const memo = (await handle.describe()).memo ?? {};
  if (memo.request === request) return { handle, attached: false };
  const theirs = (memo.options ?? {}) as Record<string, unknown>;
  // A caller that does not know the set's digest does not ask for one.
  const differing = Object.keys(options).filter((k) => !(k === 'manifestDigest' && options[k] === null) && JSON.stringify(options[k]) !== JSON.stringify(theirs[k] ?? null));
  if (differing.length > 0) {
    const show = (v: unknown) => (v === null || v === undefined ? 'none' : JSON.stringify(v).replace(/^"(.*)"$/, '$1'));
    throw new RolloutConflictError(
      `deploy "${input.deployId}" is already a rollout (workflow ${workflowId}) of another ${differing.join(', ')}: ` +
        differing.map((k) => `${k} ${show(theirs[k])} there, ${show(options[k])} here`).join('; ') +
        `; nothing was started. Use another deploy id for another rollout`,
      { deployId: input.deployId, workflowId, differing },
    );
  }
  return { handle, attached: true };
}

/** The rollout's compact status: asked of it while it runs, its result once it ended. */
export async function getRollout({ client }: PgconvoyClient, deployId: string): Promise<RolloutStatus> {
  const handle = client.workflow.getHandle<typeof rollout>(rolloutWorkflowId(deployId));
  let state: string;
  try {
    state = (await handle.describe()).status.name;
  } catch (error) {
    if (error instanceof temporalClient().WorkflowNotFoundError) throw new RolloutNotFoundError(`no rollout with deploy id "${deployId}" (workflow ${rolloutWorkflowId(deployId)})`, { deployId });
    throw error;
  }
  if (state === 'COMPLETED') return handle.result();
  // A rollout ends with its status as a result; anything else is Temporal's doing (terminated, timed out) or a bug.
  if (state !== 'RUNNING') throw new RolloutEndedAbnormallyError(`rollout "${deployId}" did not end by itself: its workflow is ${state.toLowerCase().replace(/_/g, ' ')} (see ${rolloutWorkflowId(deployId)} in the Temporal UI); start another deploy id to go on`, { deployId, state });
  const { rolloutStatusQuery } = await messages();
  return handle.query(rolloutStatusQuery);
}

/** A rollout as the list shows it: its workflow's state and times, not its query (one call per rollout would be too many). */
export interface RolloutSummary {
  deployId: string;
  /** Temporal's word for the workflow: running, completed, terminated... */
  workflow: string;
  startedAt: number;
  closedAt: number | null;
}

/**
 * The newest rollouts first, from Temporal's visibility store. A rollout that
 * continued as new has a run per continuation; it is listed once, as its
 * latest run, with the time its first run started.
 */
export async function listRollouts({ client }: PgconvoyClient, limit = 50): Promise<RolloutSummary[]> {
  const prefix = rolloutWorkflowId('');
  const byId = new Map<string, RolloutSummary>();
  for await (const run of client.workflow.list({ query: `WorkflowType = 'rollout'`, pageSize: 100 })) {
    if (!run.workflowId.startsWith(prefix)) continue;
    const deployId = run.workflowId.slice(prefix.length);
    const seen = byId.get(deployId);
    if (seen) {
      seen.startedAt = Math.min(seen.startedAt, run.startTime.getTime());
      continue;
    }
    if (byId.size >= limit) break;
    byId.set(deployId, { deployId, workflow: run.status.name.toLowerCase().replace(/_/g, ' '), startedAt: run.startTime.getTime(), closedAt: run.closeTime?.getTime() ?? null });
  }
  return [...byId.values()];
}

/** The rollout refused a message that does not apply to it now (nothing was recorded). */
export class RolloutMessageRejectedError extends PgconvoyError {
  readonly type = 'MessageRejected';
}

/** An update to the rollout; a refusal or a rollout that does not exist comes back as one of the errors above. */
async function send<A>(pgconvoy: PgconvoyClient, deployId: string, pick: (m: Awaited<ReturnType<typeof messages>>) => import('@temporalio/common').UpdateDefinition<RolloutAck, [A]>, input: A): Promise<RolloutAck> {
  const definition = pick(await messages());
  try {
    return await pgconvoy.client.workflow.getHandle(rolloutWorkflowId(deployId)).executeUpdate(definition, { args: [input] });
  } catch (error) {
    if (error instanceof temporalClient().WorkflowNotFoundError) {
      // Ended: say how, as the rollout itself refuses a message it has no use for.
      const ended = await getRollout(pgconvoy, deployId);
      throw new RolloutMessageRejectedError(`rollout "${deployId}": the rollout has ended (${ended.status})`, { deployId });
    }
    const rejected = rejectionOf(error);
    if (rejected !== undefined) throw new RolloutMessageRejectedError(`rollout "${deployId}": ${rejected}`, { deployId });
    throw error;
  }
}

/** Finish what is in flight, start nothing new. Rejected (MessageRejected) when it does not apply. */
export const pauseRollout = (pgconvoy: PgconvoyClient, deployId: string, input: RolloutMessageInput): Promise<RolloutAck> => send(pgconvoy, deployId, (m) => m.pauseRolloutUpdate, input);
export const resumeRollout = (pgconvoy: PgconvoyClient, deployId: string, input: RolloutMessageInput): Promise<RolloutAck> => send(pgconvoy, deployId, (m) => m.resumeRolloutUpdate, input);
/** Stop after the migrations in flight; with `compensate`, revert every database the rollout changed. */
export const abortRollout = (pgconvoy: PgconvoyClient, deployId: string, input: AbortRolloutInput): Promise<RolloutAck> => send(pgconvoy, deployId, (m) => m.abortRolloutUpdate, input);
/** Approve what waits: the rollout, or the next wave. */
export const approveRollout = (pgconvoy: PgconvoyClient, deployId: string, input: RolloutMessageInput): Promise<RolloutAck> => send(pgconvoy, deployId, (m) => m.approveRolloutUpdate, input);
/** Run a failed database again. */
export const retryRolloutDatabase = (pgconvoy: PgconvoyClient, deployId: string, input: DatabaseMessageInput): Promise<RolloutAck> => send(pgconvoy, deployId, (m) => m.retryDatabaseUpdate, input);
/** Leave a failed (or not yet started) database out; it no longer counts as failed. */
export const skipRolloutDatabase = (pgconvoy: PgconvoyClient, deployId: string, input: DatabaseMessageInput): Promise<RolloutAck> => send(pgconvoy, deployId, (m) => m.skipDatabaseUpdate, input);

/** Bad target selection: unknown aliases, a selector nothing matches. */
export class TargetSelectionError extends PgconvoyError {
  readonly type = 'UnknownDatabase';
}

/**
 * The rollout's targets from the config: listed aliases (each must be
 * configured), or every database whose labels match `key=value,...` (all
 * pairs), or all; sorted by alias for a selector, as given for a list.
 */
export function selectTargets(config: Config, choice: { dbs?: string[]; select?: string; all?: boolean }): { targets: string[]; selector: string } {
  const known = Object.keys(config.databases).sort();
  if (choice.dbs && choice.dbs.length > 0) {
    const unknown = choice.dbs.filter((db) => !known.includes(db));
    if (unknown.length > 0) throw new TargetSelectionError(`unknown database alias${unknown.length === 1 ? '' : 'es'}: ${unknown.join(', ')} (configured: ${known.join(', ') || 'none'})`, { aliases: unknown });
    return { targets: [...new Set(choice.dbs)], selector: choice.dbs.join(',') };
  }
  if (choice.select !== undefined) {
    const pairs = choice.select.split(',').map((p) => p.trim()).filter(Boolean).map((p) => {
      const at = p.indexOf('=');
      if (at <= 0) throw new TargetSelectionError(`invalid selector "${p}": use key=value pairs separated by commas (tier=prod,region=eu)`);
      return [p.slice(0, at), p.slice(at + 1)] as const;
    });
    const targets = known.filter((db) => pairs.every(([k, v]) => config.labels[db]?.[k] === v));
    if (targets.length === 0) throw new TargetSelectionError(`no configured database has the labels ${choice.select} (databases.<alias>.labels in the config)`, { selector: choice.select });
    return { targets, selector: choice.select };
  }
  if (choice.all) {
    if (known.length === 0) throw new TargetSelectionError('no databases are configured');
    return { targets: known, selector: 'all' };
  }
  throw new TargetSelectionError('choose the databases: --db a,b, --select key=value,... or --all');
}
