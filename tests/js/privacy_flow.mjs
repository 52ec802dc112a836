// Polkadot.js, unchanged, drives the PrivacyBudgets pallet on a running devnet: prints one JSON report.
//
//   node tests/js/privacy_flow.mjs ws://127.0.0.1:9944
//
// With the API Polkadot.js decorates from the node's metadata (api.tx.privacyBudgets,
// api.query.privacyBudgets, api.consts.privacyBudgets, api.tx.taskBounties):
//   1. every constant of the pallet is read;
//   2. //Alice sets a budget (setBudget) and reads it back (api.query.privacyBudgets.budgets);
//      //Bob's set on the same hash is privacyBudgets.BudgetExists;
//   3. //Alice posts a private task (taskBounties.createPrivateTask), which reserves its cap; a plain
//      createTask on the budgeted hash is privacyBudgets.DataSetHasBudget;
//   4. //Bob's lowerBudget is NotBudgetOwner, //Alice's raise is CannotRaiseBudget, below what is
//      reserved is BelowCommitted, and she lowers it;
//   5. //Alice cancels the task (cancelTask), which releases the reservation.
// Helpers (nonces, events, module errors, the report) are tests/js/chain_flow.mjs.

import { Keyring } from '@polkadot/keyring';
import { runFlow } from './chain_flow.mjs';

const UNIT = 10n ** 12n;
const hash = (byte) => '0x' + byte.repeat(32);
const DATA = hash('d7');
const EPSILON = 8_000_000; // 8.0
const DELTA = 100_000_000_000; // 1e-4
const PRIVACY = { accountant: 'Prv', epsilonCap: 3_000_000, delta: 10_000_000_000, maxGradNorm: 1_000_000,
  noiseMultiplier: 1_100_000, noiseKeyHash: hash('4e') };

runFlow('privacy_flow', async ({ api, report, step, ok, refuse: refuseIf, event }) => {
  const pb = api.tx.privacyBudgets;
  const sr = new Keyring({ type: 'sr25519', ss58Format: api.registry.chainSS58 });
  const [alice, bob] = ['Alice', 'Bob'].map((name) => sr.addFromUri(`//${name}`));
  const budget = async () => (await api.query.privacyBudgets.budgets(DATA)).toJSON();
  /** A call that must fail, and whether the budget stayed as it was. */
  const refuse = (label, tx, signer) => refuseIf(label, tx, signer,
    async () => (await api.query.privacyBudgets.budgets(DATA)).toHex());

  step('consts');
  report.consts = {};
  for (const [name, value] of Object.entries(api.consts.privacyBudgets)) report.consts[name] = value.toString();

  step('setBudget');
  report.set = event(await ok('setBudget', pb.setBudget(DATA, EPSILON, DELTA), alice), 'privacyBudgets.BudgetSet');
  report.budget = await budget();
  await refuse('set twice', pb.setBudget(DATA, 1_000_000, DELTA), bob);

  step('createPrivateTask');
  const spec = { recipe: 'digits_mlp', specHash: hash('11'), specUri: 'file:///specs/dp.json', datasetHash: DATA,
    evalMetric: 'accuracy', evalTarget: 800_000, higherIsBetter: true,
    requirements: { minCpus: 1, minGpus: 0, minMemoryMb: 0 }, parentModel: null };
  const deadline = (await api.rpc.chain.getHeader()).number.toNumber() + 400;
  const created = await ok('createPrivateTask',
    api.tx.taskBounties.createPrivateTask(spec, PRIVACY, 10n * UNIT, 0, deadline, 1, null), alice);
  const taskId = Number(event(created, 'taskBounties.TaskCreated').data.taskId);
  report.reserved = { event: event(created, 'privacyBudgets.BudgetReserved'), budget: await budget(),
    taskId, privacy: (await api.query.privacyBudgets.bountyPrivacy(taskId)).toJSON(),
    reservation: (await api.query.privacyBudgets.bountyReservations(taskId, alice.address)).toJSON() };
  await refuse('plain task on a budgeted hash',
    api.tx.taskBounties.createTask(spec, 10n * UNIT, 0, deadline, 1, null), alice);

  step('lowerBudget');
  await refuse('lower by another', pb.lowerBudget(DATA, 4_000_000, DELTA), bob);
  await refuse('raise', pb.lowerBudget(DATA, EPSILON + 1, DELTA), alice);
  await refuse('below reserved', pb.lowerBudget(DATA, 2_999_999, DELTA), alice);
  report.lowered = event(await ok('lowerBudget', pb.lowerBudget(DATA, 5_000_000, DELTA), alice),
    'privacyBudgets.BudgetLowered');

  step('cancelTask');
  const cancelled = await ok('cancelTask', api.tx.taskBounties.cancelTask(taskId), alice);
  report.released = { event: event(cancelled, 'privacyBudgets.BudgetReleased'), budget: await budget() };

}, { timeoutMs: Number(process.env.PRIVACY_FLOW_TIMEOUT_MS || 60_000) });
