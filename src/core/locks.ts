import type { Statement } from './statements';

/** PostgreSQL's table lock modes, weakest first. */
export const lockModes = [
  'ACCESS SHARE',
  'ROW SHARE',
  'ROW EXCLUSIVE',
  'SHARE UPDATE EXCLUSIVE',
  'SHARE',
  'SHARE ROW EXCLUSIVE',
  'EXCLUSIVE',
  'ACCESS EXCLUSIVE',
] as const;
export type LockMode = (typeof lockModes)[number];

export interface StatementLock {
  /** The strongest table lock the statement takes, or null when it locks no existing table. */
  mode: LockMode | null;
  /** Tables (schema-qualified when the file says so) it locks. */
  relations: string[];
}

type Node = Record<string, unknown>;

function relationName(rel: unknown): string | undefined {
  if (!rel || typeof rel !== 'object') return undefined;
  const r = rel as { schemaname?: string; relname?: string };
  return r.relname === undefined ? undefined : r.schemaname ? `${r.schemaname}.${r.relname}` : r.relname;
}

function strongest(modes: LockMode[]): LockMode | null {
  return modes.reduce<LockMode | null>((max, m) => (max === null || lockModes.indexOf(m) > lockModes.indexOf(max) ? m : max), null);
}

/** ALTER TABLE subcommands that take less than ACCESS EXCLUSIVE. */
const alterTableLocks: Record<string, LockMode> = {
  AT_ValidateConstraint: 'SHARE UPDATE EXCLUSIVE',
  AT_SetStatistics: 'SHARE UPDATE EXCLUSIVE',
  AT_SetOptions: 'SHARE UPDATE EXCLUSIVE',
  AT_ResetOptions: 'SHARE UPDATE EXCLUSIVE',
  AT_ClusterOn: 'SHARE UPDATE EXCLUSIVE',
  AT_DropCluster: 'SHARE UPDATE EXCLUSIVE',
  AT_AttachPartition: 'SHARE UPDATE EXCLUSIVE',
  AT_EnableTrig: 'SHARE ROW EXCLUSIVE',
  AT_DisableTrig: 'SHARE ROW EXCLUSIVE',
  AT_EnableTrigAll: 'SHARE ROW EXCLUSIVE',
  AT_DisableTrigAll: 'SHARE ROW EXCLUSIVE',
  AT_EnableTrigUser: 'SHARE ROW EXCLUSIVE',
  AT_DisableTrigUser: 'SHARE ROW EXCLUSIVE',
};

function alterTableLock(node: Node): { mode: LockMode; relations: string[] } {
  const relations: string[] = [];
  const own = relationName(node.relation);
  if (own) relations.push(own);
  const modes: LockMode[] = [];
  for (const entry of (node.cmds as Array<{ AlterTableCmd?: Node }> | undefined) ?? []) {
    const cmd = entry.AlterTableCmd ?? {};
    const subtype = typeof cmd.subtype === 'string' ? cmd.subtype : '';
    const constraint = (cmd.def as { Constraint?: Node } | undefined)?.Constraint;
    if (subtype === 'AT_AddConstraint' && constraint?.contype === 'CONSTR_FOREIGN') {
      modes.push('SHARE ROW EXCLUSIVE');
      const referenced = relationName(constraint.pktable);
      if (referenced) relations.push(referenced);
    } else if (subtype === 'AT_DetachPartition' && (cmd.def as { PartitionCmd?: Node } | undefined)?.PartitionCmd?.concurrent) {
      modes.push('SHARE UPDATE EXCLUSIVE');
    } else {
      modes.push(alterTableLocks[subtype] ?? 'ACCESS EXCLUSIVE');
    }
  }
  return { mode: strongest(modes) ?? 'ACCESS EXCLUSIVE', relations };
}

/**
 * The table lock a statement takes, from its parse tree (PostgreSQL's
 * documentation, "Explicit Locking"). Used by `plan` to show what each
 * statement will block.
 */
