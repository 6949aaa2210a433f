import { describeCrossings, describeSample, type BackupPlan, type DatabaseStatus, type Finding, type MigrateDatabaseResult, type MigrationRisk, type Progress, type RevertDatabaseResult, type RunBackup } from '../contracts';

/** Human output. Machines use --json, which prints the result objects as they are. */

/** What a run does about a backup, in one line: plan, status and a dry run say it before anything runs. */
export function renderBackupPlan(b: BackupPlan): string {
  if (b.scope === 'none') return `backup: NONE is taken (backup.scope "none": ${b.reason}); a failed run is rolled back only by undo scripts, otherwise it halts`;
  if (b.problem) return `backup: cannot be taken, so a run is refused: ${b.problem}`;
  return `backup: ${b.scope === 'database' ? 'the whole database' : 'the existing tables the pending migrations lock'}, by ${b.pgDump ?? 'pg_dump'}`;
}

/** The backup a finished run took, or that it took none. */
export function renderRunBackup(b: RunBackup): string {
  return 'key' in b ? `backup taken before the first change: ${b.key}` : `no backup was taken (backup.scope "none": ${b.none})`;
}

export function renderMigrateResult(result: MigrateDatabaseResult, workflowId: string): string {
  if (result.status === 'up-to-date') {
    const at = result.version === null ? 'no migrations in the set' : `version ${result.version}`;
    return `nothing to apply: database "${result.db}" is up to date (${at})\n`;
  }
  if (result.status === 'dry-run') {
    return (
      `dry run: database "${result.db}" ${result.version === null ? 'has no migrations applied' : `is at version ${result.version}`}; ` +
      `${result.pending.length} would be applied, nothing was changed\n` +
      table(result.pending.map((p) => [`V${p.version}`, p.description, p.mode, `${p.statements} statement${p.statements === 1 ? '' : 's'}`, p.risk ? `${p.risk.level} risk` : '']), '  ') +
      (result.backup ? `${renderBackupPlan(result.backup)}\n` : '')
    );
  }
  if (result.status === 'cancelled') {
    const applied = result.applied.filter((a) => a.status === 'applied');
    return (
      `cancelled by ${result.cancelledBy}${result.reason ? ` (${result.reason})` : ''}: ` +
      (applied.length === 0 ? 'nothing was applied' : `${applied.map((a) => `V${a.version}`).join(', ')} applied before it stopped`) +
      `; database "${result.db}" is at ${result.version === null ? 'no version' : `version ${result.version}`}\n`
    );
  }
  const rows = result.applied.map((step) => [step.status, `V${step.version}`, step.description, `${step.durationMs} ms`]);
  const count = result.applied.filter((s) => s.status === 'applied').length;
  return (
    `workflow ${workflowId}\n` +
    table(rows, '  ') +
    (result.backup ? `${renderRunBackup(result.backup)}\n` : '') +
    `${count} migration${count === 1 ? '' : 's'} applied; database "${result.db}" is at version ${result.version}\n`
  );
}

/** What `pgconvoy undo` did, or would do, and its proof. */
export function renderRevertResult(r: RevertDatabaseResult): string {
  const at = (v: string | null) => (v === null ? 'no version' : `version ${v}`);
  if (r.status === 'nothing-to-undo') return `nothing to undo: database "${r.db}" is at ${at(r.versionBefore)}\n`;
  const rows = table(r.steps.map((s) => [s.status, `V${s.version}`, s.description, s.undoFile ?? '(no undo script)']), '  ');
  if (r.status === 'dry-run') return `dry run: database "${r.db}" is at ${at(r.versionBefore)}; undoing would take it to ${at(r.versionAfter)}, nothing was changed\n${rows}`;
  if (r.status === 'cancelled') return `cancelled by ${r.cancelledBy ?? 'someone'}: nothing was undone; database "${r.db}" is at ${at(r.versionBefore)}\n`;
  const undone = r.steps.filter((s) => s.status !== 'not-run').length;
  return (
    `workflow ${r.workflowId}\n` +
    rows +
    (r.backup ? `${renderRunBackup(r.backup)}\n` : '') +
    `${undone} version${undone === 1 ? '' : 's'} undone; database "${r.db}" is at ${at(r.versionAfter)}` +
    (r.proof ? `; proven: the schema's fingerprint ${r.proof.actual.slice(0, 12)} is the one the ledger recorded\n` : '\n')
  );
}

export function renderStatus(status: DatabaseStatus, running: Progress | null): string {
  const { plan, history } = status;
  const lines: string[] = [];
  const version = plan.applied.at(-1)?.version;
  lines.push(
    `database "${plan.db}": ${version === undefined ? 'no migrations applied' : `version ${version}`}, ` +
      `${plan.applied.length} applied, ${plan.pending.length} pending`,
  );
  if (plan.backup) lines.push(renderBackupPlan(plan.backup));
  if (history.length > 0) {
    lines.push('', 'history:');
    lines.push(
      table(
        history.map((h) => [h.version, h.description, h.status, h.finishedAt, `${h.executionMs} ms`, h.errorSqlstate ? `SQLSTATE ${h.errorSqlstate}` : '']),
        '  ',
      ).trimEnd(),
    );
  }
  if (plan.pending.length > 0) {
    lines.push('', 'pending:');
    for (const p of plan.pending) {
      lines.push(`  V${p.version}  ${p.description}${p.risk ? `  (${p.risk.level} risk)` : ''}`);
      for (const f of p.risk?.findings ?? []) lines.push(`      ${renderFinding(f)}`);
    }
  }
  if (plan.problems.length > 0) {
    lines.push('', 'problems (a run is refused until they are fixed):');
    for (const p of plan.problems) lines.push(`  ${p}`);
  }
  if (running) {
    lines.push('', `running: ${renderProgressLine(running)}`);
    const watched = renderWatchLine(running);
    if (watched) lines.push(`  ${watched}`);
    if (running.phase === 'awaiting-approval') lines.push(renderWaiting(running));
  }
  return lines.join('\n') + '\n';
}

