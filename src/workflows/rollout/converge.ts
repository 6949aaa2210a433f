import type { RolloutStatus, RunOutcome } from '../../contracts';
import { compareSchemas } from '../activities';
import { causeOf } from '../failures';
import type { RolloutState } from './state';

/**
 * Convergence: the schema after the run must be the canary's at the same
 * version. The first database to reach a version (a canary: they run first)
 * sets the reference. Returns why it differs, or undefined.
 */
export async function converges(r: RolloutState, db: string, outcome: RunOutcome): Promise<string | undefined> {
  const { status } = r;
  const ref = status.reference;
  if (ref === null) {
    if (outcome.fingerprintAfter) {
      status.reference = { db, version: outcome.versionAfter, fingerprint: outcome.fingerprintAfter };
      await upToDateConverge(r);
    }
    return undefined;
  }
  if (ref.version !== outcome.versionAfter || outcome.fingerprintAfter === ref.fingerprint) return undefined;
  const compared = await compareSchemas({ db, reference: ref.db });
  return compared.total === 0 ? undefined : `its schema ${differences(ref, compared)}`;
}

/**
 * The databases that had nothing to do must have the reference's schema too
 * when they are at its version: checked once the reference is known.
 */
async function upToDateConverge(r: RolloutState): Promise<void> {
  const ref = r.status.reference!;
  for (const d of r.status.databases) {
    if (d.state !== 'up-to-date' || d.attempts > 0 || d.version !== ref.version || d.fingerprint === ref.fingerprint) continue;
    d.state = 'diverged';
    try {
      const compared = await compareSchemas({ db: d.db, reference: ref.db });
      if (compared.total === 0) {
        d.state = 'up-to-date';
        continue;
      }
      d.failure = `it had nothing to apply, but its schema ${differences(ref, compared)}`;
    } catch (error) {
      d.failure = `it had nothing to apply; could not compare its schema with ${ref.db}'s: ${causeOf(error)}`;
    }
  }
  r.changed();
}

/** What differs from the reference, in words: how many lines, and the first few. */
function differences(ref: NonNullable<RolloutStatus['reference']>, compared: { differences: string[]; total: number }): string {
  return `differs from ${ref.db}'s at V${ref.version ?? '(none)'} (${compared.total} difference${compared.total === 1 ? '' : 's'}): ${compared.differences.slice(0, 5).join('; ')}`;
}
