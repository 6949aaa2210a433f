import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, defaultLeaseSettings, loadConfig } from '../../src/config/config';
import { defaultExecutionSettings } from '../../src/core/execution-settings';
import { defaultFileLimits } from '../../src/core/file-limits';
import { defaultThresholds } from '../../src/core/risk-context';
import { createLogger, humanLine } from '../../src/logging/logger';
import { writeMigrations } from '../helpers/migrations';

test('defaults apply with no config file', () => {
  const config = loadConfig({ cwd: '/srv/app', env: {} });
  assert.equal(config.migrationsDir, '/srv/app/migrations');
  assert.equal(config.stateDir, '/srv/app/.pgconvoy');
  assert.deepEqual(config.temporal, { namespace: 'default', taskQueue: 'pgconvoy', reconnectTimeoutMs: 300_000 });
  assert.deepEqual(config.worker, { maxConcurrentActivities: 100, maxConcurrentWorkflowTasks: 40, maxConnectionsPerServer: 20 });
  assert.deepEqual(config.databases, {});
});

test('a worker\'s sizing comes from the file, and a connection cap too small to keep slots for lease renewals is refused', () => {
  const dir = writeMigrations({});
  try {
    writeFileSync(join(dir.dir, 'sized.json'), JSON.stringify({ worker: { maxConcurrentActivities: 40, maxConnectionsPerServer: 12, maxCachedWorkflows: 500 } }));
    const sized = loadConfig({ cwd: dir.dir, configFile: join(dir.dir, 'sized.json'), env: {} });
    assert.deepEqual(sized.worker, { maxConcurrentActivities: 40, maxConcurrentWorkflowTasks: 40, maxConnectionsPerServer: 12, maxCachedWorkflows: 500 });
    writeFileSync(join(dir.dir, 'tiny.json'), JSON.stringify({ worker: { maxConnectionsPerServer: 2 } }));
    assert.throws(() => loadConfig({ cwd: dir.dir, configFile: join(dir.dir, 'tiny.json'), env: {} }), /worker\.maxConnectionsPerServer/);
  } finally {
    dir.remove();
  }
});

test('file, urlEnv and PGCONVOY_DB_<ALIAS> resolve databases; paths are relative to the file', () => {
  const dir = writeMigrations({});
  try {
    writeFileSync(
      join(dir.dir, 'pg.json'),
      JSON.stringify({ migrations: 'sql', databases: { main: { url: 'postgres://a/main' }, 'eu-1': { urlEnv: 'EU_URL' } }, temporal: { taskQueue: 'q' } }),
    );
    const config = loadConfig({
      cwd: '/elsewhere',
      configFile: join(dir.dir, 'pg.json'),
      env: { EU_URL: 'postgres://b/eu', PGCONVOY_DB_MAIN: 'postgres://override/main', PGCONVOY_DB_EXTRA: 'postgres://c/extra', TEMPORAL_ADDRESS: 'temporal:7233' },
    });
    assert.equal(config.migrationsDir, join(dir.dir, 'sql'));
    assert.deepEqual(config.databases, { main: 'postgres://override/main', 'eu-1': 'postgres://b/eu', extra: 'postgres://c/extra' });
    assert.deepEqual(config.temporal, { address: 'temporal:7233', namespace: 'default', taskQueue: 'q', reconnectTimeoutMs: 300_000 });
  } finally {
    dir.remove();
  }
});

test('every problem in a config file is reported at once, unknown keys included', () => {
  const dir = writeMigrations({});
  try {
    const file = join(dir.dir, 'pg.json');
    writeFileSync(file, JSON.stringify({ migration: 'typo', databases: { 'Bad Alias': { url: 'x' }, ok: { url: 'x', urlEnv: 'Y' }, unset: { urlEnv: 'NOPE' } } }));
    assert.throws(
      () => loadConfig({ cwd: '/', configFile: file, env: {} }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /Unrecognized key: "migration"/);
        assert.match(error.message, /databases/);
        return true;
      },
    );
    writeFileSync(file, JSON.stringify({ databases: { ok: { url: 'x', urlEnv: 'Y' }, unset: { urlEnv: 'NOPE' } } }));
    assert.throws(() => loadConfig({ cwd: '/', configFile: file, env: {} }), {
      message: `invalid configuration (${file}):\n  databases.ok: give exactly one of "url" or "urlEnv"\n  databases.unset: environment variable NOPE is not set`,
    });
    writeFileSync(file, '{ not json');
    assert.throws(() => loadConfig({ cwd: '/', configFile: file, env: {} }), /not valid JSON/);
    assert.throws(() => loadConfig({ cwd: '/', configFile: join(dir.dir, 'missing.json'), env: {} }), /cannot read/);
  } finally {
    dir.remove();
  }
});

