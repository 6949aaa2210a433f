import type pg from 'pg';
import { catalogReach, type RelationName } from '../core/catalog-reach';
import type { PreparedMigration } from '../core/prepare';
import { fingerprintOf, moveSum, readCatalog, sequenceTableOf, snapshotHash, type CatalogSnapshot } from './fingerprint';

/** What a version's ledger row records about the schema: the fingerprint after it, and (when it has an undo script) the schema before it. */
export interface CatalogRecord {
  fingerprint: string;
  schemaBefore?: Record<string, string[]>;
}

/** What `before` learned, for `after`. */
export interface CatalogStart {
  reach: RelationName[] | null;
  /** The catalog before the statements, when it was needed (a scoped update, or an undo script's proof). */
  base?: CatalogSnapshot;
  /** The relations the statements name, as they were before (a dropped one is gone afterwards). */
  ownersBefore: string[];
  /** The schemas an unqualified name resolves in (`current_schemas(true)`), as before the statements. */
  path: string[];
}

/**
 * Follows the catalog through a run's migrations so that each version's
 * fingerprint costs what the migration touched, not the size of the schema.
 * Used inside a migration's transaction: `before` its statements, `after`
 * them (before its ledger row is written, under the catalog's search_path
 * set for the rest of the transaction: resetSession's `catalogRead`),
 * `recorded` with that row's id, then `settled` when the transaction ends.
 */
export interface CatalogTracker {
  /** The relations `before` needs resolved to the tables that own them, as they are before the statements (the engine asks in the query it makes anyway). */
  names(m: PreparedMigration): RelationName[];
  /** `at`: the ledger's newest row id, the owners of `names(m)` and the schemas of the search_path, read in the same transaction before it. */
  before(client: pg.Client, m: PreparedMigration, at: { newestLedgerId: string; owners: string[]; path: string[] }): Promise<CatalogStart>;
  after(client: pg.Client, m: PreparedMigration, start: CatalogStart): Promise<CatalogRecord>;
  recorded(ledgerId: string): void;
  settled(committed: boolean): void;
}

/** Reads the whole catalog for every version: what a run does without a cache (tests, tools). */
export const fullReads: CatalogTracker = {
  names: () => [],
  async before(client, m) {
    return { reach: null, ownersBefore: [], path: [], ...(m.undo ? { base: await readCatalog(client) } : {}) };
  },
  async after(client, _m, start) {
    return { fingerprint: snapshotHash(await readCatalog(client, undefined, { pathSet: true })), ...(start.base ? { schemaBefore: fingerprintOf(start.base).parts } : {}) };
  },
  recorded: () => undefined,
  settled: () => undefined,
};

/** A snapshot of a database's catalog, valid while the ledger's newest row is `ledgerId` (every change under a lease writes one). */
interface Entry {
  ledgerId: string;
  snapshot: CatalogSnapshot;
}

/**
 * The catalogs a worker follows, one per database and run, the most recent
 * few kept. An entry is used only when the ledger's newest row is still the
 * one it was taken at; anything else (another worker applied a version, a
 * failed attempt wrote a row, the worker restarted) reads the whole catalog
 * again. The run's verification reads it whole at the end regardless.
 */
export class CatalogCache {
  private readonly entries = new Map<string, Entry>();
  /** How often the whole catalog was read (a start, or a version the parser cannot bound), and how many versions read only what they touched. */
  readonly reads = { whole: 0, touched: 0 };

  constructor(private readonly capacity = 16) {}

  /** Keeps what `beginRun` read, so the first migration does not read it again. */
  seed(alias: string, runId: string, entry: Entry): void {
    this.put(`${alias}\0${runId}`, entry);
  }

