import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { PgconvoyError } from '../core/errors';
import { defaultThresholds, type RiskThresholds } from '../core/risk-context';
import { defaultExecutionSettings, type ExecutionSettings } from '../core/execution-settings';
import { defaultFileLimits, type FileLimits } from '../core/file-limits';
import { commandHooksSchema, type CommandHooks } from './hooks';
import { databaseGuardsSchema, guardsSchema, resolveGuards, watchSchema, type Guards, type WatchSettings } from './guards';
export { guardsOf } from './guards';
import { workerSchema, type WorkerSettings } from './worker';
export { defaultWorkerSettings, type WorkerSettings } from './worker';
import { tokenSchema, webhookSchema, type ServeSettings, type WebhookSettings } from './serve';

export type { CommandHook, CommandHooks } from './hooks';
export type { GuardName, Guards, WatchSettings } from './guards';
export { tokenScopes, type ServeSettings, type TokenScope, type WebhookSettings } from './serve';

/** The input field that has a run or rollout tell every webhook in the config (none: no field, so inputs without webhooks stay as they were). */
export function notifyAll(config: Pick<Config, 'webhooks'>): { notify?: string[] } {
  const names = Object.keys(config.webhooks);
  return names.length > 0 ? { notify: names } : {};
}

/** A database alias: safe in a workflow id, a log line and a file name. */
export const aliasPattern = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
const alias = z.string().regex(aliasPattern, 'an alias is lower-case letters, digits, "_", "." or "-", starting with a letter or digit');

export interface LeaseSettings {
  ttlMs: number;
  renewEveryMs: number;
}

export const defaultReconnectTimeoutMs = 5 * 60_000;

export const defaultLeaseSettings: LeaseSettings = { ttlMs: 30_000, renewEveryMs: 3_000 };

/** A label: `key: value`, as in Kubernetes, for selecting databases (`region=eu`, `tier=gold`). */
const labelKey = z.string().regex(/^[a-z0-9]([a-z0-9_.\/-]{0,61}[a-z0-9])?$/, 'a label key is lower-case letters, digits, "_", ".", "/" or "-", starting and ending with a letter or digit');

const databaseSchema = z.strictObject({
  /** Connection string; prefer urlEnv so secrets stay out of files. */
  url: z.string().min(1).optional(),
  /** Name of an environment variable holding the connection string. */
  urlEnv: z.string().min(1).optional(),
  /** What a rollout selects databases by. */
  labels: z.record(labelKey, z.string().max(253)).prefault({}),
  /** This database's guards, over the config's (guards). */
  guards: databaseGuardsSchema.optional(),
});

/** Log levels (pino's); `silent` logs nothing. */
export const logLevels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

