// Polkadot.js, unchanged, makes every central-DP call of FederatedTasks on a running devnet: one JSON report.
//
//   node tests/js/central_flow.mjs ws://127.0.0.1:9944
//
// With the API Polkadot.js decorates from the node's metadata:
//   1. //Bob registers as a Trainer, //Ferdie as a Validator; three clients set a privacy budget for their data;
//   2. //Alice's createCentralDpTask with FedMedian is CentralDpNeedsFedAvg, with no noise InvalidPrivacyParams;
//      her FedAvg task is created and its CentralDp read back (privacyBudgets.federatedCentralDp);
//   3. the three clients join (each reserving the cap of its budget); a client without a budget is NoBudget;
//   4. //Bob claims the task; commitRound is CentralDpNeedsClaim, commitCentralRound with a claim of two releases
//      for round 1 ClaimMismatch; with the claim of one release it lands (privacyBudgets.centralClaims);
//   5. //Ferdie accepts the round, and each client's budget has spent the claim.
// Helpers (nonces, events, module errors, the report) are tests/js/chain_flow.mjs.

import { Keyring } from '@polkadot/keyring';
import { stringToU8a, u8aConcat } from '@polkadot/util';
import { runFlow } from './chain_flow.mjs';

const UNIT = 10n ** 12n;
const PERBILL = 1_000_000_000;
const CLIENT_STAKE = 2n * UNIT;
const DELTA = 10_000_000_000;
const hash = (byte) => '0x' + byte.repeat(32);
const INITIAL_MODEL = hash('a1');
const CAPABILITIES = { cpus: 8, gpus: 0, gpuModel: '', memoryMb: 16_384 };
const CENTRAL = { clipping: 'ServerFixed', accountant: 'Prv', epsilonCap: 7_000_000, delta: DELTA,
  clippingNorm: 500_000, noiseMultiplier: 1_000_000 };
const claim = (steps, epsilon) => ({ accountant: 'Prv', noiseMultiplier: 1_000_000, sampleRate: PERBILL, steps,
  maxGradNorm: 500_000, delta: DELTA, epsilon });

runFlow('central_flow', async ({ api, report, step, ok, refuse, event, blockNumber }) => {
  const fl = api.tx.federatedTasks;
  const pb = api.tx.privacyBudgets;
  const sr = new Keyring({ type: 'sr25519', ss58Format: api.registry.chainSS58 });
  const [alice, bob, charlie, dave, eve, ferdie] = ['Alice', 'Bob', 'Charlie', 'Dave', 'Eve', 'Ferdie']
    .map((name) => sr.addFromUri(`//${name}`));
  const fe = (name) => `federatedTasks.${name}`;
  const nextTaskId = async () => (await api.query.federatedTasks.nextTaskId()).toString();
  const clients = [{ pair: charlie, data: hash('c0') }, { pair: dave, data: hash('c1') },
    { pair: eve, data: hash('c2') }];

  step('workers and budgets');
  await ok('register Bob', api.tx.workers.register('Trainer', api.consts.workers.minTrainerStake, CAPABILITIES), bob);
  await ok('register Ferdie',
    api.tx.workers.register('Validator', api.consts.workers.minValidatorStake, CAPABILITIES), ferdie);
  for (const [i, c] of clients.entries()) {
    await ok(`setBudget ${i}`, pb.setBudget(c.data, 20_000_000, 10 * DELTA), c.pair);
  }

  step('federatedTasks.createCentralDpTask');
  const now = await blockNumber();
  const joinDeadline = now + 12;
  const spec = { recipe: 'digits_mlp', specHash: hash('12'), specUri: 'file:///specs/central.json',
    initialModelHash: INITIAL_MODEL, evalMetric: 'accuracy', evalTarget: 800_000, higherIsBetter: true, rounds: 1,
    minClientsPerRound: 3, fractionPerRound: PERBILL, maxClients: 8, rule: 'FedAvg', clientShare: 600_000_000,
    minClientStake: CLIENT_STAKE, aggregateTolerance: 0, requirements: { minCpus: 1, minGpus: 0, minMemoryMb: 1024 } };
  const create = (s, dp) => fl.createCentralDpTask(s, dp, 10n * UNIT, joinDeadline, now + 400, 1, null);
  await refuse('FedMedian', create({ ...spec, rule: 'FedMedian' }, CENTRAL), alice, nextTaskId);
  await refuse('no noise', create(spec, { ...CENTRAL, noiseMultiplier: 0 }), alice, nextTaskId);
  const created = await ok('createCentralDpTask', create(spec, CENTRAL), alice);
  const taskId = Number(event(created, fe('TaskCreated')).data.task);
  report.create = { taskId, required: event(created, fe('CentralDpRequired')),
    terms: (await api.query.privacyBudgets.federatedCentralDp(taskId)).unwrap().toJSON() };

  step('federatedTasks.join');
  for (const [i, c] of clients.entries()) {
    await ok(`join ${i}`, fl.join(taskId, c.data, 100, CLIENT_STAKE), c.pair);
  }
  const clientsOf = async () => (await api.query.federatedTasks.tasks(taskId)).unwrap().clients.toString();
  await refuse('join without a budget', fl.join(taskId, hash('b9'), 100, CLIENT_STAKE), ferdie, clientsOf);
  report.reserved = await Promise.all(clients.map(async (c) =>
    (await api.query.privacyBudgets.budgets(c.data)).unwrap().reservedEpsilon.toString()));

  step('federatedTasks.commitCentralRound');
  while (await blockNumber() < joinDeadline) await ok('remark', api.tx.system.remark('0x00'), alice);
  await ok('claimAggregator', fl.claimAggregator(taskId, '127.0.0.1:9092'), bob);
  const signed = clients
    .map((c, i) => ({ c, update: hash(`e${i}`) }))
    .sort((a, b) => Buffer.compare(Buffer.from(a.c.pair.publicKey), Buffer.from(b.c.pair.publicKey)))
    .map(({ c, update }) => {
      const message = u8aConcat(stringToU8a('paratrain/fl-update/v1'), api.createType('(u64, u32, H256, H256, u64)',
        [taskId, 1, INITIAL_MODEL, update, 100]).toU8a());
      return { client: c.pair.address, updateHash: update, numExamples: 100, signature: { Sr25519: c.pair.sign(message) } };
    });
  const roundOf = async () => (await api.query.federatedTasks.rounds(taskId, 1)).toHex();
  const args = [taskId, 1, INITIAL_MODEL, hash('9b'), hash('d1'), 'file:///rounds/central-1', signed];
  await refuse('commitRound', fl.commitRound(...args), bob, roundOf);
  await refuse('two releases claimed for round 1', fl.commitCentralRound(...args, claim(2, 6_600_000)), bob, roundOf);
  await ok('commitCentralRound', fl.commitCentralRound(...args, claim(1, 4_400_000)), bob);
  report.claim = (await api.query.privacyBudgets.centralClaims(taskId, 1)).unwrap().toJSON();

  step('federatedTasks.submitRoundVerdict');
  const judged = await ok('submitRoundVerdict', fl.submitRoundVerdict(taskId, 1, { accept: true,
    measuredMetric: 850_000, evidenceHash: hash('ee'), rejectedClients: [],
    contributions: signed.map(() => PERBILL) }), ferdie);
  report.accepted = event(judged, fe('RoundAccepted'));
  report.spent = await Promise.all(clients.map(async (c) =>
    (await api.query.privacyBudgets.budgets(c.data)).unwrap().spentEpsilon.toString()));
});
