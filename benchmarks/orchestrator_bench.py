"""Orchestrator benchmarks (prints figures; not a test). Goals from issue 4 in brackets.

    .venv/bin/python benchmarks/orchestrator_bench.py [--seconds 8] [--clients 100] [--tasks 100000] [--blocks 600]
    .venv/bin/python benchmarks/orchestrator_bench.py --only rpc [--rounds 3]

1. Authenticated worker RPCs per second [>= 75% of bare grpcio; issue 4: >= 3,000/s], 100 concurrent clients in a
   separate process (multiprocessing, spawn), each with its own key and channel, against the orchestrator's
   real gRPC server (build_server: auth interceptor, rate limiter, replay cache, Handlers over a SQLite index)
   in this process. The heartbeat is `WorkerClient.report_progress`: one unary Heartbeat RPC per heartbeat,
   authenticated as the client does by default: through a session opened by one signed OpenAuthSession
   call, so each call carries a keyed-blake2b MAC over its request bytes with a session counter and a
   timestamp (checked by the interceptor; registration and rate limiter as for every worker call), carrying
   one ProgressUpdate that the handler records (latest per task in memory, written to the index in batches
   about once a second; no heartbeat extrinsic: no chain here). `heartbeat_signed` is the same call signed
   per call with sr25519 (`WorkerClient(sessions=False)`: account, timestamp, nonce, signature, replay
   cache), the path of a client that opens no session. Also measured: the authenticated unary GetTaskSpec,
   and with `--rpc-modes stream` the older StreamProgress path (one stream per heartbeat). The bare figure is a trivial
   grpc.aio server with a generic handler (empty unary call, identity serializers), same client process
   layout, same run.
   `heartbeat_stream` is a different figure: authenticated heartbeat MESSAGES per second, not RPCs. Each client
   opens one HeartbeatStream and sends heartbeats on it, each message signed on its own and checked by the
   server like a unary call (sequence, timestamp window, sr25519 signature, registration, rate limit, replay
   cache), one at a time (the next is sent when the server's answer to the previous one has arrived). It is
   compared with the same bare unary figure, which is an RPC rate: the ratio says how many authenticated
   heartbeats this server takes per bare empty call, not that a unary call got faster. It is how a worker
   daemon sends its heartbeats (`WorkerClient.heartbeats()`). The last line prints bare unary, authenticated
   unary and the authenticated stream side by side; `--rounds N` runs the modes in turn N times and reports
   medians, so that load drifting on a shared machine touches bare and authenticated runs alike.
2. Assignment latency with 100,000 open tasks in the index [p99 < 5 ms]: the index filled directly (one
   applied block), Handlers.request_assignment(wait 0) per call: scheduler (FairnessPolicy, reservations)
   + handlers path, no gRPC, no chain. 500 workers x 4 assignments each (every one reserves a task).
3. Indexer catch-up in blocks per second [>= 500]: a devnet subprocess with N blocks of events (transfers and
   task creations), then a fresh index catching up with Indexer.sync() from block 1.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load avg {one:.2f} (1 min) {five:.2f} (5 min), {os.cpu_count()} cpus"


# 1. RPC throughput ------------------------------------------------------------------------------

BARE = "/bench.Bare/Empty"


def _client_process(target: str, mode: str, clients: int, seconds: float, out: mp.Queue) -> None:
    out.put(asyncio.run(_clients(target, mode, clients, seconds, out)))


async def _clients(target: str, mode: str, clients: int, seconds: float,
                   out: mp.Queue | None = None) -> tuple[int, int, float, float]:
    import grpc

    from orchestrator.client import WorkerClient
    from orchestrator.domain import ProgressUpdate
    from runtime_bindings import Keypair

    keys = [Keypair.create_from_uri(f"//bench/{i}") for i in range(clients)]
    stop = False
    done = errors = 0

    async def worker(i: int) -> None:
        nonlocal done, errors
        if mode == "bare":
            channel = grpc.aio.insecure_channel(target)
            call = channel.unary_unary(BARE, request_serializer=None, response_deserializer=None)
            try:
                while not stop:
                    await call(b"", timeout=10)
                    done += 1
            finally:
                await channel.close()
            return
        async with WorkerClient(target, keys[i], sessions=mode != "heartbeat_signed") as client:
            step = 0
            if mode == "heartbeat_stream":  # one stream per client, every heartbeat a signed message on it
                async with client.heartbeat_stream() as hb:
                    while not stop:
                        step += 1
                        try:
                            await hb.send(ProgressUpdate(i, "", step, 0, 0.5))
                            done += 1
                        except Exception:  # noqa: BLE001 - counted, reported (the next send reopens)
                            errors += 1
                return
            while not stop:
                try:
                    if mode in ("heartbeat", "heartbeat_signed"):
                        step += 1
                        await client.report_progress(ProgressUpdate(i, "", step, 0, 0.5))
                    elif mode == "stream":
                        step += 1
                        await client.stream_progress([ProgressUpdate(i, "", step, 0, 0.5)])
                    else:
                        await client.get_task_spec(i)
                    done += 1
                except Exception:  # noqa: BLE001 - counted, reported
                    errors += 1

    tasks = [asyncio.create_task(worker(i)) for i in range(clients)]
    await asyncio.sleep(1.0)  # warm-up: connections, first calls
    if out is not None:
        out.put("start")  # the server samples its CPU time over the same window
    start_count, start, cpu = done, time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    count, elapsed, cpu = done - start_count, time.perf_counter() - start, time.process_time() - cpu
    if out is not None:
        out.put("end")
    stop = True
    await asyncio.gather(*tasks, return_exceptions=True)
    return count, errors, elapsed, cpu


def _run_clients(target: str, mode: str, clients: int, seconds: float) -> tuple[int, int, float, float, float]:
    """(calls, errors, seconds, client process CPU s, server process CPU s) over the measured window."""
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_client_process, args=(target, mode, clients, seconds, out))
    proc.start()
    assert out.get(timeout=120) == "start"
    server_cpu = time.process_time()
    assert out.get(timeout=seconds + 120) == "end"
    server_cpu = time.process_time() - server_cpu
    result = out.get(timeout=120)
    proc.join(30)
    return (*result, server_cpu)


def _fill_index(index, workers, n_tasks: int, *, claimed: bool, requester: str, block: int = 1) -> None:
    from orchestrator.domain import (
        Capabilities,
        Requirements,
        TaskStatus,
        TaskView,
        WorkerView,
    )
    from orchestrator.index import TaskRecord, WorkerRecord

    caps = Capabilities(16, 2, "H100", 128_000)
    events = [WorkerRecord(w, WorkerView(w, "Trainer", 200 * 10**12, caps, True, 1 if claimed else 0))
              for w in workers]
    reqs = [Requirements(2, 1, 8_000), Requirements(4, 1, 16_000), Requirements(1, 0, 1_000)]
    for i in range(n_tasks):
        worker = workers[i] if claimed else None
        events.append(TaskRecord(TaskView(
            task_id=i, requester=requester, recipe="mnist-mlp", spec_hash=i.to_bytes(32, "big"),
            spec_uri=f"s3://specs/{i}.yaml", dataset_hash=b"\x22" * 32, eval_metric="accuracy", eval_target=900_000,
            requirements=reqs[i % 3], bounty=10 * 10**12, min_stake=0, deadline=10**9, validators_required=1,
            status=TaskStatus.CLAIMED if claimed else TaskStatus.OPEN, worker=worker,
            lease_until=10**9 if claimed else None)))
    index.apply_block(block, "0x" + "00" * 32, events)


RPC_MODES = ("bare", "heartbeat", "heartbeat_signed", "heartbeat_stream",
             "get_task_spec")  # "stream": StreamProgress, one per heartbeat
UNITS = {"heartbeat_stream": "msg/s"}  # authenticated messages on long-lived streams; every other mode: RPCs


async def bench_rpc(clients: int, seconds: float, modes: tuple[str, ...] = RPC_MODES,
                    rounds: int = 1) -> dict[str, float]:
    """Each mode's rate and CPU per call, the median over `rounds` rounds that run the modes in turn: load
    that drifts during the run (a shared machine) then touches bare and authenticated calls alike."""
    import grpc

    from orchestrator.handlers import Handlers
    from orchestrator.index import Index
    from orchestrator.server import build_server
    from runtime_bindings import Keypair

    tmp = tempfile.mkdtemp(prefix="orch-bench-")
    index = Index(Path(tmp) / "index.db")
    workers = [Keypair.create_from_uri(f"//bench/{i}").ss58_address for i in range(clients)]
    _fill_index(index, workers, clients, claimed=True, requester=Keypair.create_from_uri("//Alice").ss58_address)
    handlers = Handlers(index)
    handlers.bind_loop(asyncio.get_running_loop())

    def registered(account: str) -> bool:
        worker = index.worker(account)
        return worker is not None and worker.active and worker.role == "Trainer"

    server, port = build_server(handlers, handlers, listen="127.0.0.1:0", registered=registered)
    await server.start()

    async def empty(request: bytes, context) -> bytes:
        return b""

    bare = grpc.aio.server()
    bare.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "bench.Bare", {"Empty": grpc.unary_unary_rpc_method_handler(empty)})])
    bare_port = bare.add_insecure_port("127.0.0.1:0")
    await bare.start()
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    try:
        for round_ in range(1, rounds + 1):
            for mode in modes:
                target = f"127.0.0.1:{bare_port if mode == 'bare' else port}"
                print(f"  {mode}{f' (round {round_})' if rounds > 1 else ''}: {load()}", flush=True)
                count, errors, elapsed, client_cpu, server_cpu = await asyncio.to_thread(
                    _run_clients, target, mode, clients, seconds)
                run = {"": count / elapsed, "_errors": errors, "_server_us": 1e6 * server_cpu / max(count, 1),
                       "_client_us": 1e6 * client_cpu / max(count, 1)}
                runs[mode].append(run)
                unit, per = UNITS.get(mode, "RPC/s"), "message" if mode in UNITS else "call"
                print(f"  {mode:>16}: {run['']:8.0f} {unit} ({count} in {elapsed:.1f}s, {errors} errors); CPU per "
                      f"{per}: server {run['_server_us']:.0f} us, client {run['_client_us']:.0f} us", flush=True)
    finally:
        await server.stop(1)
        await bare.stop(1)
        handlers.close()
        index.close()
    return {mode + key: statistics.median(run[key] for run in mode_runs)
            for mode, mode_runs in runs.items() for key in mode_runs[0]}


def _side_by_side(rpc: dict[str, float], modes: tuple[str, ...]) -> str:
    """One line: bare unary, authenticated unary (the client's session path; and its share of bare), the signed
    unary path, authenticated stream, from one run."""
    parts = []
    for mode, label in (("bare", "bare unary"), ("heartbeat", "authenticated unary (session)"),
                        ("heartbeat_signed", "signed unary"), ("heartbeat_stream", "authenticated stream")):
        if mode in modes:
            unit = UNITS.get(mode, "RPC/s")
            share = f" = {100 * rpc[mode] / rpc['bare']:.0f}% of bare" if mode != "bare" and "bare" in rpc else ""
            parts.append(f"{label} {rpc[mode]:.0f} {unit}{share}")
    return " | ".join(parts)


# 2. Assignment latency --------------------------------------------------------------------------

async def bench_assignment(n_tasks: int, n_workers: int = 500, per_worker: int = 4) -> dict[str, float]:
    from orchestrator.handlers import Handlers
    from orchestrator.index import Index

    tmp = tempfile.mkdtemp(prefix="orch-bench-")
    index = Index(Path(tmp) / "index.db")
    workers = [f"5{'W' * 10}{i:037d}" for i in range(n_workers)]  # only compared, never decoded
    t0 = time.perf_counter()
    _fill_index(index, workers, n_tasks, claimed=False, requester="requester")
    fill_s = time.perf_counter() - t0
    assert len(index.open_tasks) == n_tasks
    handlers = Handlers(index)
    handlers.bind_loop(asyncio.get_running_loop())
    samples: list[float] = []
    assigned: set[int] = set()
    print(f"  {n_tasks} open tasks indexed in {fill_s:.1f}s; {load()}", flush=True)
    for _ in range(per_worker):
        for w in workers:
            t = time.perf_counter()
            assignment = await handlers.request_assignment(w, 0)
            samples.append(time.perf_counter() - t)
            assert assignment is not None and assignment.task.task_id not in assigned
            assigned.add(assignment.task.task_id)
    handlers.close()
    index.close()
    samples.sort()
    q = statistics.quantiles(samples, n=100)
    result = {"p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000, "max_ms": samples[-1] * 1000, "n": len(samples)}
    print(f"  assignments: {len(samples)}, p50 {result['p50_ms']:.3f} ms, p99 {result['p99_ms']:.3f} ms, "
          f"max {result['max_ms']:.3f} ms", flush=True)
    return result


# 3. Indexer catch-up ----------------------------------------------------------------------------

def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def bench_catchup(n_blocks: int) -> dict[str, float]:
    from orchestrator.index import Index
    from orchestrator.indexer import Indexer
    from paratrain.local import DevnetProcess
    from paratrain.local import synthetic_task_spec as task_spec
    from runtime_bindings import Chain, Keypair
    from runtime_bindings.generated.balances import TransferKeepAliveCall
    from runtime_bindings.generated.task_bounties import CreateTaskCall
    from runtime_bindings.metadata_cache import SHARED

    signers = [Keypair.create_from_uri(f"//{n}") for n in ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie")]
    with DevnetProcess() as node, Chain.connect(node.ws_url, timeout=30) as chain:
        nonces = {s.ss58_address: 0 for s in signers}
        t0 = time.perf_counter()
        i = 0
        while chain.best_number() < n_blocks:
            signer = signers[i % len(signers)]
            if i % 2:
                call = CreateTaskCall(spec=task_spec(i), bounty=10**12, min_stake=0, deadline=10**8,
                                      validators_required=1, holdout_commitment=None)
            else:
                call = TransferKeepAliveCall(dest=signers[(i + 1) % len(signers)].ss58_address, value=10**12)
            raw = chain.sign(call, signer, nonce=nonces[signer.ss58_address])
            nonces[signer.ss58_address] += 1
            chain.rpc("author_submitExtrinsic", [raw], retry=False)
            i += 1
        time.sleep(0.5)
        head = chain.finalized_number()
        print(f"  devnet: {head} blocks, {i} extrinsics ({i // 2} tasks) built in {time.perf_counter() - t0:.1f}s; "
              f"{load()}", flush=True)
        runs = {}
        for kind in ("cold", "warm"):
            if kind == "cold":  # as a freshly started indexer process: its connection decodes the metadata
                SHARED.clear()
            with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
                index = Index(Path(tmp) / "index.db")
                node_cpu = _process_cpu_s(node.proc.pid)
                t, cpu = time.perf_counter(), time.process_time()
                indexer = Indexer(node.ws_url, index, poll_interval=0.05)
                height = indexer.sync(head)
                elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
                node_cpu = _process_cpu_s(node.proc.pid) - node_cpu
                indexer.stop()
                tasks = index.count_tasks()
                index.close()
            assert height == head, (height, head)
            rate = head / elapsed
            print(f"  catch-up, {kind} ({'a fresh process: metadata decoded' if kind == 'cold' else 'metadata already decoded in this process'}): "
                  f"{head} blocks ({tasks} tasks) in {elapsed:.2f}s = {rate:.0f} blocks/s "
                  f"(CPU meanwhile: indexer process {cpu:.2f}s, devnet process {node_cpu:.2f}s); {load()}", flush=True)
            runs[kind] = {"blocks": head, "seconds": elapsed, "blocks_per_s": rate, "cpu_s": cpu,
                          "devnet_cpu_s": node_cpu}
    return runs["cold"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measurement window per RPC mode")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--blocks", type=int, default=600)
    parser.add_argument("--only", choices=("rpc", "assign", "catchup"))
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the RPC modes in turn this many times; figures are the medians")
    parser.add_argument("--rpc-modes", default=",".join(RPC_MODES),
                        help="comma-separated: bare, heartbeat, heartbeat_signed, heartbeat_stream, "
                             "get_task_spec, stream (StreamProgress)")
    args = parser.parse_args()
    print(f"orchestrator benchmarks, python {sys.version.split()[0]}, {load()}", flush=True)
    if args.only in (None, "rpc"):
        print(f"1. authenticated worker RPCs, {args.clients} concurrent clients in a separate process", flush=True)
        modes = tuple(m for m in args.rpc_modes.split(",") if m)
        rpc = asyncio.run(bench_rpc(args.clients, args.seconds, modes, args.rounds))
        medians = f" (medians of {args.rounds} rounds)" if args.rounds > 1 else ""
        for mode in (m for m in modes if m != "bare" and "bare" in rpc):
            unit, per = UNITS.get(mode, "RPC/s"), "message" if mode in UNITS else "call"
            goal = " [goal >= 75% of bare]" if mode == "heartbeat" else ""
            print(f"  {mode}{medians}: {rpc[mode]:.0f} {unit} = {100 * rpc[mode] / rpc['bare']:.0f}% of bare "
                  f"{rpc['bare']:.0f} RPC/s{goal}; CPU per {per}: server {rpc[mode + '_server_us']:.0f} us "
                  f"(bare {rpc['bare_server_us']:.0f}), client {rpc[mode + '_client_us']:.0f} us "
                  f"(bare {rpc['bare_client_us']:.0f})", flush=True)
        print(f"  side by side{medians}: {_side_by_side(rpc, modes)}", flush=True)
    if args.only in (None, "assign"):
        print(f"2. assignment latency with {args.tasks} open tasks", flush=True)
        res = asyncio.run(bench_assignment(args.tasks))
        print(f"  p99 {res['p99_ms']:.3f} ms [goal < 5 ms]", flush=True)
    if args.only in (None, "catchup"):
        print(f"3. indexer catch-up over {args.blocks} blocks", flush=True)
        cu = bench_catchup(args.blocks)
        print(f"  {cu['blocks_per_s']:.0f} blocks/s [goal >= 500]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
