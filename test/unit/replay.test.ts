import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { createLogger } from '../../src/worker/logger';
import { installRuntime, workflowsPath } from '../../src/worker/worker';
import { historiesDir } from '../helpers/histories';

/**
 * Replays every recorded history against today's workflow code. A change that
 * would break a workflow already running in production (a reordered activity,
 * a removed branch) fails here; put such a change behind patched().
 */
test('recorded histories replay against the current workflow code', async () => {
  const files = readdirSync(historiesDir).filter((f) => f.endsWith('.json')).sort();
  assert.ok(files.length >= 3, `expected recorded histories in ${historiesDir}`);
  installRuntime(createLogger('error'));
  const histories = files.map((file) => ({
    workflowId: file,
    history: historyFromJSON(JSON.parse(readFileSync(join(historiesDir, file), 'utf8'))),
  }));
  const outcomes: string[] = [];
  for await (const result of Worker.runReplayHistories({ workflowsPath }, histories)) {
    outcomes.push(result.error === undefined ? `${result.workflowId}: ok` : `${result.workflowId}: ${String(result.error)}`);
  }
  assert.deepEqual(outcomes, files.map((f) => `${f}: ok`));
});
