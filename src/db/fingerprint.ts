import { createHash } from 'node:crypto';
import type pg from 'pg';
import { sha256Hex } from '../core/checksum';
import { withTransaction } from './connection';

/** The application's schemas: not the system's, not pgconvoy's ledger. */
const userSchemas = `n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgconvoy') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'`;

/**
 * Each part of the catalog as rows of text. A relation's parts (`scoped`)
 * also say which relation owns each row (a table owns its columns,
 * constraints, indexes, triggers and the sequences of its serial and identity
 * columns), so a migration's fingerprint can be brought up to date by reading
 * again only what it touched (catalog-tracker.ts). The other parts change
 * only by statements that make a run read everything again.
 */
const globalParts: Record<string, string> = {
  schemas: `SELECT n.nspname FROM pg_namespace n WHERE ${userSchemas}`,
  functions: `SELECT pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE ${userSchemas} AND p.prokind IN ('f', 'p') AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')`,
  types: `SELECT n.nspname || '.' || t.typname || ' ' || t.typtype::text || coalesce(' ' || (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid), '')
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE ${userSchemas} AND t.typtype IN ('e', 'd', 'c') AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c')`,
  extensions: `SELECT extname || ' ' || extversion FROM pg_extension`,
};

/**
 * SQL: the table that owns relation `oid` when it is the sequence of a serial
 * or identity column, else NULL. The tracker (catalog-tracker.ts) groups by
 * the same rule.
 */
export const sequenceTableOf = (oid: string): string =>
  `(SELECT d.refobjid FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
     WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = ${oid} AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1)`;

/** The table that owns a relation's rows: itself, or for a sequence of a serial or identity column, its table. */
const ownerOf = (c: string) => `coalesce(CASE WHEN ${c}.relkind = 'S' THEN ${sequenceTableOf(`${c}.oid`)} END, ${c}.oid)`;

/**
 * Per part: the query (owner, line) and the column that names the row's own
 * relation, for reading only some; `sameAsClass` when `c.oid` equals it (the
 * join), which the scoped read filters on too: its plan is generic, and
 * without it the columns were read by scanning all of pg_class (1 ms of the
 * read's 2.4 on a schema of 1,000 tables).
 */
const scopedParts: Record<string, { sql: string; relation: string; sameAsClass?: true }> = {
  relations: {
    sql: `SELECT ${ownerOf('c')} AS owner, n.nspname || '.' || c.relname || ' ' || c.relkind::text AS line FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE ${userSchemas} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')`,
    relation: 'c.oid',
  },
  columns: {
    sql: `SELECT a.attrelid AS owner, n.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
      || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
      || CASE WHEN a.attidentity <> '' THEN ' IDENTITY ' || a.attidentity::text ELSE '' END || CASE WHEN a.attgenerated <> '' THEN ' GENERATED' ELSE '' END AS line
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE ${userSchemas} AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped`,
    relation: 'a.attrelid',
    sameAsClass: true,
  },
  constraints: {
    sql: `SELECT k.conrelid AS owner, n.nspname || '.' || c.relname || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid) || CASE WHEN k.convalidated THEN '' ELSE ' NOT VALID' END AS line
    FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${userSchemas}`,
    relation: 'k.conrelid',
    sameAsClass: true,
  },
  indexes: {
    sql: `SELECT i.indrelid AS owner, pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END AS line
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${userSchemas}`,
    relation: 'i.indrelid',
  },
  views: {
    sql: `SELECT c.oid AS owner, n.nspname || '.' || c.relname || ' ' || pg_get_viewdef(c.oid) AS line FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE ${userSchemas} AND c.relkind IN ('v', 'm')`,
    relation: 'c.oid',
  },
  triggers: {
    sql: `SELECT t.tgrelid AS owner, pg_get_triggerdef(t.oid) AS line FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE ${userSchemas} AND NOT t.tgisinternal`,
    relation: 't.tgrelid',
    sameAsClass: true,
  },
  sequences: {
    sql: `SELECT ${ownerOf('c')} AS owner, n.nspname || '.' || c.relname || ' ' || format_type(s.seqtypid, NULL) || ' ' || s.seqincrement || ' ' || s.seqmin || ' ' || s.seqmax AS line
    FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${userSchemas}`,
    relation: 's.seqrelid',
    sameAsClass: true,
  },
};

