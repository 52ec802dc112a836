// Polkadot.js, unchanged, registers a data set, buys access to it and opens a payment channel to an accepted
// model's service on a running devnet; the payment is signed here and claimed: one JSON report.
//
//   node tests/js/assets_flow.mjs ws://127.0.0.1:9944 0x<model hash with a registered service>
//
// With the API Polkadot.js decorates from the node's metadata:
//   1. //Alice registers a Paid data set (datasets.register); registering it again is refused by name
//      (AlreadyRegistered) and changes nothing; //Bob buys access (datasets.buyAccess) and holds a grant;
//   2. //Bob opens a channel to the model's service (paymentChannels.open); a deposit of 0 is refused
//      (InvalidDeposit);
//   3. //Bob signs a payment off chain: "paratrain/channel/v1" ++ SCALE(channel u64, nonce u32, amount u128),
//      built with the registry's own types; //Alice, the service's owner, claims it (paymentChannels.claim).
// Helpers (nonces, events, module errors, the report) are tests/js/chain_flow.mjs.

import { stringToU8a, u8aConcat, u8aToHex } from '@polkadot/util';
import { Keyring } from '@polkadot/keyring';
import { runFlow } from './chain_flow.mjs';

const DATASET = '0x' + '5a'.repeat(32);

runFlow('assets_flow', async ({ api, report, step, ok, refuse, event }) => {
  const modelHash = process.argv[3];
  const sr = new Keyring({ type: 'sr25519', ss58Format: api.registry.chainSS58 });
  const [alice, bob] = ['Alice', 'Bob'].map((name) => sr.addFromUri(`//${name}`));

  step('datasets.register');
  const register = () => api.tx.datasets.register(DATASET, 4096, 'npz', 'CC-BY-4.0', 2_000_000_000_000n,
    { Paid: null });
  const registered = await ok('register', register(), alice);
  report.registered = event(registered, 'datasets.DatasetRegistered');
  const snapshot = async () => (await api.query.datasets.datasets(DATASET)).toHex();
  await refuse('registered twice', register(), alice, snapshot);

  step('datasets.buyAccess');
  const bought = await ok('buyAccess', api.tx.datasets.buyAccess(DATASET), bob);
  report.bought = event(bought, 'datasets.AccessBought');
  report.grant = (await api.query.datasets.grants(DATASET, bob.address)).isSome;

  step('paymentChannels.open');
  const now = (await api.query.timestamp.now()).toBigInt();
  const open = (deposit) => api.tx.paymentChannels.open(modelHash, u8aToHex(bob.publicKey), deposit,
    now + 3_600_000n);
  const channels = async () => (await api.query.paymentChannels.nextChannelId()).toString();
  await refuse('zero deposit', open(0), bob, channels);
  const opened = await ok('open', open(5_000_000_000n), bob);
  report.opened = event(opened, 'paymentChannels.ChannelOpened');
  const channel = Number(report.opened.data.channel);

  step('paymentChannels.claim');
  const amount = 3_000_000_000n;
  const message = u8aConcat(stringToU8a('paratrain/channel/v1'), api.createType('u64', channel).toU8a(),
    api.createType('u32', 0).toU8a(), api.createType('u128', amount).toU8a());
  const claimed = await ok('claim', api.tx.paymentChannels.claim(channel, amount,
    { Sr25519: u8aToHex(bob.sign(message)) }), alice);
  report.claimed = event(claimed, 'paymentChannels.ChannelClaimed');
  report.channel = (await api.query.paymentChannels.channels(channel)).unwrap().toJSON();
});
