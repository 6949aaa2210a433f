/**
 * Risk with the live database's context: table sizes and the sessions that
 * hold or wait for locks move a finding's level (analyzeRisk in risk.ts finds
 * them from the parse tree alone).
 */
import { lockConflicts, lockTaken, type LockMode } from './locks';
import { analyzeRisk, highestLevel, riskLevels, rules, type Finding, type RiskLevel, type ScriptForRisk } from './risk';
import type { Script } from './statements';
import type { Version } from './version';

/** A session that holds or waits for a lock on a table. */
export interface LockingSession {
  pid: number;
  mode: LockMode;
  granted: boolean;
  /** pg_stat_activity.state: active, idle in transaction, ... */
  state: string | null;
  /** How long its transaction has been open. */
  transactionMs: number | null;
  application: string | null;
}

/** What the live database says about a table a migration locks. */
export interface TableContext {
  /** Schema-qualified name in the database; null when the table does not exist (yet). */
  qualified: string | null;
  /** pg_class.reltuples (over all partitions or children); null when one was never analyzed. */
  rows: number | null;
  /** pg_total_relation_size: table, indexes and TOAST, over all partitions or children; null when it could not be read. */
  bytes: number | null;
  sessions: LockingSession[];
  /** Reading its size waited past the timeout: a session holds an ACCESS EXCLUSIVE lock on it. */
  lockedOut: boolean;
}

/** Tables as the files name them (lower case) to what the database says about them. */
export type RiskContext = Map<string, TableContext>;

export interface RiskThresholds {
  /** Below both, a table is small: statements whose cost grows with the table drop to low. */
  smallRows: number;
  smallBytes: number;
  /** At or above either, a table is large: those statements rise to high. */
  largeRows: number;
  largeBytes: number;
  /**
   * A session holding a conflicting lock counts as in the way when its
   * transaction is at least this old, or it is idle in transaction, or its
   * request is queued: a query that started a moment ago is gone before a
   * migration's lock_timeout.
   */
  blockingSessionMs: number;
}

export const defaultThresholds: RiskThresholds = {
  smallRows: 10_000,
  smallBytes: 10 * 1024 * 1024,
  largeRows: 1_000_000,
  largeBytes: 1024 * 1024 * 1024,
  blockingSessionMs: 1_000,
};

export const contextKey = (table: string): string => table.toLowerCase();

