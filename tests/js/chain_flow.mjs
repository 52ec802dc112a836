// What every Polkadot.js flow script here needs: signing with a pool-aware nonce, waiting for the block,
// decoding events and module errors through the metadata, and one JSON report on stdout.
//
//   import { runFlow } from './chain_flow.mjs';
//   runFlow('secagg_flow', async ({ api, ok, refuse, event, report, step }) => { ... });
//
// Exit 0 with the report on stdout; exit 1 with the error (and the step it failed in) on stderr on any
// failure, or after the global timeout.

import { ApiPromise, WsProvider } from '@polkadot/api';
import { cryptoWaitReady } from '@polkadot/util-crypto';

const STEP_TIMEOUT_MS = 30_000;

const fieldNames = (event) => {
  const names = event.data.names;
  return names && names.length ? names : event.meta.fields.map((f) => f.name.isSome ? f.name.unwrap().toString() : null);
};

export const eventJson = ({ event }) => {
  const names = fieldNames(event);
  const data = {};
  event.data.forEach((value, i) => { data[names[i] ?? String(i)] = value.toString(); });
  return { name: `${event.section}.${event.method}`, fields: names, data };
};

/** A dispatch error as Polkadot.js decodes it: module errors through the metadata. */
export const decodeDispatchError = (api, dispatchError) => {
  if (!dispatchError) return null;
  if (dispatchError.isModule) {
    const meta = api.registry.findMetaError(dispatchError.asModule);
    return { kind: 'Module', section: meta.section, name: meta.name, docs: meta.docs.join(' '),
      full: `${meta.section}.${meta.name}` };
  }
  return { kind: dispatchError.type, full: dispatchError.toString() };
};

export function runFlow (name, body, { timeoutMs = 90_000 } = {}) {
  const url = process.argv[2];
  if (!url) {
    console.error(`usage: node ${name}.mjs <ws-url>`);
    process.exit(2);
  }
  let currentStep = 'connect';
  const step = (label) => { currentStep = label; if (process.env.FLOW_VERBOSE) console.error(`step: ${label}`); };
  const fail = (error) => {
    console.error(`${name} failed during step "${currentStep}"`);
    console.error(`${name} failed:`, error && error.stack ? error.stack : error);
    process.exit(1);
  };
  const globalTimer = setTimeout(() => fail(new Error(`global timeout of ${timeoutMs} ms`)), timeoutMs);
  process.on('unhandledRejection', fail);
  process.on('uncaughtException', fail);

  const main = async () => {
    const api = await ApiPromise.create({ provider: new WsProvider(url) });
    await cryptoWaitReady();
    const report = { eventsSeen: {}, refusals: {} };

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
            settle(resolve, { nonce, blockHash: (status.isInBlock ? status.asInBlock : status.asFinalized).toHex(),
              records: result.events, events, dispatchError: decodeDispatchError(api, result.dispatchError) });
          } else if (status.isDropped || status.isInvalid || status.isUsurped) {
            settle(reject, new Error(`${label}: transaction ${status.type}`));
          }
        });
        unsubscribe.catch((error) => settle(reject, error));
      });
    };
    const ok = async (label, tx, signer) => {
      const outcome = await send(label, tx, signer);
      if (outcome.dispatchError) throw new Error(`${label} failed: ${outcome.dispatchError.full}`);
      return outcome;
    };
    /** A call that must fail: its decoded error and events, and whether `snapshot()` is unchanged by it. */
    const refuse = async (label, tx, signer, snapshot = async () => null) => {
      const before = await snapshot();
      const outcome = await send(label, tx, signer);
      if (!outcome.dispatchError) throw new Error(`${label} succeeded; a module error was expected`);
      report.refusals[label] = { error: outcome.dispatchError, events: outcome.events.map((e) => e.name),
        unchanged: before === await snapshot() };
    };
    const event = (outcome, full) => outcome.events.find((e) => e.name === full) ?? null;
    const blockNumber = async () => (await api.rpc.chain.getHeader()).number.toNumber();

    await body({ api, report, step, send, ok, refuse, event, blockNumber });
    step('disconnect');
    await api.disconnect();
    clearTimeout(globalTimer);
    process.stdout.write(JSON.stringify(report) + '\n');
    process.exit(0);
  };
  main().catch(fail);
}