test('risk thresholds: defaults, overrides from the file, and bad values refused', () => {
  assert.deepEqual(loadConfig({ cwd: '/', env: {} }).risk, { smallRows: 10_000, smallBytes: 10 * 1024 * 1024, largeRows: 1_000_000, largeBytes: 1024 ** 3, blockingSessionMs: 1_000 });
  const dir = writeMigrations({});
  try {
    const file = join(dir.dir, 'pg.json');
    writeFileSync(file, JSON.stringify({ risk: { largeRows: 100_000, blockingSessionMs: 0 } }));
    const risk = loadConfig({ cwd: '/', configFile: file, env: {} }).risk;
    assert.equal(risk.largeRows, 100_000);
    assert.equal(risk.blockingSessionMs, 0);
    assert.equal(risk.smallRows, 10_000);
    writeFileSync(file, JSON.stringify({ risk: { largeRows: -1, hugeRows: 5 } }));
    assert.throws(() => loadConfig({ cwd: '/', configFile: file, env: {} }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /risk\.largeRows/);
      assert.match(error.message, /Unrecognized key: "hugeRows"/);
      return true;
    });
  } finally {
    dir.remove();
  }
});

test('files limits have documented defaults and can be set', () => {
  assert.deepEqual(loadConfig({ cwd: '/srv/app', env: {} }).files, { maxFileBytes: 4 * 1024 * 1024, readTimeoutMs: 30_000 });
  const dir = writeMigrations({});
  try {
    const file = join(dir.dir, 'pg.json');
    writeFileSync(file, JSON.stringify({ files: { maxFileBytes: 1024 } }));
    assert.deepEqual(loadConfig({ cwd: '/', configFile: file, env: {} }).files, { maxFileBytes: 1024, readTimeoutMs: 30_000 });
    writeFileSync(file, JSON.stringify({ files: { maxBytes: 1024 } }));
    assert.throws(() => loadConfig({ cwd: '/', configFile: file, env: {} }), { message: `invalid configuration (${file}):\n  files: Unrecognized key: "maxBytes"` });
  } finally {
    dir.remove();
  }
});

test('an alias that is not one says what an alias is (not "Invalid key in record")', () => {
  const dir = writeMigrations({});
  try {
    const file = join(dir.dir, 'pg.json');
    writeFileSync(file, JSON.stringify({ databases: { Orders: { url: 'x' } } }));
    assert.throws(() => loadConfig({ cwd: '/', configFile: file, env: {} }), {
      message: `invalid configuration (${file}):\n  databases.Orders: an alias is lower-case letters, digits, "_", "." or "-", starting with a letter or digit`,
    });
  } finally {
    dir.remove();
  }
});

test('backup.scope "none" needs a reason, a reason needs scope "none"; pgBinDir is absolute, PGCONVOY_PG_BIN_DIR wins', () => {
  const dir = writeMigrations({});
  try {
    const file = join(dir.dir, 'pg.json');
    writeFileSync(file, JSON.stringify({ backup: { scope: 'none' } }));
    assert.throws(() => loadConfig({ cwd: '/', configFile: file, env: {} }), /backup\.reason: required with "scope": "none"/);
    writeFileSync(file, JSON.stringify({ backup: { reason: 'snapshots' } }));
    assert.throws(() => loadConfig({ cwd: '/', configFile: file, env: {} }), /backup\.reason: only with "scope": "none"/);
    writeFileSync(file, JSON.stringify({ backup: { scope: 'none', reason: '   ' } }));
    assert.throws(() => loadConfig({ cwd: '/', configFile: file, env: {} }), /backup\.reason/);

    writeFileSync(file, JSON.stringify({ backup: { scope: 'none', reason: '2 TB; provider snapshots hourly', pgBinDir: 'pg18/bin' } }));
    const fromFile = loadConfig({ cwd: '/', configFile: file, env: {} }).backup;
    assert.equal(fromFile.scope, 'none');
    assert.equal(fromFile.reason, '2 TB; provider snapshots hourly');
    assert.equal(fromFile.pgBinDir, join(dir.dir, 'pg18/bin'));
    assert.equal(loadConfig({ cwd: '/srv', configFile: file, env: { PGCONVOY_PG_BIN_DIR: 'tools/bin' } }).backup.pgBinDir, '/srv/tools/bin');
    assert.equal(loadConfig({ cwd: '/srv', env: {} }).backup.pgBinDir, undefined);
  } finally {
    dir.remove();
  }
});

