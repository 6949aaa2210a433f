import { ExitCode } from '../exit-codes';
import { withTemporal } from '../session';
import { UsageError, type CliKit } from './kit';

/** `pgconvoy serve`: the HTTP API for deploy services, until SIGINT/SIGTERM. */
export function registerServeCommand(kit: CliKit): void {
  kit.program
    .command('serve')
    .description('serve the HTTP API (rollouts) for deploy services until SIGINT/SIGTERM')
    .option('--host <host>', 'address to listen on (default: serve.host, else 127.0.0.1)')
    .option('--port <port>', 'port to listen on (default: serve.port, else 8080)')
    .action(async (options: { host?: string; port?: string }) => {
      const { config, logger } = kit.context('info', 'json');
      const port = options.port === undefined ? config.serve.port : Number(options.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be a port number, got "${options.port}"`);
      const host = options.host ?? config.serve.host;
      if (config.serve.tokens.length === 0) logger.warn({ event: 'serve.no_tokens', message: 'no tokens in serve.tokens: every /v1 request is refused (401)' });
      kit.exitCode = await withTemporal(
        config,
        logger,
        async (pgconvoy, session) => {
          const { buildServer } = await import('../http/server');
          const app = await buildServer({ config, pgconvoy, logger });
          const address = await app.listen({ host, port });
          kit.io.stderr(`pgconvoy serve: listening on ${address}\n`);
          logger.info({ event: 'serve.listening', address, tokens: config.serve.tokens.map((t) => t.name) });
          await session.interrupted;
          await app.close();
          return ExitCode.ok;
        },
        { handlesInterrupts: true },
      );
    });
}
