/**
 * The use-cases: plain functions of `(deps, input)`, with no Temporal in
 * them. Activities adapt them one line each (src/activities); the CLI calls
 * the ones that connect directly (lint --db, rehearse).
 */
export { localDeps, type RunDeps } from './deps';
export { planDatabase, assessPending } from './plan';
export { applyMigration, applyMigrations, applyGroup } from './apply';
export { runHooks } from './hooks';
export { runCommandHooks } from './command-hooks';
export { acquireLease, holdLease, releaseLease } from './lease';
export { takeBackup, restoreFromBackup } from './backup';
export { beginRun, verifyRun, finishCompensation } from './verify';
export { undoMigration, runChanges } from './compensate';
export { changeLedger, readHistory } from './ledger';
export { rehearse, type RehearsalStep } from './rehearse';
export { planRevert, revertVersion, proveRevert, finishRevertCompensation } from './revert';
export { warmSet } from './files';
export { surveyDatabase, compareSchemas } from './survey';
export { deliverWebhook } from './webhook';
export { waitHealthy } from './watch';
