/**
 * Connection parameters a `postgres://` URL may carry in its query string
 * (libpq's names) and the environment variable libpq reads each from.
 * Parameters libpq has no variable for (keepalives*, tcp_user_timeout,
 * sslpassword, fallback_application_name) cannot reach the tools without a
 * command line or a file, and are left out.
 */
const parameterEnv: Record<string, string> = {
  host: 'PGHOST',
  hostaddr: 'PGHOSTADDR',
  port: 'PGPORT',
  dbname: 'PGDATABASE',
  user: 'PGUSER',
  password: 'PGPASSWORD',
  passfile: 'PGPASSFILE',
  service: 'PGSERVICE',
  options: 'PGOPTIONS',
  application_name: 'PGAPPNAME',
  connect_timeout: 'PGCONNECT_TIMEOUT',
  client_encoding: 'PGCLIENTENCODING',
  channel_binding: 'PGCHANNELBINDING',
  sslmode: 'PGSSLMODE',
  requiressl: 'PGREQUIRESSL',
  sslcompression: 'PGSSLCOMPRESSION',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  sslrootcert: 'PGSSLROOTCERT',
  sslcrl: 'PGSSLCRL',
  sslcrldir: 'PGSSLCRLDIR',
  sslsni: 'PGSSLSNI',
  sslcertmode: 'PGSSLCERTMODE',
  ssl_min_protocol_version: 'PGSSLMINPROTOCOLVERSION',
  ssl_max_protocol_version: 'PGSSLMAXPROTOCOLVERSION',
  requirepeer: 'PGREQUIREPEER',
  require_auth: 'PGREQUIREAUTH',
  gssencmode: 'PGGSSENCMODE',
  gssdelegation: 'PGGSSDELEGATION',
  krbsrvname: 'PGKRBSRVNAME',
  gsslib: 'PGGSSLIB',
  target_session_attrs: 'PGTARGETSESSIONATTRS',
  load_balance_hosts: 'PGLOADBALANCEHOSTS',
};

/**
 * libpq environment for pg_dump, pg_restore and psql: the connection string
 * never appears on a command line, where any user of the machine could read
 * it. The URL's user, password, host, port and database come first; its
 * query parameters (`?password=`, `sslmode`, `sslrootcert`, `options`, ...)
 * override them, as they do for libpq and node-postgres. Nothing is inherited
 * from the worker's own PG* variables.
 */
export function libpqEnv(url: string): NodeJS.ProcessEnv {
  const u = new URL(url);
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, PGAPPNAME: 'pgconvoy-backup', PGCONNECT_TIMEOUT: '10' };
  // IPv6 literals come bracketed ([::1]); libpq wants the bare address.
  if (u.hostname) env.PGHOST = decodeURIComponent(u.hostname).replace(/^\[(.*)\]$/, '$1');
  if (u.port) env.PGPORT = u.port;
  if (u.username) env.PGUSER = decodeURIComponent(u.username);
  if (u.password) env.PGPASSWORD = decodeURIComponent(u.password);
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (database) env.PGDATABASE = database;
  for (const [name, value] of u.searchParams) {
    const variable = parameterEnv[name];
    if (variable && value !== '') env[variable] = value;
  }
  // node-postgres spellings, so the tools connect the way the worker does.
  const ssl = u.searchParams.get('ssl');
  if (!u.searchParams.has('sslmode') && ssl !== null) {
    // node-postgres verifies the server's certificate when `ssl=true`; the
    // tools must not connect with less.
    if (ssl === 'true' || ssl === '1') env.PGSSLMODE = 'verify-full';
    if (ssl === 'false' || ssl === '0') env.PGSSLMODE = 'disable';
  }
  // node-postgres' `no-verify` (encrypt, do not check the certificate) is libpq's `require`.
  if (env.PGSSLMODE === 'no-verify') env.PGSSLMODE = 'require';
  return env;
}
