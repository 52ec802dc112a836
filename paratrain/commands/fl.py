"""`paratrain fl create|join|status|partition|reveal|withdraw` and `paratrain client`: the people's side of the
FederatedTasks pallet (docs/federated.md).

- The requester: `fl create` stores the FL spec document (and a holdout, committed on chain), then posts the
  task with its bounty; `fl reveal` reveals the holdout once round 1 is committed; `fl status` shows the
  rounds, verdicts and what each client was paid or slashed.
- A data owner: `fl partition` makes non-IID shards of a built-in data set (for trying it out: the same
  Dirichlet split the tests and the demo use); `fl join` joins one task once; `paratrain client` is the
  daemon that joins, trains on its shard (which never leaves the machine) and withdraws its stake at the end;
  `fl withdraw` withdraws a stake by hand.

The parser is light at import (no chain, no Flower); Flower is reached only through workers.fl, in the
daemon's run function; the commands themselves are in paratrain.commands.fl_actions. Every argument is
range-checked by its type (paratrain.argtypes), every chain refusal is one line naming the pallet error
(paratrain.commands.common.chain_errors).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from paratrain import argtypes
from paratrain.commands.common import add_chain_argument, add_key_argument, add_store_argument


def rule(value: str) -> str:
    """An aggregation rule as the spec document writes it: fedavg, fedmedian, fedtrimmedavg[:BETA],
    krum[:F], multikrum[:F:M]; checked by the spec module's own parser, so the CLI accepts exactly what the
    spec, the pallet's AggregationRule and the validators accept."""
    from workers.fl.spec import SpecError, parse_rule

    try:
        return parse_rule(value).text
    except SpecError as exc:
        raise argparse.ArgumentTypeError(f"bad rule {argtypes.shown(value)}: {exc}") from None


