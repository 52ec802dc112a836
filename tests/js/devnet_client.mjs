// Polkadot.js, unchanged, against a running devnet: prints one JSON report on stdout.
//
//   node tests/js/devnet_client.mjs ws://127.0.0.1:9944
//
// Connects with ApiPromise.create({ provider: new WsProvider(url) }), reads chain
// identity, constants and storage (also a paged map), queries the fee of a transfer,
// sends transferKeepAlive from //Alice to //Bob with signAndSend while it watches the
// status sequence and the events, subscribes to new and finalized heads and to Bob's
// account, and lists rpc_methods. Exit 0 with the report; exit 1 with the error on
// stderr on any failure, or after a global timeout.
//
// The only thing added around the API is an observer on the provider's send() and
// subscribe(): it records which JSON-RPC methods Polkadot.js issued, so that the
// test can check every one of them is listed by rpc_methods. It forwards every
// call unchanged.

import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';

const GLOBAL_TIMEOUT_MS = Number(process.env.DEVNET_CLIENT_TIMEOUT_MS || 60_000);
const STEP_TIMEOUT_MS = 30_000;
const TRANSFER = 2_000_000_000_000n; // 2 PARA (12 decimals)
const SECOND_TRANSFER = 1_000_000_000n;

const url = process.argv[2];
if (!url) {
  console.error('usage: node devnet_client.mjs <ws-url>');
  process.exit(2);
}

let currentStep = 'connect';
const step = (name) => { currentStep = name; if (process.env.DEVNET_CLIENT_VERBOSE) console.error(`step: ${name}`); };
const fail = (error) => {
  console.error(`devnet_client failed during step "${currentStep}"`);
  console.error('devnet_client failed:', error && error.stack ? error.stack : error);
  process.exit(1);
};
const globalTimer = setTimeout(() => fail(new Error(`global timeout of ${GLOBAL_TIMEOUT_MS} ms`)), GLOBAL_TIMEOUT_MS);
process.on('unhandledRejection', fail);
process.on('uncaughtException', fail);

/** A promise with its resolver, failing with `what` after STEP_TIMEOUT_MS. */
function deferred (what) {
  let resolve, reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), STEP_TIMEOUT_MS);
  promise.then(() => clearTimeout(timer), () => clearTimeout(timer));
  return { promise, resolve, reject };
}

const fieldNames = (event) => {
  const names = event.data.names;
  return names && names.length ? names : event.meta.fields.map((f) => f.name.isSome ? f.name.unwrap().toString() : null);
};

const eventJson = (record) => {
  const { event, phase } = record;
  const names = fieldNames(event);
  const data = {};
  event.data.forEach((value, i) => { data[names[i] ?? String(i)] = value.toString(); });
  return {
    name: `${event.section}.${event.method}`,
    section: event.section,
    method: event.method,
    fields: names,
    data,
    phase: phase.isApplyExtrinsic ? { applyExtrinsic: phase.asApplyExtrinsic.toNumber() } : phase.type
  };
};

