import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { test } from 'node:test';

/**
 * The layering of src/ (docs/engineering.md): each rule names a folder, and
 * what its files may not import. Checked on the imports as written, so a
 * rule broken by a new file fails here, not in review.
 */
const srcDir = join(__dirname, '..', '..', '..', 'src');

interface Import {
  /** The importing file, relative to src/. */
  file: string;
  /** What it imports: a package name, or a path relative to src/. */
  target: string;
  typeOnly: boolean;
}

function importsOf(file: string, source: string): Import[] {
  const found: Import[] = [];
  const pattern = /^\s*(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm;
  for (const m of source.matchAll(pattern)) {
    const spec = m[3]!;
    const target = spec.startsWith('.') ? normalize(join(dirname(file), spec)) : spec;
    found.push({ file, target, typeOnly: m[2] !== undefined });
  }
  for (const m of source.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    const spec = m[1]!;
    found.push({ file, target: spec.startsWith('.') ? normalize(join(dirname(file), spec)) : spec, typeOnly: false });
  }
  return found;
}

const folderOf = (path: string) => path.split('/')[0]!;
/** The folders of src/, as they are: a new one is known without editing this test. */
const folders = new Set(readdirSync(srcDir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name));
const isPackage = (target: string) => !folders.has(folderOf(target));

/** Why an import breaks the layering, or null. */
export function violation({ file, target, typeOnly }: Import): string | null {
  const from = folderOf(file);
  const to = isPackage(target) ? null : folderOf(target);
  switch (from) {
    case 'client':
      if (to === 'db') return 'the client never reaches db/: it calls a use-case in runs/ or asks a worker';
      if (to === 'activities') return 'only worker/ imports activities/';
      return null;
    case 'activities':
      if (to === 'worker' || to === 'client') return 'activities/ never reaches worker/ or client/';
      return null;
    case 'workflows':
      if (to === null) return target === '@temporalio/workflow' ? null : 'workflow code imports only @temporalio/workflow among packages';
      if (to === 'workflows' || to === 'contracts') return null;
      return 'workflow code imports only its own folder and contracts/';
    case 'contracts':
      if (to === 'contracts') return null;
      if (to === 'core' && typeOnly) return null;
      return 'contracts/ is pure: it imports only contracts/ and types from core/';
    case 'runs':
      if (to === null && target.startsWith('@temporalio/')) return 'use-cases have no Temporal in them: the activity adapter provides what they need';
      if (to === 'activities' || to === 'workflows' || to === 'worker' || to === 'client') return 'use-cases sit below activities, workflows, worker and client';
      return null;
    case 'core':
      if (to === null && (target === 'pg' || target.startsWith('@temporalio/'))) return 'core/ is pure: no database, no Temporal';
      if (to !== null && to !== 'core' && to !== 'contracts') return 'core/ imports only core/';
      return null;
    default:
      if (to === 'activities' && from !== 'worker') return 'only worker/ imports activities/';
      return null;
  }
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

test('src/ keeps its import rules (client never reaches db/, only worker/ imports activities/, workflows import only contracts/, contracts/ is pure)', () => {
  const files = sourceFiles(srcDir);
  assert.ok(files.length > 50, `expected the sources under ${srcDir}`);
  const broken = files.flatMap((path) => {
    const file = relative(srcDir, path);
    return importsOf(file, readFileSync(path, 'utf8')).flatMap((i) => {
      const why = violation(i);
      return why ? [`${i.file} imports ${i.target}: ${why}`] : [];
    });
  });
  assert.deepEqual(broken, []);
});

test('the import rules catch what they forbid', () => {
  const check = (file: string, source: string) => importsOf(file, source).map(violation);
  assert.match(check('client/commands/read.ts', "import { withClient } from '../../db/connection';")[0] ?? '', /never reaches db/);
  assert.match(check('workflows/x.ts', "import type { Config } from '../config/config';")[0] ?? '', /only its own folder and contracts/);
  assert.match(check('workflows/x.ts', "import pg from 'pg';")[0] ?? '', /only @temporalio\/workflow/);
  assert.match(check('activities/x.ts', "import type { Logger } from '../worker/logger';")[0] ?? '', /never reaches worker/);
  assert.match(check('runs/x.ts', "import { Context } from '@temporalio/activity';")[0] ?? '', /no Temporal/);
  assert.match(check('contracts/x.ts', "import { withClient } from '../db/connection';")[0] ?? '', /pure/);
  assert.match(check('contracts/x.ts', "import { parseVersion } from '../core/version';")[0] ?? '', /pure/);
  assert.equal(check('contracts/x.ts', "import type { Version } from '../core/version';")[0], null);
  assert.match(check('backup/x.ts', "export { createActivities } from '../activities';")[0] ?? '', /only worker/);
  assert.equal(check('worker/worker.ts', "import { createActivities } from '../activities';")[0], null);
});
