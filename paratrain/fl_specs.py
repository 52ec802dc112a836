"""The one mapping from an FL spec document (workers.fl.spec.FlSpec) to the on-chain FlTaskSpec, and the
initial model the task starts from.

`paratrain fl create`, the federated demo, the tests and the benchmark post federated tasks through this
module, so the chain's copy of the rule, the rounds, the clients per round and the evaluation never drifts
from the document the aggregator, the clients and the validators read. Like paratrain.task_specs it is public
and imports no devnet: the commands may not reach into the harness's private parts.

The initial model whose hash goes on chain as `initial_model_hash` is workers.fl.model.initial_model (the
recipe's model built with the spec's `initial_model_seed`), the one the ServerApp rebuilds when no store has it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtime_bindings.generated import types as t
    from workers.fl.dp_task import FlDp
    from workers.fl.secagg_task import SecAggTask
    from workers.fl.spec import FlSpec, RuleSpec

# what a digits task asks of its aggregator: one CPU, no GPU, 512 MB
DEFAULT_REQUIREMENTS = (1, 0, 512)


@dataclass(frozen=True)
class FlTaskTerms:
    """What the chain holds about a task beyond its spec document: the market's terms."""

    max_clients: int
    client_share: int                      # Perbill of each round's reward (after the validators') to clients
    min_client_stake: int                  # planck
    requirements: tuple[int, int, int] = DEFAULT_REQUIREMENTS  # min CPUs, GPUs, memory MB of the aggregator


def chain_rule(rule: RuleSpec) -> t.AggregationRule:
    """The pallet's AggregationRule for a parsed rule string."""
    from runtime_bindings.generated import types as t

    if rule.name == "fedavg":
        return t.AggregationRule.FedAvg
    if rule.name == "fedmedian":
        return t.AggregationRule.FedMedian
    if rule.name == "fedtrimmedavg":
        return t.AggregationRule.FedTrimmedAvg(beta=rule.beta)
    if rule.name == "krum":
        return t.AggregationRule.Krum(num_malicious=rule.num_malicious)
    if rule.name == "multikrum":
        return t.AggregationRule.MultiKrum(num_malicious=rule.num_malicious, num_to_select=rule.num_to_select)
    raise ValueError(f"no AggregationRule for {rule.name!r}")


def chain_fl_task_spec(spec: FlSpec, spec_uri: str, *, initial_model_hash: str, terms: FlTaskTerms,
                       spec_hash: str | None = None) -> t.FlTaskSpec:
    """The on-chain FlTaskSpec of `spec`, whose canonical document is stored at `spec_uri`. `spec_hash` and
    `initial_model_hash` are hex (no 0x); the evaluation target goes on chain as a METRIC_SCALE integer."""
    from runtime_bindings.generated import types as t
    from runtime_bindings.values import H256, METRIC_SCALE, Bytes

    return t.FlTaskSpec(recipe=Bytes(spec.recipe.encode()), spec_hash=H256("0x" + (spec_hash or spec.spec_hash_hex())),
                        spec_uri=Bytes(spec_uri.encode()), initial_model_hash=H256("0x" + initial_model_hash),
                        eval_metric=Bytes(spec.eval.metric.encode()),
                        eval_target=round(spec.eval.target * METRIC_SCALE),
                        higher_is_better=spec.eval.higher_is_better, rounds=spec.rounds,
                        min_clients_per_round=spec.min_clients_per_round,
                        fraction_per_round=spec.fraction_per_round, max_clients=terms.max_clients,
                        rule=chain_rule(spec.rule), client_share=terms.client_share,
                        min_client_stake=terms.min_client_stake, aggregate_tolerance=spec.aggregate_tolerance,
                        requirements=t.Requirements(*terms.requirements))


def chain_secagg_spec(secagg: SecAggTask) -> t.SecAggSpec:
    """The on-chain SecAggSpec of a task's SecAgg+ settings (workers.fl.secagg_task.SecAggTask.chain_values)."""
    from runtime_bindings.generated import types as t

    return t.SecAggSpec(**secagg.chain_values())


def chain_dp_spec(dp: FlDp) -> t.DpSpec:
    """The on-chain DpSpec of a private federated task's terms (workers.fl.dp_task.FlDp). A federated client's
    noise is its own secret, never a shared key, so noise_key_hash is all zeros."""
    from runtime_bindings import privacy as units
    from runtime_bindings.generated import types as t
    from runtime_bindings.values import H256

    return t.DpSpec(accountant=units.accountant_of(dp.accountant), epsilon_cap=units.epsilon_to_chain(dp.epsilon),
                    delta=units.delta_to_chain(dp.delta), max_grad_norm=units.norm_to_chain(dp.max_grad_norm),
                    noise_multiplier=units.norm_to_chain(dp.noise_multiplier), noise_key_hash=H256("0x" + "00" * 32))


def chain_central_dp(terms: FlDp, clipped_by: str) -> t.CentralDp:
    """The on-chain CentralDp of a central-DP federated task: `terms` as FlDp holds them (its max_grad_norm is the
    clipping norm of each client's whole update), clipped by the aggregator ("server") or the clients ("client")."""
    from runtime_bindings import privacy as units
    from runtime_bindings.generated import types as t

    if clipped_by not in ("server", "client"):
        raise ValueError(f"central DP is clipped by the server or the client, not {clipped_by!r}")
    clipping = t.CentralClipping.ServerFixed if clipped_by == "server" else t.CentralClipping.ClientFixed
    return t.CentralDp(clipping=clipping, accountant=units.accountant_of(terms.accountant),
                       epsilon_cap=units.epsilon_to_chain(terms.epsilon), delta=units.delta_to_chain(terms.delta),
                       clipping_norm=units.norm_to_chain(terms.max_grad_norm),
                       noise_multiplier=units.norm_to_chain(terms.noise_multiplier))
