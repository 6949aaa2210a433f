/**
 * Takes the transaction control out of `pg_restore --single-transaction
 * --file=-`'s script, so that the psql session it is fed to commits only when
 * pgconvoy writes COMMIT itself.
 *
 * Why this is safe, and why a simpler filter is not:
 * - Without --single-transaction pg_restore brackets large objects with its
 *   own `BEGIN;` ... `COMMIT;` lines; fed into our transaction, that COMMIT
 *   would commit the dropped schemas and half of the data before the backup
 *   has been read to its end. With --single-transaction it writes exactly one
 *   `BEGIN;`, as its first statement, and one `COMMIT;`, as its last, and no
 *   other transaction control.
 * - Dropping every `BEGIN;`/`COMMIT;` line is not safe: a procedure body may
 *   hold a `COMMIT;` line (`$$ BEGIN ... COMMIT; END $$`) and a COPY row may
 *   be the text `COMMIT;`. So only two lines are taken out: a `BEGIN;` with
 *   nothing but comments and blank lines before it, and a `COMMIT;` with
 *   nothing but comments, blank lines and psql's `\unrestrict` after it, up
 *   to the end of the script. Any line of a statement, a function body or
 *   COPY data has its statement's first line before it and its terminator
 *   (`$$;`, `\.`) after it, so it can be neither.
 * - A `COMMIT;` line is held back until a later line shows it is not the
 *   last; the held line is written only then. So even a truncated script
 *   cannot make the session commit.
 * - If the first statement is not `BEGIN;` the script is not what this relies
 *   on, and `push` throws before any of it is passed on.
 */
export class RestoreScriptGate {
  private carry: Buffer = Buffer.alloc(0);
  private begun = false;
  /** A `COMMIT;` line and the ignorable lines after it, not yet passed on. */
  private held: Buffer[] | null = null;
  /** pg_restore's closing `COMMIT;` was seen and left out. Set by end(). */
  sawCommit = false;

  /** What of `chunk` may go to psql now (complete lines only, in order). */
  push(chunk: Buffer): Buffer[] {
    const data = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    const out: Buffer[] = [];
    // Lines pass in runs (one Buffer per run), split only around the lines held or left out.
    let passFrom = 0;
    let start = 0;
    const leaveOut = (lineStart: number, lineEnd: number) => {
      if (lineStart > passFrom) out.push(data.subarray(passFrom, lineStart));
      passFrom = lineEnd;
    };
    for (let nl = data.indexOf(10); nl >= 0; nl = data.indexOf(10, start)) {
      const end = nl + 1;
      // Only short lines can be what we look for; long ones (COPY rows) are never decoded.
      const text = end - start <= 128 ? data.toString('utf8', start, end).replace(/\r?\n$/, '') : null;
      const ignorable = text !== null && (text === '' || text.startsWith('--') || text.startsWith('\\restrict ') || text.startsWith('\\unrestrict '));
      if (this.held && ignorable) {
        this.held.push(Buffer.from(data.subarray(start, end)));
        leaveOut(start, end);
      } else {
        if (this.held) {
          // A statement follows: the held COMMIT was not the script's last line.
          out.push(...this.held);
          this.held = null;
        }
        if (!this.begun && !ignorable) {
          this.begun = true;
          if (text !== 'BEGIN;') throw new Error('pg_restore --single-transaction did not begin its script with BEGIN; refusing to replay it');
          leaveOut(start, end);
        } else if (text === 'COMMIT;') {
          leaveOut(start, end);
          this.held = [Buffer.from(data.subarray(start, end))];
        }
      }
      start = end;
    }
    if (start > passFrom) out.push(data.subarray(passFrom, start));
    this.carry = Buffer.from(data.subarray(start));
    return out;
  }

  /** At the end of the script: what is left to pass on, without pg_restore's closing COMMIT. */
  end(): Buffer[] {
    const out = this.carry.length > 0 ? this.push(Buffer.from('\n')) : [];
    if (this.held) {
      this.sawCommit = true;
      out.push(...this.held.slice(1));
      this.held = null;
    }
    return out;
  }
}