export function sizeClass(t: TableContext, th: RiskThresholds): 'small' | 'large' | 'medium' {
  if ((t.rows !== null && t.rows >= th.largeRows) || (t.bytes !== null && t.bytes >= th.largeBytes)) return 'large';
  if (t.bytes !== null && t.bytes < th.smallBytes && (t.rows === null || t.rows < th.smallRows)) return 'small';
  return 'medium';
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(value >= 100 ? 0 : 1)} ${units[unit]}`;
}

function describeTable(t: TableContext): string {
  const rows = t.rows === null ? 'never analyzed' : `~${Math.round(t.rows).toLocaleString('en-US')} rows`;
  return `${t.qualified}: ${rows}, ${t.bytes === null ? 'size unknown' : formatBytes(t.bytes)}`;
}

function describeSession(s: LockingSession): string {
  const age = s.transactionMs === null ? '' : `, transaction open ${Math.round(s.transactionMs / 1000)} s`;
  return `pid ${s.pid} ${s.granted ? 'holds' : 'waits for'} ${s.mode} (${s.state ?? 'unknown state'}${age}${s.application ? `, ${s.application}` : ''})`;
}

const raise = (level: RiskLevel): RiskLevel => riskLevels[Math.min(riskLevels.indexOf(level) + 1, riskLevels.length - 1)]!;

/**
 * Adjusts one migration's findings with what the live database says: a
 * statement whose cost grows with the table is low risk on a small table and
 * high on a large one; sessions in the way of a statement's lock become a
 * `blocked-by-session` finding and raise that statement's size-bound
 * findings by one level. Pure: the database was read before.
 */
export function applyContext(findings: Finding[], script: Script, context: RiskContext, th: RiskThresholds = defaultThresholds): Finding[] {
  const allow = new Map(script.directives.allow.map((a) => [a.rule, a.reason]));
  const adjusted = findings.map((f): Finding => {
    const t = f.table === null ? undefined : context.get(contextKey(f.table));
    if (!rules[f.rule]?.scales || !t?.qualified) return f;
    const size = sizeClass(t, th);
    const level: RiskLevel = size === 'small' ? 'low' : size === 'large' ? 'high' : f.level;
    return { ...f, level, context: describeTable(t), ...(level !== f.level ? { baseLevel: f.level } : {}) };
  });

  const blocked: Finding[] = [];
  const inTheWay = (x: LockingSession) => !x.granted || x.state === 'idle in transaction' || (x.transactionMs ?? 0) >= th.blockingSessionMs;
  for (const s of script.statements) {
    const lock = lockTaken(s);
    if (lock.mode === null) continue;
    const wanted = lock.mode;
    let sessionsInTheWay = 0;
    for (const name of lock.relations) {
      const t = context.get(contextKey(name));
      if (!t?.qualified) continue;
      const sessions = t.sessions.filter((x) => lockConflicts(wanted, x.mode) && inTheWay(x));
      if (sessions.length === 0 && !t.lockedOut) continue;
      sessionsInTheWay += Math.max(sessions.length, 1);
      const rule = rules['blocked-by-session']!;
      const what = [...sessions.map(describeSession), ...(t.lockedOut ? ['a session holds ACCESS EXCLUSIVE (reading the table size timed out)'] : [])];
      blocked.push({
        rule: rule.id,
        // Medium, not high: pgconvoy bounds the wait with lock_timeout and retries.
        level: rule.level,
        lock: wanted,
        table: name,
        statement: s.index,
        line: s.line,
        why: rule.why,
        instead: rule.instead,
        allowed: allow.get(rule.id) ?? null,
        context: `${t.qualified}: ${what.join('; ')}`,
      });
    }
    // Waiting makes a long lock longer: the statement's size-bound findings rise one level, however many tables are in the way.
    if (sessionsInTheWay === 0) continue;
    for (const [i, f] of adjusted.entries()) {
      if (f.statement === s.index && rules[f.rule]?.scales) {
        adjusted[i] = { ...f, level: raise(f.level), baseLevel: f.baseLevel ?? f.level, context: `${f.context ?? f.table ?? ''}; ${sessionsInTheWay} session(s) in the way` };
      }
    }
  }
  return [...adjusted, ...blocked].sort((a, b) => a.statement - b.statement);
}

/** A pending migration's risk: its findings with context and the highest level not accepted. */
export interface MigrationRisk {
  level: RiskLevel;
  findings: Finding[];
}

/**
 * Risk of the pending migrations of a database, in order. Only they are
 * analysed: a table created by a migration already applied is an existing
 * table now, with rows. With a context, levels follow the live database.
 */
export function assessPending(pending: ScriptForRisk[], context: RiskContext | null, th: RiskThresholds = defaultThresholds): Map<Version, MigrationRisk> {
  const result = new Map<Version, MigrationRisk>();
  for (const [version, found] of analyzeRisk(pending)) {
    const script = pending.find((p) => p.version === version)!.script;
    const findings = context ? applyContext(found, script, context, th) : found;
    result.set(version, { level: highestLevel(findings), findings });
  }
  return result;
}

/** Statements whose work the parser cannot bound: a DO block, a procedure or a SELECT (of any function) may do anything, for as long as it likes. */
const unboundedKinds = new Set(['DoStmt', 'CallStmt', 'SelectStmt']);

/**
 * Whether a migration is predicted short, so a run applies it inline (a
 * local activity) instead of through the task queue: one transaction, no DO,
 * CALL or SELECT, and every table it locks small or not there yet (it creates it),
 * with no session holding or waiting for a lock on it. A prediction only:
 * a short migration that runs long is still checkpointed and retried the
 * same way, it just does not heartbeat, and a worker that stops waits for it
 * instead of abandoning it.
 */
export function predictedShort(script: Pick<Script, 'mode' | 'statements'>, context: RiskContext, thresholds: RiskThresholds): boolean {
  if (script.mode !== 'transaction') return false;
  if (script.statements.some((s) => unboundedKinds.has(s.kind))) return false;
  for (const s of script.statements) {
    for (const name of lockTaken(s).relations) {
      const t = context.get(contextKey(name));
      if (t === undefined || t.lockedOut || t.sessions.length > 0) return false;
      if (t.qualified !== null && sizeClass(t, thresholds) !== 'small') return false;
    }
  }
  return true;
}
