// Polkadot.js, unchanged, makes every FederatedTasks call on a running devnet: prints one JSON report.
//
//   node tests/js/fl_flow.mjs ws://127.0.0.1:9944
//
// With the API Polkadot.js decorates from the node's metadata (api.tx.federatedTasks,
// api.query.federatedTasks, api.consts.federatedTasks):
//   1. every constant of the pallet is read;
//   2. //Bob registers as a Trainer, //Ferdie and //Alice as Validators (api.tx.workers.register);
//   3. //Alice posts a federated task (createTask, with a holdout commitment hashed here)
//      and a second one she cancels while it is Joining (cancelTask);
//   4. //Charlie and //Dave (sr25519) and an ed25519 account funded by //Alice join; //Dave's
//      second join is federatedTasks.AlreadyJoined; //Eve joins and leaves;
//   5. blocks are made (system.remark) until the join deadline has passed; //Bob claims the
//      aggregator role (claimAggregator) and renews the lease (heartbeat);
//   6. each client signs its update commitment here, b"paratrain/fl-update/v1" ++
//      SCALE((task u64, round u32, base H256, update H256, examples u64)), with its keyring pair;
//      //Charlie's commit is NotAggregator, round 2 first is RoundOutOfOrder, a signature over
//      another task is BadUpdateSignature, and //Bob commits round 1 (commitRound);
//   7. //Alice reveals the holdout (revealHoldout); //Ferdie accepts round 1
//      (submitRoundVerdict), which pays the round (//Alice's own verdict is CannotJudgeOwnWork);
//      a client's early withdrawal is StakeLocked;
//   8. //Bob gives the task back (release); //Alice cancels it, now Open (cancelTask); the
//      clients take their stakes back (withdrawStake), a second time AlreadyWithdrawn.
// Helpers (nonces, events, module errors, the report) are tests/js/chain_flow.mjs.

import { Keyring } from '@polkadot/keyring';
import { stringToU8a, u8aConcat, u8aToHex, u8aToString } from '@polkadot/util';
import { blake2AsHex, blake2AsU8a, signatureVerify } from '@polkadot/util-crypto';
import { eventJson, runFlow } from './chain_flow.mjs';

const UNIT = 10n ** 12n;
const BOUNTY = 10n * UNIT;
const CLIENT_STAKE = 2n * UNIT;
const PERBILL = 1_000_000_000;
const UPDATE_CONTEXT = 'paratrain/fl-update/v1';
const JOIN_AHEAD = 14; // blocks from now to the join deadline: enough for the joins below
const DEADLINE_AHEAD = 400;
const ENDPOINT = '127.0.0.1:9092';
const CAPABILITIES = { cpus: 8, gpus: 0, gpuModel: '', memoryMb: 16_384 };
const hash = (byte) => '0x' + byte.repeat(32);
const INITIAL_MODEL = hash('a1');
const HOLDOUT = { salt: hash('5a'), holdoutHash: hash('b0'), holdoutSize: 360, holdoutUri: 'file:///holdout.ptts' };

