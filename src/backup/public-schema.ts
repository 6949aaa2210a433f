/**
 * The `public` schema's owner, comment and privileges. A whole-database
 * restore drops and recreates the schema (nothing else removes every object
 * in it, extensions included); pg_dump records none of these unless they
 * differ from a fresh database's, and pg_restore --no-owner would skip the
 * owner anyway. So they are read before the restore and put back in the same
 * transaction.
 */
export interface PublicSchema {
  /** Role name as SQL (quoted when it needs to be), e.g. `pg_database_owner`. */
  owner: string;
  comment: string | null;
  /** Grants, in the order of the schema's ACL; `grantee` is a role as SQL, or PUBLIC. */
  grants: Array<{ grantee: string; privilege: string; grantable: boolean }>;
}

type Query = (sql: string) => Promise<Array<Record<string, unknown>>>;

/** Reads the public schema's attributes; null when there is no public schema. */
export async function readPublicSchema(query: Query): Promise<PublicSchema | null> {
  // A NULL ACL means the default (the owner's privileges): made explicit, so it can be put back.
  const rows = await query(
    `SELECT n.nspowner::regrole::text AS owner, obj_description(n.oid, 'pg_namespace') AS comment,
        (SELECT coalesce(json_agg(json_build_object(
                  'grantee', CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END,
                  'privilege', a.privilege_type, 'grantable', a.is_grantable) ORDER BY a.ord), '[]'::json)
           FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) WITH ORDINALITY AS a(grantor, grantee, privilege_type, is_grantable, ord)) AS grants
       FROM pg_namespace n WHERE n.nspname = 'public'`,
  );
  const row = rows[0];
  if (!row) return null;
  return { owner: String(row.owner), comment: (row.comment as string | null) ?? null, grants: row.grants as PublicSchema['grants'] };
}

/** A string literal (standard_conforming_strings is on in a restore script). */
const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;

/**
 * SQL that sets the schema's owner, comment and privileges to `schema`,
 * whatever the restore script left: every current grant is revoked, then
 * the recorded ones are granted again. The grants are made by the owner (a
 * grant someone else made with a grant option comes back as the owner's);
 * which privileges each role holds is what is kept.
 */
export function putBackPublicSchema(schema: PublicSchema): string {
  const privilegeOf = (p: string) => {
    if (p !== 'USAGE' && p !== 'CREATE') throw new Error(`unexpected privilege on a schema: ${p}`);
    return p;
  };
  return [
    `ALTER SCHEMA public OWNER TO ${schema.owner};`,
    `COMMENT ON SCHEMA public IS ${schema.comment === null ? 'NULL' : literal(schema.comment)};`,
    `DO $pgconvoy$
DECLARE r record;
BEGIN
  FOR r IN SELECT DISTINCT a.grantee FROM pg_catalog.pg_namespace n,
             pg_catalog.aclexplode(coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a WHERE n.nspname = 'public' LOOP
    EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA public FROM %s CASCADE',
      CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE r.grantee::pg_catalog.regrole::text END);
  END LOOP;
END
$pgconvoy$;`,
    ...schema.grants.map((g) => `GRANT ${privilegeOf(g.privilege)} ON SCHEMA public TO ${g.grantee}${g.grantable ? ' WITH GRANT OPTION' : ''};`),
    '',
  ].join('\n');
}
