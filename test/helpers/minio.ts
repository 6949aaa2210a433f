import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../src/worker/dev-server';

export interface Minio {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  stop(): Promise<void>;
}

/**
 * A real S3-compatible server (MinIO, built by scripts/provision-tools.sh),
 * spoken to over HTTP. Started with a KMS key so server-side encryption works.
 */
export async function startMinio(dataDir: string, port: number): Promise<Minio> {
  const bin = join(__dirname, '..', '..', '..', '.tools', 'bin', 'minio');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run "npm run setup" (scripts/provision-tools.sh builds it)`);
  mkdirSync(dataDir, { recursive: true });
  const accessKey = 'pgconvoy-test';
  const secretKey = randomBytes(16).toString('hex');
  const child = spawn(bin, ['server', '--address', `127.0.0.1:${port}`, '--console-address', `127.0.0.1:${await freePort()}`, '--quiet', dataDir], {
    env: {
      ...process.env,
      MINIO_ROOT_USER: accessKey,
      MINIO_ROOT_PASSWORD: secretKey,
      MINIO_KMS_SECRET_KEY: `pgconvoy-key:${randomBytes(32).toString('base64')}`,
      MINIO_BROWSER: 'off',
    },
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const response = await fetch(`${endpoint}/minio/health/live`);
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`MinIO did not start on ${endpoint}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint,
    accessKey,
    secretKey,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * TCP connections this process has open to `port` on the loopback, from the
 * kernel's tables (/proc/net/tcp, matched to this process's socket fds):
 * what a client that was never destroyed keeps open.
 */
export function openConnectionsTo(port: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      const match = /^socket:\[(\d+)\]$/.exec(target);
      if (match) inodes.add(match[1]!);
    } catch {
      // closed while we looked
    }
  }
  let count = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.trim().split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const remotePort = parseInt(fields[2]?.split(':')[1] ?? '', 16);
      // State 01 is ESTABLISHED; field 9 is the socket's inode.
      if (remotePort === port && fields[3] === '01' && inodes.has(fields[9] ?? '')) count++;
    }
  }
  return count;
}