  tracker(alias: string, runId: string): CatalogTracker {
    const key = `${alias}\0${runId}`;
    // Inside one transaction (several migrations with --group), what the last one left.
    let working: Entry | undefined = this.entries.get(key);
    let pending: CatalogSnapshot | undefined;
    // A snapshot is brought up to date in place; a transaction that rolls back puts it back.
    const undo: Array<() => void> = [];
    return {
      names: (m) => catalogReach(m.forward.script.statements) ?? [],
      before: async (client, m, at) => {
        const reach = catalogReach(m.forward.script.statements);
        if (reach === null && !m.undo) return { reach, ownersBefore: [], path: at.path };
        const base = working?.ledgerId === at.newestLedgerId ? working.snapshot : await this.readWhole(client);
        return { reach, base, ownersBefore: reach ? at.owners : [], path: at.path };
      },
      after: async (client, m, start) => {
        // Before the base changes: an undo script's proof needs the schema it starts from.
        const schemaBefore = m.undo && start.base ? fingerprintOf(start.base).parts : undefined;
        const delta = start.reach && start.base ? await touched(client, start.reach, start.ownersBefore, start.path) : undefined;
        let snapshot: CatalogSnapshot;
        if (delta && start.base) {
          this.reads.touched++;
          undo.push(applyDelta(start.base, delta));
          snapshot = start.base;
        } else snapshot = await this.readWhole(client, { pathSet: true });
        pending = snapshot;
        return { fingerprint: snapshotHash(snapshot), ...(schemaBefore ? { schemaBefore } : {}) };
      },
      recorded: (ledgerId) => {
        if (pending) working = { ledgerId, snapshot: pending };
        pending = undefined;
      },
      settled: (committed) => {
        pending = undefined;
        if (committed && working) this.put(key, working);
        else {
          for (const putBack of undo.reverse()) putBack();
          working = this.entries.get(key);
        }
        undo.length = 0;
      },
    };
  }

  private readWhole(client: pg.Client, options: { pathSet?: boolean } = {}): Promise<CatalogSnapshot> {
    this.reads.whole++;
    return readCatalog(client, undefined, options);
  }

  private put(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.entries.set(key, entry);
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.capacity) break;
      this.entries.delete(oldest);
    }
  }
}

/**
 * SQL: the tables the relations named in $<schemas>/$<names> belong to, as
 * they are now (an index belongs to its table). An unqualified name resolves
 * on the session's search_path or, given $<path> (schemas in order, as
 * `current_schemas(true)` gives them), on that: the same answer under
 * whatever search_path the query itself runs.
 */
export const ownersNamed = (schemas: string, names: string, path?: string) => {
  const unqualified = path
    ? `(SELECT q.oid FROM unnest(${path}::text[]) WITH ORDINALITY AS p(schema, position)
          CROSS JOIN LATERAL (SELECT to_regclass(quote_ident(p.schema) || '.' || quote_ident(n.name))::oid AS oid) q
         WHERE q.oid IS NOT NULL ORDER BY p.position LIMIT 1)`
    : `to_regclass(quote_ident(n.name))::oid`;
  return `SELECT coalesce((SELECT i.indrelid FROM pg_catalog.pg_index i WHERE i.indexrelid = r.oid), r.oid) AS oid
     FROM unnest(${schemas}::text[], ${names}::text[]) AS n(schema, name)
     CROSS JOIN LATERAL (SELECT CASE WHEN n.schema IS NULL THEN ${unqualified} ELSE to_regclass(quote_ident(n.schema) || '.' || quote_ident(n.name))::oid END AS oid) r
    WHERE r.oid IS NOT NULL`;
};

/**
 * What a migration that changed only `reach` did to the catalog: the parts of
 * every relation it touched, read again, and of everything whose text names
 * them (views over them, foreign keys to them, defaults using their
 * sequences, partitions and children of them). Undefined when what it read
 * does not fit a snapshot: the caller reads the whole catalog.
 */
