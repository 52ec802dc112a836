// Polkadot.js, unchanged, drives the paratrain pallets on a running devnet: prints one JSON report.
//
//   node tests/js/task_flow.mjs ws://127.0.0.1:9944
//
// With the API Polkadot.js decorates from the node's metadata (api.tx.workers,
// api.tx.taskBounties, api.query.taskBounties, api.consts.*):
//   1. //Bob registers as a Trainer with api.tx.workers.register(role, stake, capabilities),
//      stake = api.consts.workers.minTrainerStake;
//   2. //Alice posts a task with api.tx.taskBounties.createTask(spec, bounty, minStake,
//      deadline, validatorsRequired, holdoutCommitment); the id comes from TaskCreated;
//   3. //Charlie (not a worker) claims it: the dispatch fails, and Polkadot.js decodes the
//      module error with api.registry.findMetaError -> taskBounties.NotTrainer; the task
//      stays Open (read back);
//   4. //Bob claims it with api.tx.taskBounties.claimTask(id);
//   5. api.query.taskBounties.tasks(id) and api.query.system.account read it all back.
// Helpers (nonces, events, module errors, the report) are tests/js/chain_flow.mjs.

import { Keyring } from '@polkadot/keyring';
import { u8aToString } from '@polkadot/util';
import { runFlow } from './chain_flow.mjs';

const UNIT = 10n ** 12n;
const BOUNTY = 10n * UNIT;
const DEADLINE_AHEAD = 100; // blocks after the current one
const RECIPE = 'resnet18-cifar10';
const SPEC_URI = 'ipfs://bafy-task-flow-spec';
const EVAL_METRIC = 'accuracy';
const CAPABILITIES = { cpus: 8, gpus: 1, gpuModel: 'A100-80GB', memoryMb: 65_536 };
const REQUIREMENTS = { minCpus: 4, minGpus: 1, minMemoryMb: 16_384 };

