import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleWorkflowCode, type WorkflowBundleOption } from '@temporalio/worker';

/** Where the workflow code lives; the worker bundles it for the sandbox. */
export const workflowsPath = require.resolve('../workflows');

/** The bundle `npm run build` writes (dist/workflow-bundle.js), so a command does not spend a second bundling at every start. */
export const prebuiltBundlePath = join(__dirname, '..', '..', 'workflow-bundle.js');

/** The compiled code a bundle is made of: the workflows and the contracts they import. */
const bundledDirs = [join(__dirname, '..', 'workflows'), join(__dirname, '..', 'contracts')];

/**
 * The prebuilt bundle, when it is at least as new as every compiled file it
 * was made from; otherwise (a `tsc` without the bundling step, an edit since)
 * undefined, and the worker bundles the code itself.
 */
export function prebuiltWorkflowBundle(): WorkflowBundleOption | undefined {
  let built: number;
  try {
    built = statSync(prebuiltBundlePath).mtimeMs;
  } catch {
    return undefined;
  }
  for (const dir of bundledDirs) {
    for (const name of readdirSync(dir)) {
      if (name.endsWith('.js') && statSync(join(dir, name)).mtimeMs > built) return undefined;
    }
  }
  return { codePath: prebuiltBundlePath };
}

const quiet = { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** Bundles the workflow code into dist/workflow-bundle.js (run by `npm run build`). */
export async function writePrebuiltBundle(): Promise<void> {
  const { code } = await bundleWorkflowCode({ workflowsPath, logger: quiet });
  writeFileSync(prebuiltBundlePath, code);
}

if (require.main === module) {
  writePrebuiltBundle().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