async function touched(client: pg.Client, reach: RelationName[], ownersBefore: string[], path: string[]): Promise<Delta | undefined> {
  // The relations it touched: what they were before, and what the names it uses resolve to now.
  const { rows } = await client.query<{ owners: string[]; relations: string[] }>({
    name: 'pgconvoy_catalog_related',
    text: `WITH touched AS (SELECT unnest($1::oid[]) AS oid UNION ${ownersNamed('$2', '$3', '$4')}),
     dependent AS (
       SELECT CASE d.classid
                WHEN 'pg_catalog.pg_rewrite'::regclass THEN (SELECT ev_class FROM pg_catalog.pg_rewrite WHERE oid = d.objid)
                WHEN 'pg_catalog.pg_attrdef'::regclass THEN (SELECT adrelid FROM pg_catalog.pg_attrdef WHERE oid = d.objid)
                WHEN 'pg_catalog.pg_constraint'::regclass THEN (SELECT conrelid FROM pg_catalog.pg_constraint WHERE oid = d.objid)
                WHEN 'pg_catalog.pg_trigger'::regclass THEN (SELECT tgrelid FROM pg_catalog.pg_trigger WHERE oid = d.objid)
                WHEN 'pg_catalog.pg_class'::regclass THEN d.objid
              END AS oid
         FROM pg_catalog.pg_depend d
        WHERE d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid IN (SELECT oid FROM touched)),
     related AS (SELECT oid FROM touched UNION SELECT oid FROM dependent WHERE oid IS NOT NULL),
     -- Each as the table that owns its rows: an index's table, a serial or identity sequence's table.
     -- (Lookups by oid, row by row: its plan is generic, and a join here was planned as a scan of all of pg_index or of every sequence.)
     owner AS (
       SELECT DISTINCT coalesce((SELECT i.indrelid FROM pg_catalog.pg_index i WHERE i.indexrelid = r.oid), ${sequenceTableOf('r.oid')}, r.oid) AS oid
         FROM related r),
     -- The relations whose rows those tables own: themselves and their sequences.
     owned AS (
       SELECT oid FROM owner
       UNION SELECT d.objid FROM owner o
         CROSS JOIN LATERAL (SELECT d.objid FROM pg_catalog.pg_depend d
                              WHERE d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = o.oid AND d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i') OFFSET 0) d
        WHERE (SELECT s.relkind FROM pg_catalog.pg_class s WHERE s.oid = d.objid) = 'S')
     SELECT ARRAY(SELECT oid::text FROM owner) AS owners, ARRAY(SELECT oid::text FROM owned) AS relations`,
    values: [ownersBefore, reach.map((n) => n.schema), reach.map((n) => n.name), path],
  });
  const { owners, relations } = rows[0]!;
  if (owners.length === 0) return { owners, fresh: {} };
  const fresh = await readCatalog(client, relations, { pathSet: true });
  const refreshed = new Set(owners);
  // A row owned by a table not read again would stand for all of that table's rows.
  if (Object.values(fresh.owned).some((byOwner) => [...byOwner.keys()].some((owner) => !refreshed.has(owner)))) return undefined;
  return { owners, fresh: fresh.owned };
}

/** What a migration changed in a snapshot: every line of these owners, as they are now. */
interface Delta {
  owners: string[];
  fresh: CatalogSnapshot['owned'];
}

/**
 * Replaces the delta's owners' lines in `snapshot`, in place, moving each
 * part's sum by the lines that went and came (the cost of what the
 * migration touched, not of the schema). Returns what puts it back.
 */
function applyDelta(snapshot: CatalogSnapshot, delta: Delta): () => void {
  const previous: Array<{ part: string; owner: string; lines: string[] | undefined }> = [];
  const sums = { ...snapshot.sums };
  for (const [part, byOwner] of Object.entries(snapshot.owned)) {
    let sum = snapshot.sums[part] ?? 0n;
    for (const owner of delta.owners) {
      const before = byOwner.get(owner);
      const after = delta.fresh[part]?.get(owner);
      previous.push({ part, owner, lines: before });
      sum = moveSum(sum, after ?? [], before ?? []);
      if (after) byOwner.set(owner, after);
      else byOwner.delete(owner);
    }
    snapshot.sums[part] = sum;
  }
  return () => {
    for (const { part, owner, lines } of previous.reverse()) {
      if (lines) snapshot.owned[part]!.set(owner, lines);
      else snapshot.owned[part]!.delete(owner);
    }
    snapshot.sums = sums;
  };
}