runFlow('fl_flow', async ({ api, report, step, ok, refuse: refuseIf, event: eventOf, blockNumber }) => {
  const fl = api.tx.federatedTasks;

  const sr = new Keyring({ type: 'sr25519', ss58Format: api.registry.chainSS58 });
  const ed = new Keyring({ type: 'ed25519', ss58Format: api.registry.chainSS58 });
  const [alice, bob, charlie, dave, eve, ferdie] = ['Alice', 'Bob', 'Charlie', 'Dave', 'Eve', 'Ferdie']
    .map((name) => sr.addFromUri(`//${name}`));
  const edClient = ed.addFromUri('//paratrain-fl-ed25519-client');
  report.addresses = { alice: alice.address, bob: bob.address, charlie: charlie.address, dave: dave.address,
    eve: eve.address, ferdie: ferdie.address, edClient: edClient.address };

  const event = (outcome, name) => eventOf(outcome, `federatedTasks.${name}`);
  /** A call that must fail: its decoded error, its events, and whether the task is stored as it was. */
  const refuse = (label, tx, signer, taskId) => refuseIf(label, tx, signer,
    async () => (await api.query.federatedTasks.tasks(taskId)).toHex());
  const reserved = async (pair) => (await api.query.system.account(pair.address)).data.reserved.toString();

  // 1. Constants -------------------------------------------------------------------------------
  step('consts');
  report.consts = {};
  for (const [name, value] of Object.entries(api.consts.federatedTasks)) report.consts[name] = value.toString();

  // 2. An aggregator and a validator ----------------------------------------------------------
  step('workers.register');
  await ok('register Bob', api.tx.workers.register('Trainer', api.consts.workers.minTrainerStake, CAPABILITIES), bob);
  await ok('register Ferdie',
    api.tx.workers.register('Validator', api.consts.workers.minValidatorStake, CAPABILITIES), ferdie);
  // //Alice, the requester, is a Validator too: her verdict on her own task is CannotJudgeOwnWork
  await ok('register Alice',
    api.tx.workers.register('Validator', api.consts.workers.minValidatorStake, CAPABILITIES), alice);
  report.validatorStake = api.consts.workers.minValidatorStake.toString();
  await ok('fund ed25519 client', api.tx.balances.transferKeepAlive(edClient.address, 100n * UNIT), alice);

  // 3. Two tasks from //Alice ------------------------------------------------------------------
  step('federatedTasks.createTask');
  const holdoutCommitment = blake2AsHex(api.createType('(H256, H256, u64, Bytes)',
    [HOLDOUT.salt, HOLDOUT.holdoutHash, HOLDOUT.holdoutSize, HOLDOUT.holdoutUri]).toU8a());
  const now = await blockNumber();
  const joinDeadline = now + JOIN_AHEAD;
  const deadline = now + DEADLINE_AHEAD;
  const spec = {
    recipe: 'digits_mlp',
    specHash: hash('11'),
    specUri: 'file:///specs/fl-task.json',
    initialModelHash: INITIAL_MODEL,
    evalMetric: 'accuracy',
    evalTarget: 800_000,
    higherIsBetter: true,
    rounds: 2,
    minClientsPerRound: 3,
    fractionPerRound: PERBILL,
    maxClients: 8,
    rule: { Krum: { numMalicious: 0 } },
    clientShare: 600_000_000,
    minClientStake: CLIENT_STAKE,
    aggregateTolerance: 1000,
    requirements: { minCpus: 1, minGpus: 0, minMemoryMb: 1024 }
  };
  const created = await ok('createTask', fl.createTask(spec, BOUNTY, joinDeadline, deadline, 1, holdoutCommitment), alice);
  const taskId = Number(event(created, 'TaskCreated').data.task);
  const other = await ok('createTask (to cancel)', fl.createTask({ ...spec, rule: 'FedAvg' }, BOUNTY, joinDeadline,
    deadline, 1, null), alice);
  const otherId = Number(event(other, 'TaskCreated').data.task);
  const cancelledJoining = await ok('cancelTask (Joining)', fl.cancelTask(otherId), alice);
  report.create = { taskId, otherId, joinDeadline, deadline, holdoutCommitment, bounty: BOUNTY.toString(),
    event: event(created, 'TaskCreated'), cancelled: event(cancelledJoining, 'TaskCancelled'),
    otherStatus: (await api.query.federatedTasks.tasks(otherId)).unwrap().status.type };

  // 4. Clients join ----------------------------------------------------------------------------
  step('federatedTasks.join');
  const clients = [
    { pair: charlie, scheme: 'Sr25519', examples: 400, dataHash: hash('c1') },
    { pair: dave, scheme: 'Sr25519', examples: 300, dataHash: hash('d1') },
    { pair: edClient, scheme: 'Ed25519', examples: 200, dataHash: hash('e1') }
  ];
  report.joins = [];
  for (const c of clients) {
    const joined = await ok(`join ${c.pair.address}`, fl.join(taskId, c.dataHash, c.examples, CLIENT_STAKE), c.pair);
    report.joins.push(event(joined, 'ClientJoined'));
  }
  await refuse('join twice', fl.join(taskId, hash('d2'), 10, CLIENT_STAKE), dave, taskId);
  const eveJoined = await ok('join Eve', fl.join(taskId, hash('ee'), 50, CLIENT_STAKE), eve);
  const eveLeft = await ok('leave Eve', fl.leave(taskId), eve);
  report.leave = { joined: event(eveJoined, 'ClientJoined'), left: event(eveLeft, 'ClientLeft'),
    entry: (await api.query.federatedTasks.clients(taskId, eve.address)).isSome, reserved: await reserved(eve) };
  const charlieInfo = (await api.query.federatedTasks.clients(taskId, charlie.address)).unwrap();
  report.client = { dataHash: charlieInfo.dataHash.toHex(), numExamples: charlieInfo.numExamples.toNumber(),
    stake: charlieInfo.stake.toString(), reserved: await reserved(charlie) };

  // 5. Past the join deadline; //Bob takes the aggregator role ---------------------------------
  step('federatedTasks.claimAggregator');
  while (await blockNumber() < joinDeadline) await ok('remark', api.tx.system.remark('0x00'), alice);
  // the join deadline's hook opened the task: its event is in that block's System.Events, outside any extrinsic
  const atDeadline = await api.at(await api.rpc.chain.getBlockHash(joinDeadline));
  const hooked = (await atDeadline.query.system.events()).map(eventJson);
  for (const e of hooked) report.eventsSeen[e.name] ??= e.fields;
  const statusBeforeClaim = (await api.query.federatedTasks.tasks(taskId)).unwrap().status.type;
  const claimed = await ok('claimAggregator', fl.claimAggregator(taskId, ENDPOINT), bob);
  const running = (await api.query.federatedTasks.tasks(taskId)).unwrap().status.asRunning;
  const heartbeat = await ok('heartbeat', fl.heartbeat(taskId), bob);
  report.claim = { events: claimed.events.map((e) => e.name), event: event(claimed, 'AggregatorClaimed'),
    opened: hooked.find((e) => e.name === 'federatedTasks.TaskOpened') ?? null, statusBeforeClaim,
    heartbeat: event(heartbeat, 'Heartbeat'), running: { aggregator: running.aggregator.toString(),
      leaseUntil: running.leaseUntil.toNumber(), endpoint: u8aToString(running.endpoint) } };

  // 6. Signed updates and the round commit -----------------------------------------------------
  step('federatedTasks.commitRound');
  const commitmentBytes = (task, round, base, update, examples) => u8aConcat(stringToU8a(UPDATE_CONTEXT),
    api.createType('(u64, u32, H256, H256, u64)', [task, round, base, update, examples]).toU8a());
  const signedUpdates = (task, round, base) => clients
    .map((c, i) => ({ c, update: hash(`f${i}`) }))
    .sort((a, b) => Buffer.compare(Buffer.from(a.c.pair.publicKey), Buffer.from(b.c.pair.publicKey)))
    .map(({ c, update }) => {
      const message = commitmentBytes(task, round, base, update, c.examples);
      const signature = c.pair.sign(message);
      return { message: u8aToHex(message), valid: signatureVerify(message, signature, c.pair.address).isValid,
        entry: { client: c.pair.address, updateHash: update, numExamples: c.examples,
          signature: { [c.scheme]: signature } } };
    });
  const round1 = signedUpdates(taskId, 1, INITIAL_MODEL);
  const updates = round1.map((u) => u.entry);
  const globalModel = hash('9a');
  const commit = (round, base, list) => fl.commitRound(taskId, round, base, globalModel, hash('d0'),
    'file:///rounds/1', list);
  await refuse('commit by a client', commit(1, INITIAL_MODEL, updates), charlie, taskId);
  await refuse('round 2 first', commit(2, INITIAL_MODEL, updates), bob, taskId);
  const forged = signedUpdates(taskId + 1, 1, INITIAL_MODEL).map((u) => u.entry);
  await refuse('signature over another task', commit(1, INITIAL_MODEL, forged), bob, taskId);
  const committed = await ok('commitRound', commit(1, INITIAL_MODEL, updates), bob);
  const record = (await api.query.federatedTasks.rounds(taskId, 1)).unwrap();
  report.commit = {
    signed: round1.map((u) => ({ client: u.entry.client, scheme: Object.keys(u.entry.signature)[0],
      updateHash: u.entry.updateHash, numExamples: u.entry.numExamples, message: u.message, valid: u.valid })),
    event: event(committed, 'RoundCommitted'),
    record: { aggregator: record.aggregator.toString(), baseModelHash: record.baseModelHash.toHex(),
      globalModelHash: record.globalModelHash.toHex(), updateRoot: record.updateRoot.toHex(),
      roundDocHash: record.roundDocHash.toHex(), artifactUri: u8aToString(record.artifactUri),
      participants: record.participants.map(([who, n]) => [who.toString(), n.toNumber()]),
      status: record.status.type },
    leafCheck: u8aToHex(blake2AsU8a(u8aConcat(edClient.publicKey, commitmentBytes(taskId, 1, INITIAL_MODEL,
      hash('f2'), 200).slice(UPDATE_CONTEXT.length))))
  };

  // 7. Holdout, the verdict, a locked stake ----------------------------------------------------
  step('federatedTasks.revealHoldout');
  const revealed = await ok('revealHoldout', fl.revealHoldout(taskId, HOLDOUT.salt, HOLDOUT.holdoutHash,
    HOLDOUT.holdoutSize, HOLDOUT.holdoutUri), alice);
  await refuse('withdraw while running', fl.withdrawStake(taskId), charlie, taskId);
  step('federatedTasks.submitRoundVerdict');
  const verdict = { accept: true, measuredMetric: 850_000, evidenceHash: hash('ed'), rejectedClients: [],
    contributions: updates.map(() => PERBILL) };
  await refuse('verdict by the requester', fl.submitRoundVerdict(taskId, 1, verdict), alice, taskId);
  const judged = await ok('submitRoundVerdict', fl.submitRoundVerdict(taskId, 1, verdict), ferdie);
  report.verdict = { events: judged.events.map((e) => e.name),
    accepted: event(judged, 'RoundAccepted'),
    paid: judged.events.filter((e) => e.name === 'federatedTasks.ClientPaid').map((e) => e.data),
    status: (await api.query.federatedTasks.rounds(taskId, 1)).unwrap().status.type,
    stored: (await api.query.federatedTasks.roundVerdicts(taskId, 1, ferdie.address)).isSome,
    holdout: event(revealed, 'HoldoutRevealed'),
    holdoutStored: (await api.query.federatedTasks.holdouts(taskId)).unwrap().toJSON() };

  // 8. Release, cancel, withdraw ---------------------------------------------------------------
  step('federatedTasks.release');
  const released = await ok('release', fl.release(taskId), bob);
  const taskAfterRelease = (await api.query.federatedTasks.tasks(taskId)).unwrap();
  step('federatedTasks.cancelTask');
  const cancelled = await ok('cancelTask (Open)', fl.cancelTask(taskId), alice);
  step('federatedTasks.withdrawStake');
  report.withdrawals = [];
  for (const c of clients) {
    const withdrawn = await ok(`withdraw ${c.pair.address}`, fl.withdrawStake(taskId), c.pair);
    report.withdrawals.push({ event: event(withdrawn, 'StakeWithdrawn'), reserved: await reserved(c.pair) });
  }
  await refuse('withdraw twice', fl.withdrawStake(taskId), charlie, taskId);
  const task = (await api.query.federatedTasks.tasks(taskId)).unwrap();
  report.end = { released: event(released, 'AggregatorReleased'), statusAfterRelease: taskAfterRelease.status.type,
    cancelled: event(cancelled, 'TaskCancelled'), status: task.status.type, paid: task.paid.toString(),
    lastCommitted: task.lastCommitted.toNumber(), lastAccepted: task.lastAccepted.toNumber(),
    acceptedModelHash: task.acceptedModelHash.toHex(), reservedAlice: await reserved(alice),
    nextTaskId: (await api.query.federatedTasks.nextTaskId()).toNumber() };
}, { timeoutMs: Number(process.env.FL_FLOW_TIMEOUT_MS || 90_000) });
