/**
 * A migration history shaped like the ones real projects accumulate, for
 * tests that must not run only on tidy hand-written sets: `pairs` forward
 * and undo files, a first version of 0 written with 20 zeros, 20-digit
 * versions after it, a third of the pairs empty (0 bytes) or only comments,
 * tables that are created, renamed and then altered, indexed, constrained
 * and given PL/pgSQL functions under their new names, and two pairs that
 * build and drop an index CONCURRENTLY outside a transaction.
 */
export interface RealHistory {
  files: Record<string, string>;
  /** Versions in order, as the ledger prints them (leading zeros dropped). */
  versions: string[];
  /** Tables that exist after the whole set, sorted. */
  tables: string[];
  /** Lines of PL/pgSQL in the set. */
  plpgsqlLines: number;
}

interface Pair {
  name: string;
  up: string;
  down: string;
}

/** One table's life: created as d_k, renamed to e_k, then changed under its new name. */
function tablePairs(k: number): Pair[] {
  const d = `d_${k}`;
  const e = `e_${k}`;
  const body = [
    `CREATE FUNCTION ${e}_summary(p_min bigint DEFAULT 0) RETURNS TABLE (n bigint, total bigint, label text)`,
    `LANGUAGE plpgsql STABLE AS $fn$`,
    `DECLARE`,
    `  r record;`,
    `  v_n bigint := 0;`,
    `  v_total bigint := 0;`,
    `BEGIN`,
    `  FOR r IN SELECT amount FROM ${e} WHERE amount >= p_min LOOP`,
    `    v_n := v_n + 1;`,
    `    v_total := v_total + coalesce(r.amount, 0);`,
    `  END LOOP;`,
    `  IF v_n = 0 THEN`,
    `    RAISE NOTICE 'no rows in ${e}; done;';`,
    `  END IF;`,
    `  RETURN QUERY SELECT v_n, v_total, format('%s rows; %s total', v_n, v_total);`,
    `END`,
    `$fn$;`,
  ];
  const pairs: Pair[] = [
    { name: `create_${d}`, up: `CREATE TABLE ${d} (id bigint PRIMARY KEY, note text, amount int);\n`, down: `DROP TABLE ${d};\n` },
    { name: `rename_${d}_to_${e}`, up: `ALTER TABLE ${d} RENAME TO ${e};\n`, down: `ALTER TABLE ${e} RENAME TO ${d};\n` },
  ];
  if (k <= 2) {
    pairs.push({
      name: `index_${e}_amount_concurrently`,
      up: `-- pgconvoy:no-transaction\nCREATE INDEX CONCURRENTLY ${e}_amount ON ${e} (amount);\n`,
      down: `-- pgconvoy:no-transaction\nDROP INDEX CONCURRENTLY ${e}_amount;\n`,
    });
  }
  pairs.push(
    {
      name: `alter_${e}`,
      up: `ALTER TABLE ${e} ADD COLUMN created_at timestamptz DEFAULT now();\nALTER TABLE ${e} ALTER COLUMN amount TYPE bigint;\nUPDATE ${e} SET note = '';\n`,
      down: `ALTER TABLE ${e} DROP COLUMN created_at;\nALTER TABLE ${e} ALTER COLUMN amount TYPE int;\n`,
    },
    {
      name: `index_${e}_note_then_rename_column`,
      up: `CREATE INDEX ${e}_note ON ${e} (note);\nALTER TABLE ${e} RENAME COLUMN note TO remark;\n`,
      down: `ALTER TABLE ${e} RENAME COLUMN remark TO note;\nDROP INDEX ${e}_note;\n`,
    },
    {
      name: `rename_index_and_require_${e}_remark`,
      up: `ALTER INDEX ${e}_note RENAME TO ${e}_remark;\nALTER TABLE ${e} ALTER COLUMN remark SET NOT NULL;\n`,
      down: `ALTER TABLE ${e} ALTER COLUMN remark DROP NOT NULL;\nALTER INDEX ${e}_remark RENAME TO ${e}_note;\n`,
    },
    { name: `${e}_summary_function`, up: body.join('\n') + '\n', down: `DROP FUNCTION ${e}_summary(bigint);\n` },
    {
      name: `replace_${e}_remark_index_with_check`,
      up: `DROP INDEX ${e}_remark;\nALTER TABLE ${e} ADD CONSTRAINT ${e}_amount_positive CHECK (amount >= 0);\n`,
      down: `ALTER TABLE ${e} DROP CONSTRAINT ${e}_amount_positive;\nCREATE INDEX ${e}_remark ON ${e} (remark);\n`,
    },
  );
  return pairs;
}

/** The empty shapes, in turn: 0 bytes, only comments, blank lines. */
function emptyPair(i: number): Pair {
  switch (i % 3) {
    case 0:
      return { name: `placeholder_${i}`, up: '', down: '' };
    case 1:
      return { name: `moved_to_next_release_${i}`, up: '-- this change moved to the next release\n/* kept so the\n   version stays taken */\n', down: '-- nothing to undo\n' };
    default:
      return { name: `reverted_${i}`, up: '\n  \n', down: '' };
  }
}

export function realHistory(pairs = 400): RealHistory {
  const ordered: Pair[] = [{ name: 'initial_setup', up: 'CREATE TABLE settings (key text PRIMARY KEY, value text);\n', down: 'DROP TABLE settings;\n' }];
  const tables = ['settings'];
  let k = 0;
  let queue: Pair[] = [];
  for (let i = 1; ordered.length < pairs; i++) {
    // Every third pair is empty; the others take the next step of a table's life.
    if (i % 3 === 0) {
      ordered.push(emptyPair(i));
      continue;
    }
    if (queue.length === 0) {
      k += 1;
      queue = tablePairs(k);
      tables.push(`e_${k}`);
    }
    ordered.push(queue.shift()!);
  }
  // A table whose life the cut interrupted ends under whatever name it has by then.
  if (queue.length > 0 && queue.length >= tablePairs(k).length - 1) tables[tables.length - 1] = `d_${k}`;

  const files: Record<string, string> = {};
  const versions: string[] = [];
  let plpgsqlLines = 0;
  for (const [i, pair] of ordered.entries()) {
    // 20 digits: a timestamp and six more, as some generators write them; version 0 with 20 zeros.
    const written = i === 0 ? '0'.repeat(20) : String(20230101000000000000n + BigInt(i) * 1_000_003n);
    files[`V${written}__${pair.name}.sql`] = pair.up;
    files[`U${written}__${pair.name}.sql`] = pair.down;
    versions.push(i === 0 ? '0' : written);
    if (pair.up.includes('plpgsql')) plpgsqlLines += pair.up.split('\n').length;
  }
  return { files, versions, tables: tables.sort(), plpgsqlLines };
}
