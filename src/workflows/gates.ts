import type { ExecutionMode, GatedMigration, PendingMigration, RiskLevel } from '../contracts';

/** The highest risk each mode runs without an approval. */
const runsUnapproved: Record<ExecutionMode, RiskLevel> = { safe: 'low', auto: 'medium', aggressive: 'high', 'dry-run': 'high' };
const order: RiskLevel[] = ['low', 'medium', 'high'];

/** Whether `level` is at most `limit`. */
export const within = (level: RiskLevel, limit: RiskLevel): boolean => order.indexOf(level) <= order.indexOf(limit);


/** The pending migrations the mode does not let run without an approval, with why. */
export function gatedMigrations(mode: ExecutionMode, pending: PendingMigration[]): GatedMigration[] {
  const limit = order.indexOf(runsUnapproved[mode]);
  return pending.flatMap((p) => {
    // No risk: planned by a worker from before risk analysis; unknown is treated as high.
    if (!p.risk) return limit < order.indexOf('high') ? [{ version: p.version, description: p.description, level: 'high' as const, findings: ['risk not assessed (planned by an older pgconvoy worker)'] }] : [];
    if (order.indexOf(p.risk.level) <= limit) return [];
    const findings = p.risk.findings
      .filter((f) => f.allowed === null && order.indexOf(f.level) > limit)
      .map((f) => `${f.rule} (${f.level}) at line ${f.line}${f.context ? `: ${f.context}` : f.table ? ` on ${f.table}` : ''}`);
    return [{ version: p.version, description: p.description, level: p.risk.level, findings }];
  });
}

export function describeGate(mode: ExecutionMode, gated: GatedMigration[]): string {
  const what = gated.map((g) => `V${g.version} (${g.description}) is ${g.level} risk: ${g.findings.join('; ')}`).join('\n');
  return `${mode} mode runs only ${runsUnapproved[mode] === 'low' ? 'low' : 'low and medium'} risk migrations without an approval:\n${what}`;
}
