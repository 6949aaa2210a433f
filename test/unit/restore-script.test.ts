import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RestoreScriptGate } from '../../src/backup/restore-script';

/** Runs `script` through a gate in chunks of `size` bytes; returns what passed and whether the closing COMMIT was seen. */
function gate(script: string, size: number): { out: string; sawCommit: boolean } {
  const g = new RestoreScriptGate();
  const parts: Buffer[] = [];
  const bytes = Buffer.from(script);
  for (let at = 0; at < bytes.length; at += size) parts.push(...g.push(bytes.subarray(at, at + size)));
  parts.push(...g.end());
  return { out: Buffer.concat(parts).toString(), sawCommit: g.sawCommit };
}

const script = [
  '--',
  '-- PostgreSQL database dump',
  '--',
  '',
  '\\restrict abc',
  '-- Dumped from database version 15.20',
  '',
  'BEGIN;',
  '',
  'SET statement_timeout = 0;',
  'CREATE PROCEDURE public.p()',
  '    LANGUAGE plpgsql',
  '    AS $$',
  'BEGIN',
  'COMMIT;',
  'END $$;',
  'COPY public.t (id, body) FROM stdin;',
  '1\tCOMMIT;',
  'COMMIT;',
  '',
  '-- not a comment in COPY data',
  'BEGIN;',
  '\\.',
  '',
  "SELECT pg_catalog.lo_open('16395', 131072);",
  'ALTER TABLE ONLY public.t',
  '    ADD CONSTRAINT t_pkey PRIMARY KEY (id);',
  'COMMIT;',
  '',
  '--',
  '-- PostgreSQL database dump complete',
  '--',
  '',
  '\\unrestrict abc',
  '',
].join('\n');

test("the gate takes out only pg_restore's own BEGIN and closing COMMIT, whatever the chunk boundaries", () => {
  const expected = script.replace('\nBEGIN;\n\nSET', '\n\nSET').replace('PRIMARY KEY (id);\nCOMMIT;\n', 'PRIMARY KEY (id);\n');
  for (const size of [1, 2, 3, 7, 64, 100_000]) {
    assert.deepEqual(gate(script, size), { out: expected, sawCommit: true }, `chunks of ${size}`);
  }
});

test('a script cut short never passes a COMMIT it has not been shown is not the last', () => {
  const cut = script.slice(0, script.indexOf('1\tCOMMIT;') + '1\tCOMMIT;\nCOMMIT;\n'.length);
  const { out, sawCommit } = gate(cut, 5);
  assert.ok(out.endsWith('1\tCOMMIT;\n'), 'the COPY row "COMMIT;" that ends the cut is held back');
  assert.equal(sawCommit, true, 'a cut after a COMMIT line looks complete to the gate: the byte count and sha256 decide');
  assert.equal(gate(script.slice(0, script.indexOf('ALTER TABLE')), 9).sawCommit, false);
});

test('a script that does not begin with BEGIN is refused before anything passes', () => {
  assert.throws(() => gate('--\nSET x = 1;\nCOMMIT;\n', 100), /did not begin its script with BEGIN/);
});
