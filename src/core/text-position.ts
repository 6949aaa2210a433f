/** Line and column (both 1-based) of a 1-based character position, as PostgreSQL reports it. */
export function lineAndColumn(text: string, position: number): { line: number; column: number } {
  const chars = Array.from(text).slice(0, Math.max(0, position - 1)).join('');
  const lines = chars.split('\n');
  return { line: lines.length, column: (lines[lines.length - 1]?.length ?? 0) + 1 };
}
