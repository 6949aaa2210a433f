import { lockTaken, type LockMode } from './locks';
import type { Script, Statement } from './statements';
import type { Version } from './version';

export type RiskLevel = 'low' | 'medium' | 'high';
export const riskLevels: RiskLevel[] = ['low', 'medium', 'high'];

export interface RiskRule {
  id: string;
  level: RiskLevel;
  /** Why it is risky, in words an engineer on call understands. */
  why: string;
  /** The safe way to get the same result. */
  instead: string;
  /** Its cost grows with the table: context from the live database moves its level by the table's size. */
  scales?: boolean;
}

export interface Finding {
  rule: string;
  level: RiskLevel;
  /** The table lock the statement takes. */
  lock: LockMode | null;
  table: string | null;
  statement: number;
  line: number;
  why: string;
  instead: string;
  /** Set when the file accepts the finding with `-- pgconvoy:allow <rule> <reason>`. */
  allowed: string | null;
  /** What the live database said about the table (size, sessions), when it was asked. */
  context: string | null;
  /** The rule's own level, when the context moved it. */
  baseLevel?: RiskLevel;
}

/** The rules, by id. Levels are for an existing table of unknown size; context from the live database adjusts them. */
export const rules: Record<string, RiskRule> = {
  'drop-table': { id: 'drop-table', level: 'high', why: 'drops the table and its data; the old application version may still read it', instead: 'stop using the table in a release first, keep a backup, drop it in a later migration' },
  'drop-column': { id: 'drop-column', level: 'high', why: 'the data in the column is gone, and the running application version may still select it', instead: 'stop reading and writing the column in one release, drop it in a later one' },
  'drop-schema': { id: 'drop-schema', level: 'high', why: 'drops every object in the schema with CASCADE-like reach', instead: 'drop the objects one by one after the application stopped using them' },
  'drop-database': { id: 'drop-database', level: 'high', why: 'drops a whole database', instead: 'do this by hand, not in a migration' },
  truncate: { id: 'truncate', level: 'high', why: 'deletes every row under an ACCESS EXCLUSIVE lock', instead: 'delete in batches, or archive the table first' },
  'rename-table': { id: 'rename-table', level: 'high', why: 'the running application version still uses the old name and breaks at once', instead: 'create a view with the old name, or expand/contract across releases' },
  'rename-column': { id: 'rename-column', level: 'high', why: 'the running application version still uses the old name and breaks at once', instead: 'add the new column, write both, backfill, switch reads, drop the old one later' },
  'alter-column-type': { id: 'alter-column-type', level: 'high', why: 'most type changes rewrite the whole table under an ACCESS EXCLUSIVE lock', instead: 'add a column of the new type, backfill in batches, switch over', scales: true },
  'add-column-volatile-default': { id: 'add-column-volatile-default', level: 'high', why: 'a volatile default (random(), clock_timestamp(), gen_random_uuid()) rewrites the whole table under an ACCESS EXCLUSIVE lock', instead: 'add the column without a default, set the default, backfill in batches', scales: true },
  'set-not-null': { id: 'set-not-null', level: 'medium', why: 'SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock', instead: 'add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL (no scan)', scales: true },
  'add-foreign-key': { id: 'add-foreign-key', level: 'medium', why: 'validating the new foreign key scans the table while holding SHARE ROW EXCLUSIVE locks on both tables', instead: 'add it NOT VALID, then VALIDATE CONSTRAINT in a later migration', scales: true },
  'add-check-constraint': { id: 'add-check-constraint', level: 'medium', why: 'validating the new check scans the whole table under an ACCESS EXCLUSIVE lock', instead: 'add it NOT VALID, then VALIDATE CONSTRAINT in a later migration', scales: true },
  'create-index-blocking': { id: 'create-index-blocking', level: 'medium', why: 'CREATE INDEX without CONCURRENTLY blocks every write to the table until it finishes', instead: 'CREATE INDEX CONCURRENTLY in a file with "-- pgconvoy:no-transaction"', scales: true },
  'drop-index-blocking': { id: 'drop-index-blocking', level: 'medium', why: 'DROP INDEX without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on the table', instead: 'DROP INDEX CONCURRENTLY in a file with "-- pgconvoy:no-transaction"' },
  'concurrent-index-in-transaction': { id: 'concurrent-index-in-transaction', level: 'high', why: 'CREATE INDEX CONCURRENTLY cannot run inside a transaction block', instead: 'put it in a file of its own or mark the file "-- pgconvoy:no-transaction"' },
  'add-unique-without-index': { id: 'add-unique-without-index', level: 'medium', why: 'adding a primary key or unique constraint builds its index under an ACCESS EXCLUSIVE lock', instead: 'CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT ... USING INDEX', scales: true },
  'update-without-where': { id: 'update-without-where', level: 'high', why: 'updates every row in one transaction: long locks, bloat, replication lag', instead: 'update in batches with a WHERE on the key', scales: true },
  'delete-without-where': { id: 'delete-without-where', level: 'high', why: 'deletes every row in one transaction', instead: 'delete in batches, or TRUNCATE deliberately' },
  'vacuum-full': { id: 'vacuum-full', level: 'high', why: 'rewrites the table under an ACCESS EXCLUSIVE lock', instead: 'plain VACUUM, or pg_repack', scales: true },
  cluster: { id: 'cluster', level: 'high', why: 'rewrites the table under an ACCESS EXCLUSIVE lock', instead: 'pg_repack', scales: true },
  'blocked-by-session': { id: 'blocked-by-session', level: 'medium', why: 'other sessions hold or wait for locks this statement conflicts with: it will wait behind them, and every query on the table will queue behind it', instead: 'run when they are gone (pgconvoy retries lock timeouts with backoff), or end the long transactions first' },
  'missing-lock-timeout': { id: 'missing-lock-timeout', level: 'low', why: 'takes an ACCESS EXCLUSIVE lock with no lock_timeout in the file: run by hand, it could queue every query on the table behind it', instead: 'start the file with SET lock_timeout = \'5s\' (pgconvoy sets it for you)' },
};

