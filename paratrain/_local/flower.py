"""A Flower federation on loopback for tests, the demo and the benchmarks: one SuperLink and N SuperNodes as real
processes (workers.fl.flower_procs), every one of them and their descendants gone when the `with` block ends.

    with FlowerFederation(3, tmp_path, node_configs=[{"paratrain-data": str(p)} for p in shards]) as fed:
        run_id = fed.submit_run(app_dir, {"task-id": 7})
        fed.wait_run(run_id, timeout=300)
        fed.nodes[0].kill9()             # a client crashing mid-round

The processes are started one after another from the calling thread: on Linux each dies with the thread that
started it (PR_SET_PDEATHSIG), so a federation must be built on a thread that outlives it (the main thread in
tests and the demo).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from workers.fl.flower_procs import ConfigValue, SuperLinkProcess, SuperNodeProcess


class FlowerFederation:
    """A SuperLink under `root/superlink` and `num_nodes` SuperNodes under `root/supernode-<i>`, node i started with
    `node_configs[i]` (its ClientApp's `context.node_config`) and `node_envs[i]` on top of this process's
    environment (a data owner's key, `workers.fl.child_key`), the SuperLink with `link_env` (the aggregator's key,
    which its ServerApp process inherits); each process's output in `root/<name>.log`."""

    def __init__(self, num_nodes: int, root: str | Path, *,
                 node_configs: Sequence[Mapping[str, ConfigValue]] | None = None,
                 node_envs: Sequence[Mapping[str, str]] | None = None, link_env: Mapping[str, str] | None = None,
                 host: str = "127.0.0.1", start_timeout: float = 60.0) -> None:
        if num_nodes < 0:
            raise ValueError(f"a federation has zero or more SuperNodes, not {num_nodes}")
        for given, what in ((node_configs, "node configs"), (node_envs, "node environments")):
            if given is not None and len(given) != num_nodes:
                raise ValueError(f"{len(given)} {what} for {num_nodes} SuperNodes")
        self.root, self.host, self.start_timeout = Path(root), host, start_timeout
        configs = [dict(c) for c in node_configs] if node_configs is not None else [{} for _ in range(num_nodes)]
        envs = [dict(e) for e in node_envs] if node_envs is not None else [{} for _ in range(num_nodes)]
        self.initial = list(zip(configs, envs, strict=True))
        self.link = SuperLinkProcess(self.root / "superlink", host=host, log_path=self.root / "superlink.log",
                                     env=link_env)
        self.nodes: list[SuperNodeProcess] = []

    @property
    def address(self) -> str:
        return self.link.address

    @property
    def node_ids(self) -> list[int | None]:
        """The SuperLink's id of each SuperNode (None for one not running); ids change when a node restarts."""
        return [n.node_id if n.alive else None for n in self.nodes]

    def start(self) -> FlowerFederation:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.link.start(self.start_timeout)
            for config, env in self.initial:
                self.add_node(config, env)
        except BaseException:
            self.stop()
            raise
        return self

    def add_node(self, node_config: Mapping[str, ConfigValue] | None = None,
                 env: Mapping[str, str] | None = None) -> SuperNodeProcess:
        """Start one more SuperNode connected to this SuperLink (a client joining late, or a restart's twin)."""
        i = len(self.nodes)
        node = SuperNodeProcess(self.link.address, self.root / f"supernode-{i}", node_config=node_config,
                                host=self.host, log_path=self.root / f"supernode-{i}.log", env=env)
        self.nodes.append(node)
        node.start(self.start_timeout)
        return node

    def submit_run(self, app_dir: str | Path, run_config: Mapping[str, ConfigValue] | None = None) -> int:
        return self.link.submit_run(app_dir, run_config)

    def wait_run(self, run_id: int, *, timeout: float) -> str:
        return self.link.wait_run(run_id, timeout=timeout)

    def stop(self) -> None:
        """Stop every SuperNode, then the SuperLink; each with its detached SuperExec and app processes."""
        for node in reversed(self.nodes):
            node.stop()
        self.link.stop()

    def __enter__(self) -> FlowerFederation:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
