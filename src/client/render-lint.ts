import type { Finding } from '../core/risk';

export interface LintFinding extends Finding {
  file: string;
  version: string;
}

/**
 * `human`: one block per finding; `json`: the findings as data; `github`:
 * workflow commands that GitHub Actions shows as annotations on the file and line.
 */
export function renderLint(findings: LintFinding[], format: 'human' | 'json' | 'github', directory: string): string {
  if (format === 'json') return JSON.stringify(findings, null, 2) + '\n';
  if (format === 'github') {
    return findings
      .filter((f) => f.allowed === null)
      .map((f) => {
        const kind = f.level === 'high' ? 'error' : f.level === 'medium' ? 'warning' : 'notice';
        const text = `${f.why}. Instead: ${f.instead}`.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
        return `::${kind} file=${directory}/${f.file},line=${f.line},title=pgconvoy ${f.rule} (${f.level})::${text}\n`;
      })
      .join('');
  }
  if (findings.length === 0) return 'no findings\n';
  const lines = findings.map((f) => {
    const where = `${f.file}:${f.line}`;
    const lock = f.lock ? ` (${f.lock}${f.table ? ` on ${f.table}` : ''})` : f.table ? ` (${f.table})` : '';
    const accepted = f.allowed ? `\n    accepted: ${f.allowed}` : '';
    const database = f.context ? `\n    database: ${f.context}${f.baseLevel && f.baseLevel !== f.level ? ` (the rule alone says ${f.baseLevel})` : ''}` : '';
    return `${where}  ${f.level.padEnd(6)}  ${f.rule}${lock}\n    why: ${f.why}\n    instead: ${f.instead}${database}${accepted}`;
  });
  const counted = (level: string) => findings.filter((f) => f.level === level && !f.allowed).length;
  return `${lines.join('\n')}\n${findings.length} finding${findings.length === 1 ? '' : 's'}: ${counted('high')} high, ${counted('medium')} medium, ${counted('low')} low (not counting accepted ones)\n`;
}