async function main () {
  const provider = new WsProvider(url);

  // Observe (never alter) the JSON-RPC methods Polkadot.js issues.
  const calledMethods = new Set();
  const send = provider.send.bind(provider);
  const subscribe = provider.subscribe.bind(provider);
  provider.send = (method, ...rest) => { calledMethods.add(method); return send(method, ...rest); };
  provider.subscribe = (type, method, ...rest) => { calledMethods.add(method); return subscribe(type, method, ...rest); };

  step('connect');
  const api = await ApiPromise.create({ provider });
  await cryptoWaitReady();
  const report = {};

  // Identity, constants, storage ------------------------------------------------------------
  step('identity and constants');
  report.chain = (await api.rpc.system.chain()).toString();
  report.nodeName = (await api.rpc.system.name()).toString();
  report.genesisHash = api.genesisHash.toHex();
  report.runtime = {
    specName: api.runtimeVersion.specName.toString(),
    specVersion: api.runtimeVersion.specVersion.toNumber(),
    metadataVersion: api.runtimeMetadata.version
  };
  report.properties = api.registry.getChainProperties()?.toJSON() ?? null;
  report.consts = {
    existentialDeposit: api.consts.balances.existentialDeposit.toString(),
    ss58Prefix: api.consts.system.ss58Prefix.toNumber(),
    blockHashCount: api.consts.system.blockHashCount.toNumber()
  };

  const keyring = new Keyring({ type: 'sr25519', ss58Format: api.registry.chainSS58 });
  const alice = keyring.addFromUri('//Alice');
  const bob = keyring.addFromUri('//Bob');
  report.addresses = { alice: alice.address, bob: bob.address };

  step('storage');
  const aliceAccount = await api.query.system.account(alice.address);
  report.aliceAccount = {
    nonce: aliceAccount.nonce.toNumber(),
    consumers: aliceAccount.consumers.toNumber(),
    providers: aliceAccount.providers.toNumber(),
    sufficients: aliceAccount.sufficients.toNumber(),
    free: aliceAccount.data.free.toString(),
    reserved: aliceAccount.data.reserved.toString(),
    frozen: aliceAccount.data.frozen.toString()
  };
  report.totalIssuance = (await api.query.balances.totalIssuance()).toString();

  step('entriesPaged');
  const pages = [];
  const entries = [];
  let startKey;
  for (;;) {
    const page = await api.query.system.account.entriesPaged({ args: [], pageSize: 2, startKey });
    pages.push(page.length);
    for (const [key, value] of page) {
      entries.push({ address: key.args[0].toString(), free: value.data.free.toString() });
    }
    if (page.length < 2) break;
    startKey = page[page.length - 1][0].toHex();
    if (pages.length > 100) throw new Error('entriesPaged never ended');
  }
  report.paged = { pageSize: 2, pages, count: entries.length, entries };

  // Subscriptions, opened before the transfer -------------------------------------------------
  const heads = [];
  const finalizedHeads = [];
  const bobValues = [];
  const gotHead = deferred('a new head after the transfer');
  const gotFinalizedHead = deferred('a finalized head after the transfer');
  const gotInitial = deferred("the storage subscription's initial value");
  const gotUpdate = deferred("the storage subscription's updated value");
  let transferBlock = null;

  const checkHeads = () => {
    if (transferBlock !== null && heads.some((n) => n >= transferBlock)) gotHead.resolve();
    if (transferBlock !== null && finalizedHeads.some((n) => n >= transferBlock)) gotFinalizedHead.resolve();
  };
  step('subscriptions');
  const unsubHeads = await api.rpc.chain.subscribeNewHeads((header) => {
    heads.push(header.number.toNumber());
    checkHeads();
  });
  const unsubFinalized = await api.rpc.chain.subscribeFinalizedHeads((header) => {
    finalizedHeads.push(header.number.toNumber());
    checkHeads();
  });
  const subscribedAt = Date.now();
  let initialAfterMs = null;
  const unsubBob = await api.query.system.account(bob.address, (account) => {
    bobValues.push(account.data.free.toString());
    if (bobValues.length === 1) {
      initialAfterMs = Date.now() - subscribedAt;
      gotInitial.resolve();
    } else {
      gotUpdate.resolve();
    }
  });
  // The current value comes at once, before anything changed on chain.
  await gotInitial.promise;

  // Fees, then the transfer ------------------------------------------------------------------
  step('paymentInfo');
  const tx = api.tx.balances.transferKeepAlive(bob.address, TRANSFER);
  const info = await tx.paymentInfo(alice);
  report.paymentInfo = {
    partialFee: info.partialFee.toString(),
    weight: info.weight.toJSON(),
    class: info.class.toString()
  };

  step('signAndSend');
  const statuses = [];
  const statusTimes = [];
  const done = deferred('the transfer to be finalized');
  let events = [];
  let dispatchError = null;
  let txHash = null;
  let inBlockHash = null;
  let finalizedHash = null;
  const unsubTx = await tx.signAndSend(alice, (result) => {
    const { status } = result;
    statuses.push(status.type);
    statusTimes.push(Date.now());
    if (status.isInBlock) {
      inBlockHash = status.asInBlock.toHex();
      events = result.events.map(eventJson);
      if (result.dispatchError) {
        dispatchError = result.dispatchError.toString();
      }
    }
    if (status.isFinalized) {
      finalizedHash = status.asFinalized.toHex();
      done.resolve();
    }
    if (status.isDropped || status.isInvalid || status.isUsurped) {
      done.reject(new Error(`transaction ${status.type}`));
    }
  });
  txHash = tx.hash.toHex();
  await done.promise;
  unsubTx();

  step('getBlock');
  const signedBlock = await api.rpc.chain.getBlock(inBlockHash);
  transferBlock = signedBlock.block.header.number.toNumber();
  checkHeads();
  const ext = signedBlock.block.extrinsics.find((x) => x.hash.toHex() === txHash);
  report.transfer = {
    amount: TRANSFER.toString(),
    txHash,
    statuses,
    statusTimes,
    isReady: statuses.includes('Ready'),
    isInBlock: statuses.includes('InBlock'),
    isFinalized: statuses.includes('Finalized'),
    inBlockHash,
    finalizedHash,
    blockNumber: transferBlock,
    dispatchError,
    events,
    extrinsicInBlock: ext ? { section: ext.method.section, method: ext.method.method, signer: ext.signer.toString(), encodedLength: ext.encodedLength } : null,
    submittedLength: tx.encodedLength
  };
  // Events of the block as api.query.system.events decodes them.
  step('api.at(block).query.system.events');
  const at = await api.at(inBlockHash);
  report.blockEvents = (await at.query.system.events()).map(eventJson);

  step('heads and storage updates');
  await Promise.all([gotHead.promise, gotFinalizedHead.promise, gotUpdate.promise]);
  unsubHeads();
  unsubFinalized();
  unsubBob();
  report.heads = heads;
  report.finalizedHeads = finalizedHeads;
  report.storageSubscription = { values: bobValues, initialAfterMs };

  // A plain send without watching: submitExtrinsic returns the hash.
  step('plain signAndSend');
  const plainHash = await api.tx.balances.transferKeepAlive(bob.address, SECOND_TRANSFER).signAndSend(alice);
  report.plainSubmitHash = plainHash.toHex();
  report.nextNonce = (await api.rpc.system.accountNextIndex(alice.address)).toNumber();

  // The raw subscription under signAndSend, without its event fetching: the exact
  // status sequence the node sends.
  step('raw submitAndWatchExtrinsic');
  // The plain send may still be in the pool: Polkadot.js takes its default nonce from
  // AccountNonceApi (on-chain state), so take the pool-aware one, as a dapp would.
  const signed = await api.tx.balances.transferKeepAlive(bob.address, SECOND_TRANSFER)
    .signAsync(alice, { nonce: report.nextNonce });
  const rawStatuses = [];
  const rawDone = deferred('the raw watch to be finalized');
  const unsubRaw = await api.rpc.author.submitAndWatchExtrinsic(signed, (status) => {
    rawStatuses.push(status.toJSON());
    if (status.isFinalized) rawDone.resolve();
    if (status.isDropped || status.isInvalid || status.isUsurped) rawDone.reject(new Error(`raw watch ${status.type}`));
  });
  await rawDone.promise;
  unsubRaw();
  report.rawWatchStatuses = rawStatuses;

  step('rpc.methods');
  const methods = await api.rpc.rpc.methods();
  report.rpcMethods = methods.methods.map((m) => m.toString());
  report.calledMethods = [...calledMethods].sort();

  step('disconnect');
  await api.disconnect();
  clearTimeout(globalTimer);
  process.stdout.write(JSON.stringify(report) + '\n');
  process.exit(0);
}

main().catch(fail);
