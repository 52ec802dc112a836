#!/usr/bin/env python3
"""Included-transaction throughput of devnet, and of chopsticks (Kusama runtime) for comparison.

For each node the script

1. starts it as a child process on a free loopback port: devnet with its
   defaults (instant seal, in memory), chopsticks 1.5.1 with the Kusama local
   test-net chain spec, offline, ``--build-block-mode Batch`` by default;
2. pre-signs transfers OFFLINE, before any timing: ``Balances.transfer_keep_alive``
   of 0.01 unit, immortal, tip 0, sr25519. On devnet the senders are //Alice
   ... //Ferdie, each with its own chain of consecutive nonces (sender i pays
   sender i+1). On chopsticks each transfer comes from its own account
   //Bench//N, funded beforehand with chopsticks' ``dev_setStorage`` (see
   "chopsticks" below). The metadata, call encoding, genesis hash and runtime
   version come from py-substrate-interface 1.8.1; the extrinsics are
   assembled by a small encoder that is checked byte for byte against
   ``create_signed_extrinsic`` (signing one itself, and rebuilding others
   given our signatures) before use;
3. measured phase: sends them pipelined with ``author_submitExtrinsic`` over
   ``--connections`` WebSocket connections (one sender's transactions stay on
   one connection, in nonce order; up to ``--window`` requests in flight per
   connection; no waiting for each reply), while another connection follows
   ``chain_subscribeNewHeads`` and reads every block with ``chain_getBlock``
   to find the transactions in it;
4. the clock runs from the first send until the block holding the last
   accepted transaction has been read. Afterwards (untimed) each block's
   events are decoded with py-substrate-interface, and only extrinsics with
   ``System.ExtrinsicSuccess`` count.

chopsticks: its pool keeps transactions in the order their (slow, WASM)
validation finishes and its block builder drops a transaction whose nonce is
not yet due, so pipelined nonce chains lose most transactions there. One
transaction per funded account avoids that and lets Batch mode put many
transfers in a block, which is chopsticks' best case here (``--chopsticks-senders
dev`` uses //Alice..//Ferdie with one request in flight per sender instead;
``--chopsticks-mode Instant`` builds one block per transaction: both slower).

Both nodes are stopped at the end, also on errors, Ctrl-C and SIGTERM.

Usage (from the repository root)::

    .venv/bin/python benchmarks/devnet_throughput.py [--count N] [--chopsticks-count M] [--skip-chopsticks]
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

from devnet.scale.codec import encode_compact
from paratrain.local import DevnetProcess, die_with_parent, free_port, stop_group

REPO_ROOT = Path(__file__).resolve().parents[1]
JS_DIR = REPO_ROOT / "tests" / "js"
DEFAULT_SPEC = REPO_ROOT / "tests" / "fixtures" / "chainspecs" / "kusama-local.json"
DEV_ACCOUNTS = ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie")
TRANSFER_VALUE = 10**10  # 0.01 unit at 12 decimals, above both chains' existential deposit
console = Console(width=None if sys.stdout.isatty() else 140)


# ------------------------------------------------------------------------------------------------
# Child processes
# ------------------------------------------------------------------------------------------------

class ChildNode(ABC):
    """What run_one needs of a node: its URL, start() and stop(). Children run in their own process group
    and die with the benchmark on Linux (paratrain.local's die_with_parent and stop_group)."""

    name = "node"

    @property
    @abstractmethod
    def url(self) -> str:
        """Its WebSocket endpoint."""

    @abstractmethod
    def start(self) -> None:
        """Start it and return once it listens."""

    @abstractmethod
    def stop(self) -> None:
        """Stop it (a no-op if it is not running)."""


class RunningNode(ChildNode):
    """A node someone else started: nothing to start or stop."""

    def __init__(self, url: str) -> None:
        self._url = url

    @property
    def url(self) -> str:
        return self._url

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class DevnetNode(ChildNode):
    """`paratrain devnet` started by the harness (paratrain.local.DevnetProcess), as the tests start it."""

    name = "devnet"

    def __init__(self, extra_args: list[str]) -> None:
        self.process = DevnetProcess(*extra_args)

    @property
    def url(self) -> str:
        return self.process.ws_url

    def start(self) -> None:
        self.process.start(timeout=60)

    def stop(self) -> None:
        self.process.stop(timeout=10)


class ChopsticksNode(ChildNode):
    name = "chopsticks"

    def __init__(self, spec: Path, mode: str) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.spec = spec
        self.mode = mode
        self.log = tempfile.NamedTemporaryFile(prefix="chopsticks-", suffix=".log", delete=False)  # noqa: SIM115

    def start(self, timeout: float = 240) -> None:
        binary = JS_DIR / "node_modules" / ".bin" / "chopsticks"
        if not binary.exists():
            raise RuntimeError(f"{binary} is missing: run `npm ci` in {JS_DIR}")
        if not self.spec.exists():
            raise RuntimeError(f"chain spec {self.spec} is missing")
        self.port = free_port()
        cmd = [str(binary), "--genesis", str(self.spec), "--build-block-mode", self.mode,
               "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, cwd=JS_DIR, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=die_with_parent)  # noqa: PLW1509 - only prctl runs there
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chopsticks exited with {self.proc.returncode}; log: {self.log.name}")
            if b"RPC listening on" in Path(self.log.name).read_bytes():
                return
            time.sleep(0.25)
        raise TimeoutError(f"chopsticks did not start listening; log: {self.log.name}")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stop(self, keep_log: bool = False) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc, signal.SIGINT, timeout=10)
        if self.log.closed:
            return
        self.log.close()
        if keep_log:
            console.print(f"  chopsticks log kept: {self.log.name}")
        else:
            Path(self.log.name).unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------
# Offline signing
# ------------------------------------------------------------------------------------------------

@dataclass
class Presigned:
    chain: str
    spec_version: int
    senders: list[str]
    # per sender, in nonce order: (extrinsic bytes, blake2_256 hash)
    txs: dict[str, list[tuple[bytes, bytes]]]
    seconds: float

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.txs.values())