test('log lines for people: the message, or the event with its plain facts; JSON stays JSON for a worker', () => {
  const lines: string[] = [];
  const human = createLogger('warn', 'human', (l) => lines.push(l));
  human.warn({ event: 'restore.terminating_sessions', db: 'app', sessions: [{ pid: 1 }] }, 'terminating 1 other session(s) of "app" before restoring backup x');
  human.warn({ event: 'migration.lock_timeout', db: 'app', version: '3', attempt: 2 });
  human.info({ event: 'below.the.level' });
  assert.deepEqual(lines, [
    'pgconvoy: warning: terminating 1 other session(s) of "app" before restoring backup x\n',
    'pgconvoy: warning: migration.lock_timeout (db=app, version=3, attempt=2)\n',
  ]);
  assert.equal(humanLine('not json'), 'not json');
  assert.equal(loadConfig({ cwd: '/', env: { PGCONVOY_LOG_FORMAT: 'json' } }).logFormat, 'json');
});

test('defaults come from the schema; labels per database; a log level or format that is none is refused', () => {
  const config = loadConfig({ cwd: '/srv', env: {} });
  assert.deepEqual(config.execution, defaultExecutionSettings);
  assert.deepEqual(config.lease, defaultLeaseSettings);
  assert.deepEqual(config.risk, defaultThresholds);
  assert.deepEqual(config.files, defaultFileLimits);
  assert.deepEqual(config.backup, { store: '/srv/.pgconvoy/backups', keep: 5, drill: false, scope: 'database', s3: { region: 'us-east-1', partSizeBytes: 16 * 1024 * 1024, queueSize: 2 } });
  assert.deepEqual(config.labels, {});

  const dir = writeMigrations({});
  try {
    const file = join(dir.dir, 'pg.json');
    writeFileSync(file, JSON.stringify({ execution: { lockTimeoutMs: 2000 }, databases: { 'eu-1': { url: 'postgres://x/eu', labels: { region: 'eu', tier: 'gold' } }, us: { url: 'postgres://x/us' } } }));
    const withLabels = loadConfig({ cwd: '/', configFile: file, env: {} });
    assert.deepEqual(withLabels.execution, { ...defaultExecutionSettings, lockTimeoutMs: 2000 }, 'a section given in part keeps the other defaults');
    assert.deepEqual(withLabels.labels, { 'eu-1': { region: 'eu', tier: 'gold' }, us: {} });
    writeFileSync(file, JSON.stringify({ databases: { a: { url: 'x', labels: { 'Bad Key': 'v' } } } }));
    assert.throws(() => loadConfig({ cwd: '/', configFile: file, env: {} }), /databases\.a\.labels\.Bad Key: a label key is lower-case letters/);
  } finally {
    dir.remove();
  }
  assert.throws(() => loadConfig({ cwd: '/', env: { PGCONVOY_LOG_LEVEL: 'loud' } }), /PGCONVOY_LOG_LEVEL: expected one of trace, debug, info, warn, error, fatal, silent, got "loud"/);
  assert.throws(() => loadConfig({ cwd: '/', env: { PGCONVOY_LOG_FORMAT: 'xml' } }), /PGCONVOY_LOG_FORMAT: expected json or human, got "xml"/);
  assert.equal(loadConfig({ cwd: '/', env: { PGCONVOY_LOG_LEVEL: 'silent' } }).logLevel, 'silent');
});

