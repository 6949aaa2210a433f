import { randomBytes } from 'node:crypto';
import type { Config } from '../../config/config';
import type { Logger } from '../../logging/logger';
import type { PgconvoyClient } from '../api';
import { ExitCode } from '../exit-codes';
import { withTemporal, type Session } from '../session';
import { UsageError, type CliKit } from './kit';

function port(name: string, value: string | undefined, fallback: number): number {
  const n = value === undefined ? fallback : Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`${name} must be a port number, got "${value}"`);
  return n;
}

/** Listens until SIGINT/SIGTERM; `ready` is told the address once it listens. */
async function listenUntilInterrupted(config: Config, logger: Logger, pgconvoy: PgconvoyClient, session: Session, host: string, listenPort: number, ready: (address: string) => void): Promise<ExitCode> {
  const { buildServer } = await import('../http/server');
  const app = await buildServer({ config, pgconvoy, logger });
  const address = await app.listen({ host, port: listenPort });
  ready(address);
  logger.info({ event: 'serve.listening', address, tokens: config.serve.tokens.map((t) => t.name) });
  await session.interrupted;
  await app.close();
  return ExitCode.ok;
}

/** `pgconvoy serve` (the HTTP API for deploy services) and `pgconvoy dev` (the local playground), until SIGINT/SIGTERM. */
export function registerServeCommand(kit: CliKit): void {
  kit.program
    .command('serve')
    .description('serve the HTTP API (rollouts) for deploy services until SIGINT/SIGTERM')
    .option('--host <host>', 'address to listen on (default: serve.host, else 127.0.0.1)')
    .option('--port <port>', 'port to listen on (default: serve.port, else 8080)')
    .action(async (options: { host?: string; port?: string }) => {
      const { config, logger } = kit.context('info', 'json');
      const listenPort = port('--port', options.port, config.serve.port);
      const host = options.host ?? config.serve.host;
      if (config.serve.tokens.length === 0) logger.warn({ event: 'serve.no_tokens', message: 'no tokens in serve.tokens: every /v1 request is refused (401)' });
      kit.exitCode = await withTemporal(
        config,
        logger,
        (pgconvoy, session) => listenUntilInterrupted(config, logger, pgconvoy, session, host, listenPort, (address) => kit.io.stderr(`pgconvoy serve: listening on ${address}\n`)),
        { handlesInterrupts: true },
      );
    });

  kit.program
    .command('dev')
    .description('the local playground: the embedded Temporal server with its Web UI, a worker and the HTTP API with the rollout page, in one process until Ctrl-C')
    .option('--port <port>', 'the HTTP API and rollout page (default: serve.port, else 8080)')
    .option('--temporal-port <port>', "the Temporal server's frontend, for other commands (TEMPORAL_ADDRESS)", '7233')
    .option('--ui-port <port>', 'the Temporal Web UI', '8233')
    .action(async (options: { port?: string; temporalPort: string; uiPort: string }) => {
      const { config: read, logger } = kit.context('warn', 'human');
      if (read.temporal.address !== undefined) throw new UsageError(`pgconvoy dev runs its own Temporal server: unset TEMPORAL_ADDRESS (or temporal.address in the config, now ${read.temporal.address})`);
      const listenPort = port('--port', options.port, read.serve.port);
      const temporalPort = port('--temporal-port', options.temporalPort, 7233);
      const uiPort = port('--ui-port', options.uiPort, 8233);
      // Without tokens in the config, one for this session only, with every scope, printed here and nowhere else.
      const devToken = read.serve.tokens.length === 0 ? randomBytes(24).toString('base64url') : undefined;
      const config: Config = devToken === undefined ? read : { ...read, serve: { ...read.serve, tokens: [{ name: 'dev', sha256: (await import('../http/auth')).tokenHash(devToken), scopes: ['admin'] }] } };
      const host = config.serve.host;
      kit.exitCode = await withTemporal(
        config,
        logger,
        (pgconvoy, session) =>
          listenUntilInterrupted(config, logger, pgconvoy, session, host, listenPort, (address) =>
            kit.io.stdout(
              [
                'pgconvoy dev: a worker on the embedded Temporal server, until Ctrl-C',
                `  Temporal Web UI  http://127.0.0.1:${uiPort}`,
                `  Temporal         ${session.address} (TEMPORAL_ADDRESS=${session.address} for other commands)`,
                `  rollout page     ${address}/`,
                `  HTTP API         ${address}/v1 (${address}/openapi.json)`,
                devToken === undefined ? '  tokens           from the config (serve.tokens)' : `  token            ${devToken} (this session only: every scope)`,
                `  state            ${config.stateDir}`,
                '',
              ].join('\n'),
            ),
          ),
        { handlesInterrupts: true, devServer: { port: temporalPort, uiPort } },
      );
    });
}
