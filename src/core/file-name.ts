import { parseVersion, type Version } from './version';

export type MigrationKind = 'forward' | 'undo';

export type ParsedFileName =
  | { ok: true; kind: MigrationKind; version: Version; description: string }
  | { ok: false; reason: string };

const pattern = /^([A-Za-z])([0-9]*)(_*)(.*)\.sql$/;
const anyCaseSql = /\.sql$/i;

/**
 * Parses `V<version>__<description>.sql` (forward) and
 * `U<version>__<description>.sql` (undo). Underscores in the description
 * read as spaces, as in Flyway.
 */
export function parseMigrationFileName(name: string): ParsedFileName {
  const expected = 'expected V<version>__<description>.sql or U<version>__<description>.sql';
  const match = pattern.exec(name);
  if (!match) {
    if (name.endsWith('.sql')) return { ok: false, reason: `no "V" or "U" before the version (a name such as 0001_init.sql is V0001__init.sql here); ${expected}` };
    if (anyCaseSql.test(name)) return { ok: false, reason: `the extension must be lowercase ".sql", got "${name.slice(-4)}"; rename the file` };
    return { ok: false, reason: 'a migration file name must end in .sql' };
  }
  const [, prefix = '', digits = '', separator = '', rest = ''] = match;
  if (prefix !== 'V' && prefix !== 'U') {
    const hint = prefix === 'R' ? ' (repeatable migrations are not supported)' : '';
    return { ok: false, reason: `unknown prefix "${prefix}"${hint}; ${expected}` };
  }
  if (digits === '') return { ok: false, reason: `no version after "${prefix}"; ${expected}` };
  const version = parseVersion(digits);
  if (version === undefined) return { ok: false, reason: `version must be a whole number, got "${digits}"; ${expected}` };
  if (separator === '' && rest.startsWith('.')) {
    return { ok: false, reason: `version must be a whole number (dotted versions such as "${digits}${rest.split('_')[0]}" are not supported); ${expected}` };
  }
  if (separator !== '__') {
    return { ok: false, reason: `version and description must be separated by two underscores; ${expected}` };
  }
  const description = rest.replace(/_/g, ' ').trim();
  if (description === '') return { ok: false, reason: `description is empty; ${expected}` };
  return { ok: true, kind: prefix === 'V' ? 'forward' : 'undo', version, description };
}
