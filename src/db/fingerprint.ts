import type pg from 'pg';
import { sha256Hex } from '../core/checksum';
import { withTransaction } from './connection';

/** The application's schemas: not the system's, not pgconvoy's ledger. */
const userSchemas = `n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgconvoy') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'`;

/** Each part of the catalog, as rows of text, each query ordered so the result is stable. */
const parts: Record<string, string> = {
  schemas: `SELECT n.nspname FROM pg_namespace n WHERE ${userSchemas} ORDER BY 1`,
  relations: `SELECT n.nspname || '.' || c.relname || ' ' || c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE ${userSchemas} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') ORDER BY 1`,
  columns: `SELECT n.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
      || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
      || CASE WHEN a.attidentity <> '' THEN ' IDENTITY ' || a.attidentity::text ELSE '' END || CASE WHEN a.attgenerated <> '' THEN ' GENERATED' ELSE '' END
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE ${userSchemas} AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1`,
  constraints: `SELECT n.nspname || '.' || c.relname || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid) || CASE WHEN k.convalidated THEN '' ELSE ' NOT VALID' END
    FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${userSchemas} ORDER BY 1`,
  indexes: `SELECT pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${userSchemas} ORDER BY 1`,
  views: `SELECT n.nspname || '.' || c.relname || ' ' || pg_get_viewdef(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE ${userSchemas} AND c.relkind IN ('v', 'm') ORDER BY 1`,
  functions: `SELECT pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE ${userSchemas} AND p.prokind IN ('f', 'p') AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e') ORDER BY 1`,
  triggers: `SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE ${userSchemas} AND NOT t.tgisinternal ORDER BY 1`,
  sequences: `SELECT n.nspname || '.' || c.relname || ' ' || format_type(s.seqtypid, NULL) || ' ' || s.seqincrement || ' ' || s.seqmin || ' ' || s.seqmax
    FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${userSchemas} ORDER BY 1`,
  types: `SELECT n.nspname || '.' || t.typname || ' ' || t.typtype::text || coalesce(' ' || (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid), '')
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE ${userSchemas} AND t.typtype IN ('e', 'd', 'c') AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c') ORDER BY 1`,
  extensions: `SELECT extname || ' ' || extversion FROM pg_extension ORDER BY 1`,
};

const allParts = `SELECT ${Object.entries(parts)
  .map(([name, sql]) => `ARRAY(${sql})::text[] AS ${name}`)
  .join(',\n  ')}`;

export interface Fingerprint {
  sha256: string;
  /** The normalised description, part by part, for showing what differs. */
  parts: Record<string, string[]>;
}

/**
 * A normalised, hashed description of the schema: tables, columns, types,
 * defaults, constraints, indexes, views, functions, triggers, sequences,
 * extensions. Two databases with the same schema have the same fingerprint,
 * whatever their data, OIDs or creation order.
 */
export async function fingerprint(client: pg.Client, options: { inTransaction?: boolean } = {}): Promise<Fingerprint> {
  // Catalog text (format_type, pg_get_expr, pg_get_indexdef, ...) qualifies a
  // name only when it is not on the search_path: it is read under one fixed
  // path, so a fingerprint does not depend on the session it was taken in.
  // The path is set LOCAL and put back, so nothing of it outlives the reading:
  // inside the caller's transaction, or in a read-only one of its own.
  const read = async () => {
    const { rows } = await client.query<{ path: string }>(`SELECT current_setting('search_path') AS path, set_config('search_path', 'pg_catalog, pg_temp', true)`);
    // One round trip for every part (an ARRAY keeps its subquery's order).
    const result = await client.query<Record<string, unknown[]>>(allParts);
    const row = result.rows[0]!;
    const out: Record<string, string[]> = {};
    for (const name of Object.keys(parts)) out[name] = (row[name] ?? []).map((x) => String(x));
    await client.query(`SELECT set_config('search_path', $1, true)`, [rows[0]!.path]);
    return out;
  };
  const out = options.inTransaction ? await read() : await withTransaction(client, read, 'BEGIN READ ONLY');
  return { sha256: sha256Hex(JSON.stringify(out)), parts: out };
}

/** What differs between two fingerprints, as `+ added` / `- removed` lines per part. */
export function fingerprintDiff(before: Fingerprint, after: Fingerprint): string[] {
  const lines: string[] = [];
  for (const part of Object.keys(parts)) {
    const a = new Set(before.parts[part] ?? []);
    const b = new Set(after.parts[part] ?? []);
    for (const x of b) if (!a.has(x)) lines.push(`${part}: + ${x.replace(/\s+/g, ' ').slice(0, 160)}`);
    for (const x of a) if (!b.has(x)) lines.push(`${part}: - ${x.replace(/\s+/g, ' ').slice(0, 160)}`);
  }
  return lines;
}
