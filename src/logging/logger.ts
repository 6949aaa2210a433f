import pino from 'pino';

/** Structured logs: one JSON object per event on stderr, e.g. `{ event: 'migration.applied', db, version, durationMs }`. */
export type Logger = pino.Logger;

/**
 * `json` (a worker, and PGCONVOY_LOG_FORMAT=json): one JSON object per line,
 * for log shippers. `human` (the other commands): one line a person reads
 * among the command's own messages, `pgconvoy: warning: <message>`.
 */
export type LogFormat = 'json' | 'human';

export function createLogger(level: string, format: LogFormat = 'json', write: (line: string) => void = (line) => process.stderr.write(line)): Logger {
  if (format === 'json') return pino({ level, base: { service: 'pgconvoy' } }, pino.destination({ dest: 2, sync: true }));
  return pino({ level, base: null, timestamp: false }, { write: (json: string) => write(humanLine(json)) });
}

const levelNames: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warning', 50: 'error', 60: 'fatal' };

/** A pino record as a line: its message (or its event), then its other plain facts as key=value. */
export function humanLine(json: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const { level, msg, event, ...rest } = record;
  const facts = Object.entries(rest)
    .filter(([, v]) => v === null || ['string', 'number', 'boolean'].includes(typeof v))
    .map(([k, v]) => `${k}=${String(v)}`);
  const text = typeof msg === 'string' && msg !== '' ? msg : typeof event === 'string' ? event : '';
  const shown = typeof msg === 'string' && msg !== '' ? [] : facts;
  return `pgconvoy: ${levelNames[Number(level)] ?? 'log'}: ${text}${shown.length > 0 ? ` (${shown.join(', ')})` : ''}\n`;
}