type Node = Record<string, unknown>;
const volatileFunctions = new Set(['random', 'clock_timestamp', 'gen_random_uuid', 'uuid_generate_v4', 'uuid_generate_v1', 'timeofday', 'nextval']);
const relname = (rel: unknown): string | null => {
  const r = rel as { relname?: string } | undefined;
  return r?.relname ? r.relname.toLowerCase() : null;
};
/** The table as the file names it, schema included when given. */
const shownName = (rel: unknown): string | null => {
  const r = rel as { schemaname?: string; relname?: string } | undefined;
  return r?.relname ? (r.schemaname ? `${r.schemaname}.${r.relname}` : r.relname) : null;
};

function functionNames(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) node.forEach((n) => functionNames(n, out));
  else if (node && typeof node === 'object') {
    const call = (node as { FuncCall?: { funcname?: Array<{ String?: { sval?: string } }> } }).FuncCall;
    if (call) out.push(call.funcname?.at(-1)?.String?.sval ?? '');
    for (const v of Object.values(node)) functionNames(v, out);
  }
  return out;
}

/** Column named by `col IS NOT NULL` in a check constraint, if that is all it says. */
function notNullCheckColumn(constraint: Node): string | null {
  const test = (constraint.raw_expr as { NullTest?: { nulltesttype?: string; arg?: { ColumnRef?: { fields?: Array<{ String?: { sval?: string } }> } } } } | undefined)?.NullTest;
  if (test?.nulltesttype !== 'IS_NOT_NULL') return null;
  return test.arg?.ColumnRef?.fields?.at(-1)?.String?.sval?.toLowerCase() ?? null;
}

export interface ScriptForRisk {
  version: Version;
  file: string;
  script: Script;
}

