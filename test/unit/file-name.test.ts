import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMigrationFileName } from '../../src/core/file-name';

test('forward and undo names parse with Flyway-style descriptions', () => {
  assert.deepEqual(parseMigrationFileName('V1__create_users.sql'), { ok: true, kind: 'forward', version: '1', description: 'create users' });
  assert.deepEqual(parseMigrationFileName('U001__create_users.sql'), { ok: true, kind: 'undo', version: '1', description: 'create users' });
  assert.deepEqual(parseMigrationFileName('V20240101120000__add-index.sql'), {
    ok: true,
    kind: 'forward',
    version: '20240101120000',
    description: 'add-index',
  });
});

test('version 0 is a version like any other, however many zeros it is written with', () => {
  assert.deepEqual(parseMigrationFileName('V0__init.sql'), { ok: true, kind: 'forward', version: '0', description: 'init' });
  assert.deepEqual(parseMigrationFileName('V00000000000000__diesel_initial_setup.sql'), { ok: true, kind: 'forward', version: '0', description: 'diesel initial setup' });
  assert.deepEqual(parseMigrationFileName('U00__init.sql'), { ok: true, kind: 'undo', version: '0', description: 'init' });
});

const bad: Array<[string, RegExp]> = [
  ['R__views.sql', /unknown prefix "R" \(repeatable migrations are not supported\)/],
  ['X1__thing.sql', /unknown prefix "X"/],
  ['V__no_version.sql', /no version after "V"/],
  ['V-1__negative.sql', /no version after "V"/],
  ['V1_single_underscore.sql', /separated by two underscores/],
  ['V1.1__dotted.sql', /dotted versions such as "1.1" are not supported/],
  ['V1__.sql', /description is empty/],
  ['V1__x.txt', /must end in \.sql/],
  // Names other tools use (goose, golang-migrate, dbmate) are told what is missing, not that ".sql" is not lowercase.
  ['0001_create_users.sql', /^no "V" or "U" before the version .*expected V<version>__<description>\.sql/],
  ['20240101120000_add_index.up.sql', /^no "V" or "U" before the version/],
];
for (const [name, reason] of bad) {
  test(`rejects ${name}`, () => {
    const parsed = parseMigrationFileName(name);
    assert.equal(parsed.ok, false);
    assert.match(parsed.ok ? '' : parsed.reason, reason);
  });
}
