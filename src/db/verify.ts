import type pg from 'pg';

export interface VerificationProblem {
  kind: 'invalid-index' | 'unvalidated-constraint' | 'check-failed';
  /** The index, constraint or check file. */
  subject: string;
  message: string;
}

/** Indexes left invalid and constraints left NOT VALID: a migration set must not end with either. */
export async function catalogProblems(client: pg.Client): Promise<VerificationProblem[]> {
  const problems: VerificationProblem[] = [];
  const invalid = await client.query<{ name: string }>(
    `SELECT n.nspname || '.' || c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE NOT i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'pgconvoy') ORDER BY 1`,
  );
  for (const r of invalid.rows) problems.push({ kind: 'invalid-index', subject: r.name, message: `index ${r.name} is invalid (a failed CREATE INDEX CONCURRENTLY?)` });
  const unvalidated = await client.query<{ name: string; rel: string }>(
    `SELECT k.conname AS name, n.nspname || '.' || c.relname AS rel FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE NOT k.convalidated AND n.nspname NOT IN ('pg_catalog', 'pgconvoy') ORDER BY 2, 1`,
  );
  for (const r of unvalidated.rows) {
    problems.push({ kind: 'unvalidated-constraint', subject: `${r.rel}.${r.name}`, message: `constraint ${r.name} on ${r.rel} is NOT VALID; validate it (ALTER TABLE ... VALIDATE CONSTRAINT) in a later migration` });
  }
  return problems;
}

export interface UserCheck {
  file: string;
  sql: string;
}

/**
 * User checks (migrations/checks/*.sql): each a query that must return no
 * rows. Runs read-only; a failing check is reported with the rows it returned.
 */
export async function runChecks(client: pg.Client, checks: UserCheck[]): Promise<VerificationProblem[]> {
  const problems: VerificationProblem[] = [];
  for (const check of checks) {
    await client.query('BEGIN READ ONLY');
    try {
      const result = await client.query<Record<string, unknown>>(check.sql);
      if (result.rows.length > 0) {
        const shown = result.rows.slice(0, 5).map((r) => JSON.stringify(r)).join(', ');
        problems.push({
          kind: 'check-failed',
          subject: check.file,
          message: `check ${check.file} returned ${result.rows.length} row${result.rows.length === 1 ? '' : 's'} (it must return none): ${shown}${result.rows.length > 5 ? ', …' : ''}`,
        });
      }
    } catch (error) {
      problems.push({ kind: 'check-failed', subject: check.file, message: `check ${check.file} failed to run: ${(error as Error).message}` });
    } finally {
      await client.query('ROLLBACK').catch(() => undefined);
    }
  }
  return problems;
}
