#!/usr/bin/env python3
"""Collaborative models on devnet (issue 15): add_data transactions included per second and the cost of predict,
against a plain transfer in the same run.

One devnet (in this process, on a thread, instant seal, free port) and one model: a NearestCentroid of 30
features and 2 classes, as the DeCAI experiment deploys (workers/collab/experiment.py), under Points (no deposit,
so that six senders never run dry). Side by side, alternating, after one warm-up batch of each:

* **throughput**: `--count` extrinsics pre-signed offline before the clock starts (//Alice..//Ferdie, consecutive
  nonces each), sent with author_submitExtrinsic without waiting, the clock stopped when every sender's nonce
  shows all of them included: `Balances.transfer_keep_alive` batches against `CollaborativeModels.add_data`
  batches (a dense 30-value input, label alternating);
* **latency**: one transfer submitted and waited for (inclusion) against one predict (the runtime API through
  state_call, no transaction) of the same input, `--calls` of each, alternating;
* the weight and fee the chain charges each call (TransactionPaymentApi), which is what block space costs.

Usage (from the repository root)::

    .venv/bin/python benchmarks/collab.py [--count 300] [--rounds 3] [--calls 200]

Output: a table on stdout and JSON in benchmarks/results/collab.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SENDERS = ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie")
FEATURES = 30


def _model(chain: Any, owner: Any) -> int:
    from runtime_bindings.generated import types as t

    waits = t.Waits(refund_wait_s=86_400, owner_claim_wait_s=86_400, any_claim_wait_s=86_400)
    receipt = chain.collaborative_models.deploy(owner, FEATURES, 2, t.ModelParams.NearestCentroid(
        centroids=[[0] * FEATURES, [10**9] * FEATURES], counts=[1, 1]), t.Mechanism.Points(waits=waits))
    return int(next(e.model for e in receipt.events if e.name == "ModelDeployed"))


def _calls(kind: str, model: int, count: int, receiver: str) -> list[Any]:
    from runtime_bindings import collab as bc
    from runtime_bindings.generated.balances import TransferKeepAliveCall
    from runtime_bindings.generated.collaborative_models import AddDataCall

    if kind == "transfer":
        return [TransferKeepAliveCall(dest=receiver, value=10**10 + i) for i in range(count)]
    return [AddDataCall(model=model, input=bc.dense([(i % 7) / 7] * FEATURES), label=i % 2) for i in range(count)]


def _batch(chain: Any, keys: list[Any], calls: list[Any]) -> float:
    """Seconds from the first send until every one of `calls` is included (pre-signed before the clock)."""
    start = {k.ss58_address: int(chain.rpc("system_accountNextIndex", [k.ss58_address])) for k in keys}
    signed, target = [], dict(start)
    for i, call in enumerate(calls):
        key = keys[i % len(keys)]
        signed.append(chain.sign(call, key, nonce=target[key.ss58_address]))
        target[key.ss58_address] += 1
    first = chain.best_number() + 1
    began = time.perf_counter()
    for raw in signed:
        chain.rpc("author_submitExtrinsic", [raw])
    while any(int(chain.rpc("system_accountNextIndex", [a])) < n or _pending(chain) for a, n in target.items()):
        time.sleep(0.002)
    seconds = time.perf_counter() - began
    included = sum(len(chain.rpc("chain_getBlock", [chain.block_hash(n)])["block"]["extrinsics"]) - 1
                   for n in range(first, chain.best_number() + 1))   # less each block's timestamp inherent
    if included != len(calls):
        raise RuntimeError(f"{included} of {len(calls)} extrinsics were included")
    return seconds


def _pending(chain: Any) -> bool:
    return bool(chain.rpc("author_pendingExtrinsics", []))


def _latencies(chain: Any, model: int, alice: Any, bob: str, calls: int) -> dict[str, list[float]]:
    from runtime_bindings import collab as bc

    out: dict[str, list[float]] = {"transfer": [], "predict": []}
    values = bc.dense([0.5] * FEATURES)
    for _ in range(calls):
        began = time.perf_counter()
        chain.balances.transfer_keep_alive(alice, bob, 10**10)
        out["transfer"].append(time.perf_counter() - began)
        began = time.perf_counter()
        bc.predict(chain, model, values)
        out["predict"].append(time.perf_counter() - began)
    return out


def _charge(chain: Any, call: Any, signer: Any) -> dict[str, int]:
    raw = chain.sign(call, signer)
    info = chain.rpc("payment_queryInfo", [raw])
    return {"weight": int(info["weight"]["ref_time"]), "fee": int(info["partialFee"]), "bytes": len(raw) // 2 - 1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="extrinsics per batch (default 300)")
    parser.add_argument("--rounds", type=int, default=3, help="measured batches of each kind (default 3)")
    parser.add_argument("--calls", type=int, default=200, help="latency samples of each kind (default 200)")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "collab.json"))
    args = parser.parse_args(argv)

    from paratrain.local import DevnetThread, dev_keypair
    from runtime_bindings import Chain

    keys = [dev_keypair(n) for n in SENDERS]
    receiver = dev_keypair("Ferdie").ss58_address
    rates: dict[str, list[float]] = {"transfer": [], "add_data": []}
    with DevnetThread(0, 0) as devnet, Chain.connect(devnet.url, timeout=30) as chain:
        model = _model(chain, keys[0])
        for kind in ("transfer", "add_data"):   # warm-up, left out
            _batch(chain, keys, _calls(kind, model, args.count // 3, receiver))
        for r in range(args.rounds):
            for kind in (("transfer", "add_data") if r % 2 == 0 else ("add_data", "transfer")):
                seconds = _batch(chain, keys, _calls(kind, model, args.count, receiver))
                rates[kind].append(args.count / seconds)
        latency = _latencies(chain, model, keys[0], receiver, args.calls)
        charges = {kind: _charge(chain, _calls(kind, model, 1, receiver)[0], keys[1])
                   for kind in ("transfer", "add_data")}
    result = {
        "count": args.count, "rounds": args.rounds, "calls": args.calls,
        "included_per_s": {k: statistics.median(v) for k, v in rates.items()}, "rates": rates,
        "latency_ms": {k: {"median": 1000 * statistics.median(v), "p90": 1000 * sorted(v)[int(0.9 * len(v))]}
                       for k, v in latency.items()},
        "charges": charges,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    per_s, ms = result["included_per_s"], result["latency_ms"]
    print(f"{'':<22}{'transfer':>14}{'add_data / predict':>22}{'ratio':>8}")
    print(f"{'included per s':<22}{per_s['transfer']:>14.1f}{per_s['add_data']:>22.1f}"
          f"{per_s['add_data'] / per_s['transfer']:>8.2f}")
    print(f"{'latency ms (median)':<22}{ms['transfer']['median']:>14.2f}{ms['predict']['median']:>22.2f}"
          f"{ms['predict']['median'] / ms['transfer']['median']:>8.2f}")
    print(f"{'weight (ref_time)':<22}{charges['transfer']['weight']:>14,}{charges['add_data']['weight']:>22,}"
          f"{charges['add_data']['weight'] / charges['transfer']['weight']:>8.2f}")
    print(f"{'fee (planck)':<22}{charges['transfer']['fee']:>14,}{charges['add_data']['fee']:>22,}"
          f"{charges['add_data']['fee'] / charges['transfer']['fee']:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
