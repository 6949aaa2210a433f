import assert from 'node:assert/strict';
import { test } from 'node:test';
import { reservedFor, serverOf, ServerSlots } from '../../src/db/server-slots';

const settle = () => new Promise((resolve) => setImmediate(resolve));

test('connections to one server are capped across its databases; a tenth of the slots are kept for short connections, which go before waiting steps', async () => {
  assert.equal(serverOf('postgres://app@db1.internal:6432/tenant_1'), serverOf('postgres://other@db1.internal:6432/tenant_2'), 'two databases of one server share its slots');
  assert.notEqual(serverOf('postgres://db1.internal/a'), serverOf('postgres://db2.internal/a'));
  assert.equal(serverOf('postgres://db1.internal/a'), 'db1.internal:5432');
  assert.equal(serverOf('postgresql:///a?host=/var/run/postgresql'), '/var/run/postgresql:5432');
  assert.deepEqual([4, 10, 20, 35].map(reservedFor), [1, 1, 2, 3]);

  const slots = new ServerSlots();
  slots.configure(5);
  const server = 'db1.internal:5432';
  const steps = await Promise.all([1, 2, 3, 4].map(() => slots.acquire(server, 'step')));
  const order: string[] = [];
  const fifthStep = slots.acquire(server, 'step').then((release) => (order.push('step 5'), release));
  await settle();
  assert.equal(order.length, 0, 'the fifth slot is not for a step');
  const renewal = await slots.acquire(server, 'short');
  assert.equal(slots.usage(server).open, 5);
  const secondRenewal = slots.acquire(server, 'short').then((release) => (order.push('short'), release));
  await settle();
  assert.equal(order.length, 0);
  steps[0]!();
  await settle();
  assert.deepEqual(order, ['short'], 'the freed slot went to the short connection that waited, not the step that waited longer');
  (await secondRenewal)();
  await settle();
  assert.deepEqual(order, ['short'], 'three steps and a short connection: the step waits on (steps take four slots at most)');
  renewal();
  await settle();
  assert.deepEqual(order, ['short', 'step 5']);
  (await fifthStep)();
  steps[0]!(); // a second release of the same slot changes nothing
  for (const release of steps.slice(1)) release();
  assert.deepEqual(slots.usage(server), { open: 0, peak: 5 });
});

test('a wait for a slot first asks the keepers of idle connections to close one, and ends when its step is cancelled', async () => {
  const slots = new ServerSlots();
  slots.configure(4);
  const server = 'db1.internal:5432';
  const held = await Promise.all([1, 2, 3].map(() => slots.acquire(server, 'step')));
  const asked: string[] = [];
  slots.onPressure((s) => (asked.push(s), false));
  const controller = new AbortController();
  const waiting = slots.acquire(server, 'step', controller.signal);
  assert.deepEqual(asked, [server]);
  controller.abort(new Error('step cancelled'));
  await assert.rejects(waiting, /step cancelled/);
  for (const release of held) release();
  assert.equal(slots.usage(server).open, 0, 'the abandoned wait took no slot');
  (await slots.acquire(server, 'step'))();
});

test('without a cap (a CLI command), nothing waits', async () => {
  const slots = new ServerSlots();
  const all = await Promise.all(Array.from({ length: 200 }, () => slots.acquire('db:5432', 'step')));
  assert.equal(slots.usage('db:5432').open, 200);
  for (const release of all) release();
});
