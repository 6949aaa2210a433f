import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allows, authenticate, tokenHash } from '../../src/client/http/auth';

const tokens = [
  { name: 'pipeline', sha256: tokenHash('tok-pipeline'), scopes: ['trigger' as const, 'read' as const] },
  { name: 'root', sha256: tokenHash('tok-root'), scopes: ['admin' as const] },
];

test('bearer tokens: matched by their hash, case-insensitive scheme, nothing for a missing, malformed or unknown token', () => {
  assert.equal(tokenHash('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.deepEqual(authenticate('Bearer tok-pipeline', tokens), { name: 'pipeline', scopes: ['trigger', 'read'] });
  assert.equal(authenticate('bearer tok-root', tokens)?.name, 'root');
  for (const header of [undefined, '', 'Bearer', 'Basic dG9rLXJvb3Q=', 'Bearer tok-root extra', 'Bearer tok-roo', 'tok-root']) assert.equal(authenticate(header, tokens), undefined, String(header));
});

test('scopes: a token does what its scopes say; admin does everything', () => {
  const pipeline = authenticate('Bearer tok-pipeline', tokens)!;
  assert.equal(allows(pipeline, 'trigger'), true);
  assert.equal(allows(pipeline, 'approve'), false);
  const root = authenticate('Bearer tok-root', tokens)!;
  for (const scope of ['read', 'trigger', 'approve', 'admin'] as const) assert.equal(allows(root, scope), true, scope);
});
