import pino from 'pino';

/** Structured logs: one JSON object per event on stderr, e.g. `{ event: 'migration.applied', db, version, durationMs }`. */
export type Logger = pino.Logger;

export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'pgconvoy' } }, pino.destination({ dest: 2, sync: true }));
}