runFlow('task_flow', async ({ api, report, step, send }) => {
  const keyring = new Keyring({ type: 'sr25519', ss58Format: api.registry.chainSS58 });
  const alice = keyring.addFromUri('//Alice');
  const bob = keyring.addFromUri('//Bob');
  const charlie = keyring.addFromUri('//Charlie');
  report.addresses = { alice: alice.address, bob: bob.address, charlie: charlie.address };

  const reserved = async () => {
    const [a, b, c] = await Promise.all([alice, bob, charlie].map((p) => api.query.system.account(p.address)));
    return { alice: a.data.reserved.toString(), bob: b.data.reserved.toString(), charlie: c.data.reserved.toString() };
  };

  const expectSuccess = (label, outcome) => {
    if (outcome.dispatchError) throw new Error(`${label} failed: ${outcome.dispatchError.full}`);
    return outcome;
  };

  // Constants --------------------------------------------------------------------------------
  step('consts');
  const minTrainerStake = api.consts.workers.minTrainerStake.toBigInt();
  report.consts = {
    minTrainerStake: minTrainerStake.toString(),
    taskDeposit: api.consts.taskBounties.taskDeposit.toString(),
    minBounty: api.consts.taskBounties.minBounty.toString(),
    claimLease: api.consts.taskBounties.claimLease.toNumber(),
    maxValidatorsRequired: api.consts.taskBounties.maxValidatorsRequired.toNumber()
  };
  report.reservedBefore = await reserved();

  // 1. //Bob registers as a Trainer ----------------------------------------------------------
  step('workers.register');
  const registered = expectSuccess('workers.register', await send('workers.register',
    api.tx.workers.register('Trainer', minTrainerStake, CAPABILITIES), bob));
  const worker = await api.query.workers.workers(bob.address);
  if (worker.isNone) throw new Error('Bob is not in workers.workers after register');
  const info = worker.unwrap();
  report.register = {
    nonce: registered.nonce,
    events: registered.events.map((e) => e.name),
    worker: {
      role: info.role.type,
      stake: info.stake.toString(),
      status: info.status.type,
      capabilities: { ...info.capabilities.toJSON(), gpuModel: u8aToString(info.capabilities.gpuModel) }
    }
  };

  // 2. //Alice creates a task ----------------------------------------------------------------
  step('taskBounties.createTask');
  const current = (await api.rpc.chain.getHeader()).number.toNumber();
  const deadline = current + DEADLINE_AHEAD;
  const spec = {
    recipe: RECIPE,
    specHash: '0x' + '11'.repeat(32),
    specUri: SPEC_URI,
    datasetHash: '0x' + '22'.repeat(32),
    evalMetric: EVAL_METRIC,
    evalTarget: 900_000, // micro-units: 0.9
    higherIsBetter: true,
    requirements: REQUIREMENTS,
    parentModel: null
  };
  const created = expectSuccess('taskBounties.createTask', await send('taskBounties.createTask',
    api.tx.taskBounties.createTask(spec, BOUNTY, minTrainerStake, deadline, 1, null), alice));
  const createdRecord = created.records.find(({ event }) => api.events.taskBounties.TaskCreated.is(event));
  if (!createdRecord) throw new Error(`no TaskCreated among ${created.events.map((e) => e.name)}`);
  const taskId = createdRecord.event.data.taskId.toNumber();
  report.create = {
    bounty: BOUNTY.toString(),
    minStake: minTrainerStake.toString(),
    currentBlock: current,
    deadline,
    taskId,
    blockHash: created.blockHash,
    events: created.events.map((e) => e.name),
    event: created.events.find((e) => e.name === 'taskBounties.TaskCreated')
  };

  // 3. //Charlie, not a worker, claims: taskBounties.NotTrainer -----------------------------
  step('taskBounties.claimTask by //Charlie');
  const refused = await send('claimTask by Charlie', api.tx.taskBounties.claimTask(taskId), charlie);
  if (!refused.dispatchError) throw new Error("Charlie's claim succeeded; NotTrainer expected");
  const statusAfterRefusal = (await api.query.taskBounties.tasks(taskId)).unwrap().status.type;
  report.charlieClaim = {
    error: refused.dispatchError,
    events: refused.events.map((e) => e.name),
    taskStatusAfter: statusAfterRefusal
  };

  // 4. //Bob claims it -----------------------------------------------------------------------
  step('taskBounties.claimTask by //Bob');
  const claimed = expectSuccess('claimTask by Bob', await send('claimTask by Bob',
    api.tx.taskBounties.claimTask(taskId), bob));
  const claimBlock = (await api.rpc.chain.getHeader(claimed.blockHash)).number.toNumber();
  report.claim = {
    nonce: claimed.nonce,
    blockNumber: claimBlock,
    events: claimed.events.map((e) => e.name),
    event: claimed.events.find((e) => e.name === 'taskBounties.TaskClaimed') ?? null
  };

  // 5. Read it back --------------------------------------------------------------------------
  step('query.taskBounties.tasks');
  const stored = await api.query.taskBounties.tasks(taskId);
  if (stored.isNone) throw new Error(`taskBounties.tasks(${taskId}) is None`);
  const task = stored.unwrap();
  report.task = {
    id: taskId,
    requester: task.requester.toString(),
    bounty: task.bounty.toString(),
    deposit: task.deposit.toString(),
    minStake: task.minStake.toString(),
    deadline: task.deadline.toNumber(),
    validatorsRequired: task.validatorsRequired.toNumber(),
    holdoutCommitment: task.holdoutCommitment.isSome ? task.holdoutCommitment.unwrap().toHex() : null,
    status: task.status.type,
    claimant: task.status.isClaimed ? task.status.asClaimed.worker.toString() : null,
    leaseUntil: task.status.isClaimed ? task.status.asClaimed.leaseUntil.toNumber() : null,
    spec: {
      recipe: u8aToString(task.spec.recipe),
      specUri: u8aToString(task.spec.specUri),
      evalMetric: u8aToString(task.spec.evalMetric),
      evalTarget: task.spec.evalTarget.toString(),
      higherIsBetter: task.spec.higherIsBetter.isTrue,
      requirements: task.spec.requirements.toJSON(),
      parentModel: task.spec.parentModel.isSome ? task.spec.parentModel.unwrap().toHex() : null
    }
  };
  report.reservedAfter = await reserved();
  report.nextTaskId = (await api.query.taskBounties.nextTaskId()).toNumber();
}, { timeoutMs: Number(process.env.TASK_FLOW_TIMEOUT_MS || 60_000) });