def register(commands: argparse._SubParsersAction) -> None:
    fl = commands.add_parser("fl", help="federated tasks: create, join, status, partition, reveal, withdraw")
    fl.set_defaults(run=run)
    sub = fl.add_subparsers(dest="fl_command", required=True)

    create = sub.add_parser("create", help="store the FL spec document (and a holdout), post the federated task")
    create.add_argument("--recipe", default="digits_mlp", help="registered recipe (default digits_mlp)")
    create.add_argument("--rounds", type=argtypes.count, default=5, metavar="N", help="rounds (default 5)")
    create.add_argument("--min-clients", type=argtypes.count, default=3, metavar="N",
                        help="least participants of a round (default 3)")
    create.add_argument("--fraction", type=argtypes.fraction, default=argtypes.PERBILL, metavar="F",
                        help="share of the joined clients asked each round, e.g. 0.5 or 50%% (default 1)")
    create.add_argument("--max-clients", type=argtypes.count, default=16, metavar="N",
                        help="clients that may join (default 16)")
    create.add_argument("--rule", type=rule, default=None,
                        help="fedavg | fedmedian | fedtrimmedavg[:BETA] | krum[:F] | multikrum[:F:M] "
                             "(default fedmedian; fedavg with --secagg)")
    create.add_argument("--client-share", type=argtypes.share, default=700_000_000, metavar="F",
                        help="share of each round's reward (after the validators') for the clients (default 0.7)")
    create.add_argument("--bounty", required=True, type=argtypes.amount, help="bounty in the chain's token")
    create.add_argument("--client-stake", type=argtypes.amount, default=argtypes.Amount(10**12, None),
                        metavar="AMOUNT", help="least stake a client joins with (default 1)")
    create.add_argument("--join-blocks", type=argtypes.block_count, default=30, metavar="N",
                        help="clients may join for N blocks (default 30)")
    create.add_argument("--deadline-blocks", type=argtypes.block_count, default=2000, metavar="N",
                        help="the task expires N blocks from now (default 2000)")
    create.add_argument("--validators", type=argtypes.count, default=1, metavar="N",
                        help="accepting verdicts a round needs (default 1)")
    create.add_argument("--tolerance", type=argtypes.non_negative, default=0, metavar="E9",
                        help="largest difference between the recomputed and the committed aggregate, in units "
                             "of 1e-9 (default 0: bitwise)")
    create.add_argument("--round-timeout-s", type=argtypes.timeout, default=120.0, metavar="S",
                        help="how long a round waits for replies (default 120)")
    create.add_argument("--hyperparameters", "--hp", nargs="+", default=[], metavar="K=V",
                        help="local training hyperparameters, e.g. local_epochs=1 lr=0.05")
    create.add_argument("--seed", type=argtypes.seed, default=0, help="initial model and training seed (default 0)")
    create.add_argument("--holdout", type=Path, default=None, metavar="FILE",
                        help="a private holdout data file: stored, committed on chain, revealed with `fl reveal`")
    dp = create.add_argument_group("local DP-SGD on every client, paid from each one's own privacy budget")
    dp.add_argument("--dp-epsilon", type=argtypes.positive_real, default=None, metavar="E",
                    help="each client trains with DP-SGD and spends at most epsilon E of its budget on the task")
    dp.add_argument("--dp-delta", type=argtypes.positive_real, default=1e-5, metavar="D",
                    help="the clients' delta (default 1e-5)")
    dp.add_argument("--max-grad-norm", type=argtypes.positive_real, default=1.0, metavar="C",
                    help="per-example gradient clipping norm (default 1)")
    dp.add_argument("--noise-multiplier", type=argtypes.positive_real, default=1.1, metavar="S",
                    help="noise multiplier sigma (default 1.1)")
    dp.add_argument("--accountant", choices=("prv", "rdp"), default="prv",
                    help="Opacus's accountant that counts epsilon (default prv)")
    central = create.add_argument_group("central DP: the aggregator noises each round's mean (docs/central-dp.md)")
    central.add_argument("--central-dp", choices=("server", "client"), default=None,
                         help="release every round under central DP with Flower's fixed-clipping wrapper, each "
                              "update clipped by the aggregator (server) or by its client (client); --dp-epsilon "
                              "is each client's cap, --noise-multiplier the noise (needs --rule fedavg, the "
                              "default with --central-dp; not with --secagg)")
    central.add_argument("--clipping-norm", type=argtypes.positive_real, default=1.0, metavar="C",
                         help="central DP: the L2 norm each client's whole update is clipped to (default 1)")
    secagg = create.add_argument_group("secure aggregation (docs/secagg.md)")
    secagg.add_argument("--secagg", action="store_true",
                        help="aggregate every round under Flower's SecAgg+: the aggregator sees only the sum "
                             "(needs --rule fedavg, the default with --secagg)")
    secagg.add_argument("--norm-bound", type=argtypes.positive_real, default=10.0, metavar="L2",
                        help="the L2 bound every client clips its update to (default 10)")
    secagg.add_argument("--audit-rate", type=argtypes.audit_rate, default=100_000_000, metavar="F",
                        help="share of each round's participants the chain draws to reveal their update to the "
                             "validators (default 10%%; joining consents to it)")
    secagg.add_argument("--secagg-threshold", type=argtypes.audit_rate, default=600_000_000, metavar="F",
                        help="shares needed to rebuild a client's masks, at least 0.6 (default 0.6)")
    secagg.add_argument("--clipping-range", type=argtypes.positive_real, default=8.0, metavar="X",
                        help="bound on each weighted parameter before quantization (default 8)")
    secagg.add_argument("--max-weight", type=argtypes.count, default=1000, metavar="N",
                        help="most examples a client may commit to (default 1000)")
    add_store_argument(create)
    add_key_argument(create)
    add_chain_argument(create)

    join = sub.add_parser("join", help="join a federated task once with a data commitment and a stake")
    join.add_argument("task_id", type=argtypes.task_id)
    join.add_argument("--data", required=True, type=Path, metavar="FILE",
                      help="the local data set (a packaged arrays file, e.g. from `fl partition`): only its hash "
                           "and example count go on chain")
    join.add_argument("--stake", type=argtypes.amount, default=None, metavar="AMOUNT",
                      help="stake to reserve (default: the task's least client stake)")
    add_key_argument(join)
    add_chain_argument(join)

    status = sub.add_parser("status", help="a federated task's rounds, verdicts, payouts and slashes")
    status.add_argument("task_id", type=argtypes.task_id)
    status.add_argument("--watch", action="store_true", help="redraw until the task ends (Ctrl-C stops)")
    status.add_argument("--interval", type=argtypes.timeout, default=2.0, metavar="S",
                        help="with --watch: seconds between redraws (default 2)")
    status.add_argument("--full", action="store_true", help="full addresses and hashes")
    add_chain_argument(status)

    partition = sub.add_parser("partition", help="non-IID Dirichlet(alpha) shards of a built-in data set")
    partition.add_argument("--dataset", default="digits", help="digits, breast_cancer, ... (default digits)")
    partition.add_argument("--clients", type=argtypes.count, default=8, metavar="N", help="shards (default 8)")
    partition.add_argument("--alpha", type=argtypes.concentration, default=0.5,
                           help="Dirichlet concentration: small is skewed, large is nearly IID (default 0.5)")
    partition.add_argument("--seed", type=argtypes.seed, default=1, help="split seed (default 1)")
    partition.add_argument("--holdout-fraction", type=argtypes.probability, default=0.2, metavar="F",
                           help="share held out for the requester, stratified (default 0.2)")
    partition.add_argument("--out", required=True, type=Path, metavar="DIR",
                           help="writes client-<i>.ptts, holdout.ptts and split.json here")

    reveal = sub.add_parser("reveal", help="the requester reveals the committed holdout (after round 1)")
    reveal.add_argument("task_id", type=argtypes.task_id)
    reveal.add_argument("--salt", required=True, metavar="HEX", help="the salt `fl create` printed")
    reveal.add_argument("--holdout-hash", required=True, metavar="HEX", help="the holdout's hash")
    reveal.add_argument("--size", required=True, type=argtypes.non_negative, metavar="BYTES",
                        help="the holdout's size in bytes")
    reveal.add_argument("--uri", required=True, metavar="URI", help="where the holdout is stored")
    add_key_argument(reveal)
    add_chain_argument(reveal)

    withdraw = sub.add_parser("withdraw", help="a client withdraws what is left of its stake once the task ended")
    withdraw.add_argument("task_id", type=argtypes.task_id)
    add_key_argument(withdraw)
    add_chain_argument(withdraw)

    client = commands.add_parser("client", help="run a data owner's daemon: join, train locally, get paid")
    client.add_argument("--task", dest="tasks", action="append", required=True, type=argtypes.task_id,
                        metavar="TASK", help="a federated task to serve (repeat for several)")
    client.add_argument("--data", required=True, type=Path, metavar="FILE", help="the local data set")
    client.add_argument("--stake", type=argtypes.amount, default=None, metavar="AMOUNT",
                        help="stake to join with (default: each task's least client stake)")
    client.add_argument("--state-dir", type=Path, default=None, metavar="DIR",
                        help="signed-update guards, task records, FLWR_HOME (default "
                             "~/.cache/paratrain/client/<account>)")
    client.add_argument("--attack", default=None, help=argparse.SUPPRESS)  # tests and the demo only
    add_store_argument(client)
    add_key_argument(client)
    add_chain_argument(client)
    client.set_defaults(run=run_client)


def run(args: argparse.Namespace) -> int:
    from paratrain.commands import fl_actions

    return {"create": fl_actions.create, "join": fl_actions.join, "status": fl_actions.status,
            "partition": fl_actions.partition, "reveal": fl_actions.reveal,
            "withdraw": fl_actions.withdraw}[args.fl_command](args)


def run_client(args: argparse.Namespace) -> int:
    from paratrain.commands import fl_actions

    return fl_actions.client(args)
