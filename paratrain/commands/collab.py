"""`paratrain collab deploy|add|refund|report|predict|show`: collaborative models that live and learn on chain.

A model (pallet CollaborativeModels, docs/collab.md) is a Perceptron, NearestCentroid or NaiveBayes whose
parameters are chain state; every `add` is one example that updates it in the same extrinsic. Under
Deposit-Refund-Take an example holds a deposit (it falls with the square root of the time since the model's last
update), refunded after the refund wait if the model still agrees, or taken by reporters if it does not.
`predict` reads the model without a transaction (the runtime API). Inputs are real numbers (`--x 0.5,1`) or the
indices of the features present (`--present 3,17`); the chain holds them in fixed point (1e9 a unit).
"""
from __future__ import annotations

import argparse
import re
from typing import Any

from paratrain import argtypes
from paratrain.cli import CliError
from paratrain.commands.common import (
    Node,
    add_chain_argument,
    add_key_argument,
    chain_errors,
    chain_url,
    err,
    load_key,
    out,
)

KINDS = ("perceptron", "centroid", "bayes")
DURATION = re.compile(r"^(\d+)([smhd]?)$")
UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def register(commands: argparse._SubParsersAction) -> None:
    collab = commands.add_parser("collab", help="collaborative models on chain: deploy, add data, refund, report, "
                                                "predict, show")
    collab.set_defaults(run=run)
    sub = collab.add_subparsers(dest="collab_command", required=True)
    deploy = sub.add_parser("deploy", help="deploy a model that learns from every contribution")
    deploy.add_argument("--kind", choices=KINDS, required=True)
    deploy.add_argument("--features", type=argtypes.integer("--features", 1, 1024), required=True)
    deploy.add_argument("--classes", type=argtypes.integer("--classes", 2, 16), default=2)
    deploy.add_argument("--learning-rate", type=argtypes.model_rate, default=1.0, help="perceptron (default 1)")
    deploy.add_argument("--intercept", type=argtypes.model_value, default=0.0, help="perceptron (default 0)")
    deploy.add_argument("--smoothing", type=argtypes.model_rate, default=1.0, help="Naive Bayes (default 1)")
    deploy.add_argument("--points", action="store_true", help="gamification (points, no deposit) instead of "
                                                              "Deposit-Refund-Take")
    deploy.add_argument("--cost-weight", type=argtypes.amount, default=None,
                        help="the deposit's weight in the chain's token (default 0.001)")
    deploy.add_argument("--refund-wait", type=_duration, default=86_400, help="e.g. 1d (the default), 3600s, 2h")
    deploy.add_argument("--owner-wait", type=_duration, default=5 * 86_400, help="default 5d")
    deploy.add_argument("--any-wait", type=_duration, default=9 * 86_400, help="default 9d")
    _common(deploy)
    add = sub.add_parser("add", help="contribute one labelled example (the model learns from it now)")
    add.add_argument("model", type=argtypes.integer("MODEL", 0, 2**64 - 1))
    _input_arguments(add)
    add.add_argument("--label", type=argtypes.integer("--label", 0, 2**32 - 1), required=True)
    _common(add)
    for name, text in (("refund", "take your deposit back (after the refund wait, if the model still agrees)"),
                       ("report", "take from a contribution the model disagrees with (or any, after the waits)")):
        claim = sub.add_parser(name, help=text)
        claim.add_argument("model", type=argtypes.integer("MODEL", 0, 2**64 - 1))
        claim.add_argument("contribution", type=argtypes.integer("CONTRIBUTION", 0, 2**64 - 1))
        _common(claim)
    predict = sub.add_parser("predict", help="the model's class for an input (no transaction)")
    predict.add_argument("model", type=argtypes.integer("MODEL", 0, 2**64 - 1))
    _input_arguments(predict)
    add_chain_argument(predict)
    show = sub.add_parser("show", help="a model: its shape, mechanism, contributions, the next deposit")
    show.add_argument("model", type=argtypes.integer("MODEL", 0, 2**64 - 1))
    add_chain_argument(show)


def _common(parser: argparse.ArgumentParser) -> None:
    add_key_argument(parser)
    add_chain_argument(parser)


def _input_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--x", type=_reals, help="dense input: comma-separated real values, one a feature")
    group.add_argument("--present", type=_indices, help="sparse input: comma-separated indices of features present")


