/**
 * Which relations a migration changes in the catalog, from its parse tree,
 * so its fingerprint can be brought up to date by reading only those (and
 * what depends on them) instead of the whole schema. Anything the parse tree
 * cannot bound (functions, types, schemas, extensions, DO blocks, CASCADE,
 * SELECTs that may call anything) makes the run read the whole catalog again.
 */
import type { Statement } from './statements';

/** Statements whose catalog changes stay within the relations they name. */
const confinedKinds = new Set([
  'CreateStmt',
  'AlterTableStmt',
  'IndexStmt',
  'InsertStmt',
  'UpdateStmt',
  'DeleteStmt',
  'ViewStmt',
  'CreateTrigStmt',
  'CreateSeqStmt',
  'CommentStmt',
  'GrantStmt',
  'VariableSetStmt',
  'TruncateStmt',
  'LockStmt',
  'RenameStmt',
  'DropStmt',
]);

/** Objects of a RenameStmt or DropStmt that are relations or live on one. */
const relationObjects = new Set(['OBJECT_TABLE', 'OBJECT_COLUMN', 'OBJECT_INDEX', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_SEQUENCE', 'OBJECT_TABCONSTRAINT', 'OBJECT_TRIGGER', 'OBJECT_FOREIGN_TABLE']);

/** A relation as a statement names it: unqualified names resolve on the search_path. */
export interface RelationName {
  schema: string | null;
  name: string;
}

/**
 * The relations whose catalog rows a migration may change (as its
 * statements name them), or null when the whole catalog must be read.
 */
export function catalogReach(statements: Array<Pick<Statement, 'kind' | 'node'>>): RelationName[] | null {
  const names = new Set<string>();
  for (const s of statements) {
    if (!confinedKinds.has(s.kind) || mentionsCascade(s.node)) return null;
    const node = s.node;
    // Names resolve on the search_path: one the migration changes is not the one they are resolved on afterwards.
    if (s.kind === 'VariableSetStmt' && String(node.name).toLowerCase() === 'search_path') return null;
    if (s.kind === 'CreateSeqStmt' && JSON.stringify(node.options ?? []).includes('"owned_by"')) return null;
    if (s.kind === 'RenameStmt' || s.kind === 'DropStmt') {
      const type = String(s.kind === 'RenameStmt' ? node.renameType : node.removeType);
      if (!relationObjects.has(type)) return null;
    }
    collectRangeVars(node, names);
    if (s.kind === 'DropStmt') for (const object of (node.objects as unknown[] | undefined) ?? []) names.add(droppedRelation(object, String(node.removeType)));
    if (s.kind === 'RenameStmt' && typeof node.newname === 'string' && node.renameType !== 'OBJECT_COLUMN') {
      const schema = (node.relation as { schemaname?: string } | undefined)?.schemaname ?? null;
      names.add(JSON.stringify([schema, node.newname]));
    }
  }
  return [...names].sort().map((key) => {
    const [schema, name] = JSON.parse(key) as [string | null, string];
    return { schema, name };
  });
}

/** A dropped object's relation (the object itself, or for a trigger the table it is on), as a set key. */
function droppedRelation(object: unknown, type: string): string {
  const items = ((object as { List?: { items?: Array<{ String?: { sval?: string } }> } }).List?.items ?? []).map((i) => i.String?.sval ?? '');
  const relation = type === 'OBJECT_TRIGGER' ? items.slice(0, -1) : items;
  return JSON.stringify([relation.length > 1 ? relation.at(-2)! : null, relation.at(-1) ?? '']);
}

function mentionsCascade(node: unknown): boolean {
  return JSON.stringify(node).includes('"DROP_CASCADE"');
}

/** Every RangeVar (a node with a relname) in the tree, as a set key. */
function collectRangeVars(node: unknown, into: Set<string>): void {
  if (Array.isArray(node)) {
    for (const child of node) collectRangeVars(child, into);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const record = node as Record<string, unknown>;
  if (typeof record.relname === 'string') into.add(JSON.stringify([typeof record.schemaname === 'string' ? record.schemaname : null, record.relname]));
  for (const child of Object.values(record)) collectRangeVars(child, into);
}
