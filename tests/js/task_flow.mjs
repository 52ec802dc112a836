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
// Every transaction is signed with an explicit, pool-aware nonce from
// api.rpc.system.accountNextIndex. Exit 0 with the report on stdout; exit 1 with the
// error on stderr on any failure, or after a global timeout.

import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { u8aToString } from '@polkadot/util';
import { cryptoWaitReady } from '@polkadot/util-crypto';

const GLOBAL_TIMEOUT_MS = Number(process.env.TASK_FLOW_TIMEOUT_MS || 60_000);
const STEP_TIMEOUT_MS = 30_000;
const UNIT = 10n ** 12n;
const BOUNTY = 10n * UNIT;
const DEADLINE_AHEAD = 100; // blocks after the current one
const RECIPE = 'resnet18-cifar10';
const SPEC_URI = 'ipfs://bafy-task-flow-spec';
const EVAL_METRIC = 'accuracy';
const CAPABILITIES = { cpus: 8, gpus: 1, gpuModel: 'A100-80GB', memoryMb: 65_536 };
const REQUIREMENTS = { minCpus: 4, minGpus: 1, minMemoryMb: 16_384 };

const url = process.argv[2];
if (!url) {
  console.error('usage: node task_flow.mjs <ws-url>');
  process.exit(2);
}

let currentStep = 'connect';
const step = (name) => { currentStep = name; if (process.env.TASK_FLOW_VERBOSE) console.error(`step: ${name}`); };
const fail = (error) => {
  console.error(`task_flow failed during step "${currentStep}"`);
  console.error('task_flow failed:', error && error.stack ? error.stack : error);
  process.exit(1);
};
const globalTimer = setTimeout(() => fail(new Error(`global timeout of ${GLOBAL_TIMEOUT_MS} ms`)), GLOBAL_TIMEOUT_MS);
process.on('unhandledRejection', fail);
process.on('uncaughtException', fail);

const fieldNames = (event) => {
  const names = event.data.names;
  return names && names.length ? names : event.meta.fields.map((f) => f.name.isSome ? f.name.unwrap().toString() : null);
};

const eventJson = ({ event }) => {
  const names = fieldNames(event);
  const data = {};
  event.data.forEach((value, i) => { data[names[i] ?? String(i)] = value.toString(); });
  return { name: `${event.section}.${event.method}`, fields: names, data };
};

/** A dispatch error as Polkadot.js decodes it: module errors through the metadata. */
const decodeDispatchError = (api, dispatchError) => {
  if (!dispatchError) return null;
  if (dispatchError.isModule) {
    const meta = api.registry.findMetaError(dispatchError.asModule);
    return { kind: 'Module', section: meta.section, name: meta.name, docs: meta.docs.join(' '),
      full: `${meta.section}.${meta.name}` };
  }
  return { kind: dispatchError.type, full: dispatchError.toString() };
};

async function main () {
  step('connect');
  const api = await ApiPromise.create({ provider: new WsProvider(url) });
  await cryptoWaitReady();
  const report = { eventsSeen: {} };

  const keyring = new Keyring({ type: 'sr25519', ss58Format: api.registry.chainSS58 });
  const alice = keyring.addFromUri('//Alice');
  const bob = keyring.addFromUri('//Bob');
  const charlie = keyring.addFromUri('//Charlie');
  report.addresses = { alice: alice.address, bob: bob.address, charlie: charlie.address };

  const reserved = async () => {
    const [a, b, c] = await Promise.all([alice, bob, charlie].map((p) => api.query.system.account(p.address)));
    return { alice: a.data.reserved.toString(), bob: b.data.reserved.toString(), charlie: c.data.reserved.toString() };
  };

  /** signAndSend with an explicit pool-aware nonce; resolves at InBlock with the decoded outcome. */
  const send = async (label, tx, signer) => {
    const nonce = (await api.rpc.system.accountNextIndex(signer.address)).toNumber();
    return new Promise((resolve, reject) => {
      let unsubscribe = null;
      let settled = false;
      const timer = setTimeout(() => settle(reject, new Error(`timed out waiting for ${label} to be in a block`)),
        STEP_TIMEOUT_MS);
      const settle = (fn, value) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (unsubscribe) unsubscribe.then((unsub) => unsub(), () => {});
        fn(value);
      };
      unsubscribe = tx.signAndSend(signer, { nonce }, (result) => {
        const { status } = result;
        if (status.isInBlock || status.isFinalized) {
          const events = result.events.map(eventJson);
          for (const e of events) report.eventsSeen[e.name] ??= e.fields;
          settle(resolve, {
            nonce,
            blockHash: (status.isInBlock ? status.asInBlock : status.asFinalized).toHex(),
            records: result.events,
            events,
            dispatchError: decodeDispatchError(api, result.dispatchError)
          });
        } else if (status.isDropped || status.isInvalid || status.isUsurped) {
          settle(reject, new Error(`${label}: transaction ${status.type}`));
        }
      });
      unsubscribe.catch((error) => settle(reject, error));
      if (settled) unsubscribe.then((unsub) => unsub(), () => {});
    });
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

  step('disconnect');
  await api.disconnect();
  clearTimeout(globalTimer);
  process.stdout.write(JSON.stringify(report) + '\n');
  process.exit(0);
}

main().catch(fail);
