import type { Amount, DatabaseSurvey, DriftReport, RolloutStrategy } from '../../contracts';

/** An amount as a number of databases out of `total`: a percentage rounds up, and is at least one. */
export function amountOf(amount: Amount, total: number): number {
  if ('count' in amount) return amount.count;
  return Math.max(1, Math.ceil((amount.percent * total) / 100));
}

/**
 * The wave of each target: 0 for the canaries (the listed ones, or the
 * first `count` targets with work to do), then waves of the strategy's size
 * in target order. Databases with nothing pending are not in any wave.
 */
export function assignWaves(targets: string[], hasWork: (db: string) => boolean, strategy: RolloutStrategy): Map<string, number> {
  const waves = new Map<string, number>();
  const working = targets.filter(hasWork);
  const canaries = 'aliases' in strategy.canary ? strategy.canary.aliases.filter(hasWork) : working.slice(0, strategy.canary.count);
  for (const db of canaries) waves.set(db, 0);
  const rest = working.filter((db) => !waves.has(db));
  const size = Math.max(1, amountOf(strategy.waveSize, targets.length));
  rest.forEach((db, i) => waves.set(db, 1 + Math.floor(i / size)));
  return waves;
}

/**
 * Drift, before anything changes: a database whose schema is not the one
 * its ledger recorded after its version (altered by hand), or not the one
 * most databases at the same version have. Returns one report per drifted
 * database, with the database to compare it with (for the differences).
 */
export function findDrift(surveys: DatabaseSurvey[]): Array<DriftReport & { compareWith: string | null }> {
  const byVersion = new Map<string, DatabaseSurvey[]>();
  for (const s of surveys) {
    const key = s.version ?? '';
    byVersion.set(key, [...(byVersion.get(key) ?? []), s]);
  }
  const reports: Array<DriftReport & { compareWith: string | null }> = [];
  for (const group of byVersion.values()) {
    const clean = group.filter((s) => s.recordedFingerprint === null || s.recordedFingerprint === s.fingerprint);
    // The schema most of the group has (the first in target order on a tie).
    const counts = new Map<string, number>();
    for (const s of clean) counts.set(s.fingerprint, (counts.get(s.fingerprint) ?? 0) + 1);
    let usual: string | null = null;
    for (const [fingerprint, n] of counts) if (usual === null || n > counts.get(usual)!) usual = fingerprint;
    const peer = (s: DatabaseSurvey) => group.find((o) => o !== s && o.fingerprint === usual)?.db ?? null;
    const at = (s: DatabaseSurvey) => (s.version === null ? 'with no version applied' : `at V${s.version}`);
    for (const s of group) {
      if (s.recordedFingerprint !== null && s.recordedFingerprint !== s.fingerprint) {
        reports.push({ db: s.db, version: s.version, fingerprint: s.fingerprint, reason: `its schema (${s.fingerprint.slice(0, 12)}) is not the one its ledger recorded after V${s.version} (${s.recordedFingerprint.slice(0, 12)}): changed outside pgconvoy`, differences: [], compareWith: peer(s) });
      } else if (usual !== null && s.fingerprint !== usual) {
        const others = group.filter((o) => o.fingerprint === usual).map((o) => o.db);
        reports.push({ db: s.db, version: s.version, fingerprint: s.fingerprint, reason: `its schema (${s.fingerprint.slice(0, 12)}) differs from that of ${others.length} other database${others.length === 1 ? '' : 's'} ${at(s)} (${others.slice(0, 3).join(', ')}${others.length > 3 ? ', ...' : ''}: ${usual.slice(0, 12)})`, differences: [], compareWith: peer(s) });
      }
    }
  }
  return reports;
}
