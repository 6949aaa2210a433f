import type { RolloutDatabase, RolloutStatus } from '../contracts';
import { table } from './render';

const seconds = (ms: number | null): string => (ms === null ? '' : `${(ms / 1000).toFixed(1)} s`);

/** The one-line summary: status, wave, counts. */
export function renderRolloutLine(s: RolloutStatus): string {
  const c = s.counts;
  const done = c.succeeded + c['up-to-date'] + c.skipped;
  const parts = [
    `${done}/${s.databases.length} done`,
    ...(c.running > 0 ? [`${c.running} running`] : []),
    ...(c.busy > 0 ? [`${c.busy} busy`] : []),
    ...(c.failed + c.diverged > 0 ? [`${c.failed + c.diverged} failed`] : []),
    ...(c.skipped > 0 ? [`${c.skipped} skipped`] : []),
    ...(c.compensated > 0 ? [`${c.compensated} compensated`] : []),
    ...(c['compensation-failed'] > 0 ? [`${c['compensation-failed']} compensation failed`] : []),
    ...(c['not-run'] > 0 ? [`${c['not-run']} not run`] : []),
  ];
  const wave = s.waves === 0 ? '' : s.wave === 0 ? ` · canary (then ${s.waves} wave${s.waves === 1 ? '' : 's'})` : ` · wave ${s.wave}/${s.waves}`;
  return `rollout ${s.deployId}: ${s.status}${wave} · ${parts.join(' · ')}${s.waitingFor ? `\n  waiting for ${s.waitingFor.split('\n')[0]}` : ''}`;
}

function outcomeOf(d: RolloutDatabase): string {
  if (d.failure) return d.failure;
  if (d.waitingFor) return `waiting for ${d.waitingFor}`;
  return d.outcome ?? '';
}

/** The table: wave, database, state, phase, version, duration, risk, outcome. */
export function renderRolloutTable(s: RolloutStatus): string {
  const rows = [['WAVE', 'DATABASE', 'STATE', 'PHASE', 'VERSION', 'DURATION', 'RISK', 'OUTCOME']];
  const ordered = [...s.databases].sort((a, b) => (a.wave ?? Infinity) - (b.wave ?? Infinity));
  for (const d of ordered) {
    const version = d.versionBefore === d.version ? (d.version ?? '-') : `${d.versionBefore ?? '-'} -> ${d.version ?? '-'}`;
    rows.push([d.wave === null ? '-' : d.wave === 0 ? 'canary' : String(d.wave), d.db, d.state, d.phase ?? '', version, seconds(d.durationMs), d.risk ?? '', outcomeOf(d)]);
  }
  return table(rows, '  ');
}

/** Everything `rollout status` shows: the line, the table, drift, refusals and the reference schema. */
export function renderRollout(s: RolloutStatus): string {
  const lines = [renderRolloutLine(s), `  set ${s.manifestDigest?.slice(0, 12) ?? '(not planned)'} · mode ${s.mode}${s.selector ? ` · targets ${s.selector}` : ''}${s.paused ? ' · paused' : ''}`];
  if (s.reference) lines.push(`  reference schema: ${s.reference.db} at V${s.reference.version ?? '-'} (${s.reference.fingerprint.slice(0, 12)})`);
  for (const p of s.problems) lines.push(`  refused: ${p}`);
  for (const d of s.drift) lines.push(`  drift: ${d.db}: ${d.reason}`, ...d.differences.map((l) => `    ${l}`));
  if (s.status === 'dry-run') {
    for (const d of s.databases.filter((x) => x.findings.length > 0)) lines.push(`  ${d.db}: ${d.risk} risk${d.wouldWaitForApproval ? `, would wait for an approval in ${s.mode === 'dry-run' ? 'auto' : s.mode} mode` : ''}:`, ...d.findings.map((f) => `    ${f}`));
  }
  return `${lines.join('\n')}\n${renderRolloutTable(s)}`;
}

/** What changed between two looks at a rollout, one line per database that moved (for --watch and `rollout start`). */
export function renderRolloutChanges(before: RolloutStatus | undefined, now: RolloutStatus): string[] {
  const lines: string[] = [];
  if (!before || before.status !== now.status || before.waitingFor !== now.waitingFor || before.wave !== now.wave) lines.push(renderRolloutLine(now));
  for (const d of now.databases) {
    const was = before?.databases.find((x) => x.db === d.db);
    if (was && was.state === d.state && was.phase === d.phase && was.waitingFor === d.waitingFor) continue;
    if (!was && d.state === 'pending') continue;
    const detail = d.failure ?? (d.waitingFor ? `waiting for ${d.waitingFor}` : d.phase ?? d.outcome ?? '');
    lines.push(`  ${d.db}: ${d.state}${detail ? ` (${detail})` : ''}${d.state === 'succeeded' || d.state === 'failed' ? ` at V${d.version ?? '-'} in ${seconds(d.durationMs)}` : ''}`);
  }
  return lines;
}