def presign(url: str, count: int, fresh_senders: bool) -> Presigned:
    """Sign `count` transfers offline; only reads chain data (metadata, genesis, nonces) over RPC.

    Senders: //Alice ... //Ferdie with `count / 6` consecutive nonces each, or (`fresh_senders`)
    `count` accounts //Bench//0, //Bench//1, ... with one transaction each (nonce 0).
    """
    from substrateinterface import Keypair, SubstrateInterface

    started = time.perf_counter()
    substrate = SubstrateInterface(url=url)
    try:
        substrate.init_runtime()
        extensions = list(substrate.metadata.get_signed_extensions())
        unsupported = {"CheckMetadataHash", "ChargeAssetTxPayment", "CheckEra"} & set(extensions)
        if unsupported:
            raise RuntimeError(f"the fast signer does not handle signed extensions {sorted(unsupported)}")
        genesis = bytes.fromhex(substrate.get_block_hash(0)[2:])
        # CheckSpecVersion, CheckTxVersion, CheckGenesis, CheckMortality (immortal: the genesis hash)
        additional = (substrate.runtime_version.to_bytes(4, "little")
                      + substrate.transaction_version.to_bytes(4, "little") + genesis + genesis)
        dev_keys = [Keypair.create_from_uri(f"//{name}") for name in DEV_ACCOUNTS]
        plan: list[tuple[str, Any, Any, int, int]] = []  # (name, key, dest, first nonce, how many)
        if fresh_senders:
            for index in range(count):
                plan.append((f"//Bench//{index}", bench_key(index), dev_keys[index % len(dev_keys)], 0, 1))
        else:
            for index, key in enumerate(dev_keys):
                share = count // len(dev_keys) + (1 if index < count % len(dev_keys) else 0)
                if share:
                    nonce = substrate.get_account_nonce(key.ss58_address) or 0
                    plan.append((f"//{DEV_ACCOUNTS[index]}", key, dev_keys[(index + 1) % len(dev_keys)], nonce, share))
        calls: dict[str, Any] = {}
        txs: dict[str, list[tuple[bytes, bytes]]] = {}
        for position, (name, key, dest, first_nonce, share) in enumerate(plan):
            if dest.ss58_address not in calls:
                calls[dest.ss58_address] = substrate.compose_call(
                    "Balances", "transfer_keep_alive", {"dest": dest.ss58_address, "value": TRANSFER_VALUE})
            call = calls[dest.ss58_address]
            call_bytes = bytes(call.data.data)
            prefix = b"\x84\x00" + key.public_key + b"\x01"  # signed V4, MultiAddress::Id, MultiSignature::Sr25519
            chain: list[tuple[bytes, bytes]] = []
            for nonce in range(first_nonce, first_nonce + share):
                data = call_bytes + b"\x00" + encode_compact(nonce) + b"\x00" + additional  # immortal era, tip 0
                payload = hashlib.blake2b(data, digest_size=32).digest() if len(data) > 256 else data
                body = prefix + key.sign(payload) + b"\x00" + encode_compact(nonce) + b"\x00" + call_bytes
                raw = encode_compact(len(body)) + body
                chain.append((raw, hashlib.blake2b(raw, digest_size=32).digest()))
            txs[name] = chain
            # Cross-checks against py-substrate-interface's own encoder: for the first sender a
            # transaction it signs itself (our payload must verify its signature), then the same
            # bytes as ours given our signature, for a middle nonce and for the last sender.
            checks: list[int] = []
            if position == 0:
                reference = bytes(substrate.create_signed_extrinsic(call, key, nonce=first_nonce).data.data)
                ours = chain[0][0]
                offset = ours.index(prefix) + len(prefix)
                signature = reference[offset:offset + 64]
                data = call_bytes + b"\x00" + encode_compact(first_nonce) + b"\x00" + additional
                payload = hashlib.blake2b(data, digest_size=32).digest() if len(data) > 256 else data
                if reference != ours[:offset] + signature + ours[offset + 64:] or not key.verify(payload, signature):
                    raise RuntimeError(f"{name}: the fast signer disagrees with substrate-interface")
                if share > 1:
                    checks.append(first_nonce + share // 2)
            elif position == len(plan) - 1:
                checks.append(first_nonce)
            for nonce in checks:
                ours = chain[nonce - first_nonce][0]
                offset = ours.index(prefix) + len(prefix)
                theirs = substrate.create_signed_extrinsic(call, key, nonce=nonce, signature=ours[offset:offset + 64])
                if bytes(theirs.data.data) != ours:
                    raise RuntimeError(f"{name}: extrinsic for nonce {nonce} disagrees with substrate-interface")
        return Presigned(substrate.chain, substrate.runtime_version, list(txs), txs,
                         time.perf_counter() - started)
    finally:
        substrate.close()


def bench_key(index: int) -> Any:
    from substrateinterface import Keypair

    return Keypair.create_from_uri(f"//Bench//{index}")


def fund_on_chopsticks(url: str, count: int) -> float:
    """Give //Bench//0 .. //Bench//count-1 a balance with chopsticks' dev_setStorage (no block, untimed)."""
    import websocket  # websocket-client, a dependency of substrate-interface

    started = time.perf_counter()
    account = {"nonce": 0, "consumers": 0, "providers": 1, "sufficients": 0,
               "data": {"free": 10**15, "reserved": 0, "frozen": 0}}
    entries = [[[bench_key(i).ss58_address], account] for i in range(count)]
    ws = websocket.create_connection(url, timeout=120)
    try:
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "dev_setStorage",
                            "params": [{"System": {"Account": entries}}]}))
        reply = json.loads(ws.recv())
    finally:
        ws.close()
    if "error" in reply:
        raise RuntimeError(f"dev_setStorage failed: {reply['error']}")
    return time.perf_counter() - started


