// Lint rules that keep workflow code deterministic and every promise awaited.
import tseslint from 'typescript-eslint';

const nodeBuiltins = [
  'assert', 'async_hooks', 'buffer', 'child_process', 'cluster', 'crypto', 'dgram', 'dns',
  'events', 'fs', 'fs/promises', 'http', 'http2', 'https', 'net', 'os', 'path', 'perf_hooks',
  'process', 'readline', 'stream', 'timers', 'tls', 'url', 'util', 'v8', 'vm', 'worker_threads', 'zlib',
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.tools/**', '.pgconvoy/**', 'eslint.config.mjs'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', {
        // node:test runs these; awaiting them at top level is not the idiom.
        allowForKnownSafeCalls: [{ from: 'package', name: ['test', 'describe', 'it', 'suite'], package: 'node:test' }],
      }],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // Scripts that run as they are, without a build or types: the rollout page's, and the compose file's.
    files: ['web/**/*.js', 'deploy/**/*.js'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { sourceType: 'script', parserOptions: { projectService: false } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['src/workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [
          { name: 'pg', message: 'Workflow code is deterministic: talk to PostgreSQL in an activity.' },
          ...nodeBuiltins.map((name) => ({ name, message: 'Node built-ins are not available in the workflow sandbox.' })),
        ],
        patterns: [
          { group: ['node:*'], message: 'Node built-ins are not available in the workflow sandbox.' },
          { group: ['pg/*', 'pino', 'pino/*'], message: 'Workflow code cannot do I/O.' },
          { group: ['../db/*', '../backup/*', '../worker/*', '../client/*', '../config/*', '../source/*'], message: 'Workflow code imports only core types and activity types.' },
        ],
      }],
      'no-restricted-globals': ['error',
        { name: 'setTimeout', message: 'Use sleep() from @temporalio/workflow.' },
        { name: 'process', message: 'Workflow code must not read the process environment.' },
      ],
      'no-restricted-properties': ['error',
        { object: 'Math', property: 'random', message: 'Workflow code must be deterministic.' },
      ],
    },
  },
);