def _reals(value: str) -> list[float]:
    try:
        return [float(v) for v in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated numbers: {value!r}") from None


def _indices(value: str) -> list[int]:
    try:
        indices = [int(v) for v in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated feature indices: {value!r}") from None
    if any(i < 0 or i >= 2**32 for i in indices):
        raise argparse.ArgumentTypeError(f"feature indices are 0..2^32-1: {value!r}")
    return indices


def _duration(value: str) -> int:
    match = DURATION.match(value.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration (e.g. 1d, 2h, 3600s): {value!r}")
    return int(match[1]) * UNIT_S[match[2]]


def run(args: argparse.Namespace) -> int:
    return {"deploy": _deploy, "add": _add, "refund": _claim, "report": _claim, "predict": _predict,
            "show": _show}[args.collab_command](args)


def _input(args: argparse.Namespace) -> Any:
    from runtime_bindings import collab as bc

    return bc.dense(args.x) if args.x is not None else bc.sparse(args.present)


def initial_params(args: argparse.Namespace) -> Any:
    """The zero model of the kind asked for (a perceptron with its learning rate and intercept)."""
    from runtime_bindings import collab as bc
    from runtime_bindings.generated import types as t

    f, c = args.features, args.classes
    if args.kind == "perceptron":
        if c != 2:
            raise CliError("a perceptron has 2 classes: drop --classes or give 2")
        return t.ModelParams.Perceptron(weights=[0] * f, intercept=bc.to_fixed(args.intercept),
                                        learning_rate=bc.to_fixed(args.learning_rate))
    if args.kind == "centroid":
        return t.ModelParams.NearestCentroid(centroids=[[0] * f for _ in range(c)], counts=[0] * c)
    return t.ModelParams.NaiveBayes(num_samples=[0] * c, total_feature_count=[0] * c,
                                    feature_counts=[[0] * f for _ in range(c)], smoothing=bc.to_fixed(args.smoothing))


def _deploy(args: argparse.Namespace) -> int:
    from runtime_bindings.generated import types as t

    if not args.refund_wait <= args.owner_wait <= args.any_wait:
        raise CliError("the waits must satisfy --refund-wait <= --owner-wait <= --any-wait "
                       "(CollaborativeModels.InvalidMechanism)")
    initial = initial_params(args)
    keypair, url = load_key(args), chain_url(args)
    with Node(url) as node:
        waits = t.Waits(refund_wait_s=args.refund_wait, owner_claim_wait_s=args.owner_wait,
                        any_claim_wait_s=args.any_wait)
        cost = node.planck(args.cost_weight, "--cost-weight") if args.cost_weight is not None else 10**9
        mechanism = t.Mechanism.Points(waits=waits) if args.points else \
            t.Mechanism.DepositRefundTake(waits=waits, cost_weight=cost)
        with chain_errors(url, who=keypair.ss58_address):
            receipt = node.chain.collaborative_models.deploy(keypair, args.features, args.classes, initial, mechanism)
        model = int(next(e.model for e in receipt.events if e.name == "ModelDeployed"))
        err().print(f"model {model} deployed in block #{receipt.block_number}: {args.kind}, {args.features} features, "
                    f"{args.classes} classes, " + ("points" if args.points else f"deposit weight {node.fmt(cost)}"))
        out().print(str(model))
    return 0


def _add(args: argparse.Namespace) -> int:
    keypair, url = load_key(args), chain_url(args)
    with Node(url) as node, chain_errors(url, who=keypair.ss58_address):
        receipt = node.chain.collaborative_models.add_data(keypair, args.model, _input(args), args.label)
        added = next(e for e in receipt.events if e.name == "DataAdded")
        out().print(f"contribution {added.contribution} to model {args.model} (label {args.label}) in block "
                    f"#{receipt.block_number}; deposit held: {node.fmt(added.deposit)}")
    return 0


def _claim(args: argparse.Namespace) -> int:
    keypair, url = load_key(args), chain_url(args)
    with Node(url) as node, chain_errors(url, who=keypair.ss58_address):
        call = getattr(node.chain.collaborative_models, args.collab_command)
        receipt = call(keypair, args.model, args.contribution)
        event = next(e for e in receipt.events if e.name in ("Refunded", "Taken"))
        out().print(f"{event.name.lower()} {node.fmt(event.amount)} of contribution {args.contribution} of model "
                    f"{args.model} in block #{receipt.block_number}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from runtime_bindings import collab as bc

    url = chain_url(args)
    with Node(url) as node, chain_errors(url):
        out().print(str(bc.predict(node.chain, args.model, _input(args))))
    return 0


def _show(args: argparse.Namespace) -> int:
    from runtime_bindings import collab as bc

    url = chain_url(args)
    with Node(url) as node, chain_errors(url):
        pallet = node.chain.collaborative_models
        record = pallet.models(args.model)
        if record is None:
            raise CliError(f"no model {args.model} (CollaborativeModels.ModelNotFound)")
        params = pallet.parameters(args.model)
        mechanism, waits = record.mechanism, record.mechanism.waits
        now_s = int(node.chain.timestamp.now() or 0) // 1000
        rows = [("model", str(args.model)), ("kind", params.VARIANT), ("owner", str(record.owner)),
                ("shape", f"{record.features} features, {record.classes} classes"),
                ("mechanism", mechanism.VARIANT + (f", deposit weight {node.fmt(mechanism.cost_weight)}"
                                                   if mechanism.VARIANT == "DepositRefundTake" else "")),
                ("waits", f"refund {waits.refund_wait_s} s, owner {waits.owner_claim_wait_s} s, any "
                          f"{waits.any_claim_wait_s} s"),
                ("contributions", f"{record.contributions} ({record.total_good} refunded as good)"),
                ("held", node.fmt(record.held)),
                ("next deposit", node.fmt(bc.next_deposit(mechanism, record.last_update_s, now_s)))]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        out().print(f"{key:<{width}}  {value}")
    return 0

