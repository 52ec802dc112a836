// Polkadot.js, unchanged, makes every SecAgg+ call of FederatedTasks on a running devnet: one JSON report.
//
//   node tests/js/secagg_flow.mjs ws://127.0.0.1:9944
//
// With the API Polkadot.js decorates from the node's metadata:
//   1. the AuditRevealShare constant is read; //Bob registers as a Trainer, //Ferdie as a Validator;
//   2. //Alice's createSecaggTask with a 50 % threshold is InvalidSecAggParams, with FedMedian
//      SecAggNeedsFedAvg; her FedAvg task with 30 % audited is created and its SecAggSpec read back;
//   3. three clients join; a fourth with more examples than max_weight is ExamplesAboveMaxWeight;
//   4. //Bob claims the task and commits round 1 with the clients' signatures over their commitments;
//   5. //Ferdie draws the audit (drawAudit; a second draw is AuditAlreadyDrawn) and reads it back;
//      an undrawn client's revealUpdate is NotAudited, a verdict before the reveal AuditOpen;
//   6. the drawn client reveals (revealUpdate); a verdict rejecting an undrawn client is
//      RejectedNotAudited; //Ferdie accepts the round.
// Helpers (nonces, events, module errors, the report) are tests/js/chain_flow.mjs.

import { Keyring } from '@polkadot/keyring';
import { stringToU8a, u8aConcat } from '@polkadot/util';
import { runFlow } from './chain_flow.mjs';

const UNIT = 10n ** 12n;
const PERBILL = 1_000_000_000;
const CLIENT_STAKE = 2n * UNIT;
const hash = (byte) => '0x' + byte.repeat(32);
const INITIAL_MODEL = hash('a1');
const CAPABILITIES = { cpus: 8, gpus: 0, gpuModel: '', memoryMb: 16_384 };
const SECAGG = { numShares: PERBILL, reconstructionThreshold: 600_000_000, clippingRange: 8_000_000_000,
  quantizationRange: 2 ** 22, modulusRange: 2 ** 32, maxWeight: 1000, updateNormBound: 4_500_000_000,
  auditRate: 300_000_000 };