/**
 * What the set itself made, as far as the statements analysed so far say:
 * tables (after renames, under their current names), the indexes it created
 * and the table each is on, schemas, and NOT VALID checks on the way to a
 * SET NOT NULL. Objects in it are new and empty: nothing the application
 * uses yet, so indexing, constraining, renaming or dropping them is no risk.
 */
class SetObjects {
  readonly tables = new Set<string>();
  readonly indexes = new Map<string, string>();
  readonly schemas = new Set<string>();
  readonly notValidChecks = new Map<string, { table: string; column: string }>();
  readonly validatedNotNull = new Set<string>();

  copy(): SetObjects {
    const c = new SetObjects();
    this.tables.forEach((t) => c.tables.add(t));
    this.indexes.forEach((table, index) => c.indexes.set(index, table));
    this.schemas.forEach((x) => c.schemas.add(x));
    this.notValidChecks.forEach((v, k) => c.notValidChecks.set(k, { ...v }));
    this.validatedNotNull.forEach((x) => c.validatedNotNull.add(x));
    return c;
  }

  renameTable(from: string, to: string): void {
    if (this.tables.delete(from)) this.tables.add(to);
    for (const [index, table] of this.indexes) if (table === from) this.indexes.set(index, to);
    for (const check of this.notValidChecks.values()) if (check.table === from) check.table = to;
    this.moveColumns((key) => (key.startsWith(`${from}.`) ? `${to}.${key.slice(from.length + 1)}` : key));
  }

  renameColumn(table: string, from: string, to: string): void {
    for (const check of this.notValidChecks.values()) if (check.table === table && check.column === from) check.column = to;
    this.moveColumns((key) => (key === `${table}.${from}` ? `${table}.${to}` : key));
  }

  private moveColumns(map: (key: string) => string): void {
    const keys = [...this.validatedNotNull];
    this.validatedNotNull.clear();
    keys.forEach((k) => this.validatedNotNull.add(map(k)));
  }
}

const lastName = (o: { List?: { items?: Array<{ String?: { sval?: string } }> }; String?: { sval?: string } }) =>
  (o.List?.items?.at(-1)?.String?.sval ?? o.String?.sval ?? '').toLowerCase();