export function lockTaken(s: Pick<Statement, 'kind' | 'node'>): StatementLock {
  const n = s.node;
  const one = (mode: LockMode | null, rel: unknown): StatementLock => {
    const name = relationName(rel);
    return { mode, relations: name ? [name] : [] };
  };
  switch (s.kind) {
    case 'AlterTableStmt':
      return alterTableLock(n);
    case 'IndexStmt':
      return one(n.concurrent ? 'SHARE UPDATE EXCLUSIVE' : 'SHARE', n.relation);
    case 'DropStmt': {
      const names = ((n.objects as Array<{ List?: { items?: Array<{ String?: { sval?: string } }> } }> | undefined) ?? []).map((o) =>
        (o.List?.items ?? []).map((i) => i.String?.sval ?? '').join('.'),
      );
      const tableLike = ['OBJECT_TABLE', 'OBJECT_INDEX', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_SEQUENCE', 'OBJECT_FOREIGN_TABLE'];
      if (!tableLike.includes(String(n.removeType))) return { mode: null, relations: [] };
      return { mode: n.concurrent ? 'SHARE UPDATE EXCLUSIVE' : 'ACCESS EXCLUSIVE', relations: names };
    }
    case 'RenameStmt':
      return one('ACCESS EXCLUSIVE', n.relation);
    case 'TruncateStmt':
      return {
        mode: 'ACCESS EXCLUSIVE',
        relations: ((n.relations as Array<{ RangeVar?: unknown }> | undefined) ?? []).flatMap((r) => relationName(r.RangeVar) ?? []),
      };
    case 'InsertStmt':
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'MergeStmt':
      return one('ROW EXCLUSIVE', n.relation);
    case 'SelectStmt':
      return { mode: (n.lockingClause as unknown[] | undefined)?.length ? 'ROW SHARE' : 'ACCESS SHARE', relations: [] };
    case 'VacuumStmt': {
      const full = ((n.options as Array<{ DefElem?: { defname?: string } }> | undefined) ?? []).some((o) => o.DefElem?.defname === 'full');
      const rels = ((n.rels as Array<{ VacuumRelation?: { relation?: unknown } }> | undefined) ?? []).flatMap((r) => relationName(r.VacuumRelation?.relation) ?? []);
      return { mode: full ? 'ACCESS EXCLUSIVE' : 'SHARE UPDATE EXCLUSIVE', relations: rels };
    }
    case 'ClusterStmt':
      return one('ACCESS EXCLUSIVE', n.relation);
    case 'ReindexStmt': {
      const concurrently = ((n.params as Array<{ DefElem?: { defname?: string } }> | undefined) ?? []).some((p) => p.DefElem?.defname === 'concurrently');
      return one(concurrently ? 'SHARE UPDATE EXCLUSIVE' : 'ACCESS EXCLUSIVE', n.relation);
    }
    case 'CreateTrigStmt':
      return one('SHARE ROW EXCLUSIVE', n.relation);
    case 'RefreshMatViewStmt':
      return one(n.concurrent ? 'EXCLUSIVE' : 'ACCESS EXCLUSIVE', n.relation);
    case 'LockStmt': {
      const modeNumber = Number(n.mode ?? 8);
      const rels = ((n.relations as Array<{ RangeVar?: unknown }> | undefined) ?? []).flatMap((r) => relationName(r.RangeVar) ?? []);
      return { mode: lockModes[modeNumber - 1] ?? 'ACCESS EXCLUSIVE', relations: rels };
    }
    case 'CreateStmt': {
      // A new table; a foreign key also locks the table it references.
      const referenced = ((n.tableElts as Array<{ ColumnDef?: { constraints?: Array<{ Constraint?: Node }> }; Constraint?: Node }> | undefined) ?? [])
        .flatMap((e) => [...(e.ColumnDef?.constraints ?? []).map((c) => c.Constraint), e.Constraint])
        .filter((c): c is Node => c?.contype === 'CONSTR_FOREIGN')
        .flatMap((c) => relationName(c.pktable) ?? []);
      return referenced.length > 0 ? { mode: 'SHARE ROW EXCLUSIVE', relations: referenced } : { mode: null, relations: [] };
    }
    default:
      return { mode: null, relations: [] };
  }
}

/** The existing tables a set of statements locks: what a `touched-tables` backup must hold. */
export function tablesTouched(statements: Array<Pick<Statement, 'kind' | 'node'>>): string[] {
  const tables = new Set<string>();
  for (const s of statements) for (const r of lockTaken(s).relations) tables.add(r);
  return [...tables].sort();
}

/** PostgreSQL's lock conflict table ("Conflicting Lock Modes"): for each mode, the modes it waits for. */
const conflictTable: Record<LockMode, LockMode[]> = {
  'ACCESS SHARE': ['ACCESS EXCLUSIVE'],
  'ROW SHARE': ['EXCLUSIVE', 'ACCESS EXCLUSIVE'],
  'ROW EXCLUSIVE': ['SHARE', 'SHARE ROW EXCLUSIVE', 'EXCLUSIVE', 'ACCESS EXCLUSIVE'],
  'SHARE UPDATE EXCLUSIVE': ['SHARE UPDATE EXCLUSIVE', 'SHARE', 'SHARE ROW EXCLUSIVE', 'EXCLUSIVE', 'ACCESS EXCLUSIVE'],
  SHARE: ['ROW EXCLUSIVE', 'SHARE UPDATE EXCLUSIVE', 'SHARE ROW EXCLUSIVE', 'EXCLUSIVE', 'ACCESS EXCLUSIVE'],
  'SHARE ROW EXCLUSIVE': ['ROW EXCLUSIVE', 'SHARE UPDATE EXCLUSIVE', 'SHARE', 'SHARE ROW EXCLUSIVE', 'EXCLUSIVE', 'ACCESS EXCLUSIVE'],
  EXCLUSIVE: ['ROW SHARE', 'ROW EXCLUSIVE', 'SHARE UPDATE EXCLUSIVE', 'SHARE', 'SHARE ROW EXCLUSIVE', 'EXCLUSIVE', 'ACCESS EXCLUSIVE'],
  'ACCESS EXCLUSIVE': [...lockModes],
};

/** Whether a lock in mode `wanted` must wait for one held (or queued) in mode `held`. */
export function lockConflicts(wanted: LockMode, held: LockMode): boolean {
  return conflictTable[wanted].includes(held);
}

/** The lock mode named as pg_locks names it (`AccessExclusiveLock`), or null for other lock kinds. */
export function fromPgLocksMode(mode: string): LockMode | null {
  const words = mode.replace(/Lock$/, '').replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase();
  return (lockModes as readonly string[]).includes(words) ? (words as LockMode) : null;
}
