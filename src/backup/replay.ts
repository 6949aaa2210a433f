import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PgTools } from './pg-tools';
import { describeExit, runTool, type Tool, type ToolExit } from './processes';
import { RestoreScriptGate } from './restore-script';

type Query = (sql: string) => Promise<Array<Record<string, unknown>>>;

export interface ReplayOptions {
  /** libpq environment for psql (the target database). */
  env: NodeJS.ProcessEnv;
  /** Opens the backup (custom format) for reading. */
  open: () => Promise<Readable>;
  /** What every byte of it must hash to. */
  expected: { bytes: number; sha256: string };
  /** SQL run in the transaction before the backup's script (drops what it replaces). */
  prelude: string;
  /** SQL run in the transaction after the backup's script, before COMMIT. */
  epilogue: string;
  /** Another session on the server, used to end the restore's session if it outlives psql. */
  query: Query;
  /** Aborting rolls the replay back (unless COMMIT was already sent). */
  signal?: AbortSignal;
  /** pg_restore (it must read the archive its pg_dump wrote) and psql. */
  tools: Pick<PgTools, 'pgRestore' | 'psql'>;
}

export type ReplayOutcome =
  | { status: 'committed'; bytes: number }
  /** Nothing of the replay is in the database. `corrupt`: the bytes read were not the backup's. */
  | { status: 'rolled_back'; corrupt: boolean; problems: string[] }
  /** COMMIT was sent and the connection broke before its answer: it may or may not have committed. */
  | { status: 'unknown'; problems: string[] };

/**
 * Replays a backup in one transaction that only this function commits:
 * psql runs our BEGIN, the prelude, pg_restore's script (without its own
 * transaction control, see RestoreScriptGate) and the epilogue, and COMMIT is
 * written only once pg_restore exited 0, the input stream ended, and every
 * byte of it hashed to the expected size and sha256. On every other path
 * psql is killed with its input still open, so the server never sees a
 * COMMIT and rolls back; the session is then terminated by its unique
 * application_name should it linger, and both child processes are awaited.
 */