test('serve: tokens are names, hex sha256 hashes and scopes; a token written in place of its hash is refused', () => {
  const dir = writeMigrations({});
  try {
    const file = join(dir.dir, 'serve.json');
    const hash = 'a'.repeat(64);
    writeFileSync(file, JSON.stringify({ serve: { port: 9090, tokens: [{ name: 'ci', sha256: hash, scopes: ['trigger', 'read'] }] } }));
    const config = loadConfig({ cwd: dir.dir, configFile: file, env: {} });
    assert.deepEqual(config.serve, { host: '127.0.0.1', port: 9090, bodyLimitBytes: 65536, rateLimitPerMinute: 600, tokens: [{ name: 'ci', sha256: hash, scopes: ['trigger', 'read'] }] });
    // More tokens from the environment; a name given twice is refused.
    const fromEnv = loadConfig({ cwd: dir.dir, configFile: file, env: { PGCONVOY_SERVE_TOKENS: JSON.stringify([{ name: 'alice', sha256: 'b'.repeat(64), scopes: ['approve'] }]) } });
    assert.deepEqual(fromEnv.serve.tokens.map((t) => t.name), ['ci', 'alice']);
    assert.throws(() => loadConfig({ cwd: dir.dir, configFile: file, env: { PGCONVOY_SERVE_TOKENS: JSON.stringify([{ name: 'ci', sha256: 'b'.repeat(64), scopes: ['read'] }]) } }), /the name "ci" is given to more than one token/);
    assert.throws(() => loadConfig({ cwd: dir.dir, configFile: file, env: { PGCONVOY_SERVE_TOKENS: '[{' } }), /PGCONVOY_SERVE_TOKENS: not valid JSON/);
    writeFileSync(file, JSON.stringify({ serve: { tokens: [{ name: 'ci', sha256: 'my-plain-token', scopes: ['root'] }] } }));
    assert.throws(
      () => loadConfig({ cwd: dir.dir, configFile: file, env: {} }),
      (e: unknown) => e instanceof ConfigError && /serve\.tokens\.0\.sha256: the hex sha256 of the token/.test(e.message) && /serve\.tokens\.0\.scopes\.0/.test(e.message),
    );
  } finally {
    dir.remove();
  }
});

test('notify.webhooks: a name, a URL and the environment variable of its secret, which must be set; names are unique', () => {
  const dir = writeMigrations({});
  try {
    const file = join(dir.dir, 'hooks.json');
    writeFileSync(file, JSON.stringify({ notify: { webhooks: [{ name: 'ops', url: 'https://hooks.example/x', secretEnv: 'OPS_SECRET', events: ['completed'] }] } }));
    assert.deepEqual(loadConfig({ cwd: dir.dir, configFile: file, env: { OPS_SECRET: 's3' } }).webhooks, { ops: { url: 'https://hooks.example/x', secret: 's3', format: 'json', events: ['completed'] } });
    assert.throws(() => loadConfig({ cwd: dir.dir, configFile: file, env: {} }), /notify\.webhooks\.ops: environment variable OPS_SECRET \(its signing secret\) is not set/);
    writeFileSync(file, JSON.stringify({ notify: { webhooks: [{ name: 'ops', url: 'not a url', secretEnv: 'S', events: ['sometimes'] }] } }));
    assert.throws(() => loadConfig({ cwd: dir.dir, configFile: file, env: { S: 'x' } }), (e: unknown) => e instanceof ConfigError && /notify\.webhooks\.0\.url/.test(e.message) && /notify\.webhooks\.0\.events\.0/.test(e.message));
  } finally {
    dir.remove();
  }
});

test('hooks: commands by event with a timeout (default a minute) and, only when asked for, the variable that gets the connection string; no hooks by default', () => {
  const dir = writeMigrations({});
  try {
    const file = join(dir.dir, 'pgconvoy.json');
    writeFileSync(file, JSON.stringify({}));
    assert.deepEqual(loadConfig({ cwd: dir.dir, configFile: file, env: {} }).hooks, { beforeMigrate: [], afterMigrate: [], afterMigrateError: [], afterMigrateFailure: 'keep' });
    writeFileSync(file, JSON.stringify({ hooks: { afterMigrate: [{ run: './scripts/refresh.sh' }, { run: 'psql "$DB" -c "SELECT 1"', timeoutMs: 5000, connectionEnv: 'DB' }], afterMigrateFailure: 'compensate' } }));
    const { hooks } = loadConfig({ cwd: dir.dir, configFile: file, env: {} });
    assert.deepEqual(hooks.afterMigrate, [{ run: './scripts/refresh.sh', timeoutMs: 60_000 }, { run: 'psql "$DB" -c "SELECT 1"', timeoutMs: 5000, connectionEnv: 'DB' }]);
    assert.equal(hooks.afterMigrateFailure, 'compensate');
    writeFileSync(file, JSON.stringify({ hooks: { afterEachMigrate: [{ run: 'x' }], beforeMigrate: [{ run: '', connectionEnv: 'lower' }] } }));
    assert.throws(
      () => loadConfig({ cwd: dir.dir, configFile: file, env: {} }),
      (e: unknown) => e instanceof ConfigError && /hooks/.test(e.message) && /afterEachMigrate/.test(e.message) && /hooks\.beforeMigrate\.0\.connectionEnv/.test(e.message) && /hooks\.beforeMigrate\.0\.run/.test(e.message),
    );
  } finally {
    dir.remove();
  }
});
