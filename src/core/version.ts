/**
 * Migration versions are whole numbers (0 and up) of any length: projects use
 * 14- and 20-digit timestamps, beyond what a JavaScript number or a 64-bit
 * integer holds, and some start at 0 (diesel's `00000000000000`). A version is therefore kept as its canonical decimal string
 * (no leading zeros), which also orders correctly: shorter is smaller, equal
 * lengths compare character by character.
 */
export type Version = string;

/** Canonical form of a run of decimal digits, or undefined when it is not a whole number. */
export function parseVersion(digits: string): Version | undefined {
  if (!/^[0-9]+$/.test(digits)) return undefined;
  return digits.replace(/^0+(?=[0-9])/, '');
}

export function compareVersions(a: Version, b: Version): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}
