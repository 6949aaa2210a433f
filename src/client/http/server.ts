import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { notifyAll, type Config, type TokenScope } from '../../config/config';
import { endedRolloutStatuses, errorTypes, executionModes, failurePolicies, isErrorType, type FailurePolicy, type RolloutAck, type RolloutStrategy } from '../../contracts';
import type { Logger } from '../../logging/logger';
import { approve, readerThrough, startMigration, type PgconvoyClient } from '../api';
import { duration, parseAmount } from '../commands/rollout';
import { UsageError } from '../commands/kit';
import { rejectionOf, summarizeFailure } from '../failure';
import { abortRollout, approveRollout, listRollouts, pauseRollout, resumeRollout, retryRolloutDatabase, RolloutMessageRejectedError, selectTargets, skipRolloutDatabase, startRollout, TargetSelectionError } from '../rollout';
import { temporalClient } from '../temporal';
import { allows, authenticate, type Principal } from './auth';
import { registerPage } from './page';
import { SharedStatus } from './shared-status';

export interface ServeDeps {
  config: Config;
  pgconvoy: PgconvoyClient;
  logger: Logger;
}

const idPattern = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';
const aliasPattern = '^[a-z0-9][a-z0-9_.-]{0,62}$';

/** The body of POST /v1/rollouts: the CLI's `rollout start` options as JSON. */
interface StartBody {
  deployId: string;
  databases?: string[];
  select?: string;
  all?: boolean;
  canary?: number | string[];
  bake?: string;
  waveSize?: number | string;
  maxParallel?: number;
  maxFailures?: number | string;
  onFailure?: 'halt' | 'compensate';
  approveWaves?: boolean;
  mode?: (typeof executionModes)[number];
  onDrift?: 'halt' | 'warn';
  requireApproval?: boolean;
  decisionTimeout?: string;
}

const amount = { anyOf: [{ type: 'integer', minimum: 1 }, { type: 'string', pattern: '^\\d+(\\.\\d+)?%$' }] };
const startSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['deployId'],
  properties: {
    deployId: { type: 'string', pattern: idPattern },
    databases: { type: 'array', minItems: 1, items: { type: 'string', pattern: aliasPattern } },
    select: { type: 'string', minLength: 3 },
    all: { type: 'boolean' },
    canary: { anyOf: [{ type: 'integer', minimum: 0 }, { type: 'array', minItems: 1, items: { type: 'string', pattern: aliasPattern } }] },
    bake: { type: 'string' },
    waveSize: amount,
    maxParallel: { type: 'integer', minimum: 1, maximum: 1000 },
    maxFailures: amount,
    onFailure: { enum: ['halt', 'compensate'] },
    approveWaves: { type: 'boolean' },
    mode: { enum: executionModes },
    onDrift: { enum: ['halt', 'warn'] },
    requireApproval: { type: 'boolean' },
    decisionTimeout: { type: 'string' },
  },
} as const;

const messageSchema = {
  type: 'object',
  additionalProperties: false,
  properties: { note: { type: 'string', maxLength: 2000 }, compensate: { type: 'boolean' }, db: { type: 'string', pattern: aliasPattern } },
} as const;

/** HTTP status of a pgconvoy error type. */
function statusOf(type: string | undefined): number {
  if (type === 'UnknownRollout' || type === 'UnknownDatabase') return 404;
  if (type === 'RunConflict' || type === 'MessageRejected') return 409;
  if (type === 'TemporalUnavailable' || type === 'DatabaseUnavailable') return 503;
  if (isErrorType(type) && errorTypes[type].exit === 'badInput') return 400;
  return 500;
}

/**
 * `pgconvoy serve`: the deploy service's door, a thin HTTP adapter over the
 * typed client (src/client/rollout.ts), never a second implementation.
 * Every /v1 route needs a bearer token with its scope; the token's name is
 * who acts. Responses carry types and messages, never tokens or connection
 * strings.
 */
