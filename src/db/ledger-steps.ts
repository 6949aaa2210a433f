/**
 * The ledger's own schema, as ordered steps. A database records the steps it
 * has in pgconvoy.meta, so later versions of pgconvoy can extend the ledger
 * without a tool a human must run.
 */
/**
 * SQL that replaces every check on one column of pgconvoy.history (the first
 * step declared them inline, so their names are whatever PostgreSQL chose)
 * with one check under a name of our own. Idempotent.
 */
function replaceColumnCheck(column: string, name: string, check: string): string {
  return `DO $step$
   DECLARE
     old_check name;
   BEGIN
     FOR old_check IN
       SELECT con.conname
         FROM pg_catalog.pg_constraint con
         JOIN pg_catalog.pg_attribute att ON att.attrelid = con.conrelid AND att.attname = '${column}'
        WHERE con.conrelid = 'pgconvoy.history'::pg_catalog.regclass
          AND con.contype = 'c'
          AND con.conkey = ARRAY[att.attnum]
          AND con.conname <> '${name}'
     LOOP
       EXECUTE pg_catalog.format('ALTER TABLE pgconvoy.history DROP CONSTRAINT %I', old_check);
     END LOOP;
     IF NOT EXISTS (
       SELECT 1 FROM pg_catalog.pg_constraint
        WHERE conrelid = 'pgconvoy.history'::pg_catalog.regclass AND conname = '${name}'
     ) THEN
       ALTER TABLE pgconvoy.history ADD CONSTRAINT ${name} CHECK (${check});
     END IF;
   END
   $step$`;
}

export const ledgerSteps: readonly string[] = [
  `CREATE SCHEMA IF NOT EXISTS pgconvoy;
   CREATE TABLE pgconvoy.meta (key text PRIMARY KEY, value text NOT NULL);
   CREATE TABLE pgconvoy.history (
     id bigserial PRIMARY KEY,
     version numeric NOT NULL CHECK (version > 0 AND version = trunc(version)),
     description text NOT NULL,
     file text NOT NULL,
     checksum text NOT NULL,
     status text NOT NULL CHECK (status IN ('running', 'applied', 'failed', 'rolled_back', 'baseline')),
     started_at timestamptz NOT NULL,
     finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
     execution_ms integer NOT NULL,
     statements_done integer,
     statements_total integer,
     -- sha256 of the statements done so far: a fixed no-transaction file resumes
     -- after them as long as they did not change
     done_prefix_sha text,
     workflow_id text,
     run_id text,
     error_sqlstate text,
     error_message text,
     error_statement integer,
     -- catalog fingerprint (sha256) right after this version was applied
     fingerprint text,
     -- how the row came to be: run, mark-applied, baseline, import:flyway, ...
     source text NOT NULL DEFAULT 'run',
     reason text,
     installed_by text NOT NULL DEFAULT current_user
   );
   CREATE UNIQUE INDEX history_one_applied_per_version ON pgconvoy.history (version) WHERE status = 'applied';
   CREATE UNIQUE INDEX history_one_running_per_version ON pgconvoy.history (version) WHERE status = 'running';
   CREATE UNIQUE INDEX history_one_baseline ON pgconvoy.history ((true)) WHERE status = 'baseline';
   -- One row per database: who may change it now. The token grows with every
   -- acquisition; ledger writes check it (fencing), so a runner that lost the
   -- lease cannot write. An expired lease is free: nobody ever clears it by hand.
   CREATE SEQUENCE pgconvoy.lease_token;
   CREATE TABLE pgconvoy.lease (
     singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
     holder text NOT NULL,
     token bigint NOT NULL,
     acquired_at timestamptz NOT NULL,
     renewed_at timestamptz NOT NULL,
     expires_at timestamptz NOT NULL
   );`,
  // Risk analysis: each applied version's risk with the database's context,
  // the reasons its file gave for accepting findings, and who approved the run.
  // Steps from here on must be idempotent: an older pgconvoy still running in
  // a rolling deploy writes its own (lower) step count back after them.
  `ALTER TABLE pgconvoy.history
     ADD COLUMN IF NOT EXISTS risk_level text CHECK (risk_level IN ('low', 'medium', 'high')),
     ADD COLUMN IF NOT EXISTS risk_findings jsonb,
     ADD COLUMN IF NOT EXISTS approved_by text,
     ADD COLUMN IF NOT EXISTS approved_at timestamptz,
     ADD COLUMN IF NOT EXISTS approval_note text;`,
  // The lease token is a key, so a takeover waits for a fenced transaction
  // (FOR KEY SHARE) while the holder's renewal does not. schema_before: the
  // catalog description before a version that has an undo script, so an
  // undo that leaves the schema different can say how.
  `CREATE UNIQUE INDEX IF NOT EXISTS lease_token_key ON pgconvoy.lease (token);
   ALTER TABLE pgconvoy.history ADD COLUMN IF NOT EXISTS schema_before jsonb;`,
  // Version 0 is a version (diesel's first migration is 00000000000000). The
  // first step's check (version > 0) was declared inline, so its name is
  // whatever PostgreSQL chose: find every check on the version column in the
  // catalog and replace it with one under a name of our own.
  replaceColumnCheck('version', 'history_version_whole', 'version >= 0 AND version = trunc(version)') + ';',
  // The backup the run took before its first change (its key), or
  // 'none: <reason>' for a run configured to take none.
  `ALTER TABLE pgconvoy.history ADD COLUMN IF NOT EXISTS backup text;`,
  // `pgconvoy undo`: a version undone on purpose is 'undone', with the run that
  // undid it (a failed undo restores its backup and marks these applied again).
  // The first step's status check was declared inline: replace it, whatever
  // its name, with one under a name of our own that knows 'undone'.
  replaceColumnCheck('status', 'history_status_known', "status IN ('running', 'applied', 'failed', 'rolled_back', 'baseline', 'undone')") +
    `;
   ALTER TABLE pgconvoy.history ADD COLUMN IF NOT EXISTS undone_by_run text, ADD COLUMN IF NOT EXISTS undone_at timestamptz;`,
  // SQL callbacks (migrations/hooks/): each file's run, for which version (an
  // each-migration hook) or none (a run-level one), how long, and its error.
  `CREATE TABLE IF NOT EXISTS pgconvoy.hook_runs (
     id bigserial PRIMARY KEY,
     event text NOT NULL,
     file text NOT NULL,
     checksum text NOT NULL,
     version numeric,
     status text NOT NULL CHECK (status IN ('ok', 'failed')),
     started_at timestamptz NOT NULL DEFAULT now(),
     execution_ms integer NOT NULL,
     error_message text,
     workflow_id text,
     run_id text
   );`,
];
