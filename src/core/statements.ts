import { parse, scan } from 'libpg-query';
import { parseDirectives, type DirectiveComment, type Directives } from './directives';

/** One statement of a migration file, as PostgreSQL's own parser sees it. */
export interface Statement {
  /** 1-based position in the file. */
  index: number;
  /** The statement's text from its first token, without the closing semicolon. */
  sql: string;
  /** Where its first token is in the file (1-based). */
  line: number;
  column: number;
  /** Parse node type, e.g. CreateStmt, IndexStmt. */
  kind: string;
  /** The parse node's body, for analysis. Never sent to workflow history. */
  node: Record<string, unknown>;
  /** What makes it impossible inside a transaction block (e.g. "CREATE INDEX CONCURRENTLY"), or null. */
  nonTransactional: string | null;
}

export type TransactionMode = 'transaction' | 'no-transaction';

export interface Script {
  statements: Statement[];
  directives: Directives;
  /** `transaction`: the whole file in one transaction. `no-transaction`: statement by statement. */
  mode: TransactionMode;
}

export type ScriptResult = { ok: true; script: Script } | { ok: false; problems: string[] };

interface RawStatement {
  stmt: Record<string, Record<string, unknown>>;
  stmt_location?: number;
  stmt_len?: number;
}

interface Token {
  start: number;
  end: number;
  text: string;
  tokenName: string;
}

const isComment = (t: Token) => t.tokenName === 'SQL_COMMENT' || t.tokenName === 'C_COMMENT';

/**
 * Splits a file with libpg-query (PostgreSQL's grammar: DO blocks, dollar
 * quotes, functions and comments are handled as the server handles them),
 * reads its header directives, and decides its transaction mode. Problems
 * are returned, each with its line, for the caller to name the file.
 */
export async function analyzeScript(sql: string): Promise<ScriptResult> {
  const bytes = Buffer.from(sql, 'utf8');
  // libpg-query refuses an empty string ("Query cannot be empty", and its
  // scanner fails too) where the server runs it as nothing: a 0-byte file is
  // a no-op, like a blank or comments-only one.
  const empty = sql === '';
  let raw: RawStatement[];
  try {
    raw = empty ? [] : (((await parse(sql)) as { stmts?: RawStatement[] }).stmts ?? []);
  } catch (error) {
    const details = (error as { sqlDetails?: { message?: string; cursorPosition?: number } }).sqlDetails;
    const where = details?.cursorPosition === undefined ? '' : `${describePosition(bytes, details.cursorPosition)}: `;
    return { ok: false, problems: [`${where}${details?.message ?? (error as Error).message}`] };
  }
  const tokens = empty ? [] : (((await scan(sql)) as { tokens?: Token[] }).tokens ?? []);
  const firstCodeToken = tokens.find((t) => !isComment(t));
  const position = positionsIn(bytes);

  // Statements and tokens both come in file order: one pass over the tokens
  // (a search from the start for every statement is quadratic, minutes for a
  // file of many thousand INSERTs).
  let next = 0;
  const statements: Statement[] = raw.map((entry, i) => {
    const location = entry.stmt_location ?? 0;
    const end = entry.stmt_len ? location + entry.stmt_len : bytes.length;
    while (next < tokens.length && (tokens[next]!.start < location || isComment(tokens[next]!))) next++;
    const first = tokens[next];
    const start = first && first.start < end ? first.start : location;
    const [kind = 'Unknown', node = {}] = Object.entries(entry.stmt)[0] ?? [];
    const { line, column } = position(start);
    return {
      index: i + 1,
      sql: bytes.subarray(start, end).toString('utf8').trimEnd(),
      line,
      column,
      kind,
      node,
      nonTransactional: nonTransactionalReason(kind, node),
    };
  });

  const comments: DirectiveComment[] = tokens
    .filter((t) => t.tokenName === 'SQL_COMMENT' && t.text.includes('pgconvoy:'))
    .map((t) => ({ text: t.text, line: position(t.start).line, afterFirstStatement: firstCodeToken !== undefined && t.start > firstCodeToken.start }));
  const parsed = parseDirectives(comments);
  if (!parsed.ok) return parsed;
  const { directives } = parsed;

  const problems: string[] = [];
  for (const s of statements) {
    if (s.kind === 'TransactionStmt') {
      problems.push(
        `statement ${s.index} at line ${s.line} (${transactionKeyword(s.node)}): transaction control does not belong in a migration file; ` +
          'pgconvoy runs each file in a transaction of its own (or, with "-- pgconvoy:no-transaction", statement by statement)',
      );
    }
  }
  let mode: TransactionMode = directives.noTransaction ? 'no-transaction' : 'transaction';
  const blocking = statements.filter((s) => s.nonTransactional !== null);
  if (mode === 'transaction' && blocking.length > 0) {
    if (statements.length === 1) {
      mode = 'no-transaction'; // a file of one such statement needs no directive
    } else {
      for (const s of blocking) {
        problems.push(
          `statement ${s.index} at line ${s.line} (${s.nonTransactional}) cannot run inside a transaction block, and the file has other statements; ` +
            'add "-- pgconvoy:no-transaction" before the first statement to run the file statement by statement, or move it to a file of its own',
        );
      }
    }
  }
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, script: { statements, directives, mode } };
}

