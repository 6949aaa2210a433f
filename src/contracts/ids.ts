/**
 * Workflow ids. A database's runs share one id, so Temporal itself allows at
 * most one migration (or ledger change) of a database at a time; everything
 * that changes nothing takes an id of its own and never blocks a run.
 */
export function databaseWorkflowId(db: string): string {
  return `pgconvoy/db/${db}`;
}

/** A dry run changes nothing: it neither blocks a run nor is mistaken for one. */
export function dryRunWorkflowId(db: string, unique: string): string {
  return `pgconvoy/dry-run/${db}/${unique}`;
}

export function inspectWorkflowId(db: string, unique: string): string {
  return `pgconvoy/inspect/${db}/${unique}`;
}

export function backupWorkflowId(db: string, unique: string): string {
  return `pgconvoy/backup/${db}/${unique}`;
}

/** The lease holder: the run, not the workflow id (the same id on another Temporal cluster is another run, and must wait). */
export function leaseHolder(execution: { namespace: string; workflowId: string; runId: string }): string {
  return `${execution.namespace}/${execution.workflowId}/${execution.runId}`;
}

/** A rollout is its deploy: starting the same deploy again finds it. */
export function rolloutWorkflowId(deployId: string): string {
  return `pgconvoy/rollout/${deployId}`;
}
