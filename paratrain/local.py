"""The local market harness: every party of paratrain on this machine, for the demo, tests and benchmarks.

One place starts devnet, the orchestrator, Ray, workers and validators, in this process or as
subprocesses, so that `paratrain demo`, the integration tests and the benchmarks build the same market the
same way (the parts live in `paratrain._local`):

* `DevnetProcess`, `OrchestratorProcess`, `DaemonProcess`: `paratrain devnet|orchestrator|worker|validator`
  as child processes on free loopback ports (a part can be killed with -9 and restarted); devnet and the
  orchestrator in a process group of their own that dies with this process on Linux (`die_with_parent`,
  `stop_group`: for a benchmark's other children too);
* `DevnetThread`, `OrchestratorThread`, `DaemonThread`: the same parts on threads of this process;
* `RayCluster`: a local Ray cluster whose processes are all gone when its block ends;
* `FlowerFederation`: a Flower SuperLink and N SuperNodes as processes on loopback (`SuperLinkProcess`,
  `SuperNodeProcess`, `flower_env` from workers.fl.flower_procs, which the daemons use too), all gone when its
  block ends;
* `LocalMarket`: devnet, a chain connection, the orchestrator and optionally Ray in one `with` block,
  with helpers to register accounts, post tasks and run daemons;
* `chain_task_spec`, `post_task`: the one mapping from a spec document to the on-chain TaskSpec, re-exported
  from the public `paratrain.task_specs` that `paratrain task create` uses too (`synthetic_task_spec`: one
  that names no document, for load).

Daemons are followed through their observers (`daemon.subscribe(fn)`, workers.observers), not by
patching them. Besides `paratrain devnet`, this harness is the only code that starts a devnet
(pyproject.toml's import-linter contracts).
"""
from __future__ import annotations

from paratrain._local.cluster import RayCluster
from paratrain._local.errors import HarnessError, HarnessTimeout
from paratrain._local.flower import FlowerFederation
from paratrain._local.market import (
    TRAINER_STAKE,
    UNIT,
    VALIDATOR_STAKE,
    LocalMarket,
    capabilities,
    dev_keypair,
    fund,
    register_account,
)
from paratrain._local.processes import (
    DaemonProcess,
    DevnetProcess,
    OrchestratorProcess,
    die_with_parent,
    free_port,
    stop_group,
)
from paratrain._local.specs import synthetic_task_spec
from paratrain._local.threads import DEVNET_DEFAULT_CHALLENGE_PERIOD_MS, DaemonThread, DevnetThread, OrchestratorThread
from paratrain.task_specs import DEFAULT_REQUIREMENTS, chain_task_spec, post_task
from workers.fl.flower_procs import SuperLinkProcess, SuperNodeProcess, flower_env

__all__ = [
    "DEFAULT_REQUIREMENTS", "DEVNET_DEFAULT_CHALLENGE_PERIOD_MS", "TRAINER_STAKE", "UNIT", "VALIDATOR_STAKE",
    "DaemonProcess", "DaemonThread", "DevnetProcess", "DevnetThread", "FlowerFederation", "HarnessError",
    "HarnessTimeout", "LocalMarket", "OrchestratorProcess", "OrchestratorThread", "RayCluster", "SuperLinkProcess",
    "SuperNodeProcess", "capabilities", "chain_task_spec", "dev_keypair", "die_with_parent", "flower_env", "free_port",
    "fund", "post_task", "register_account", "stop_group", "synthetic_task_spec",
]