/** Findings of one script; `objects` is what the set made before it, and is updated with what this script makes. */
function assessScript(m: ScriptForRisk, objects: SetObjects): Finding[] {
  const findings: Finding[] = [];
  const allow = new Map(m.script.directives.allow.map((a) => [a.rule, a.reason]));
  const flag = (id: string, s: Statement, table: string | null) => {
    const rule = rules[id]!;
    const shown = table !== null && table === relname(s.node.relation) ? shownName(s.node.relation) : table;
    findings.push({ rule: id, level: rule.level, lock: lockTaken(s).mode, table: shown, statement: s.index, line: s.line, why: rule.why, instead: rule.instead, allowed: allow.get(id) ?? null, context: null });
  };
  const existing = (table: string | null) => table !== null && !objects.tables.has(table);
  let hasLockTimeout = false;
  let exclusiveOnExisting: { statement: Statement; table: string | null } | undefined;

  for (const s of m.script.statements) {
    const n = s.node;
    const table = relname(n.relation);
    const lock = lockTaken(s);
    if (s.kind === 'VariableSetStmt' && n.name === 'lock_timeout') hasLockTimeout = true;
    if (lock.mode === 'ACCESS EXCLUSIVE' && !exclusiveOnExisting) {
      // DROP INDEX and ALTER INDEX lock the index's table: the one the set created it on, or one the parser cannot name.
      const onIndex =
        (s.kind === 'DropStmt' && String(n.removeType) === 'OBJECT_INDEX') ||
        (s.kind === 'RenameStmt' && n.renameType === 'OBJECT_INDEX') ||
        (s.kind === 'AlterTableStmt' && n.objtype === 'OBJECT_INDEX');
      const tables = lock.relations.map((r) => {
        const name = r.split('.').at(-1)!.toLowerCase();
        return onIndex ? (objects.indexes.get(name) ?? null) : name;
      });
      const onExisting = tables.find((t) => t === null || !objects.tables.has(t));
      if (onExisting !== undefined) exclusiveOnExisting = { statement: s, table: onExisting };
    }

    switch (s.kind) {
      case 'CreateStmt':
        if (table) objects.tables.add(table);
        break;
      case 'CreateTableAsStmt': {
        const into = relname((n.into as { rel?: unknown } | undefined)?.rel);
        if (into) objects.tables.add(into);
        break;
      }
      case 'CreateSchemaStmt':
        if (typeof n.schemaname === 'string') objects.schemas.add(n.schemaname.toLowerCase());
        break;
      case 'DropStmt': {
        const names = ((n.objects as Array<Parameters<typeof lastName>[0]> | undefined) ?? []).map(lastName);
        const kind = String(n.removeType);
        if (kind === 'OBJECT_TABLE') {
          names.filter((x) => !objects.tables.has(x)).forEach((x) => flag('drop-table', s, x));
          names.forEach((x) => objects.tables.delete(x));
        } else if (kind === 'OBJECT_SCHEMA') {
          if (names.some((x) => !objects.schemas.has(x))) flag('drop-schema', s, null);
        } else if (kind === 'OBJECT_INDEX') {
          const onExisting = names.filter((x) => {
            const on = objects.indexes.get(x);
            return on === undefined || !objects.tables.has(on);
          });
          if (onExisting.length > 0 && !n.concurrent) flag('drop-index-blocking', s, onExisting.length === 1 ? (objects.indexes.get(onExisting[0]!) ?? null) : null);
          names.forEach((x) => objects.indexes.delete(x));
        }
        break;
      }
      case 'DropdbStmt':
        flag('drop-database', s, null);
        break;
      case 'TruncateStmt': {
        const onExisting = lock.relations.find((r) => existing(r.split('.').at(-1)!.toLowerCase()));
        if (onExisting !== undefined) flag('truncate', s, onExisting);
        break;
      }
      case 'RenameStmt': {
        const to = typeof n.newname === 'string' ? n.newname.toLowerCase() : null;
        if (n.renameType === 'OBJECT_TABLE') {
          if (existing(table)) flag('rename-table', s, table);
          else if (table && to) objects.renameTable(table, to);
        }
        if (n.renameType === 'OBJECT_COLUMN') {
          if (existing(table)) flag('rename-column', s, table);
          if (table && to && typeof n.subname === 'string') objects.renameColumn(table, n.subname.toLowerCase(), to);
        }
        if (n.renameType === 'OBJECT_INDEX' && table && to) {
          const on = objects.indexes.get(table);
          if (on !== undefined) {
            objects.indexes.delete(table);
            objects.indexes.set(to, on);
          }
        }
        break;
      }
      case 'IndexStmt':
        if (n.concurrent && m.script.mode === 'transaction') flag('concurrent-index-in-transaction', s, table);
        else if (!n.concurrent && existing(table)) flag('create-index-blocking', s, table);
        if (table && typeof n.idxname === 'string') objects.indexes.set(n.idxname.toLowerCase(), table);
        break;
      case 'UpdateStmt':
        if (!n.whereClause && existing(table)) flag('update-without-where', s, table);
        break;
      case 'DeleteStmt':
        if (!n.whereClause && existing(table)) flag('delete-without-where', s, table);
        break;
      case 'VacuumStmt':
        if (((n.options as Array<{ DefElem?: { defname?: string } }> | undefined) ?? []).some((o) => o.DefElem?.defname === 'full')) {
          const onExisting = lock.relations.find((r) => existing(r.split('.').at(-1)!.toLowerCase()));
          if (onExisting !== undefined || lock.relations.length === 0) flag('vacuum-full', s, onExisting ?? null);
        }
        break;
      case 'ClusterStmt':
        if (table === null || existing(table)) flag('cluster', s, table);
        break;
      case 'AlterTableStmt': {
        if (!existing(table)) break;
        for (const entry of (n.cmds as Array<{ AlterTableCmd?: Node }> | undefined) ?? []) {
          const cmd = entry.AlterTableCmd ?? {};
          const def = cmd.def as { ColumnDef?: Node; Constraint?: Node } | undefined;
          const column = typeof cmd.name === 'string' ? cmd.name.toLowerCase() : '';
          switch (cmd.subtype) {
            case 'AT_DropColumn':
              flag('drop-column', s, table);
              break;
            case 'AT_AlterColumnType': {
              const names = (def?.ColumnDef?.typeName as { names?: Array<{ String?: { sval?: string } }>; typmods?: unknown[] } | undefined) ?? {};
              const type = names.names?.at(-1)?.String?.sval;
              const unbounded = (type === 'text' || type === 'varchar') && !names.typmods;
              if (!unbounded) flag('alter-column-type', s, table);
              break;
            }
            case 'AT_AddColumn': {
              const defaults = ((def?.ColumnDef?.constraints as Array<{ Constraint?: Node }> | undefined) ?? []).filter((c) => c.Constraint?.contype === 'CONSTR_DEFAULT');
              if (defaults.some((c) => functionNames(c.Constraint?.raw_expr).some((f) => volatileFunctions.has(f)))) flag('add-column-volatile-default', s, table);
              break;
            }
            case 'AT_SetNotNull':
              if (!objects.validatedNotNull.has(`${table}.${column}`)) flag('set-not-null', s, table);
              break;
            case 'AT_ValidateConstraint': {
              const check = objects.notValidChecks.get(column);
              if (check) objects.validatedNotNull.add(`${check.table}.${check.column}`);
              break;
            }
            case 'AT_AddConstraint': {
              const c = def?.Constraint ?? {};
              if (c.contype === 'CONSTR_FOREIGN' && !c.skip_validation) flag('add-foreign-key', s, table);
              if (c.contype === 'CONSTR_CHECK') {
                const col = notNullCheckColumn(c);
                if (c.skip_validation) {
                  if (col && typeof c.conname === 'string') objects.notValidChecks.set(c.conname.toLowerCase(), { table: table!, column: col });
                } else {
                  flag('add-check-constraint', s, table);
                  if (col) objects.validatedNotNull.add(`${table}.${col}`);
                }
              }
              if ((c.contype === 'CONSTR_PRIMARY' || c.contype === 'CONSTR_UNIQUE') && !c.indexname) flag('add-unique-without-index', s, table);
              break;
            }
          }
        }
        break;
      }
    }
  }
  if (exclusiveOnExisting && !hasLockTimeout) flag('missing-lock-timeout', exclusiveOnExisting.statement, exclusiveOnExisting.table);
  return findings;
}