export async function replayBackup(o: ReplayOptions): Promise<ReplayOutcome> {
  const application = `pgconvoy-restore-${randomBytes(6).toString('hex')}`;
  const hash = createHash('sha256');
  let bytes = 0;
  let inputEnded = false;
  let source: Readable | undefined;
  let restore: Tool | undefined;
  let psql: Tool | undefined;
  const running: Array<Promise<unknown>> = [];
  let onAbort = () => undefined as void;
  const problems: string[] = [];
  try {
    source = await o.open();
    restore = runTool(o.tools.pgRestore, ['--file=-', '--no-owner', '--single-transaction'], { PATH: process.env.PATH });
    // Query results (a row per large object written, ...) go to /dev/null: nobody reads psql's
    // stdout, and a full pipe would stop psql, and with it the restore, for good.
    psql = runTool(o.tools.psql, ['--no-psqlrc', '--quiet', '--set=ON_ERROR_STOP=1', '--output=/dev/null', '--file=-'], { ...o.env, PGAPPNAME: application });
    const [r, p, input] = [restore, psql, source];
    // psql's input stays open until we commit: its exit before then is a failure.
    const psqlGone = p.exit.then((e) => Promise.reject(new Error(`psql stopped (${describeExit(e)})`)));
    const toPsql = (chunk: string | Buffer) => write(p.stdin, chunk, psqlGone);

    const reading = (async () => {
      let open = true;
      for await (const chunk of input) {
        const buffer = chunk as Buffer;
        bytes += buffer.length;
        hash.update(buffer);
        if (open) {
          await write(r.stdin, buffer, r.exit).catch(() => undefined);
          // pg_restore may close its input once it has what it needs; the rest is still hashed.
          open = r.running() && !r.stdin.destroyed;
        }
      }
      inputEnded = true;
      if (open) r.stdin.end();
    })();
    const gate = new RestoreScriptGate();
    const feeding = (async () => {
      await toPsql(`BEGIN;\nSET client_min_messages = warning;\n${o.prelude}`);
      for await (const chunk of r.stdout) for (const part of gate.push(chunk as Buffer)) await toPsql(part);
      for (const part of gate.end()) await toPsql(part);
    })();
    const restored = r.exit.then((e) => (e.code === 0 ? undefined : Promise.reject(new Error(`pg_restore failed (${describeExit(e)})`))));
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(new Error('the restore was cancelled'));
      if (o.signal?.aborted) onAbort();
      o.signal?.addEventListener('abort', onAbort, { once: true });
    });
    // (`aborted` never settles without an abort: it is raced, not awaited.)
    running.push(reading, feeding, restored, psqlGone);
    for (const promise of [...running, aborted]) promise.catch(() => undefined);

    try {
      await Promise.race([Promise.all([reading, feeding, restored]), psqlGone, aborted]);
    } catch (error) {
      // A write that broke (EPIPE) usually means psql stopped on the server's
      // error: its own words (SQLSTATE message on stderr) say why.
      const stopped = await Promise.race([p.exit, sleep(500).then(() => undefined)]);
      if (stopped && stopped.code !== 0) problems.push(`psql stopped (${describeExit(stopped)})`);
      else problems.push((error as Error).message);
    }
    const sha256 = hash.digest('hex');
    const corrupt = inputEnded && (bytes !== o.expected.bytes || sha256 !== o.expected.sha256);
    if (problems.length === 0) {
      if (!inputEnded) problems.push('the backup was not read to its end');
      if (bytes !== o.expected.bytes) problems.push(`${bytes} bytes were read, the manifest says ${o.expected.bytes}`);
      else if (sha256 !== o.expected.sha256) problems.push(`the bytes read hash to sha256 ${sha256.slice(0, 16)}…, the manifest says ${o.expected.sha256.slice(0, 16)}…`);
      if (!gate.sawCommit) problems.push("pg_restore's script did not end with its COMMIT");
    } else if (bytes < o.expected.bytes) {
      problems.push(`${bytes} of the backup's ${o.expected.bytes} bytes had been read`);
    }
    if (problems.length > 0) return { status: 'rolled_back', corrupt, problems };

    // The only COMMIT this session ever receives. From here on psql is not
    // killed: it reports how the COMMIT went.
    o.signal?.removeEventListener('abort', onAbort);
    await toPsql(`${o.epilogue}COMMIT;\n`).catch(() => undefined);
    p.stdin.end();
    const end: ToolExit = await p.exit;
    if (end.code === 0) return { status: 'committed', bytes };
    // psql exits 3 when the server reported an error (in the epilogue or at COMMIT): nothing was committed.
    if (end.code === 3) return { status: 'rolled_back', corrupt: false, problems: [`psql failed (${describeExit(end)})`] };
    return { status: 'unknown', problems: [`psql ended after COMMIT was sent, without its answer (${describeExit(end)})`] };
  } catch (error) {
    problems.push((error as Error).message);
    return { status: 'rolled_back', corrupt: false, problems };
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    // Nothing outlives a replay (all of this is a no-op for what already ended).
    source?.destroy();
    await Promise.all([restore?.stop(), psql?.stop()]);
    await Promise.allSettled(running);
    if (psql) {
      const lingering = await endSession(o.query, application);
      if (lingering) problems.push(lingering);
    }
  }
}

/** Writes with backpressure; rejects (or settles as `gone` does) if the reader goes away. */
async function write(stream: Writable, chunk: string | Buffer, gone: Promise<unknown>): Promise<void> {
  if (stream.destroyed || stream.writableEnded) {
    await gone;
    throw new Error('the pipe is closed');
  }
  if (!stream.write(chunk)) await Promise.race([once(stream, 'drain'), gone]);
}

/**
 * Belt and braces after psql is gone: its server session normally ends with
 * it, but one busy in a long statement notices only later. Terminates it and
 * waits until it is gone, so no `idle in transaction` session holding the
 * restore's locks survives. Returns a problem, or null.
 */
async function endSession(query: Query, application: string): Promise<string | null> {
  try {
    for (let attempt = 0; attempt < 100; attempt++) {
      const rows = await query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '${application}'`);
      if (rows.length === 0) return null;
      await sleep(100);
    }
    return `the restore's session (${application}) was still there 10 s after psql ended`;
  } catch (error) {
    return `could not check that the restore's session (${application}) ended: ${(error as Error).message}`;
  }
}