export async function buildServer({ config, pgconvoy, logger }: ServeDeps): Promise<FastifyInstance> {
  // Unknown fields are refused, not dropped, and nothing is coerced: a deploy service's typo must not start another rollout than it meant.
  const app = Fastify({ logger: false, bodyLimit: config.serve.bodyLimitBytes, ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: true } } });
  const principals = new WeakMap<FastifyRequest, Principal>();
  // The OpenAPI document comes from the routes' own schemas, so it cannot drift from what is validated.
  const { default: swagger } = await import('@fastify/swagger');
  await app.register(swagger, {
    openapi: {
      info: { title: 'pgconvoy', description: 'Fleet rollouts of PostgreSQL migrations through Temporal', version: '0' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
  // Per token (its name, never the token), per address without one: a runaway pipeline slows only itself.
  const { default: rateLimit } = await import('@fastify/rate-limit');
  await app.register(rateLimit, {
    max: config.serve.rateLimitPerMinute,
    timeWindow: 60_000,
    keyGenerator: (request) => authenticate(request.headers.authorization, config.serve.tokens)?.name ?? `address:${request.ip}`,
  });

  /** A valid token with the scope (null: any valid token). */
  const requires = (scope: TokenScope | null) => async (request: FastifyRequest, reply: FastifyReply) => {
    const principal = authenticate(request.headers.authorization, config.serve.tokens);
    if (!principal) return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'Unauthorized', message: 'a bearer token is required (Authorization: Bearer <token>)' });
    if (scope !== null && !allows(principal, scope)) return reply.code(403).send({ error: 'Forbidden', message: `the token "${principal.name}" does not have the scope "${scope}"` });
    principals.set(request, principal);
  };
  const who = (request: FastifyRequest): string => principals.get(request)!.name;

  app.setErrorHandler((error: unknown, request, reply) => {
    const e = error as { validation?: unknown; statusCode?: number; code?: string; message?: string };
    if (e.validation) return reply.code(400).send({ error: 'BadRequest', message: e.message });
    if (error instanceof UsageError) return reply.code(400).send({ error: 'BadRequest', message: error.message });
    if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) return reply.code(e.statusCode).send({ error: e.code ?? 'BadRequest', message: e.message });
    const failure = summarizeFailure(error);
    const status = statusOf(failure.type);
    if (status >= 500) logger.error({ event: 'serve.failed', method: request.method, url: request.url, type: failure.type, message: failure.message });
    return reply.code(status).send({ error: failure.type ?? 'Internal', message: failure.message });
  });

  app.get('/healthz', async (_request, reply) => {
    try {
      await pgconvoy.client.connection.workflowService.getSystemInfo({});
      return { status: 'ok', temporal: 'reachable' };
    } catch {
      return reply.code(503).send({ status: 'unavailable', temporal: 'unreachable' });
    }
  });
  app.get('/readyz', () => ({ status: 'ready' }));
  await registerPage(app);

  // Who the token is and what it may do: the rollout page shows the buttons it allows.
  app.get('/v1/whoami', { preHandler: requires(null) }, (request) => principals.get(request)!);
  app.get<{ Querystring: { limit?: string } }>(
    '/v1/rollouts',
    { schema: { querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'string', pattern: '^[1-9][0-9]{0,2}$' } } } }, preHandler: requires('read') },
    async (request) => ({ rollouts: await listRollouts(pgconvoy, request.query.limit === undefined ? 50 : Number(request.query.limit)) }),
  );

  app.post<{ Body: StartBody }>('/v1/rollouts', { schema: { body: startSchema }, preHandler: requires('trigger') }, async (request, reply) => {
    const body = request.body;
    if ([body.databases, body.select, body.all].filter((x) => x !== undefined).length !== 1) throw new UsageError('choose the databases with exactly one of "databases", "select" or "all"');
    const { targets, selector } = selectTargets(config, { ...(body.databases ? { dbs: body.databases } : {}), ...(body.select !== undefined ? { select: body.select } : {}), ...(body.all ? { all: true } : {}) });
    const canary = body.canary ?? 1;
    const strategy: RolloutStrategy = {
      canary: typeof canary === 'number' ? { count: canary } : { aliases: canary },
      bakeMs: duration('bake', body.bake ?? '0', true),
      waveSize: parseAmount('waveSize', String(body.waveSize ?? '25%')),
      maxParallel: body.maxParallel ?? 4,
      maxFailures: parseAmount('maxFailures', String(body.maxFailures ?? 1)),
      onFailure: body.onFailure ?? 'halt',
      approveWaves: body.approveWaves ?? false,
    };
    const { cachedMigrationSet } = await import('../../source/set-cache');
    const { set } = await cachedMigrationSet(config.migrationsDir, config.files);
    const { handle, attached } = await startRollout(pgconvoy, {
      deployId: body.deployId,
      migrationsDir: config.migrationsDir,
      targets,
      selector,
      strategy,
      mode: body.mode ?? 'auto',
      onDrift: body.onDrift ?? 'halt',
      expect: { manifestDigest: set.digest },
      ...notifyAll(config),
      ...(body.requireApproval ? { requireApproval: true } : {}),
      ...(body.decisionTimeout ? { decisionTimeoutMs: duration('decisionTimeout', body.decisionTimeout) } : {}),
    });
    logger.info({ event: 'serve.rollout_started', deployId: body.deployId, by: who(request), attached, targets: targets.length });
    return reply.code(attached ? 200 : 201).send({ deployId: body.deployId, workflowId: handle.workflowId, attached, targets });
  });

  app.get<{ Params: { deployId: string } }>('/v1/rollouts/:deployId', { schema: { params: { type: 'object', properties: { deployId: { type: 'string', pattern: idPattern } } } }, preHandler: requires('read') }, (request) =>
    statuses.get(request.params.deployId),
  );

  // Every GET and event stream of a rollout shares one query at a time (shared-status.ts).
  const statuses = new SharedStatus(pgconvoy);

  // Open event streams end when the server closes (else close would wait for their callers to go).
  const streams = new Set<() => void>();
  app.addHook('preClose', (done) => {
    for (const stop of streams) stop();
    done();
  });

  // A live stream of the rollout's status (server-sent events): one `status` event whenever it changes, until it ends or the caller goes.
  app.get<{ Params: { deployId: string } }>('/v1/rollouts/:deployId/events', { schema: { params: { type: 'object', properties: { deployId: { type: 'string', pattern: idPattern } } } }, preHandler: requires('read') }, async (request, reply) => {
    const { deployId } = request.params;
    const first = await statuses.get(deployId); // an unknown deploy id is a 404, before the stream starts
    reply.hijack();
    const out = reply.raw;
    out.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    let gone = false;
    request.raw.on('close', () => (gone = true));
    let wake = (): void => undefined;
    const stop = () => {
      gone = true;
      wake();
      out.end();
    };
    streams.add(stop);
    request.raw.on('close', () => streams.delete(stop));
    let last = '';
    let quietSince = Date.now();
    for (let current = first; !gone; ) {
      const text = JSON.stringify(current);
      if (text !== last) {
        out.write(`event: status\ndata: ${text}\n\n`);
        last = text;
        quietSince = Date.now();
      } else if (Date.now() - quietSince > 15_000) {
        out.write(': still here\n\n'); // keeps proxies from closing a quiet stream
        quietSince = Date.now();
      }
      if (endedRolloutStatuses.includes(current.status)) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (gone) break; // the caller went, or the server closes: no further query
      current = await statuses.get(deployId).catch(() => current);
    }
    out.end();
  });

  // One database: `up` (the migrateDatabase run `pgconvoy up` starts, attached to when it runs with the same options), its status, its approval.
  const aliasParams = { type: 'object', properties: { alias: { type: 'string', pattern: aliasPattern } } } as const;
  const known = (alias: string) => {
    if (config.databases[alias] === undefined) throw new TargetSelectionError(`unknown database alias: ${alias}`, { alias });
  };
  type Up = { Params: { alias: string }; Body: { target?: string; mode?: (typeof executionModes)[number]; requireApproval?: boolean; onFailure?: FailurePolicy } | undefined };
  app.post<Up>(
    '/v1/databases/:alias/up',
    {
      schema: {
        params: aliasParams,
        body: { type: 'object', additionalProperties: false, properties: { target: { type: 'string', pattern: '^\\d+$' }, mode: { enum: executionModes }, requireApproval: { type: 'boolean' }, onFailure: { enum: failurePolicies } } },
      },
      preHandler: requires('trigger'),
    },
    async (request, reply) => {
      const { alias } = request.params;
      known(alias);
      const body = request.body ?? {};
      const handle = await startMigration(pgconvoy, {
        db: alias,
        migrationsDir: config.migrationsDir,
        mode: body.mode ?? 'auto',
        onFailure: body.onFailure ?? 'restore',
        ...(body.target !== undefined ? { target: body.target } : {}),
        ...(body.requireApproval ? { requireApproval: true } : {}),
        ...notifyAll(config),
      });
      logger.info({ event: 'serve.up_started', db: alias, by: who(request) });
      return reply.code(202).send({ db: alias, workflowId: handle.workflowId, runId: handle.firstExecutionRunId });
    },
  );
  app.get<{ Params: { alias: string } }>('/v1/databases/:alias', { schema: { params: aliasParams }, preHandler: requires('read') }, async (request) => {
    const { alias } = request.params;
    known(alias);
    const reader = readerThrough(pgconvoy);
    const status = await reader.inspect({ db: alias, migrationsDir: config.migrationsDir });
    return { ...status, running: await reader.running(alias) };
  });
  app.post<{ Params: { alias: string }; Body: { note?: string } | undefined }>(
    '/v1/databases/:alias/approve',
    { schema: { params: aliasParams, body: { type: 'object', additionalProperties: false, properties: { note: { type: 'string', maxLength: 2000 } } } }, preHandler: requires('approve') },
    async (request) => {
      const { alias } = request.params;
      known(alias);
      try {
        return await approve(pgconvoy, alias, { by: who(request), ...(request.body?.note ? { note: request.body.note } : {}) });
      } catch (error) {
        if (error instanceof temporalClient().WorkflowNotFoundError) throw new RolloutMessageRejectedError(`no migration of "${alias}" is running`, { db: alias });
        const rejected = rejectionOf(error);
        if (rejected !== undefined) throw new RolloutMessageRejectedError(rejected, { db: alias });
        throw error;
      }
    },
  );

  type Message = { Params: { deployId: string }; Body: { note?: string; compensate?: boolean; db?: string } | undefined };
  const message = (name: string, scope: TokenScope, send: (deployId: string, by: string, body: NonNullable<Message['Body']>) => Promise<RolloutAck>) =>
    app.post<Message>(`/v1/rollouts/:deployId/${name}`, { schema: { params: { type: 'object', properties: { deployId: { type: 'string', pattern: idPattern } } }, body: messageSchema }, preHandler: requires(scope) }, async (request) => {
      const ack = await send(request.params.deployId, who(request), request.body ?? {});
      statuses.changed(request.params.deployId);
      logger.info({ event: `serve.rollout_${name}`, deployId: request.params.deployId, by: who(request) });
      return ack;
    });
  const note = (b: { note?: string }) => (b.note ? { note: b.note } : {});
  const db = (b: { db?: string }) => {
    if (!b.db) throw new UsageError('body/db is required: the database to act on');
    return b.db;
  };
  message('pause', 'trigger', (id, by, b) => pauseRollout(pgconvoy, id, { by, ...note(b) }));
  message('resume', 'trigger', (id, by, b) => resumeRollout(pgconvoy, id, { by, ...note(b) }));
  message('abort', 'trigger', (id, by, b) => abortRollout(pgconvoy, id, { by, ...note(b), compensate: b.compensate ?? false }));
  message('retry', 'trigger', (id, by, b) => retryRolloutDatabase(pgconvoy, id, { by, db: db(b), ...note(b) }));
  message('skip', 'trigger', (id, by, b) => skipRolloutDatabase(pgconvoy, id, { by, db: db(b), ...note(b) }));
  message('approve', 'approve', (id, by, b) => approveRollout(pgconvoy, id, { by, ...note(b) }));

  return app;
}