/**
 * Risk findings for each migration of a set, in version order, from the
 * parse tree. Objects created earlier in the set (or earlier in the same
 * file) are new and empty, under whatever name they were renamed to:
 * indexing, constraining, renaming or dropping them is not flagged.
 */
export function analyzeRisk(migrations: ScriptForRisk[]): Map<Version, Finding[]> {
  const objects = new SetObjects();
  const result = new Map<Version, Finding[]>();
  for (const m of migrations) result.set(m.version, assessScript(m, objects));
  return result;
}

/**
 * Findings of the undo scripts: each as it would run, right after its
 * version and everything before it (what the set made up to there is new).
 */
export function analyzeUndo(migrations: Array<ScriptForRisk & { undo?: ScriptForRisk }>): Map<Version, Finding[]> {
  const objects = new SetObjects();
  const result = new Map<Version, Finding[]>();
  for (const m of migrations) {
    assessScript(m, objects);
    if (m.undo) result.set(m.version, assessScript(m.undo, objects.copy()));
  }
  return result;
}

/** The highest level among findings that are not allowed, or 'low' when there are none. */
export function highestLevel(findings: Finding[]): RiskLevel {
  return findings.filter((f) => f.allowed === null).reduce<RiskLevel>((max, f) => (riskLevels.indexOf(f.level) > riskLevels.indexOf(max) ? f.level : max), 'low');
}
