import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/worker/dev-server';

/**
 * A PostgreSQL server of the test's own (initdb into a scratch folder, a free
 * port), for tests that restart the server without disturbing the shared one.
 * Uses the machine's PostgreSQL binaries; run as root it runs them as `postgres`.
 * With `password`, TCP connections need it (scram-sha-256) instead of trust.
 */
export async function startPrivatePostgres(options: { password?: string; settings?: Record<string, string | number> } = {}): Promise<{ url: string; restart(): void; stop(): void }> {
  const versions = readdirSync('/usr/lib/postgresql').filter((v) => existsSync(`/usr/lib/postgresql/${v}/bin/initdb`));
  const version = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (!version) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql');
  const bin = `/usr/lib/postgresql/${version}/bin`;
  const dir = mkdtempSync(join(tmpdir(), 'pgconvoy-pg-'));
  const asRoot = userInfo().uid === 0;
  const pwfile = join(dir, 'pwfile');
  if (options.password !== undefined) writeFileSync(pwfile, `${options.password}\n`);
  if (asRoot) {
    const { uid, gid } = { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) };
    chownSync(dir, uid, gid);
    if (options.password !== undefined) chownSync(pwfile, uid, gid);
  }
  const run = (cmd: string, args: string[]) =>
    execFileSync(asRoot ? 'runuser' : cmd, asRoot ? ['-u', 'postgres', '--', cmd, ...args] : args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const port = await freePort();
  const data = join(dir, 'data');
  const settings = Object.entries(options.settings ?? {}).map(([k, v]) => ` -c ${k}=${v}`).join('');
  const auth = options.password === undefined ? ['-A', 'trust'] : ['--auth-local=trust', '--auth-host=scram-sha-256', `--pwfile=${pwfile}`];
  run(`${bin}/initdb`, ['-D', data, ...auth, '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  const ctl = (action: string, extra: string[] = []) =>
    run(`${bin}/pg_ctl`, ['-D', data, '-l', join(dir, 'log'), '-w', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off${settings}`, ...extra, action]);
  ctl('start');
  return {
    url: `postgres://postgres${options.password === undefined ? '' : `:${encodeURIComponent(options.password)}`}@127.0.0.1:${port}/postgres`,
    restart: () => ctl('restart', ['-m', 'fast']),
    stop: () => {
      try {
        ctl('stop', ['-m', 'immediate']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
