"""`paratrain stake` without a chain: its arguments are refused at parse time, and a Workers refusal that reaches
the chain anyway (the state changed between the checks and the block) becomes the same one line as the
checks give, with what to do about it. The refusals against a real devnet: tests/integration/test_stake_refusals.py."""
from __future__ import annotations

import pytest

from paratrain.cli import CliError, main
from paratrain.commands.stake import REMEDIES, stake_errors
from runtime_bindings.generated import workers


@pytest.mark.parametrize(("argv", "phrase"), [
    (["register", "--role", "miner", "--stake", "100"], "invalid choice: 'miner'"),
    (["register", "--role", "trainer"], "the following arguments are required: --stake"),
    (["register", "--role", "trainer", "--stake", "-5"], "is negative"),
    (["register", "--role", "trainer", "--stake", "100", "--cpus", "0"], "out of range for a count"),
    (["register", "--role", "trainer", "--stake", "100", "--memory-mb", "0"], "out of range for a memory size"),
    (["update-capabilities", "--gpus", "-1"], "out of range for a count"),
    (["bond-extra", "1.0000000000001"], "more than 12 decimals"),
])
def test_bad_arguments_are_refused_before_anything_connects(argv, phrase, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["stake", *argv, "--chain", "ws://127.0.0.1:1"])
    assert exit_.value.code == 2
    assert phrase in capsys.readouterr().err


def test_the_role_is_case_insensitive(capsys) -> None:
    # parsed, then refused for the missing key: the role itself was accepted
    assert main(["stake", "register", "--role", "Validator", "--stake", "60", "--key", "not a key",
                 "--chain", "ws://127.0.0.1:1"]) == 2
    assert "bad key" in capsys.readouterr().err


def test_every_workers_error_has_a_remedy() -> None:
    declared = {name for name, value in vars(workers).items()
                if isinstance(value, type) and issubclass(value, workers.WorkersError) and value.name}
    assert declared == set(REMEDIES)


@pytest.mark.parametrize("name", sorted(REMEDIES))
def test_a_refusal_from_the_chain_names_the_error_and_the_remedy(name) -> None:
    error = getattr(workers.WorkersError, name)
    with pytest.raises(CliError) as refused, stake_errors("ws://127.0.0.1:1", "5Grw"):
        raise error()
    text = str(refused.value)
    assert text.startswith("the chain refused it: ") and f"(Workers.{name})" in text
    assert text.endswith(REMEDIES[name]) and "\n" not in text


def test_other_pallets_errors_keep_the_common_wording() -> None:
    from runtime_bindings.generated.balances import BalancesError

    with pytest.raises(CliError) as refused, stake_errors("ws://127.0.0.1:1", "5Grw"):
        raise BalancesError.InsufficientBalance()
    assert str(refused.value).startswith("insufficient balance")
