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
// Every transaction is signed with an explicit, pool-aware nonce. Exit 0 with the report on
// stdout; exit 1 with the error on stderr on any failure, or after a global timeout.

import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';

const GLOBAL_TIMEOUT_MS = Number(process.env.PRIVACY_FLOW_TIMEOUT_MS || 60_000);
const STEP_TIMEOUT_MS = 30_000;
const UNIT = 10n ** 12n;
const hash = (byte) => '0x' + byte.repeat(32);
const DATA = hash('d7');
const EPSILON = 8_000_000; // 8.0
const DELTA = 100_000_000_000; // 1e-4
const PRIVACY = { accountant: 'Prv', epsilonCap: 3_000_000, delta: 10_000_000_000, maxGradNorm: 1_000_000,
  noiseMultiplier: 1_100_000, noiseKeyHash: hash('4e') };

const url = process.argv[2];
if (!url) {
  console.error('usage: node privacy_flow.mjs <ws-url>');
  process.exit(2);
}

let currentStep = 'connect';
const step = (name) => { currentStep = name; };
const fail = (error) => {
  console.error(`privacy_flow failed during step "${currentStep}":`, error && error.stack ? error.stack : error);
  process.exit(1);
};
const globalTimer = setTimeout(() => fail(new Error(`global timeout of ${GLOBAL_TIMEOUT_MS} ms`)), GLOBAL_TIMEOUT_MS);
process.on('unhandledRejection', fail);
process.on('uncaughtException', fail);

const eventJson = ({ event }) => {
  const names = event.data.names && event.data.names.length ? event.data.names
    : event.meta.fields.map((f) => f.name.isSome ? f.name.unwrap().toString() : null);
  const data = {};
  event.data.forEach((value, i) => { data[names[i] ?? String(i)] = value.toString(); });
  return { name: `${event.section}.${event.method}`, fields: names, data };
};

const decodeDispatchError = (api, dispatchError) => {
  if (!dispatchError) return null;
  if (dispatchError.isModule) {
    const meta = api.registry.findMetaError(dispatchError.asModule);
    return { kind: 'Module', docs: meta.docs.join(' '), full: `${meta.section}.${meta.name}` };
  }
  return { kind: dispatchError.type, full: dispatchError.toString() };
};

async function main () {
  const api = await ApiPromise.create({ provider: new WsProvider(url) });
  await cryptoWaitReady();
  const pb = api.tx.privacyBudgets;
  const report = { refusals: {}, eventsSeen: {} };
  const sr = new Keyring({ type: 'sr25519', ss58Format: api.registry.chainSS58 });
  const [alice, bob] = ['Alice', 'Bob'].map((name) => sr.addFromUri(`//${name}`));

  /** signAndSend with an explicit pool-aware nonce; resolves at InBlock with the decoded outcome. */
  const send = async (label, tx, signer) => {
    const nonce = (await api.rpc.system.accountNextIndex(signer.address)).toNumber();
    return new Promise((resolve, reject) => {
      let unsubscribe = null;
      let settled = false;
      const settle = (fn, value) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (unsubscribe) unsubscribe.then((unsub) => unsub(), () => {});
        fn(value);
      };
      const timer = setTimeout(() => settle(reject, new Error(`timed out waiting for ${label}`)), STEP_TIMEOUT_MS);
      unsubscribe = tx.signAndSend(signer, { nonce }, (result) => {
        const { status } = result;
        if (status.isInBlock || status.isFinalized) {
          const events = result.events.map(eventJson);
          for (const e of events) report.eventsSeen[e.name] ??= e.fields;
          settle(resolve, { events, dispatchError: decodeDispatchError(api, result.dispatchError) });
        } else if (status.isDropped || status.isInvalid || status.isUsurped) {
          settle(reject, new Error(`${label}: transaction ${status.type}`));
        }
      });
      unsubscribe.catch((error) => settle(reject, error));
    });
  };
  const ok = async (label, tx, signer) => {
    const outcome = await send(label, tx, signer);
    if (outcome.dispatchError) throw new Error(`${label} failed: ${outcome.dispatchError.full}`);
    return outcome;
  };
  const event = (outcome, name) => outcome.events.find((e) => e.name === name) ?? null;
  const budget = async () => (await api.query.privacyBudgets.budgets(DATA)).toJSON();
  /** A call that must fail: its decoded error, its events, and whether the budget stayed as it was. */
  const refuse = async (label, tx, signer) => {
    const before = (await api.query.privacyBudgets.budgets(DATA)).toHex();
    const outcome = await send(label, tx, signer);
    if (!outcome.dispatchError) throw new Error(`${label} succeeded; a module error was expected`);
    const after = (await api.query.privacyBudgets.budgets(DATA)).toHex();
    report.refusals[label] = { error: outcome.dispatchError, events: outcome.events.map((e) => e.name),
      budgetUnchanged: before === after };
  };

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

  console.log(JSON.stringify(report));
  clearTimeout(globalTimer);
  await api.disconnect();
  process.exit(0);
}

main().catch(fail);
