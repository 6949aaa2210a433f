import { createHash } from 'node:crypto';

/**
 * Checksum of a migration file: sha256 of its bytes with line endings
 * normalised to LF, so a checkout with CRLF endings does not look divergent.
 */
export function migrationChecksum(content: Buffer): string {
  const normalised = content.toString('latin1').replace(/\r\n?/g, '\n');
  return createHash('sha256').update(Buffer.from(normalised, 'latin1')).digest('hex');
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
