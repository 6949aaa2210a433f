import type { BackupSettings } from '../config/config';
import { FilesystemStore } from './filesystem-store';
import type { BackupStore } from './store';

/**
 * The configured store: a directory, or `s3://bucket/prefix` (S3 or any
 * S3-compatible server). The AWS SDK loads only for an S3 store: loading it
 * takes about 0.2 s, which a command with a local store need not spend.
 */
export async function openStore(settings: BackupSettings): Promise<BackupStore> {
  if (!settings.store.startsWith('s3://')) return new FilesystemStore(settings.store);
  const { S3Store } = await import('./s3-store');
  const [bucket = '', ...rest] = settings.store.slice('s3://'.length).split('/');
  return new S3Store({
    bucket,
    prefix: rest.filter(Boolean).join('/'),
    region: settings.s3.region,
    partSizeBytes: settings.s3.partSizeBytes,
    queueSize: settings.s3.queueSize,
    ...(settings.s3.endpoint ? { endpoint: settings.s3.endpoint } : {}),
    ...(settings.s3.credentials ? { credentials: settings.s3.credentials } : {}),
    ...(settings.s3.serverSideEncryption ? { serverSideEncryption: settings.s3.serverSideEncryption } : {}),
  });
}
