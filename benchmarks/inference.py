#!/usr/bin/env python3
"""Paid inference (issue 16): calls per second with a payment-channel payment on every call, against unpaid
calls on the same server code in the same run, and the on-chain claims per 1,000 paid calls.

Set-up: a devnet process, and in this process an accepted digits_mlp (paratrain/_local/serving.py: posted,
trained here, attested and accepted through TaskBounties), its service registered, and two gRPC servers of
`paratrain serve`'s code (workers/serving/server.py) sharing the one loaded model: one with the payment gate and
the claimer (every `--claim-every` paid calls), one without the gate (the baseline). The load comes from a
second process (so that client and server do not share a GIL), `--threads` threads each making unary
ModelInfer calls of one 64-feature row; for the paid rounds each thread pays through a channel of its own,
signing every call's cumulative amount (sr25519) as `paratrain infer` does. Rounds alternate, unpaid first,
after a warm-up of each.

Usage (from the repository root)::

    .venv/bin/python benchmarks/inference.py [--calls 4000] [--rounds 5] [--threads 4] [--claim-every 1000]

Output: a table on stdout and JSON in benchmarks/results/inference.json.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRICE = 10**9
PAYERS = ("Charlie", "Dave", "Eve", "Ferdie")
_CPU: list[tuple[bool, float]] = []   # (paid, this process's CPU µs per call) of each round: the server's cost


def _load(target: str, model: str, threads: int, calls: int, states: list[dict[str, int]] | None,
          results: Any) -> None:
    """The client process: `threads` threads share `calls` calls, each building its request and decoding the
    answer as `paratrain infer` does; paid threads (with `states`: each one's channel and place in it) sign a
    payment too. Puts (seconds, calls made, errors, the paid threads' states after)."""
    import numpy as np

    from paratrain_api.inference import grpc_predict_v2_pb2 as v2
    from runtime_bindings import Keypair
    from workers.serving.client import PaidClient
    from workers.serving.serde import decode_outputs, encode_input

    row = np.random.default_rng(0).uniform(0, 16, size=(1, 64)).astype(np.float32)
    per_thread = calls // threads
    errors: list[str] = []
    clients = []
    for i in range(threads):
        signer = Keypair.create_from_uri(f"//{PAYERS[i % len(PAYERS)]}")
        state = states[i] if states else {"channel": 0}
        clients.append(PaidClient(target, model, signer, state["channel"], PRICE, nonce=state.get("nonce", 0),
                                  owed=state.get("owed", 0), spent_before=state.get("spent_before", 0)))

    def unpaid(client: Any) -> None:
        tensor, raw = encode_input("input", np.atleast_2d(row))
        request = v2.ModelInferRequest(model_name=model, inputs=[tensor], raw_input_contents=[raw])
        decode_outputs(client.stub.ModelInfer(request, timeout=30))

    def work(client: Any) -> None:
        try:
            for _ in range(per_thread):
                client.infer(row) if states else unpaid(client)
        except Exception as exc:  # noqa: BLE001 - reported back, the run fails on it
            errors.append(repr(exc))

    workers = [threading.Thread(target=work, args=(c,)) for c in clients]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    after = [{"channel": c.channel, "nonce": c.nonce, "owed": c.owed, "spent_before": c.spent_before}
             for c in clients]
    results.put((time.perf_counter() - start, per_thread * threads, errors, after))


def _round(target: str, model: str, threads: int, calls: int, states: list[dict[str, int]] | None) -> float:
    """Calls per second of one round; paid rounds update `states` in place."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_load, args=(target, model, threads, calls, states, queue))
    proc.start()
    cpu = time.process_time()
    seconds, made, errors, after = queue.get(timeout=600)
    _CPU.append((states is not None, (time.process_time() - cpu) / made * 1e6))
    proc.join(60)
    if errors:
        raise SystemExit(f"the load failed: {errors[:3]}")
    if states is not None:
        states[:] = after
    return made / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000, help="calls per round (default 4000)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=4, help="client threads (default 4, at most 4)")
    parser.add_argument("--claim-every", type=int, default=1000,
                        help="claim a channel once it pays for this many calls (default 1000, as paratrain serve)")
    args = parser.parse_args()
    threads = min(args.threads, len(PAYERS))

    from paratrain._local.serving import accepted_model
    from paratrain.local import DevnetProcess, dev_keypair
    from runtime_bindings import Chain
    from runtime_bindings.values import H256, Bytes
    from workers.artifacts import ArtifactStore
    from workers.serving.model import load_accepted_model
    from workers.serving.payments import PaymentGate
    from workers.serving.server import ChainClock, Claimer, InferenceHandlers, build_server, channel_view

    alice = dev_keypair("Alice")
    # the chain in a process of its own: a service's node is not in its process, and block production must not
    # take the server's GIL
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp, DevnetProcess() as devnet, \
            Chain.connect(devnet.ws_url, timeout=30) as chain, Chain.connect(devnet.ws_url, timeout=30) as claims:
        store = ArtifactStore(tmp)
        made = accepted_model(chain, store, alice, dev_keypair("Bob"), dev_keypair("Ferdie"))
        chain.model_services.register(alice, made.model_hash, PRICE, Bytes(b"127.0.0.1"))
        model = load_accepted_model(chain, store, made.model_hash)
        lock = threading.Lock()

        def read(channel: int) -> Any:
            with lock:
                return channel_view(chain.payment_channels.channels(channel))

        clock = ChainClock(lambda: int(claims.timestamp.now()))
        gate = PaymentGate(bytes(H256.from_value(made.model_hash)), PRICE, read, clock.now_ms)
        claimer = Claimer(gate, claims, alice, claim_every=args.claim_every, claim_interval_s=3600, clock=clock)
        paid_server, paid_port = build_server(InferenceHandlers(model, gate, on_paid=claimer.paid), "127.0.0.1:0")
        free_server, free_port = build_server(InferenceHandlers(model, None), "127.0.0.1:0")
        paid_server.start()
        free_server.start()
        claiming = threading.Thread(target=claimer.run, daemon=True)
        claiming.start()
        total = (args.rounds + 1) * args.calls * PRICE * 2
        states: list[dict[str, int]] = []
        with lock:
            now = int(chain.timestamp.now())
            for i in range(threads):
                payer = dev_keypair(PAYERS[i])
                receipt = chain.payment_channels.open(payer, made.model_hash, H256(payer.public_key), total,
                                                      now + 3_600_000)
                states.append({"channel": int(next(e.channel for e in receipt.events if e.name == "ChannelOpened"))})
        paid_target, free_target = f"127.0.0.1:{paid_port}", f"127.0.0.1:{free_port}"
        _round(free_target, made.model_hash, threads, args.calls // 4, None)           # warm-ups
        _round(paid_target, made.model_hash, threads, args.calls // 4, states)
        claims_before, paid_calls = claimer.claims_made, 0
        rates: dict[str, list[float]] = {"unpaid": [], "paid": []}
        for number in range(args.rounds):
            rates["unpaid"].append(_round(free_target, made.model_hash, threads, args.calls, None))
            rates["paid"].append(_round(paid_target, made.model_hash, threads, args.calls, states))
            paid_calls += (args.calls // threads) * threads
            print(f"round {number + 1}: unpaid {rates['unpaid'][-1]:,.0f}/s, paid {rates['paid'][-1]:,.0f}/s "
                  f"(server CPU per call: {_CPU[-2][1]:.0f} / {_CPU[-1][1]:.0f} us)", flush=True)
        time.sleep(1.0)
        claimer.stop()
        claiming.join(60)
        with lock:
            claimer.run_once()
            claimed = sum(int(chain.payment_channels.channels(s["channel"]).claimed) for s in states)
        served = sum(gate.calls(s["channel"]) for s in states)
        paid_server.stop(0)
        free_server.stop(0)
    unpaid, paid = statistics.median(rates["unpaid"]), statistics.median(rates["paid"])
    claims_per_1000 = (claimer.claims_made - claims_before) / paid_calls * 1000
    result = {"calls_per_round": args.calls, "rounds": args.rounds, "threads": threads,
              "claim_every": args.claim_every, "unpaid_calls_per_s": rates["unpaid"], "paid_calls_per_s": rates["paid"],
              "unpaid_median": unpaid, "paid_median": paid, "paid_over_unpaid": paid / unpaid,
              "claims_per_1000_paid_calls": claims_per_1000, "paid_calls_served": served,
              "claimed_planck": claimed, "claimed_equals_served": claimed == served * PRICE,
              "server_cpu_us_per_call": {"unpaid": [c for paid, c in _CPU[2:] if not paid],
                                         "paid": [c for paid, c in _CPU[2:] if paid]}}
    print(f"\n| | calls per second (median of {args.rounds}) |\n|---|---|")
    print(f"| unpaid | {unpaid:,.0f} |\n| paid (a signed payment per call) | {paid:,.0f} |")
    print(f"\npaid / unpaid: {paid / unpaid:.2f}; on-chain claims per 1,000 paid calls: {claims_per_1000:.2f}; "
          f"claimed {claimed} planck for {served} paid calls served "
          f"({'exact' if claimed == served * PRICE else 'MISMATCH'})")
    out = ROOT / "benchmarks" / "results" / "inference.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
