import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidMigrationSetError } from '../../src/core/errors';
import { buildMigrationSet, type MigrationSet } from '../../src/core/migration-set';
import { prepareMigrations } from '../../src/core/prepare';
import { offThreadBytes, prepareOffThread } from '../../src/source/prepare-off-thread';

/** A seed file of `bytes` bytes of INSERTs, the kind real histories carry. */
function seedSet(bytes: number, tail = ''): MigrationSet {
  const lines: string[] = ['CREATE TABLE seed (id int, name text);\n'];
  let size = lines[0]!.length;
  for (let i = 0; size < bytes; i++) {
    const line = `INSERT INTO seed (id, name) VALUES (${i}, 'a name that is not short, number ${i}');\n`;
    lines.push(line);
    size += line.length;
  }
  return buildMigrationSet('mem', [
    { name: 'V1__small.sql', content: Buffer.from('CREATE TABLE small (id int);') },
    { name: 'V2__seed.sql', content: Buffer.from(lines.join('') + tail) },
  ]);
}

/** How many times a 10 ms timer ran while `work` ran: none can while the event loop is busy parsing. */
async function timerTicks(work: () => Promise<unknown>): Promise<number> {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return ticks;
}

test('a large set is parsed in a worker thread: the same result, and the event loop keeps running (heartbeats) meanwhile', async () => {
  const set = seedSet(2 * 1024 * 1024);
  let offThread: Awaited<ReturnType<typeof prepareOffThread>> | undefined;
  const ticksOff = await timerTicks(async () => (offThread = await prepareOffThread(set)));
  let onThread: Awaited<ReturnType<typeof prepareMigrations>> | undefined;
  const ticksOn = await timerTicks(async () => (onThread = await prepareMigrations(set)));
  assert.deepEqual(offThread, onThread);
  // On the event loop the parse leaves timers a turn only between files (two
  // here); in a worker thread they keep running while it parses. Counted in
  // turns, not milliseconds, so a loaded machine does not change the verdict.
  assert.ok(ticksOn <= 4, `timers ran ${ticksOn} times while the event loop parsed`);
  assert.ok(ticksOff >= 10, `timers ran ${ticksOff} times while a worker thread parsed`);
});

test('problems found in the thread come back as the same InvalidMigrationSet error, naming file and line', async () => {
  const set = seedSet(offThreadBytes + 1024, 'INSERT INTO seed VALUES (1,;\n');
  await assert.rejects(prepareOffThread(set), (error: unknown) => {
    assert.ok(error instanceof InvalidMigrationSetError);
    assert.equal(error.problems.length, 1);
    assert.equal(error.problems[0]!.file, 'V2__seed.sql');
    assert.match(error.problems[0]!.message, /^line \d+, column 28: syntax error at or near ";"$/);
    return true;
  });
});

test('an attempt that was given up stops the thread at once instead of parsing on', async () => {
  const set = seedSet(4 * 1024 * 1024);
  const controller = new AbortController();
  const started = performance.now();
  const parsing = prepareOffThread(set, undefined, { signal: controller.signal });
  setTimeout(() => controller.abort(new Error('the activity was cancelled')), 100);
  await assert.rejects(parsing, /the activity was cancelled/);
  assert.ok(performance.now() - started < 2_000, 'the abort did not wait for the parse to finish');
});