/** The parts in the order they are hashed and shown. */
const partNames = ['schemas', 'relations', 'columns', 'constraints', 'indexes', 'views', 'functions', 'triggers', 'sequences', 'types', 'extensions'] as const;

/** Every part in one round trip; the scoped ones as [owner, line] pairs, only for the relations in $1 when `some`. */
const readQuery = (some: boolean) =>
  `SELECT ${[
    ...Object.entries(globalParts).map(([name, sql]) => (some ? `NULL::text[] AS ${name}` : `ARRAY(${sql})::text[] AS ${name}`)),
    ...Object.entries(scopedParts).map(
      ([name, { sql, relation, sameAsClass }]) =>
        `ARRAY(SELECT ARRAY[owner::text, line] FROM (${sql}${some ? ` AND ${relation} = ANY($1::oid[])${sameAsClass ? ' AND c.oid = ANY($1::oid[])' : ''}` : ''}) s)::text[] AS ${name}`,
    ),
  ].join(',\n  ')}`;

const someQuery = readQuery(true);

export interface Fingerprint {
  sha256: string;
  /** The normalised description, part by part, for showing what differs. */
  parts: Record<string, string[]>;
}

/**
 * The catalog as read: the parts of relations by the oid of the table that
 * owns them, the others whole; and each part's sum of line digests, kept up
 * to date as owners' lines are replaced (catalog-tracker.ts).
 */
export interface CatalogSnapshot {
  global: Record<string, string[]>;
  owned: Record<string, Map<string, string[]>>;
  sums: Record<string, bigint>;
}

const modulus = 1n << 256n;

/** A line's sha256 as a number. */
function lineDigest(line: string): bigint {
  return BigInt(`0x${createHash('sha256').update(line).digest('hex')}`);
}

/** A part's digest: the sum of its lines' digests (mod 2^256), whatever their order; a line added or removed moves it by that line's digest alone. */
export function sumOf(lines: Iterable<string>): bigint {
  let sum = 0n;
  for (const line of lines) sum += lineDigest(line);
  return sum % modulus;
}

/** `sum` with `added` lines in and `removed` ones out. */
export function moveSum(sum: bigint, added: Iterable<string>, removed: Iterable<string>): bigint {
  return (((sum + sumOf(added) - sumOf(removed)) % modulus) + modulus) % modulus;
}

/**
 * The fingerprint of parts given by their sums: every part's lines count, in
 * any order (a multiset digest), so a migration's fingerprint costs the lines
 * it changed, not the size of the schema. It tells schemas apart (drift, a
 * proof after an undo or a restore); it is not meant to resist someone
 * crafting two schemas with the same digest.
 */
function digestOf(sums: Record<string, bigint>): string {
  return sha256Hex(partNames.map((name) => `${name} ${(sums[name] ?? 0n).toString(16)}`).join('\n'));
}

/** The hash of a schema description; the same for the same parts however they were stored (jsonb reorders keys). */
export function hashParts(parts: Record<string, string[]>): string {
  return digestOf(Object.fromEntries(partNames.map((name) => [name, sumOf(parts[name] ?? [])])));
}

/** A snapshot's fingerprint hash alone, from its sums: no line is read. */
export function snapshotHash(snapshot: CatalogSnapshot): string {
  return digestOf(snapshot.sums);
}

