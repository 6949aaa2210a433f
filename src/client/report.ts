import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HistoryRow } from '../contracts';
import type { FailurePoint } from '../contracts';
import type { FailureSummary } from './failure';

/**
 * The failure report for a migration that failed: where (file, statement,
 * line, column, with the line itself when the file is readable here), why
 * (SQLSTATE, PostgreSQL's message, detail and hint), the state it left, the
 * last ledger entries, and what to do next.
 */
export function renderFailureReport(input: {
  failure: FailureSummary;
  db: string;
  migrationsDir: string;
  workflowId?: string;
  history?: HistoryRow[];
}): string {
  const { failure, db } = input;
  const lines: string[] = [`pgconvoy: [${failure.type ?? 'Error'}] ${failure.message}`];
  const point = failure.details as (FailurePoint & { sqlstate?: string | null }) | null;
  const isMigration = (failure.type === 'MigrationFailed' || failure.type === 'LockTimeout') && point && typeof point.statement === 'number';
  const compensated = (failure.details as { compensated?: string } | null)?.compensated;
  if (isMigration) {
    const frame = codeFrame(join(input.migrationsDir, point.file), point.line, point.column);
    if (frame) lines.push('', ...frame);
    if (!compensated) lines.push('', `state: ${stateAfter(point)}`);
  }
  if (compensated) lines.push('', `state: the whole run was rolled back (${compensated === 'undo' ? 'undo scripts' : 'restore from the verified backup'}); the database is as it was before the run`);
  if (input.history && input.history.length > 0) {
    lines.push('', 'last ledger entries:');
    for (const h of input.history) {
      const error = h.errorSqlstate ? `  SQLSTATE ${h.errorSqlstate}${h.errorStatement ? ` at statement ${h.errorStatement}` : ''}` : '';
      lines.push(`  ${h.finishedAt}  V${h.version}  ${h.status.padEnd(11)} ${h.file}${error}`);
    }
  }
  if (isMigration) lines.push('', `next: ${nextStep(failure.type!, point, db)}`);
  if (input.workflowId) lines.push(`workflow: ${input.workflowId}`);
  return lines.join('\n') + '\n';
}

function stateAfter(point: FailurePoint): string {
  if (point.mode === 'no-transaction') {
    return point.statementsDone > 0
      ? `statements 1-${point.statementsDone} of ${point.statementsTotal} of ${point.file} are applied and stay; the rest did not run`
      : `no statement of ${point.file} is applied`;
  }
  if (point.mode === 'group') return 'rolled back: the whole group left nothing behind';
  return `rolled back: nothing of ${point.file} remains; migrations before it stay applied`;
}

function nextStep(type: string, point: FailurePoint, db: string): string {
  const again = `pgconvoy up --db ${db}`;
  if (type === 'LockTimeout') {
    return (
      `another session held a conflicting lock for too long. Find it with\n` +
      `  SELECT pid, state, xact_start, left(query, 60) FROM pg_stat_activity WHERE pid IN (SELECT pid FROM pg_locks WHERE NOT granted OR locktype = 'relation');\n` +
      `then run \`${again}\` again when it is gone (or raise "-- pgconvoy:lock-timeout" in ${point.file})`
    );
  }
  if ((point as { sqlstate?: string | null }).sqlstate === '57014') {
    const resume = point.mode === 'no-transaction' && point.statementsDone > 0 ? ` (it resumes at statement ${point.statementsDone + 1})` : '';
    return (
      `statement ${point.statement} ran past its statement_timeout, or someone cancelled it; pgconvoy does not retry that. ` +
      `Make it faster or raise the limit with "-- pgconvoy:statement-timeout <duration>" in ${point.file}, then run \`${again}\`${resume}`
    );
  }
  if (point.mode === 'no-transaction' && point.statementsDone > 0) {
    return `fix statement ${point.statement} of ${point.file} and run \`${again}\`: it resumes at statement ${point.statementsDone + 1} as long as statements 1-${point.statementsDone} are unchanged`;
  }
  return `fix ${point.file} and run \`${again}\` again`;
}

function codeFrame(path: string, line: number, column: number): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const all = text.split(/\r?\n/);
  const target = all[line - 1];
  if (target === undefined) return undefined;
  const width = String(line).length;
  const frame: string[] = [];
  if (line > 1 && all[line - 2] !== undefined) frame.push(`  ${String(line - 1).padStart(width)} | ${all[line - 2]}`);
  frame.push(`> ${String(line).padStart(width)} | ${target}`);
  frame.push(`  ${' '.repeat(width)} | ${' '.repeat(Math.max(0, column - 1))}^`);
  return frame;
}