const fileSchema = z.strictObject({
  migrations: z.string().min(1).default('migrations'),
  /** Limits on reading the migration directory. */
  files: z
    .strictObject({
      maxFileBytes: z.number().int().min(1).default(defaultFileLimits.maxFileBytes),
      readTimeoutMs: z.number().int().min(1).default(defaultFileLimits.readTimeoutMs),
    })
    .prefault({}),
  databases: z.record(alias, databaseSchema).optional(),
  temporal: z
    .strictObject({
      address: z.string().min(1).optional(),
      namespace: z.string().min(1).default('default'),
      taskQueue: z.string().min(1).default('pgconvoy'),
      /** How long a CLI waiting for a run keeps reconnecting after it lost Temporal before it gives up (exit 3). */
      reconnectTimeoutMs: z.number().int().min(0).default(defaultReconnectTimeoutMs),
    })
    .prefault({}),
  /** How a worker is sized (src/config/worker.ts). */
  worker: workerSchema.prefault({}),
  stateDir: z.string().min(1).default('.pgconvoy'),
  backup: z
    .strictObject({
      /** A directory, or s3://bucket/prefix. */
      store: z.string().min(1).optional(),
      /** Backups kept per database; older ones are deleted after each new backup. */
      keep: z.number().int().min(1).default(5),
      /** Also restore every backup into a scratch database before the run goes on. */
      drill: z.boolean().default(false),
      /**
       * `database` (default); `touched-tables`: only the existing tables the
       * pending migrations lock, for large databases; `none`: no backup at all
       * (compensation is then undo scripts or halt), with a required `reason`.
       */
      scope: z.enum(['database', 'touched-tables', 'none']).default('database'),
      /** Why a run takes no backup (`scope: "none"`); recorded in the ledger with every version it applies. */
      reason: z.string().trim().min(1).optional(),
      /** Directory of the pg_dump, pg_restore and psql to use; default: /usr/lib/postgresql/<server major>/bin if it exists, else PATH. */
      pgBinDir: z.string().min(1).optional(),
      s3: z
        .strictObject({
          region: z.string().min(1).default('us-east-1'),
          endpoint: z.string().url().optional(),
          partSizeBytes: z.number().int().min(5 * 1024 * 1024).default(16 * 1024 * 1024),
          queueSize: z.number().int().min(1).max(16).default(2),
          serverSideEncryption: z.enum(['AES256', 'aws:kms']).optional(),
        })
        .prefault({}),
    })
    .prefault({}),
  lease: z
    .strictObject({
      ttlMs: z.number().int().min(1000).default(defaultLeaseSettings.ttlMs),
      renewEveryMs: z.number().int().min(100).default(defaultLeaseSettings.renewEveryMs),
    })
    .prefault({}),
  risk: z
    .strictObject({
      smallRows: z.number().int().min(0).default(defaultThresholds.smallRows),
      smallBytes: z.number().int().min(0).default(defaultThresholds.smallBytes),
      largeRows: z.number().int().min(1).default(defaultThresholds.largeRows),
      largeBytes: z.number().int().min(1).default(defaultThresholds.largeBytes),
      blockingSessionMs: z.number().int().min(0).default(defaultThresholds.blockingSessionMs),
    })
    .prefault({}),
  /** Webhooks for rollout events, by name (a rollout's input carries only the names). */
  notify: z.strictObject({ webhooks: z.array(webhookSchema).default([]) }).prefault({}),
  hooks: commandHooksSchema.prefault({}),
  watch: watchSchema.prefault({}),
  guards: guardsSchema.prefault({}),
  /** `pgconvoy serve`: where it listens and who may call it. */
  serve: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(8080),
      bodyLimitBytes: z.number().int().min(1024).default(64 * 1024),
      rateLimitPerMinute: z.number().int().min(1).default(600),
      tokens: z.array(tokenSchema).default([]),
    })
    .prefault({}),
  execution: z
    .strictObject({
      lockTimeoutMs: z.number().int().positive().default(defaultExecutionSettings.lockTimeoutMs),
      lockTimeoutInitialMs: z.number().int().positive().default(defaultExecutionSettings.lockTimeoutInitialMs),
      lockRetryMaxAttempts: z.number().int().min(1).max(100).default(defaultExecutionSettings.lockRetryMaxAttempts),
      lockRetryPauseMs: z.number().int().min(0).default(defaultExecutionSettings.lockRetryPauseMs),
      lockRetryMaxPauseMs: z.number().int().min(0).default(defaultExecutionSettings.lockRetryMaxPauseMs),
      statementTimeoutMs: z.number().int().min(0).default(defaultExecutionSettings.statementTimeoutMs),
    })
    .prefault({}),
});