/** A finding in one line: level, rule, where, what the database said, and whether the file accepted it. */
export function renderFinding(f: Pick<Finding, 'rule' | 'level' | 'line' | 'table' | 'lock' | 'context' | 'allowed' | 'baseLevel'>): string {
  const where = f.context ?? (f.table ? `${f.lock ?? ''}${f.lock ? ' on ' : ''}${f.table}` : (f.lock ?? ''));
  const moved = f.baseLevel && f.baseLevel !== f.level ? ` (the rule alone says ${f.baseLevel})` : '';
  return `${f.level.padEnd(6)} ${f.rule} at line ${f.line}${where ? ` — ${where}` : ''}${moved}${f.allowed ? ` [accepted: ${f.allowed}]` : ''}`;
}

/** Why a run waits for approval, and how to give it. */
export function renderWaiting(p: Progress): string {
  const since = new Date(p.approval.waitingSince ?? p.phaseStartedAt).toISOString();
  const reason = (p.approval.reason ?? 'approval required').split('\n').map((l) => `  ${l}`).join('\n');
  return `waiting for approval since ${since}:\n${reason}\napprove with \`pgconvoy approve --db ${p.db}\`, or stop with \`pgconvoy cancel --db ${p.db}\``;
}

export function table(rows: string[][], indent: string): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => indent + row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd() + '\n').join('');
}

export interface PlannedStatement {
  index: number;
  line: number;
  kind: string;
  lock: string;
  text: string;
}

export interface PlannedMigration {
  version: string;
  description: string;
  file: string;
  mode: string;
  statements: PlannedStatement[];
  risk: MigrationRisk | null;
}

export function renderPlan(db: string, version: string | null, planned: PlannedMigration[], problems: string[], backup?: BackupPlan): string {
  const lines: string[] = [];
  lines.push(`plan for database "${db}" (${version === null ? 'no migrations applied' : `at version ${version}`}): ${planned.length} pending`);
  if (backup) lines.push(renderBackupPlan(backup));
  for (const m of planned) {
    lines.push('', `V${m.version}  ${m.description}  (${m.file}, ${m.mode === 'no-transaction' ? 'no transaction: statement by statement' : 'one transaction'}, ${m.statements.length} statement${m.statements.length === 1 ? '' : 's'})`);
    lines.push(table(m.statements.map((s) => [String(s.index), `line ${s.line}`, s.lock, s.text]), '  ').trimEnd());
    if (m.risk) {
      lines.push(`  risk: ${m.risk.level}${m.risk.findings.length === 0 ? ' (no findings)' : ''}`);
      for (const f of m.risk.findings) lines.push(`    ${renderFinding(f)}`, `      instead: ${f.instead}`);
    }
  }
  if (problems.length > 0) {
    lines.push('', 'problems (a run is refused until they are fixed):');
    for (const p of problems) lines.push(`  ${p}`);
  }
  return lines.join('\n') + '\n';
}

export function renderHistory(
  db: string,
  history: Array<{ version: string; description: string; status: string; finishedAt: string; executionMs: number; source: string; errorSqlstate: string | null; reason: string | null; riskLevel?: string | null; approvedBy?: string | null }>,
): string {
  if (history.length === 0) return `database "${db}": the ledger is empty\n`;
  const rows = history.map((h) => [
    h.version,
    h.description,
    h.status,
    h.finishedAt,
    `${h.executionMs} ms`,
    h.source,
    h.riskLevel ?? '',
    [h.errorSqlstate ? `SQLSTATE ${h.errorSqlstate}` : '', h.reason ?? '', h.approvedBy ? `approved by ${h.approvedBy}` : ''].filter(Boolean).join('; '),
  ]);
  return table([['version', 'description', 'status', 'finished', 'time', 'source', 'risk', 'note'], ...rows], '');
}

/** One line for a running migration: phase, current migration, counts, and why it waits. */
export function renderProgressLine(p: Progress): string {
  const current = p.current ? `, applying V${p.current.version} ${p.current.description}` : '';
  let line = `phase ${p.phase}${current}, ${p.completed.length}/${p.pending.length} done`;
  if (p.phase === 'awaiting-approval') {
    const gated = p.approval.gated?.map((g) => `V${g.version} ${g.level} risk`).join(', ');
    line += ` — waiting for approval since ${new Date(p.approval.waitingSince ?? p.phaseStartedAt).toISOString()} (${gated ?? p.approval.reason ?? 'approval required'}); approve with \`pgconvoy approve --db ${p.db}\``;
  }
  if (p.approval.approvedBy) line += `; approved by ${p.approval.approvedBy} at ${new Date(p.approval.approvedAt ?? 0).toISOString()}`;
  if (p.cancelRequested) line += `; cancel requested by ${p.cancelRequested.by}`;
  if (p.heldBy && p.heldBy.length > 0) line += `; held by its guards: ${describeCrossings(p.heldBy)}`;
  return line;
}

/** The watch's latest sample of a running migration, or null before its first. */
export function renderWatchLine(p: Progress): string | null {
  return p.watch ? `watch: ${describeSample(p.watch)}` : null;
}
