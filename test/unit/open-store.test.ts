import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

const dist = join(__dirname, '..', '..');

/** In a fresh process: loads the worker's activities, opens `store`, and says whether the AWS SDK was loaded before and after. */
function awsSdkLoaded(store: string): { atStart: boolean; afterOpen: boolean; kind: string } {
  const script = `
    const loaded = () => Object.keys(require.cache).some((path) => path.includes('@aws-sdk'));
    require(${JSON.stringify(join(dist, 'src', 'activities', 'index.js'))});
    const atStart = loaded();
    const { openStore } = require(${JSON.stringify(join(dist, 'src', 'backup', 'open-store.js'))});
    openStore({ store: ${JSON.stringify(store)}, s3: { region: 'us-east-1', partSizeBytes: 5242880, queueSize: 1 } }).then((s) => {
      console.log(JSON.stringify({ atStart, afterOpen: loaded(), kind: s.constructor.name }));
      s.close();
    });`;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })) as { atStart: boolean; afterOpen: boolean; kind: string };
}

test('the AWS SDK loads only when the backup store is on S3 (it takes about 0.2 s to load)', () => {
  assert.deepEqual(awsSdkLoaded('/tmp/pgconvoy-backups-unused'), { atStart: false, afterOpen: false, kind: 'FilesystemStore' });
  assert.deepEqual(awsSdkLoaded('s3://bucket/prefix'), { atStart: false, afterOpen: true, kind: 'S3Store' });
});