export interface Config {
  /** Absolute path of the migration directory. */
  migrationsDir: string;
  /** The largest file pgconvoy reads, and how long reading the set may take. */
  files: FileLimits;
  /** Connection strings by alias. Only activities read these. */
  databases: Record<string, string>;
  /** Labels by alias (databases.<alias>.labels; none for an alias from PGCONVOY_DB_<ALIAS> alone). */
  labels: Record<string, Record<string, string>>;
  temporal: {
    /** Unset: the CLI starts a local dev server itself (the embedded default). */
    address?: string;
    namespace: string;
    taskQueue: string;
    /** How long a CLI waiting for a run keeps reconnecting to a Temporal it lost (the run goes on meanwhile). */
    reconnectTimeoutMs: number;
  };
  /** Slots and the connection cap of `pgconvoy worker`. */
  worker: WorkerSettings;
  /** Where the embedded dev server keeps its state. */
  stateDir: string;
  /** Lock and statement timeouts, lock retry schedule. */
  execution: ExecutionSettings;
  /** The database lease: how long it lives without renewal, and how often its holder renews it. */
  lease: LeaseSettings;
  backup: BackupSettings;
  /** Table sizes that make a locking statement low or high risk. */
  risk: RiskThresholds;
  /** `pgconvoy serve`. */
  serve: ServeSettings;
  /** Webhooks by name; only activities read their URLs and secrets. */
  webhooks: Record<string, WebhookSettings>;
  /** Commands the worker runs around a run (hooks: { beforeMigrate: [...], ... }). */
  hooks: CommandHooks;
  /** How often the worker samples a database while it migrates or backs it up. */
  watch: WatchSettings;
  /** The guards of each database by alias (guardsOf); an alias missing here has no limits. */
  guards: Record<string, Guards>;
  /** The temporal CLI binary for the embedded dev server. */
  temporalBin?: string;
  /** PGCONVOY_LOG_LEVEL; unset: the command picks (warn for the CLI, info for a worker). */
  logLevel?: string;
  /** PGCONVOY_LOG_FORMAT; unset: the command picks (json for a worker, human lines for the others). */
  logFormat?: 'json' | 'human';
}

export interface BackupSettings {
  /** Absolute directory, or s3://bucket/prefix. */
  store: string;
  keep: number;
  drill: boolean;
  scope: 'database' | 'touched-tables' | 'none';
  /** Why no backup is taken; set exactly when scope is `none`. */
  reason?: string;
  /** Absolute; unset: chosen by the server's major version (see src/backup/pg-tools.ts). */
  pgBinDir?: string;
  s3: {
    region: string;
    endpoint?: string;
    credentials?: { accessKeyId: string; secretAccessKey: string };
    partSizeBytes: number;
    queueSize: number;
    serverSideEncryption?: 'AES256' | 'aws:kms';
  };
}

export class ConfigError extends PgconvoyError {
  readonly type = 'InvalidConfig';
  constructor(readonly source: string, readonly problems: string[]) {
    super(`invalid configuration (${source}):\n` + problems.map((p) => `  ${p}`).join('\n'), { source, problems });
  }
}

export const defaultConfigFile = 'pgconvoy.config.json';

export interface LoadOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** --config; when absent, pgconvoy.config.json in cwd is used if it exists. */
  configFile?: string;
  /** --migrations */
  migrationsDir?: string;
}

