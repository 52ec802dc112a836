import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
const api = await ApiPromise.create({ provider: new WsProvider('ws://127.0.0.1:19945'), noInitWarn: true });
const kr = new Keyring({ type: 'sr25519', ss58Format: 2 });
const alice = kr.addFromUri('//Alice'); const bob = kr.addFromUri('//Bob');
console.log('genesis', api.genesisHash.toHex(), api.runtimeVersion.specVersion.toString(), api.registry.signedExtensions);
try {
  const tx = api.tx.balances.transferAllowDeath(bob.address, 10n**12n);
  const signed = await tx.signAsync(alice, { era: 0 });
  console.log('hex', signed.toHex().slice(0, 200));
  const h = await api.rpc.author.submitExtrinsic(signed);
  console.log('ok', h.toHex());
} catch (e) { console.log('ERR', e.message); }
await api.disconnect();
