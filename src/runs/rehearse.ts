import { readFile } from 'node:fs/promises';
import { prepareMigrations } from '../core/prepare';
import { withClient } from '../db/connection';
import { applyMigration, type EngineContext } from '../db/execute';
import { fingerprint, fingerprintDiff, type Fingerprint } from '../db/fingerprint';
import { ensureLedger } from '../db/ledger';
import { undoMigration } from '../db/undo';
import { catalogProblems, runChecks } from '../db/verify';
import { readChecks } from '../source/read-checks';
import { readMigrationSet } from '../source/read-migration-set';
import { targetOf, type RunDeps } from './deps';

export interface RehearsalStep {
  step: 'seed' | 'upgrade' | 'verify' | 'undo' | 'compare-start' | 'upgrade-again' | 'verify-again' | 'compare-upgrade';
  ok: boolean;
  detail: string;
}

/**
 * A migration set's dress rehearsal on a scratch database (the seed of a
 * team's migration CI): load sample data, upgrade, verify, undo to the start
 * and prove the schema is back, upgrade again and prove it lands on the same
 * schema. Stops at the first step that diverges.
 */
export async function rehearse(deps: RunDeps, input: { db: string; migrationsDir: string; seedFile?: string }): Promise<RehearsalStep[]> {
  const { config } = deps;
  const { migrationsDir, seedFile } = input;
  const set = await readMigrationSet(migrationsDir, config.files);
  const prepared = [...(await prepareMigrations(set)).values()];
  const checks = await readChecks(migrationsDir, config.files);
  const steps: RehearsalStep[] = [];
  const ctx = (run: string): EngineContext => ({ settings: config.execution, run: { workflowId: 'rehearse', runId: run }, sleep: (ms) => deps.sleep(ms), onEvent: () => undefined });

  return withClient(targetOf(config, input.db), async (client) => {
    const record = (step: RehearsalStep['step'], ok: boolean, detail: string) => {
      steps.push({ step, ok, detail });
      return ok;
    };
    try {
      if (seedFile) {
        await client.query(await readFile(seedFile, 'utf8'));
        record('seed', true, `loaded ${seedFile}`);
      }
      const start = await fingerprint(client);
      const known = new Set((await catalogProblems(client)).map((p) => p.subject));
      await ensureLedger(client);
      const upgrade = async (step: 'upgrade' | 'upgrade-again', run: string) => {
        for (const m of prepared) await applyMigration(client, m, ctx(run));
        return record(step, true, `${plural(prepared.length, 'migration')} applied`);
      };
      const verify = async (step: 'verify' | 'verify-again') => {
        const problems = [...(await catalogProblems(client)).filter((p) => !known.has(p.subject)), ...(await runChecks(client, checks))];
        return record(step, problems.length === 0, problems.length === 0 ? `schema and ${plural(checks.length, 'check')} pass` : problems.map((p) => p.message).join('; '));
      };
      const compare = (step: 'compare-start' | 'compare-upgrade', expected: Fingerprint, actual: Fingerprint, what: string) => {
        const diff = fingerprintDiff(expected, actual);
        return record(step, diff.length === 0, diff.length === 0 ? `schema equals ${what}` : `schema differs from ${what}:\n    ${diff.join('\n    ')}`);
      };

      if (!(await upgrade('upgrade', 'rehearse-1'))) return steps;
      if (!(await verify('verify'))) return steps;
      const upgraded = await fingerprint(client);
      const missing = prepared.filter((m) => !m.undo).map((m) => m.forward.file);
      if (missing.length > 0) {
        record('undo', false, `no undo script for ${missing.join(', ')}`);
        return steps;
      }
      for (const m of [...prepared].reverse()) await undoMigration(client, m, 'rehearse-1');
      record('undo', true, `${plural(prepared.length, 'undo script')} ran in reverse`);
      if (!compare('compare-start', start, await fingerprint(client), 'the start')) return steps;
      if (!(await upgrade('upgrade-again', 'rehearse-2'))) return steps;
      if (!(await verify('verify-again'))) return steps;
      compare('compare-upgrade', upgraded, await fingerprint(client), 'the first upgrade');
      return steps;
    } catch (error) {
      const step: RehearsalStep['step'] = steps.length === 0 ? (seedFile ? 'seed' : 'upgrade') : nextStep(steps.at(-1)!.step);
      record(step, false, (error as Error).message);
      return steps;
    }
  });
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

function nextStep(last: RehearsalStep['step']): RehearsalStep['step'] {
  const order: RehearsalStep['step'][] = ['seed', 'upgrade', 'verify', 'undo', 'compare-start', 'upgrade-again', 'verify-again', 'compare-upgrade'];
  return order[order.indexOf(last) + 1] ?? last;
}