# ------------------------------------------------------------------------------------------------
# Measured phase
# ------------------------------------------------------------------------------------------------

@dataclass
class Result:
    system: str
    submitted: int
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    included: int = 0  # seen in a block
    succeeded: int = 0  # with System.ExtrinsicSuccess
    seconds: float = 0.0  # first send -> block with the last accepted tx read
    submit_seconds: float = 0.0  # first send -> last reply
    submit_latency_ms: list[float] = field(default_factory=list)
    inclusion_latency_ms: list[float] = field(default_factory=list)
    blocks: int = 0  # blocks holding at least one of the transactions
    max_block_txs: int = 0
    timed_out: bool = False
    client_cpu_seconds: float = 0.0  # CPU this benchmark process used in the measured phase
    block_txs: dict[str, list[int]] = field(default_factory=dict)  # block hash -> extrinsic indices
    note: str = ""

    @property
    def tps(self) -> float:
        return self.succeeded / self.seconds if self.seconds else 0.0


class BlockWatcher:
    """Follows new heads and reads each block (no block skipped) to find the transactions in it."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, wanted: dict[bytes, float | None],
                 result: Result) -> None:
        self.ws = ws
        self.wanted = wanted  # tx hash -> send time (None until sent)
        self.result = result
        self.found: dict[bytes, float] = {}
        self.done = asyncio.Event()
        self.expected: int | None = None  # set once every reply is in: how many were accepted
        self.last_seen_time = 0.0  # when the last block holding one of the transactions was read
        self.last_block_time = 0.0  # when any block was last read
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._heads: asyncio.Queue[int] = asyncio.Queue()
        self._processed = -1

    async def call(self, method: str, params: list[Any]) -> Any:
        self._next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        await self.ws.send_str(json.dumps({"jsonrpc": "2.0", "id": self._next_id, "method": method,
                                           "params": params}))
        return await future

    async def reader(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self._pending:
                future = self._pending.pop(data["id"])
                if "error" in data:
                    future.set_exception(RuntimeError(str(data["error"])))
                else:
                    future.set_result(data.get("result"))
            elif data.get("method") == "chain_newHead":
                self._heads.put_nowait(int(data["params"]["result"]["number"], 16))

    async def start(self) -> int:
        await self.call("chain_subscribeNewHeads", [])
        header = await self.call("chain_getHeader", [])
        self._processed = int(header["number"], 16)
        return self._processed

    async def follow(self) -> None:
        while True:
            number = await self._heads.get()
            while self._processed < number:
                target = self._processed + 1
                block_hash = await self.call("chain_getBlockHash", [target])
                block = await self.call("chain_getBlock", [block_hash])
                now = time.perf_counter()
                self.last_block_time = now
                indices = []
                for index, ext_hex in enumerate(block["block"]["extrinsics"]):
                    tx_hash = hashlib.blake2b(bytes.fromhex(ext_hex[2:]), digest_size=32).digest()
                    if tx_hash in self.wanted and tx_hash not in self.found:
                        self.found[tx_hash] = now
                        indices.append(index)
                if indices:
                    self.result.block_txs[block_hash] = indices
                    self.last_seen_time = now
                self._processed = target
                self.check_done()

    def check_done(self) -> None:
        if self.expected is not None and len(self.found) >= self.expected:
            self.done.set()


async def measure(system: str, url: str, signed: Presigned, connections: int, window: int,
                  sender_window: int, timeout: float, idle_timeout: float) -> Result:
    """Submit everything pipelined and follow the chain until every accepted transaction is in a block.

    `window` bounds the requests in flight per connection, `sender_window` those of one sender
    (1: a sender's next transaction is sent once the node answered the previous one).
    """
    result = Result(system, signed.count)
    # Request frames are built before the clock starts; one sender's requests use one connection.
    next_id = 0
    per_sender: dict[str, list[tuple[int, str, bytes]]] = {}
    for name in signed.senders:
        frames = []
        for raw, tx_hash in signed.txs[name]:
            next_id += 1
            text = f'{{"jsonrpc":"2.0","id":{next_id},"method":"author_submitExtrinsic","params":["0x{raw.hex()}"]}}'
            frames.append((next_id, text, tx_hash))
        per_sender[name] = frames
    lane_count = max(1, min(connections, len(per_sender)))
    wanted: dict[bytes, float | None] = {h: None for frames in per_sender.values() for _, _, h in frames}
    rejected: dict[str, int] = {}
    accepted: set[bytes] = set()
    last_reply = 0.0

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        watch_ws = await session.ws_connect(url, max_msg_size=0)
        watcher = BlockWatcher(watch_ws, wanted, result)
        reader_task = asyncio.create_task(watcher.reader())
        await watcher.start()
        follow_task = asyncio.create_task(watcher.follow())
        sockets = [await session.ws_connect(url, max_msg_size=0) for _ in range(lane_count)]
        lanes: list[list[str]] = [[] for _ in sockets]
        for index, name in enumerate(per_sender):
            lanes[index % lane_count].append(name)

        async def run_lane(ws: aiohttp.ClientWebSocketResponse, names: list[str]) -> None:
            slots = asyncio.Semaphore(window)
            sender_slots = {name: asyncio.Semaphore(sender_window) for name in names}
            in_flight: dict[int, tuple[float, bytes, str]] = {}
            left = sum(len(per_sender[name]) for name in names)

            async def read() -> None:
                nonlocal left, last_reply
                async for msg in ws:
                    now = time.perf_counter()
                    data = json.loads(msg.data)
                    sent, tx_hash, name = in_flight.pop(data["id"])
                    result.submit_latency_ms.append((now - sent) * 1000)
                    if "error" in data:
                        error = data["error"]
                        key = f"{error.get('code')} {error.get('message')}: {error.get('data')}"
                        rejected[key] = rejected.get(key, 0) + 1
                        wanted.pop(tx_hash, None)
                    else:
                        accepted.add(tx_hash)
                    last_reply = now
                    slots.release()
                    sender_slots[name].release()
                    left -= 1
                    if left == 0:
                        return

            async def send(name: str) -> None:
                for request_id, text, tx_hash in per_sender[name]:
                    await sender_slots[name].acquire()
                    await slots.acquire()
                    now = time.perf_counter()
                    in_flight[request_id] = (now, tx_hash, name)
                    wanted[tx_hash] = now
                    await ws.send_str(text)

            reading = asyncio.create_task(read())
            await asyncio.gather(*(send(name) for name in names))
            await reading

        started = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.gather(*(run_lane(ws, names) for ws, names in zip(sockets, lanes))),
                                   timeout)
            result.submit_seconds = last_reply - started
            watcher.expected = len(accepted)
            watcher.check_done()
            while not watcher.done.is_set():
                for task in (follow_task, reader_task):
                    if task.done():
                        task.result()  # raises what stopped it
                        raise RuntimeError("the node closed the block-following connection")
                if time.perf_counter() - started > timeout:
                    raise TimeoutError
                if time.perf_counter() - max(watcher.last_block_time, last_reply) > idle_timeout:
                    result.note = (f"{len(accepted) - len(watcher.found)} accepted transactions never reached "
                                   f"a block ({idle_timeout:.0f} s without a new block)")
                    break
                try:
                    await asyncio.wait_for(watcher.done.wait(), 1.0)
                except TimeoutError:
                    pass
        except TimeoutError:
            result.timed_out = True
        result.accepted = len(accepted)
        result.rejected = rejected
        result.seconds = (watcher.last_seen_time or time.perf_counter()) - started
        result.included = len(watcher.found)
        result.blocks = len(result.block_txs)
        result.max_block_txs = max((len(v) for v in result.block_txs.values()), default=0)
        result.inclusion_latency_ms = [(seen - wanted[h]) * 1000 for h, seen in watcher.found.items()  # type: ignore[operator]
                                       if wanted.get(h) is not None]
        for task in (follow_task, reader_task):
            task.cancel()
        await asyncio.gather(follow_task, reader_task, return_exceptions=True)
        for ws in [watch_ws, *sockets]:
            await ws.close()
    return result


def count_successes(url: str, result: Result) -> None:
    """Untimed: decode each block's events and count our extrinsics that ended in ExtrinsicSuccess."""
    from substrateinterface import SubstrateInterface

    substrate = SubstrateInterface(url=url)
    try:
        succeeded = 0
        failures: dict[str, int] = {}
        for block_hash, indices in result.block_txs.items():
            outcome: dict[int, str] = {}
            for record in substrate.get_events(block_hash):
                value = record.value
                if value.get("extrinsic_idx") is None or value.get("module_id") != "System":
                    continue
                if value["event_id"] in ("ExtrinsicSuccess", "ExtrinsicFailed"):
                    outcome[value["extrinsic_idx"]] = value["event_id"]
                    if value["event_id"] == "ExtrinsicFailed":
                        key = str(value["attributes"].get("dispatch_error"))
                        failures[key] = failures.get(key, 0) + 1
            succeeded += sum(1 for i in indices if outcome.get(i) == "ExtrinsicSuccess")
        result.succeeded = succeeded
        if failures:
            result.note = "; ".join(filter(None, [result.note, f"failed in block: {failures}"]))
    finally:
        substrate.close()


# ------------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------------

def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def run_one(node: ChildNode, count: int, args: argparse.Namespace, label: str, sender_window: int,
            fresh_senders: bool = False) -> Result:
    console.print(f"[bold]{label}[/bold]: starting")
    started = time.perf_counter()
    node.start()
    console.print(f"  listening on {node.url} after {time.perf_counter() - started:.1f} s")
    if fresh_senders:
        seconds = fund_on_chopsticks(node.url, count)
        console.print(f"  funded {count} fresh senders //Bench//N with dev_setStorage in {seconds:.1f} s")
    signed = presign(node.url, count, fresh_senders)
    console.print(f"  pre-signed {signed.count} transfers from {len(signed.senders)} senders offline "
                  f"in {signed.seconds:.1f} s (chain {signed.chain!r}, spec {signed.spec_version})")
    client_cpu = time.process_time()
    result = asyncio.run(measure(label, node.url, signed, args.connections, args.window, sender_window,
                                 args.timeout, args.idle_timeout))
    result.client_cpu_seconds = time.process_time() - client_cpu
    verify_started = time.perf_counter()
    count_successes(node.url, result)
    console.print(f"  (untimed) decoded the events of {result.blocks} blocks in "
                  f"{time.perf_counter() - verify_started:.1f} s to count successful transfers")
    console.print(f"  {result.succeeded}/{result.submitted} included with success in {result.seconds:.2f} s "
                  f"= [bold]{result.tps:.1f} tx/s[/bold] ({result.blocks} blocks, largest {result.max_block_txs}); "
                  f"the client itself used {result.client_cpu_seconds:.2f} s of CPU meanwhile")
    if result.rejected:
        console.print(f"  [yellow]rejected at submit:[/yellow] {result.rejected}")
    if result.note:
        console.print(f"  [yellow]{result.note}[/yellow]")
    if result.timed_out:
        console.print(f"  [red]timed out after {args.timeout} s[/red]")
    return result


def print_table(results: list[Result]) -> None:
    table = Table(title="Included transfers per second (pre-signed, pipelined author_submitExtrinsic)")
    for column in ("system", "txs", "included ok", "seconds", "tx/s", "blocks", "submit s",
                   "submit p50/p99 ms", "inclusion p50/p99 ms"):
        table.add_column(column, justify="left" if column == "system" else "right")
    for r in results:
        table.add_row(r.system, str(r.submitted), str(r.succeeded), f"{r.seconds:.2f}", f"{r.tps:.1f}",
                      str(r.blocks), f"{r.submit_seconds:.2f}",
                      f"{percentile(r.submit_latency_ms, 50):.1f} / {percentile(r.submit_latency_ms, 99):.1f}",
                      f"{percentile(r.inclusion_latency_ms, 50):.0f} / {percentile(r.inclusion_latency_ms, 99):.0f}")
    console.print(table)
    if len(results) == 2 and results[0].system == "devnet" and results[1].tps:
        console.print(f"devnet / chopsticks throughput ratio: [bold]{results[0].tps / results[1].tps:.0f}x[/bold]")


def revision() -> str:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=10, check=False)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=5000, help="transfers sent to devnet (default 5000)")
    parser.add_argument("--chopsticks-count", type=int, default=50,
                        help="transfers sent to chopsticks (default 50; it includes well under 1 tx/s here)")
    parser.add_argument("--skip-chopsticks", action="store_true", help="measure devnet only")
    parser.add_argument("--skip-devnet", action="store_true", help="measure chopsticks only")
    parser.add_argument("--chopsticks-mode", choices=("Batch", "Instant"), default="Batch",
                        help="chopsticks --build-block-mode (default Batch: about 3x Instant's throughput)")
    parser.add_argument("--chopsticks-senders", choices=("fresh", "dev"), default="fresh",
                        help="fresh (default): one transfer from each of M accounts funded with dev_setStorage; "
                             "dev: //Alice..//Ferdie with nonce chains, one request in flight per sender")
    parser.add_argument("--chopsticks-spec", type=Path, default=DEFAULT_SPEC, help="raw chain spec for chopsticks")
    parser.add_argument("--connections", type=int, default=3, help="submitting WebSocket connections (default 3)")
    parser.add_argument("--window", type=int, default=256, help="requests in flight per connection (default 256)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds allowed per measured phase")
    parser.add_argument("--idle-timeout", type=float, default=60,
                        help="give up on transactions still missing after this many seconds without a block")
    parser.add_argument("--devnet-url", metavar="WS_URL",
                        help="measure an already running devnet (e.g. one started under a profiler) instead of "
                             "starting one; nonces are read from it, so it need not be fresh")
    parser.add_argument("--devnet-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for `paratrain devnet` (repeatable), e.g. --devnet-arg=--block-time=100")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.count < 1 or args.chopsticks_count < 1 or args.connections < 1 or args.window < 1:
        parser.error("counts, --connections and --window must be positive")

    # SIGTERM and SIGHUP end the run as Ctrl-C does, so the `finally` below stops the nodes.
    def interrupt(signum: int, frame: Any) -> None:
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # no noise about the tasks cut short
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)

    nodes: list[ChildNode] = []
    results: list[Result] = []
    load_start = os.getloadavg()
    rev = revision()
    try:
        console.print(f"paratrain {rev}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
                      f"load average {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}")
        if args.devnet_url:
            results.append(run_one(RunningNode(args.devnet_url), args.count, args, "devnet",
                                   sender_window=args.window))
        elif not args.skip_devnet:
            devnet = DevnetNode(args.devnet_arg)
            nodes.append(devnet)
            results.append(run_one(devnet, args.count, args, "devnet", sender_window=args.window))
            devnet.stop()
        if not args.skip_chopsticks:
            chopsticks = ChopsticksNode(args.chopsticks_spec, args.chopsticks_mode)
            nodes.append(chopsticks)
            result = run_one(chopsticks, args.chopsticks_count, args, f"chopsticks ({args.chopsticks_mode})",
                             sender_window=1, fresh_senders=args.chopsticks_senders == "fresh")
            results.append(result)
            chopsticks.stop(keep_log=result.timed_out or result.succeeded < result.submitted)
        load_end = os.getloadavg()
        print_table(results)
        console.print(f"load average at the end {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f} "
                      f"(other processes on this machine depress the figures)")
        devnet_result = next((r for r in results if r.system == "devnet"), None)
        chopsticks_result = next((r for r in results if r.system.startswith("chopsticks")), None)
        ratio = devnet_result.tps / chopsticks_result.tps if (devnet_result and chopsticks_result
                                                              and chopsticks_result.tps) else None
        if devnet_result:
            console.print(f"goal >= 1000 tx/s on devnet: {'met' if devnet_result.tps >= 1000 else 'NOT met'}")
        if ratio is not None:
            console.print(f"goal >= 10x chopsticks: {'met' if ratio >= 10 else 'NOT met'} ({ratio:.0f}x)")
        if args.json:
            args.json.write_text(json.dumps({
                "revision": rev, "cpus": os.cpu_count(), "load_start": load_start, "load_end": load_end,
                "ratio": ratio, "args": {k: str(v) for k, v in vars(args).items()},
                "results": [{
                    "system": r.system, "submitted": r.submitted, "accepted": r.accepted,
                    "included": r.included, "succeeded": r.succeeded, "seconds": r.seconds, "tps": r.tps,
                    "blocks": r.blocks, "max_block_txs": r.max_block_txs, "submit_seconds": r.submit_seconds,
                    "rejected": r.rejected, "timed_out": r.timed_out, "note": r.note,
                    "client_cpu_seconds": r.client_cpu_seconds,
                    "submit_latency_ms": {p: percentile(r.submit_latency_ms, p) for p in (50, 90, 99, 100)},
                    "inclusion_latency_ms": {p: percentile(r.inclusion_latency_ms, p) for p in (50, 90, 99, 100)},
                } for r in results]}, indent=2))
        failed = any(r.timed_out or r.succeeded < r.submitted for r in results)
        return 1 if failed else 0
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]")
        return 130
    finally:
        for node in nodes:  # a no-op for nodes already stopped; after an error a chopsticks log is kept
            if isinstance(node, ChopsticksNode):
                node.stop(keep_log=sys.exc_info()[0] is not None and sys.exc_info()[0] is not KeyboardInterrupt)
            else:
                node.stop()


if __name__ == "__main__":
    sys.exit(main())
