/**
 * Header directives: `-- pgconvoy:<name> [args]` comments before a file's
 * first statement.
 *
 *   -- pgconvoy:no-transaction            run statement by statement, outside a transaction
 *   -- pgconvoy:lock-timeout 10s          longest wait for a lock (per attempt)
 *   -- pgconvoy:statement-timeout 30min   longest run of one statement
 *   -- pgconvoy:allow <rule-id> <reason>  accept a lint finding, saying why
 */
export interface Directives {
  noTransaction: boolean;
  lockTimeoutMs?: number;
  statementTimeoutMs?: number;
  allow: Array<{ rule: string; reason: string }>;
}

export interface DirectiveComment {
  text: string;
  line: number;
  /** Whether a statement came before it in the file. */
  afterFirstStatement: boolean;
}

export type DirectiveResult = { ok: true; directives: Directives } | { ok: false; problems: string[] };

const directivePattern = /^--\s*pgconvoy:(\S*)\s*(.*)$/;

export function parseDirectives(comments: DirectiveComment[]): DirectiveResult {
  const directives: Directives = { noTransaction: false, allow: [] };
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const comment of comments) {
    const match = directivePattern.exec(comment.text.trim());
    if (!match) continue;
    const [, name = '', rawArgs = ''] = match;
    const args = rawArgs.trim();
    const at = `line ${comment.line}`;
    if (comment.afterFirstStatement) {
      problems.push(`${at}: directive "pgconvoy:${name}" must come before the first statement`);
      continue;
    }
    if (name !== 'allow' && seen.has(name)) {
      problems.push(`${at}: directive "pgconvoy:${name}" is given twice`);
      continue;
    }
    seen.add(name);
    switch (name) {
      case 'no-transaction':
        if (args !== '') problems.push(`${at}: "pgconvoy:no-transaction" takes no arguments, got "${args}"`);
        directives.noTransaction = true;
        break;
      case 'lock-timeout':
      case 'statement-timeout': {
        const ms = parseDuration(args);
        if (ms === undefined || ms <= 0) {
          problems.push(`${at}: "pgconvoy:${name}" needs a positive duration such as 500ms, 5s, 2min or 1h, got "${args}"`);
        } else if (name === 'lock-timeout') directives.lockTimeoutMs = ms;
        else directives.statementTimeoutMs = ms;
        break;
      }
      case 'allow': {
        const [rule = '', ...reason] = args.split(/\s+/);
        if (rule === '' || reason.length === 0) problems.push(`${at}: "pgconvoy:allow" needs a rule id and a reason, e.g. "pgconvoy:allow add-column-volatile-default backfilled in V12"`);
        else directives.allow.push({ rule, reason: reason.join(' ') });
        break;
      }
      default:
        problems.push(`${at}: unknown directive "pgconvoy:${name}"; known: no-transaction, lock-timeout, statement-timeout, allow`);
    }
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, directives };
}

const units: Record<string, number> = { ms: 1, s: 1000, min: 60_000, h: 3_600_000 };

/** `500ms`, `5s`, `2min`, `1h` (PostgreSQL's spellings) to milliseconds. */
export function parseDuration(text: string): number | undefined {
  const match = /^([0-9]+)\s*(ms|s|min|h)$/.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) * (units[match[2] ?? ''] ?? NaN);
}