/** Environment variable that supplies the connection string for an alias. */
export function databaseEnvName(name: string): string {
  return `PGCONVOY_DB_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}

/**
 * Reads the config file and the environment once, validates everything and
 * reports every problem at once. Nothing deeper than this reads process.env.
 */
export function loadConfig(options: LoadOptions): Config {
  const { cwd, env } = options;
  const explicit = options.configFile !== undefined;
  const file = resolve(cwd, options.configFile ?? defaultConfigFile);
  let raw: unknown = {};
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if (explicit || (error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new ConfigError(file, [`cannot read: ${(error as Error).message}`]);
    }
  }
  if (text !== undefined) {
    try {
      raw = JSON.parse(text);
    } catch (error) {
      throw new ConfigError(file, [`not valid JSON: ${(error as Error).message}`]);
    }
  }
  const parsed = fileSchema.safeParse(raw);
  const problems: string[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      // A bad record key (an alias) says only "Invalid key in record"; its own issues say why.
      const messages = issue.code === 'invalid_key' && issue.issues.length > 0 ? issue.issues.map((i) => i.message) : [issue.message];
      for (const message of messages) problems.push(`${issue.path.join('.') || '(root)'}: ${message}`);
    }
    throw new ConfigError(file, problems);
  }
  const base = text === undefined ? cwd : dirname(file);
  const fromFile = parsed.data;

  const databases: Record<string, string> = {};
  const labels: Record<string, Record<string, string>> = {};
  const guards: Record<string, Guards> = {};
  for (const [name, db] of Object.entries(fromFile.databases ?? {})) {
    labels[name] = db.labels;
    guards[name] = resolveGuards(fromFile.guards, db.labels, db.guards);
    if ((db.url === undefined) === (db.urlEnv === undefined)) {
      problems.push(`databases.${name}: give exactly one of "url" or "urlEnv"`);
      continue;
    }
    const url = db.url ?? env[db.urlEnv ?? ''];
    if (url === undefined || url === '') {
      problems.push(`databases.${name}: environment variable ${db.urlEnv} is not set`);
      continue;
    }
    databases[name] = url;
  }
  // PGCONVOY_DB_<ALIAS> adds or overrides a database.
  for (const [key, value] of Object.entries(env)) {
    if (!key.startsWith('PGCONVOY_DB_') || !value) continue;
    const name = key.slice('PGCONVOY_DB_'.length).toLowerCase();
    const existing = Object.keys(databases).find((known) => databaseEnvName(known) === key);
    databases[existing ?? name] = value;
    guards[existing ?? name] ??= resolveGuards(fromFile.guards, {}, undefined);
  }
  // A run without a backup is a decision someone made for a reason; the ledger keeps it.
  if (fromFile.backup.scope === 'none' && fromFile.backup.reason === undefined) {
    problems.push('backup.reason: required with "scope": "none" (why this database is migrated without a backup, for example "500 GB; hourly snapshots by the provider"); it is recorded in the ledger');
  }
  if (fromFile.backup.reason !== undefined && fromFile.backup.scope !== 'none') {
    problems.push('backup.reason: only with "scope": "none" (a run that takes a backup needs no reason)');
  }
  // PGCONVOY_SERVE_TOKENS: more tokens (a JSON array like serve.tokens), for a secret store that fills the environment.
  const tokens = [...fromFile.serve.tokens];
  if (env.PGCONVOY_SERVE_TOKENS) {
    let rawTokens: unknown;
    try {
      rawTokens = JSON.parse(env.PGCONVOY_SERVE_TOKENS);
    } catch (error) {
      problems.push(`PGCONVOY_SERVE_TOKENS: not valid JSON: ${(error as Error).message}`);
    }
    const parsedTokens = z.array(tokenSchema).safeParse(rawTokens ?? []);
    if (parsedTokens.success) tokens.push(...parsedTokens.data);
    else for (const issue of parsedTokens.error.issues) problems.push(`PGCONVOY_SERVE_TOKENS.${issue.path.join('.')}: ${issue.message}`);
  }
  const names = tokens.map((t) => t.name);
  for (const name of new Set(names.filter((n, i) => names.indexOf(n) !== i))) problems.push(`serve.tokens: the name "${name}" is given to more than one token`);
  const webhooks: Record<string, WebhookSettings> = {};
  for (const hook of fromFile.notify.webhooks) {
    const secret = env[hook.secretEnv];
    if (webhooks[hook.name]) problems.push(`notify.webhooks: the name "${hook.name}" is given to more than one webhook`);
    else if (!secret) problems.push(`notify.webhooks.${hook.name}: environment variable ${hook.secretEnv} (its signing secret) is not set`);
    else webhooks[hook.name] = { url: hook.url, secret, format: hook.format, ...(hook.events ? { events: hook.events } : {}) };
  }
  const logLevel = env.PGCONVOY_LOG_LEVEL || undefined;
  if (logLevel !== undefined && !(logLevels as readonly string[]).includes(logLevel)) {
    problems.push(`PGCONVOY_LOG_LEVEL: expected one of ${logLevels.join(', ')}, got "${logLevel}"`);
  }
  const logFormat = env.PGCONVOY_LOG_FORMAT || undefined;
  if (logFormat !== undefined && logFormat !== 'json' && logFormat !== 'human') problems.push(`PGCONVOY_LOG_FORMAT: expected json or human, got "${logFormat}"`);
  if (problems.length > 0) throw new ConfigError(file, problems);

  const address = env.TEMPORAL_ADDRESS || fromFile.temporal?.address;
  const reconnectTimeoutMs = env.PGCONVOY_TEMPORAL_RECONNECT_TIMEOUT_MS ? Number(env.PGCONVOY_TEMPORAL_RECONNECT_TIMEOUT_MS) : undefined;
  if (reconnectTimeoutMs !== undefined && !(Number.isInteger(reconnectTimeoutMs) && reconnectTimeoutMs >= 0)) {
    throw new ConfigError(file, [`PGCONVOY_TEMPORAL_RECONNECT_TIMEOUT_MS: expected a whole number of milliseconds, got "${env.PGCONVOY_TEMPORAL_RECONNECT_TIMEOUT_MS}"`]);
  }
  return {
    migrationsDir: absolute(cwd, options.migrationsDir) ?? absolute(base, fromFile.migrations)!,
    files: fromFile.files,
    databases,
    labels,
    temporal: {
      ...(address ? { address } : {}),
      namespace: env.TEMPORAL_NAMESPACE || fromFile.temporal.namespace,
      taskQueue: env.PGCONVOY_TASK_QUEUE || fromFile.temporal.taskQueue,
      reconnectTimeoutMs: reconnectTimeoutMs ?? fromFile.temporal.reconnectTimeoutMs,
    },
    worker: fromFile.worker,
    stateDir: absolute(cwd, env.PGCONVOY_STATE_DIR) ?? absolute(base, fromFile.stateDir)!,
    execution: fromFile.execution,
    lease: fromFile.lease,
    risk: fromFile.risk,
    serve: { ...fromFile.serve, tokens },
    webhooks,
    hooks: fromFile.hooks,
    watch: fromFile.watch,
    guards,
    backup: backupSettings(fromFile.backup, env, cwd, base, absolute(cwd, env.PGCONVOY_STATE_DIR) ?? absolute(base, fromFile.stateDir)!),
    ...(env.PGCONVOY_TEMPORAL_BIN ? { temporalBin: env.PGCONVOY_TEMPORAL_BIN } : {}),
    ...(logLevel ? { logLevel } : {}),
    ...(logFormat === 'json' || logFormat === 'human' ? { logFormat } : {}),
  };
}

function backupSettings(file: z.output<typeof fileSchema>['backup'], env: NodeJS.ProcessEnv, cwd: string, base: string, stateDir: string): BackupSettings {
  const store = env.PGCONVOY_BACKUP_STORE || file.store;
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || file.s3.endpoint;
  const pgBinDir = absolute(cwd, env.PGCONVOY_PG_BIN_DIR) ?? absolute(base, file.pgBinDir);
  return {
    store: store === undefined ? join(stateDir, 'backups') : store.startsWith('s3://') ? store : absolute(base, store)!,
    keep: file.keep,
    drill: file.drill,
    scope: file.scope,
    ...(file.scope === 'none' && file.reason ? { reason: file.reason } : {}),
    ...(pgBinDir ? { pgBinDir } : {}),
    s3: {
      region: env.AWS_REGION || env.AWS_DEFAULT_REGION || file.s3.region,
      ...(endpoint ? { endpoint } : {}),
      ...(env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY ? { credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY } } : {}),
      partSizeBytes: file.s3.partSizeBytes,
      queueSize: file.s3.queueSize,
      ...(file.s3.serverSideEncryption ? { serverSideEncryption: file.s3.serverSideEncryption } : {}),
    },
  };
}

function absolute(base: string, path: string | undefined): string | undefined {
  if (path === undefined || path === '') return undefined;
  return isAbsolute(path) ? path : resolve(base, path);
}
