"""`paratrain demo --federated --secagg --dp-epsilon E` without running it: the option's refusals (one line, exit
2, before anything starts) and the noise multiplier the demo posts, which must keep every client within E over
all the rounds, and be the smallest on the chain's grid that does. The demo itself:
tests/integration/test_demo_federated.py."""
from __future__ import annotations

import pytest

from paratrain.cli import main
from paratrain.demo_private import DELTA, HYPERPARAMETERS, noise_for
from runtime_bindings.privacy import rate_from_chain
from workers.fl.dp_claims import round_steps
from workers.privacy.accounting import epsilon_spent, sample_rate_of

SIZES = [193, 105, 222, 180, 128, 220, 215, 175]   # the demo's shards (digits, alpha 0.5, seed 1)


@pytest.mark.parametrize(("argv", "phrase"), [
    (["--federated", "--dp-epsilon", "3"], "--dp-epsilon runs with --federated --secagg"),
    (["--federated", "--secagg", "--dp-epsilon", "9"], "more than the budget of epsilon 8"),
    (["--dp-epsilon", "3"], "--dp-epsilon runs with --federated --secagg"),
])
def test_dp_epsilon_is_refused_without_secagg_or_above_the_budget(argv, phrase, capsys) -> None:
    assert main(["demo", *argv]) == 2
    err = capsys.readouterr().err
    assert phrase in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("argv", "phrase"), [
    (["--federated", "--secagg", "--dp-epsilon", "0"], "--dp-epsilon"),
    (["--federated", "--secagg", "--dp-epsilon", "x"], "--dp-epsilon"),
])
def test_a_non_positive_epsilon_is_a_usage_error(argv, phrase, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["demo", *argv])
    assert exit_.value.code == 2 and phrase in capsys.readouterr().err


def _spent(sigma: float, n: int, rounds: int) -> float:
    batch, epochs = HYPERPARAMETERS["batch_size"], HYPERPARAMETERS["local_epochs"]
    rate = rate_from_chain(sample_rate_of(n, batch))
    return epsilon_spent("prv", sigma, rate, rounds * round_steps(n, batch, epochs), DELTA)


@pytest.mark.parametrize("rounds", [2, 3])
def test_the_noise_keeps_every_shard_within_the_cap_and_no_less_would(rounds) -> None:
    sigma = noise_for(3.0, rounds, SIZES)
    spent = [_spent(sigma, n, rounds) for n in SIZES]
    assert max(spent) <= 3.0
    assert max(spent) == _spent(sigma, min(SIZES), rounds)     # the smallest shard decides
    assert _spent(sigma - 0.02, min(SIZES), rounds) > 3.0       # not more noise than the cap needs
