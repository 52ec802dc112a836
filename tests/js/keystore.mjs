// Polkadot.js (@polkadot/keyring 14.0.3, unchanged) reading and writing keystore JSON files, for
// tests/compat/test_polkadot_js_keystore.py. The password comes from $KEYSTORE_PASSWORD (not argv).
//
//   node tests/js/keystore.mjs decrypt FILE MESSAGE [MNEMONIC]
//       keyring.addFromJson(json); pair.decodePkcs8(password); prints {address, publicKey, type, signature of
//       MESSAGE, fromMnemonic: the address Polkadot.js derives from MNEMONIC for the same key type}
//   node tests/js/keystore.mjs encrypt SURI TYPE
//       prints keyring.addFromUri(SURI).toJson(password): a keystore as Polkadot.js writes it
//
// Exit 0 with one JSON line on stdout; exit 1 with the error on stderr (a wrong password among them).

import { readFileSync } from 'node:fs';
import { Keyring } from '@polkadot/keyring';
import { stringToU8a, u8aToHex } from '@polkadot/util';
import { cryptoWaitReady } from '@polkadot/util-crypto';

async function main() {
  await cryptoWaitReady();
  const password = process.env.KEYSTORE_PASSWORD;
  const [command, ...args] = process.argv.slice(2);
  if (command === 'decrypt') {
    const [file, message, mnemonic] = args;
    const json = JSON.parse(readFileSync(file, 'utf8'));
    const type = json.encoding.content[1];
    const keyring = new Keyring({ type, ss58Format: 42 });
    const pair = keyring.addFromJson(json);
    pair.decodePkcs8(password);
    const report = { address: pair.address, publicKey: u8aToHex(pair.publicKey), type: pair.type,
                     locked: pair.isLocked, signature: u8aToHex(pair.sign(stringToU8a(message))) };
    if (mnemonic) report.fromMnemonic = new Keyring({ type, ss58Format: 42 }).addFromMnemonic(mnemonic).address;
    console.log(JSON.stringify(report));
  } else if (command === 'encrypt') {
    const [suri, type] = args;
    console.log(JSON.stringify(new Keyring({ type, ss58Format: 42 }).addFromUri(suri).toJson(password)));
  } else {
    throw new Error('usage: keystore.mjs decrypt FILE MESSAGE [MNEMONIC] | encrypt SURI TYPE');
  }
}

main().then(() => process.exit(0), (error) => {
  console.error(String(error && error.message ? error.message : error));
  process.exit(1);
});
