"""`paratrain demo`: until the training loop lands, a scripted exchange on a fresh devnet.

It starts devnet in a background thread on a free port, connects with the
unmodified py-substrate-interface client, transfers from //Alice to //Bob
and prints both balances before and after.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any

from rich.console import Console
from rich.table import Table

from devnet.node import Node

UNIT = 10**12


class DevnetThread:
    """A devnet node on its own event loop thread; stopped (and its port freed) on exit."""

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="devnet", daemon=True)
        self.url = ""
        self.node: Node | None = None
        self.error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self.node = Node()
            host, port = self._loop.run_until_complete(self.node.start("127.0.0.1", self._port))
            self.url = f"ws://{host}:{port}"
        except BaseException as exc:  # reported to the starting thread
            self.error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self.node.stop())

    def __enter__(self) -> "DevnetThread":
        self._thread.start()
        self._ready.wait(30)
        if self.error:
            raise self.error
        return self

    def __exit__(self, *exc: Any) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def run_demo(port: int = 0) -> int:
    from substrateinterface import Keypair, SubstrateInterface

    console = Console()
    with DevnetThread(port) as devnet:
        console.print(f"devnet running at [bold]{devnet.url}[/bold]")
        client = SubstrateInterface(url=devnet.url)
        alice, bob = Keypair.create_from_uri("//Alice"), Keypair.create_from_uri("//Bob")

        def balances() -> dict[str, int]:
            return {name: client.query("System", "Account", [kp.ss58_address]).value["data"]["free"]
                    for name, kp in (("Alice", alice), ("Bob", bob))}

        before = balances()
        call = client.compose_call("Balances", "transfer_keep_alive", {"dest": bob.ss58_address, "value": 5 * UNIT})
        receipt = client.submit_extrinsic(client.create_signed_extrinsic(call, alice), wait_for_finalization=True)
        after = balances()
        fee, events = receipt.total_fee_amount, [f"{e.value['module_id']}.{e.value['event_id']}"
                                                 for e in receipt.triggered_events]
        client.close()
    table = Table(title=f"transfer of 5 PARA, finalized in {receipt.block_hash[:18]}…")
    for column in ("account", "before", "after", "change"):
        table.add_column(column, justify="right")
    for name in before:
        table.add_row(name, f"{before[name] / UNIT:,.6f}", f"{after[name] / UNIT:,.6f}",
                      f"{(after[name] - before[name]) / UNIT:+,.6f}")
    console.print(table)
    console.print(f"fee paid by Alice: {fee / UNIT:.6f} PARA; events: {', '.join(events)}")
    return 0 if receipt.is_success and after["Bob"] - before["Bob"] == 5 * UNIT else 1
