import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import pino from 'pino';
import { chromium, type Browser } from 'playwright-core';
import { tokenHash } from '../../src/client/http/auth';
import { buildServer } from '../../src/client/http/server';
import type { RolloutStatus } from '../../src/contracts';
import { fleetFixture, ledgerVersion } from '../helpers/fleet';
import { sharedTestClient, withWorker } from '../helpers/temporal';

const temporal = sharedTestClient();

/** Debian's chromium, installed by `npm run setup` (scripts/provision-tools.sh). */
const chromiumPath = process.env.PGCONVOY_CHROMIUM ?? '/usr/bin/chromium';

/** Headless, and quiet on this machine's closed network (no background connections, updates or sync). */
async function launchBrowser(): Promise<Browser> {
  assert.ok(existsSync(chromiumPath), `no browser at ${chromiumPath}: run npm run setup (it installs Debian's chromium) or set PGCONVOY_CHROMIUM`);
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

const pipelineToken = 'page-pipeline-token-51c0';
const personToken = 'page-person-token-9d7e';

test('the rollout page: lists the rollouts, follows one live (wave, state, version, risk, outcome per database), shows only the buttons the token allows, and an approval from the page lets the next wave go on', async (t) => {
  const fleet = await fleetFixture(t, 3, {
    'V1__orders.sql': 'CREATE TABLE orders (id bigint PRIMARY KEY);',
    'V2__orders_note.sql': 'ALTER TABLE orders ADD COLUMN note text;',
  }, { prefix: 'page' });
  const config = {
    ...fleet.config,
    serve: {
      ...fleet.config.serve,
      tokens: [
        { name: 'deployer', sha256: tokenHash(pipelineToken), scopes: ['trigger' as const, 'read' as const] },
        { name: 'carol', sha256: tokenHash(personToken), scopes: ['approve' as const, 'read' as const] },
      ],
    },
  };
  const app = await buildServer({ config, pgconvoy: { client: temporal.client, taskQueue: config.temporal.taskQueue }, logger: pino({ level: 'silent' }) });
  t.after(() => app.close());
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  const browser = await launchBrowser();
  t.after(() => browser.close());

  await withWorker(config, async () => {
    // The canary, then an approval before the wave of the other two.
    const started = await fetch(`${base}/v1/rollouts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${pipelineToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ deployId: 'page-1', all: true, canary: ['page-02'], waveSize: '100%', approveWaves: true }),
    });
    assert.equal(started.status, 201, await started.text());

    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(base);
    // Without a token the page says so and shows the API's refusal.
    await page.locator('#error').getByText('401').waitFor();

    // The deploy's token may pause and abort, not approve.
    await page.fill('#token', pipelineToken);
    await page.click('#token-form button');
    await page.locator('#who').getByText('deployer (trigger, read)').waitFor();
    await page.locator('#rollouts a', { hasText: 'page-1' }).click();
    await page.locator('#status', { hasText: 'awaiting-approval' }).waitFor({ timeout: 60_000 });
    assert.equal(await page.isVisible('button[data-action="approve"]'), false, 'the deployer cannot approve');
    assert.equal(await page.isVisible('button[data-action="pause"]'), true);
    assert.equal(await page.isVisible('button[data-action="abort"]'), true);

    // A person's token: the canary is done, the wave waits, and Approve is there.
    await page.fill('#token', personToken);
    await page.click('#token-form button');
    await page.locator('#who').getByText('carol (approve, read)').waitFor();
    await page.locator('#status', { hasText: 'awaiting-approval' }).waitFor();
    const rows = page.locator('#databases tbody tr');
    assert.equal(await rows.count(), 3);
    const cells = async (): Promise<string[][]> => {
      const table: string[][] = [];
      for (const row of await rows.all()) table.push(await row.locator('td').allTextContents());
      return table.sort((a, b) => a[0]!.localeCompare(b[0]!));
    };
    const before = await cells();
    assert.deepEqual(before.map((r) => [r[0], r[1], r[2], r[4], r[6], r[7]]), [
      ['page-01', '1', 'pending', '', 'low', ''],
      ['page-02', 'canary', 'succeeded', '2', 'low', 'applied'],
      ['page-03', '1', 'pending', '', 'low', ''],
    ]);
    assert.match(before[1]![5]!, /^\d+\.\d s$/, 'the canary’s duration');
    assert.equal(await ledgerVersion(fleet.dbs.get('page-01')!), null, 'the wave has not started');
    assert.equal(await page.isVisible('button[data-action="pause"]'), false, 'the person’s token cannot pause');

    await page.click('button[data-action="approve"]');
    await page.locator('#acted', { hasText: 'approve: accepted' }).waitFor();
    // The stream carries the wave through to the end.
    await page.locator('#status', { hasText: 'completed' }).waitFor({ timeout: 60_000 });
    const after = await cells();
    assert.deepEqual(after.map((r) => [r[0], r[2], r[4], r[7]]), [
      ['page-01', 'succeeded', '2', 'applied'],
      ['page-02', 'succeeded', '2', 'applied'],
      ['page-03', 'succeeded', '2', 'applied'],
    ]);
    assert.equal(await page.isVisible('button[data-action="approve"]'), false, 'an ended rollout has no buttons');
    for (const alias of fleet.aliases) assert.equal(await ledgerVersion(fleet.dbs.get(alias)!), '2', alias);
    const result = (await temporal.client.workflow.getHandle('pgconvoy/rollout/page-1').result()) as RolloutStatus;
    assert.deepEqual(result.approvals.map((a) => [a.by, a.wave]), [['carol', 1]], 'the page’s approval is the person’s');

    // Back to the list: the rollout is there, ended.
    await page.click('header h1 a');
    await page.locator('#rollouts tr', { hasText: 'page-1' }).getByText('completed').waitFor();
    assert.deepEqual(errors, [], 'no script error on the page');
  });
});