/** A snapshot as a fingerprint: every part's lines, sorted (by code unit, not by the database's collation), and its hash. */
export function fingerprintOf(snapshot: CatalogSnapshot): Fingerprint {
  const parts: Record<string, string[]> = {};
  for (const name of partNames) {
    const owned = snapshot.owned[name];
    parts[name] = (owned ? [...owned.values()].flat() : (snapshot.global[name] ?? [])).sort();
  }
  return { sha256: snapshotHash(snapshot), parts };
}

/** The search_path catalog text is read under: names outside pg_catalog come qualified. */
export const catalogSearchPath = 'pg_catalog, pg_temp';

/**
 * Reads the catalog: all of it, or (with `relations`) only the parts of
 * those relations. Catalog text (format_type, pg_get_expr, pg_get_indexdef,
 * ...) qualifies a name only when it is not on the search_path: it is read
 * under one fixed path (`catalogSearchPath`), set LOCAL and put back, so a
 * fingerprint does not depend on the session it was taken in and nothing of
 * it outlives the read; with `pathSet`, the caller has set that path for the
 * rest of its transaction (a migration's, after its statements) and nothing
 * is set or put back. Runs in the caller's transaction.
 */
export async function readCatalog(client: pg.Client, relations?: string[], options: { pathSet?: boolean } = {}): Promise<CatalogSnapshot> {
  const rows = options.pathSet
    ? undefined
    : (await client.query<{ path: string }>(`SELECT current_setting('search_path') AS path, set_config('search_path', '${catalogSearchPath}', true)`)).rows;
  // Reading some relations happens once per migration on a kept connection:
  // prepared once per connection, it is not planned again each time (planning
  // this query costs several times what running it does).
  const result = await client.query<Record<string, string[] | string[][] | null>>(
    relations === undefined ? readQuery(false) : { name: 'pgconvoy_catalog_some', text: someQuery, values: [relations] },
  );
  if (rows) await client.query(`SELECT set_config('search_path', $1, true)`, [rows[0]!.path]);
  const row = result.rows[0]!;
  const global: Record<string, string[]> = {};
  for (const name of Object.keys(globalParts)) global[name] = ((row[name] ?? []) as string[]).map(String);
  const owned: Record<string, Map<string, string[]>> = {};
  const sums: Record<string, bigint> = {};
  for (const name of Object.keys(globalParts)) sums[name] = sumOf(global[name]!);
  for (const name of Object.keys(scopedParts)) {
    const byOwner = new Map<string, string[]>();
    const lines: string[] = [];
    for (const [owner, line] of (row[name] ?? []) as string[][]) {
      const list = byOwner.get(String(owner));
      if (list) list.push(String(line));
      else byOwner.set(String(owner), [String(line)]);
      lines.push(String(line));
    }
    owned[name] = byOwner;
    sums[name] = sumOf(lines);
  }
  return { global, owned, sums };
}

/**
 * A normalised, hashed description of the schema: tables, columns, types,
 * defaults, constraints, indexes, views, functions, triggers, sequences,
 * extensions. Two databases with the same schema have the same fingerprint,
 * whatever their data, OIDs or creation order.
 */
export async function fingerprint(client: pg.Client, options: { inTransaction?: boolean } = {}): Promise<Fingerprint> {
  const read = () => readCatalog(client);
  return fingerprintOf(options.inTransaction ? await read() : await withTransaction(client, read, 'BEGIN READ ONLY'));
}

/** What differs between two fingerprints, as `+ added` / `- removed` lines per part. */
export function fingerprintDiff(before: Fingerprint, after: Fingerprint): string[] {
  const lines: string[] = [];
  for (const part of partNames) {
    const a = new Set(before.parts[part] ?? []);
    const b = new Set(after.parts[part] ?? []);
    for (const x of b) if (!a.has(x)) lines.push(`${part}: + ${x.replace(/\s+/g, ' ').slice(0, 160)}`);
    for (const x of a) if (!b.has(x)) lines.push(`${part}: - ${x.replace(/\s+/g, ' ').slice(0, 160)}`);
  }
  return lines;
}