runFlow('secagg_flow', async ({ api, report, step, ok, refuse, event, blockNumber }) => {
  const fl = api.tx.federatedTasks;
  const sr = new Keyring({ type: 'sr25519', ss58Format: api.registry.chainSS58 });
  const [alice, bob, charlie, dave, eve, ferdie] = ['Alice', 'Bob', 'Charlie', 'Dave', 'Eve', 'Ferdie']
    .map((name) => sr.addFromUri(`//${name}`));
  const big = sr.addFromUri('//SecAggFlowBig');
  const fe = (name) => `federatedTasks.${name}`;
  const nextTaskId = async () => (await api.query.federatedTasks.nextTaskId()).toString();

  step('consts and workers');
  report.auditRevealShare = api.consts.federatedTasks.auditRevealShare.toString();
  await ok('register Bob', api.tx.workers.register('Trainer', api.consts.workers.minTrainerStake, CAPABILITIES), bob);
  await ok('register Ferdie',
    api.tx.workers.register('Validator', api.consts.workers.minValidatorStake, CAPABILITIES), ferdie);
  await ok('fund big', api.tx.balances.transferKeepAlive(big.address, 100n * UNIT), alice);

  step('federatedTasks.createSecaggTask');
  const now = await blockNumber();
  const joinDeadline = now + 12;
  const spec = { recipe: 'digits_mlp', specHash: hash('11'), specUri: 'file:///specs/secagg.json',
    initialModelHash: INITIAL_MODEL, evalMetric: 'accuracy', evalTarget: 800_000, higherIsBetter: true, rounds: 1,
    minClientsPerRound: 3, fractionPerRound: PERBILL, maxClients: 8, rule: 'FedAvg', clientShare: 600_000_000,
    minClientStake: CLIENT_STAKE, aggregateTolerance: 0, requirements: { minCpus: 1, minGpus: 0, minMemoryMb: 1024 } };
  const create = (s, secagg) => fl.createSecaggTask(s, secagg, 10n * UNIT, joinDeadline, now + 400, 1, null);
  await refuse('threshold 50%', create(spec, { ...SECAGG, reconstructionThreshold: 500_000_000 }), alice, nextTaskId);
  await refuse('FedMedian', create({ ...spec, rule: 'FedMedian' }, SECAGG), alice, nextTaskId);
  const created = await ok('createSecaggTask', create(spec, SECAGG), alice);
  const taskId = Number(event(created, fe('TaskCreated')).data.task);
  report.create = { taskId, required: event(created, fe('SecAggRequired')),
    spec: (await api.query.federatedTasks.secAggSpecs(taskId)).unwrap().toJSON() };

  step('federatedTasks.join');
  const clients = [{ pair: charlie, examples: 400 }, { pair: dave, examples: 300 }, { pair: eve, examples: 200 }];
  for (const [i, c] of clients.entries()) {
    await ok(`join ${i}`, fl.join(taskId, hash(`c${i}`), c.examples, CLIENT_STAKE), c.pair);
  }
  const clientsOf = async () => (await api.query.federatedTasks.tasks(taskId)).unwrap().clients.toString();
  await refuse('join above max_weight', fl.join(taskId, hash('b1'), 1001, CLIENT_STAKE), big, clientsOf);

  step('federatedTasks.commitRound');
  while (await blockNumber() < joinDeadline) await ok('remark', api.tx.system.remark('0x00'), alice);
  await ok('claimAggregator', fl.claimAggregator(taskId, '127.0.0.1:9092'), bob);
  const signed = clients
    .map((c, i) => ({ c, commitment: hash(`f${i}`) }))
    .sort((a, b) => Buffer.compare(Buffer.from(a.c.pair.publicKey), Buffer.from(b.c.pair.publicKey)))
    .map(({ c, commitment }) => {
      const message = u8aConcat(stringToU8a('paratrain/fl-update/v1'), api.createType('(u64, u32, H256, H256, u64)',
        [taskId, 1, INITIAL_MODEL, commitment, c.examples]).toU8a());
      return { client: c.pair.address, updateHash: commitment, numExamples: c.examples,
        signature: { Sr25519: c.pair.sign(message) } };
    });
  const committed = await ok('commitRound', fl.commitRound(taskId, 1, INITIAL_MODEL, hash('9a'), hash('d0'),
    'file:///rounds/1', signed), bob);
  report.committedAt = (await api.query.federatedTasks.rounds(taskId, 1)).unwrap().committedAt.toNumber();
  report.commitBlock = committed.blockHash;

  step('federatedTasks.drawAudit');
  const drew = await ok('drawAudit', fl.drawAudit(taskId, 1), ferdie);
  const auditOf = async () => (await api.query.federatedTasks.audits(taskId, 1)).toHex();
  await refuse('draw twice', fl.drawAudit(taskId, 1), ferdie, auditOf);
  const audit = (await api.query.federatedTasks.audits(taskId, 1)).unwrap();
  const drawn = audit.drawn.map((a) => a.toString());
  report.audit = { event: event(drew, fe('AuditDrawn')), seed: audit.seed.toHex(), drawn,
    revealUntil: audit.revealUntil.toString() };
  const drawnPair = clients.find((c) => drawn.includes(c.pair.address)).pair;
  const undrawn = clients.find((c) => !drawn.includes(c.pair.address)).pair;
  const verdict = (rejected) => ({ accept: true, measuredMetric: 850_000, evidenceHash: hash('ed'),
    rejectedClients: rejected, contributions: signed.map(() => PERBILL) });
  await refuse('undrawn reveal', fl.revealUpdate(taskId, 1, hash('7d'), 'file:///reveals/x'), undrawn, auditOf);
  await refuse('verdict before the reveal', fl.submitRoundVerdict(taskId, 1, verdict([])), ferdie, auditOf);

  step('federatedTasks.revealUpdate');
  const revealed = await ok('revealUpdate', fl.revealUpdate(taskId, 1, hash('7e'), 'file:///reveals/1'), drawnPair);
  report.reveal = { event: event(revealed, fe('UpdateRevealed')),
    stored: (await api.query.federatedTasks.auditReveals(taskId, 1, drawnPair.address)).unwrap().toJSON() };
  const roundOf = async () => (await api.query.federatedTasks.rounds(taskId, 1)).toHex();
  await refuse('reject an undrawn client', fl.submitRoundVerdict(taskId, 1, verdict([undrawn.address])), ferdie,
    roundOf);
  const judged = await ok('submitRoundVerdict', fl.submitRoundVerdict(taskId, 1, verdict([])), ferdie);
  report.verdict = { accepted: event(judged, fe('RoundAccepted')),
    status: (await api.query.federatedTasks.rounds(taskId, 1)).unwrap().status.type };
});
