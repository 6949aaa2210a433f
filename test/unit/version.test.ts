import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareVersions, parseVersion } from '../../src/core/version';

test('leading zeros are ignored, zero is a version, signs and fractions are not', () => {
  assert.equal(parseVersion('001'), '1');
  assert.equal(parseVersion('1'), '1');
  assert.equal(parseVersion('1000'), '1000');
  assert.equal(parseVersion('0'), '0');
  assert.equal(parseVersion('000'), '0');
  assert.equal(parseVersion('00000000000000'), '0');
  assert.equal(parseVersion('1a'), undefined);
  assert.equal(parseVersion('-1'), undefined);
  assert.equal(parseVersion('1.5'), undefined);
  assert.equal(parseVersion(''), undefined);
});

test('version 0 is the lowest', () => {
  assert.deepEqual(['20240101120000', '1', '0'].sort(compareVersions), ['0', '1', '20240101120000']);
  assert.ok(compareVersions('0', '1') < 0);
  assert.equal(compareVersions('0', '0'), 0);
});

test('versions beyond 64 bits compare numerically', () => {
  assert.ok(compareVersions('99999999999999999999', '100000000000000000000') < 0);
  assert.ok(compareVersions('20240101120000', '9') > 0);
  assert.ok(compareVersions('10', '9') > 0);
  assert.equal(compareVersions('42', '42'), 0);
  const sorted = ['10', '2', '100000000000000000000', '1'].sort(compareVersions);
  assert.deepEqual(sorted, ['1', '2', '10', '100000000000000000000']);
});
