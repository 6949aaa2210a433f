import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';

/** The page's files: plain HTML, CSS and one script, no build step (web/ at the top of the project). */
const webDir = path.resolve(__dirname, '../../../../web');
const files: Record<string, string> = {
  '/': 'index.html',
  '/ui/app.js': 'app.js',
  '/ui/style.css': 'style.css',
};
const types: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

/**
 * The rollout page at `/`: it asks for a token, lists the rollouts and
 * follows one through the event stream, with the buttons the token's scopes
 * allow. It only calls the /v1 API, so it can do nothing a token could not.
 */
export async function registerPage(app: FastifyInstance): Promise<void> {
  const bodies = new Map<string, Buffer>();
  for (const [route, file] of Object.entries(files)) bodies.set(route, await readFile(path.join(webDir, file)));
  for (const [route, file] of Object.entries(files)) {
    app.get(route, { schema: { hide: true } }, (_request, reply) =>
      reply
        .type(types[path.extname(file)]!)
        .header('cache-control', 'no-cache')
        // The page loads only its own files and talks only to its own origin.
        .header('content-security-policy', "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        .send(bodies.get(route)),
    );
  }
}
