"""Compiled decoders (runtime_bindings.fastscale) give exactly what scalecodec gives for the same bytes."""
from __future__ import annotations

from paratrain.local import DevnetProcess
from runtime_bindings import Chain, Keypair
from runtime_bindings.fastscale import Codecs, decode_all
from runtime_bindings.generated import types as t

UNIT = 10**12
ALICE, BOB = (Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob"))


def test_catch_up_events_and_task_records_match_scalecodec(devnet: DevnetProcess) -> None:
    with Chain.connect(devnet.ws_url, timeout=10) as chain:
        chain.workers.register(BOB, "Trainer", 1_000 * UNIT, t.Capabilities(16, 2, "H100", 128_000))
        spec = t.TaskSpec(recipe="mnist-mlp", spec_hash="0x" + "11" * 32, spec_uri="s3://specs/\xff.yaml",
                          dataset_hash="0x" + "22" * 32, eval_metric="accuracy", eval_target=900_000,
                          higher_is_better=True, requirements=t.Requirements(2, 1, 8_000), parent_model=None)
        ids = []
        for commitment in (None, "0x" + "33" * 32):
            receipt = chain.task_bounties.create_task(ALICE, spec, 10 * UNIT, 0, chain.best_number() + 500, 1,
                                                      commitment)
            ids.append(next(e.task_id for e in receipt.events if e.name == "TaskCreated"))
        chain.task_bounties.claim_task(BOB, ids[0])
        chain.task_bounties.heartbeat(BOB, ids[0], t.Progress(42, "0x" + "ab" * 32))
        chain.balances.transfer_keep_alive(ALICE, BOB.ss58_address, UNIT)
        head = chain.finalized_number()
        stream = chain.events.catch_up(1, head, batch=7)
        fast_used = 0
        for blocks in stream.batches():
            for block in blocks:
                assert block.records == chain.events_at(block.hash), block.number
            recs = next(iter(stream._records.values()))
            fast_used += sum(1 for b in blocks for r in b.records if r.event.pallet != "System")
            assert recs is not None
        assert fast_used
        decoder = stream.storage_decoder("TaskBounties", "Tasks")
        assert decoder is not None
        with chain.lock:
            si = chain.substrate
            si.init_runtime()
            for tid in ids:
                key = "0x" + si.create_storage_key("TaskBounties", "Tasks", [tid]).to_hex().removeprefix("0x")
                raw = chain.rpc("state_getStorage", [key])
                assert decode_all(decoder, bytes.fromhex(raw[2:])) == si.query("TaskBounties", "Tasks", [tid]).value
        # every event payload of the runtime compiles, or is knowingly left to scalecodec
        md = chain.metadata()
        codecs = Codecs(md.types, chain.substrate.runtime_config)
        for pallet in ("TaskBounties", "Workers", "Models", "Balances"):
            ty = md.pallets[pallet]["event"]["ty"]
            assert len(codecs.variant_payloads(ty)) == len(md.variants(ty)), pallet
