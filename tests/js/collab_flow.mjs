// Polkadot.js, unchanged, deploys a collaborative model on a running devnet, adds data and asks it to predict:
// one JSON report.
//
//   node tests/js/collab_flow.mjs ws://127.0.0.1:9944
//
// With the API Polkadot.js decorates from the node's metadata:
//   1. //Alice deploys a two-feature Perceptron under Deposit-Refund-Take (collaborativeModels.deploy);
//   2. //Bob adds (1.0, 0.5) labelled 1: the weights move and a deposit is reserved; a wrong dimension and a class
//      out of range are refused by name (DimensionMismatch, ClassOutOfRange) and change nothing;
//   3. predict needs no transaction: the runtime API CollaborativeModelsApi_predict through state_call, its
//      (u64, Input) argument and Result<u32, DispatchError> answer built and read with the registry's own types;
//      a missing model answers its ModelNotFound module error;
//   4. //Bob takes his deposit back with refund (the refund wait is 0 here).
// Helpers (nonces, events, module errors, the report) are tests/js/chain_flow.mjs.

import { u8aConcat, u8aToHex } from '@polkadot/util';
import { Keyring } from '@polkadot/keyring';
import { runFlow } from './chain_flow.mjs';

const TO_FLOAT = 1_000_000_000n;
const WAITS = { refundWaitS: 0, ownerClaimWaitS: 3_600, anyClaimWaitS: 7_200 };

runFlow('collab_flow', async ({ api, report, step, ok, refuse, event }) => {
  const cm = api.tx.collaborativeModels;
  const sr = new Keyring({ type: 'sr25519', ss58Format: api.registry.chainSS58 });
  const [alice, bob] = ['Alice', 'Bob'].map((name) => sr.addFromUri(`//${name}`));
  const dense = (...values) => ({ Dense: values.map((v) => BigInt(Math.round(v * 1e9))) });
  const predict = async (model, input) => {
    const arg = u8aConcat(api.createType('u64', model).toU8a(),
      api.createType('PalletCollaborativeModelsInput', input).toU8a());
    const raw = await api.rpc.state.call('CollaborativeModelsApi_predict', u8aToHex(arg));   // hex: raw bytes
    const result = api.createType('Result<u32, SpRuntimeDispatchError>', raw);
    if (result.isOk) return { ok: result.asOk.toNumber() };
    const error = api.registry.findMetaError(result.asErr.asModule);
    return { err: `${error.section}.${error.name}` };
  };

  step('collaborativeModels.deploy');
  const initial = { Perceptron: { weights: [0, 0], intercept: 0, learningRate: TO_FLOAT } };
  const deployed = await ok('deploy', cm.deploy(2, 2, initial,
    { DepositRefundTake: { waits: WAITS, costWeight: 1_000_000_000n } }), alice);
  const model = Number(event(deployed, 'collaborativeModels.ModelDeployed').data.model);
  report.model = model;
  report.before = await predict(model, dense(1.0, 0.5));

  step('collaborativeModels.addData');
  const contributions = async () => (await api.query.collaborativeModels.models(model)).unwrap().contributions
    .toString();
  await refuse('wrong dimension', cm.addData(model, dense(1, 2, 3), 0), bob, contributions);
  await refuse('class out of range', cm.addData(model, dense(1, 2), 7), bob, contributions);
  const added = await ok('addData', cm.addData(model, dense(1.0, 0.5), 1), bob);
  report.added = event(added, 'collaborativeModels.DataAdded');
  report.weights = (await api.query.collaborativeModels.parameters(model)).unwrap().asPerceptron.weights
    .map((w) => w.toString());
  report.reserved = (await api.query.system.account(bob.address)).data.reserved.toString();

  step('CollaborativeModelsApi_predict');
  report.after = await predict(model, dense(1.0, 0.5));
  report.sparse = await predict(model, { Sparse: [0] });
  report.missing = await predict(model + 100, dense(1.0, 0.5));

  step('collaborativeModels.refund');
  const refunded = await ok('refund', cm.refund(model, 0), bob);
  report.refunded = event(refunded, 'collaborativeModels.Refunded');
});
