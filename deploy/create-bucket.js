// Creates the bucket of PGCONVOY_BACKUP_STORE (s3://bucket/prefix) when it is
// missing: docker-compose.yml runs it once in the pgconvoy image before the
// worker starts; the local test runs the same file.
'use strict';
const { S3Client, CreateBucketCommand, HeadBucketCommand } = require('@aws-sdk/client-s3');

async function main() {
  const store = process.env.PGCONVOY_BACKUP_STORE ?? '';
  const match = /^s3:\/\/([^/]+)/.exec(store);
  if (!match) throw new Error(`PGCONVOY_BACKUP_STORE must be s3://bucket/prefix, got "${store}"`);
  const bucket = match[1];
  const s3 = new S3Client({ region: process.env.AWS_REGION ?? 'us-east-1', endpoint: process.env.AWS_ENDPOINT_URL_S3, forcePathStyle: true });
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
    process.stdout.write(`create-bucket: ${bucket} exists\n`);
  } catch {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    process.stdout.write(`create-bucket: ${bucket} created\n`);
  }
}

main().catch((error) => {
  process.stderr.write(`create-bucket: ${error.message}\n`);
  process.exit(1);
});