/** Why a statement cannot run inside a transaction block, or null when it can. */
export function nonTransactionalReason(kind: string, node: Record<string, unknown>): string | null {
  switch (kind) {
    case 'IndexStmt':
      return node.concurrent ? 'CREATE INDEX CONCURRENTLY' : null;
    case 'DropStmt':
      return node.concurrent ? 'DROP INDEX CONCURRENTLY' : null;
    case 'ReindexStmt': {
      const params = (node.params as Array<{ DefElem?: { defname?: string } }> | undefined) ?? [];
      if (params.some((p) => p.DefElem?.defname === 'concurrently')) return 'REINDEX CONCURRENTLY';
      if (node.kind === 'REINDEX_OBJECT_DATABASE' || node.kind === 'REINDEX_OBJECT_SYSTEM') return 'REINDEX DATABASE/SYSTEM';
      return null;
    }
    case 'VacuumStmt':
      return node.is_vacuumcmd ? 'VACUUM' : null;
    case 'AlterSystemStmt':
      return 'ALTER SYSTEM';
    case 'CreatedbStmt':
      return 'CREATE DATABASE';
    case 'DropdbStmt':
      return 'DROP DATABASE';
    case 'CreateTableSpaceStmt':
      return 'CREATE TABLESPACE';
    case 'DropTableSpaceStmt':
      return 'DROP TABLESPACE';
    case 'CreateSubscriptionStmt':
      return 'CREATE SUBSCRIPTION';
    case 'DropSubscriptionStmt':
      return 'DROP SUBSCRIPTION';
    case 'AlterTableStmt': {
      const cmds = (node.cmds as Array<{ AlterTableCmd?: { subtype?: string; def?: { PartitionCmd?: { concurrent?: boolean } } } }> | undefined) ?? [];
      return cmds.some((c) => c.AlterTableCmd?.subtype === 'AT_DetachPartition' && c.AlterTableCmd.def?.PartitionCmd?.concurrent)
        ? 'DETACH PARTITION CONCURRENTLY'
        : null;
    }
    default:
      return null;
  }
}

function transactionKeyword(node: Record<string, unknown>): string {
  const kind = typeof node.kind === 'string' ? node.kind : '';
  return kind.replace(/^TRANS_STMT_/, '').replace(/_/g, ' ') || 'transaction control';
}

/** Line and column (1-based, in characters) of a 0-based byte offset into UTF-8 text. */
export function lineAndColumnOfByte(bytes: Buffer, offset: number): { line: number; column: number } {
  return positionsIn(bytes)(offset);
}

/**
 * Line and column of byte offsets into one text, each found by a binary
 * search over the line starts (found once) instead of decoding everything
 * before the offset.
 */
function positionsIn(bytes: Buffer): (offset: number) => { line: number; column: number } {
  const lineStarts = [0];
  for (let i = bytes.indexOf(0x0a); i !== -1; i = bytes.indexOf(0x0a, i + 1)) lineStarts.push(i + 1);
  return (offset) => {
    const at = Math.max(0, Math.min(offset, bytes.length));
    let low = 0;
    let high = lineStarts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (lineStarts[mid]! <= at) low = mid;
      else high = mid - 1;
    }
    return { line: low + 1, column: Array.from(bytes.subarray(lineStarts[low], at).toString('utf8')).length + 1 };
  };
}

function describePosition(bytes: Buffer, offset: number): string {
  const { line, column } = lineAndColumnOfByte(bytes, offset);
  return `line ${line}, column ${column}`;
}
