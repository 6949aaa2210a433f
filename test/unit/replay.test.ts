import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { NormalModuleReplacementPlugin } from 'webpack';
import { createLogger } from '../../src/logging/logger';
import { installRuntime, workflowsPath } from '../../src/worker/worker';
import { historiesDir } from '../helpers/histories';

/**
 * Replays every recorded history against today's workflow code. A change that
 * would break a workflow already running in production (a reordered activity,
 * a removed step) fails here. pgconvoy is unreleased: such a change re-records
 * the histories; from the first release on it goes behind patched().
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

test('a workflow with a step removed does not replay the recorded histories', async () => {
  // The same workflow code, with src/workflows/activities swapped for a copy whose verify step schedules nothing.
  const variant = join(__dirname, '..', 'helpers', 'workflow-variants', 'without-verify-step.js');
  const file = 'migrate-database-applied-with-backup.json';
  installRuntime(createLogger('error'));
  const history = historyFromJSON(JSON.parse(readFileSync(join(historiesDir, file), 'utf8')));
  const result = await Worker.runReplayHistory(
    {
      workflowsPath,
      bundlerOptions: {
        webpackConfigHook: (config) => ({
          ...config,
          plugins: [
            ...(config.plugins ?? []),
            new NormalModuleReplacementPlugin(/^\.\/activities$/, (resource: { context: string; request: string }) => {
              if (resource.context.endsWith(join('src', 'workflows'))) resource.request = variant;
            }),
          ],
        }),
      },
    },
    history,
    file,
  ).then(
    () => null,
    (error: unknown) => error,
  );
  assert.ok(result instanceof Error, 'replaying a history recorded with the verify step must fail without it');
  assert.match(`${result.name}: ${result.message}`, /DeterminismViolation|[Nn]ondetermin/);
});
