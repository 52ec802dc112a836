"""`paratrain collab` against a devnet process, in-process (`paratrain.cli.main`): deploy, add, predict, refund,
report, show; every refusal one line naming the pallet error, nothing signed when the CLI can tell first."""
from __future__ import annotations

import pytest
from cli_helpers import isolate, one_line_error, run

pytestmark = pytest.mark.slow  # a devnet process


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch, devnet):
    isolate(monkeypatch, tmp_path, devnet.ws_url)




def deploy(capsys, *extra: str) -> int:
    code, out, err = run(capsys, "collab", "deploy", "--kind", "perceptron", "--features", "2", "--refund-wait", "0s",
                         "--owner-wait", "1h", "--any-wait", "2h", "--key", "//Alice", *extra)
    assert code == 0, err
    return int(out.strip().splitlines()[-1])


def test_a_model_learns_predicts_refunds_and_shows(capsys) -> None:
    model = deploy(capsys)
    assert run(capsys, "collab", "predict", str(model), "--x", "1,0.5")[1].strip() == "0"
    code, out, err = run(capsys, "collab", "add", str(model), "--x", "1,0.5", "--label", "1", "--key", "//Bob")
    assert code == 0 and "contribution 0" in out and "deposit held" in out, err
    assert run(capsys, "collab", "predict", str(model), "--x", "1,0.5")[1].strip() == "1"
    assert run(capsys, "collab", "predict", str(model), "--present", "0")[1].strip() == "1"
    code, out, err = run(capsys, "collab", "refund", str(model), "0", "--key", "//Bob")
    assert code == 0 and out.startswith("refunded "), err
    code, out, err = run(capsys, "collab", "show", str(model))
    assert code == 0, err
    assert "Perceptron" in out and "2 features, 2 classes" in out and "1 (1 refunded as good)" in out


def test_points_deploys_without_a_deposit(capsys) -> None:
    model = deploy(capsys, "--points")
    code, out, err = run(capsys, "collab", "add", str(model), "--present", "1", "--label", "0", "--key", "//Bob")
    assert code == 0 and "deposit held: 0" in out, err


def test_refusals_are_one_line_and_named(capsys) -> None:
    model = deploy(capsys)
    assert "CollaborativeModels.DimensionMismatch" in one_line_error(
        capsys, "collab", "add", str(model), "--x", "1,2,3", "--label", "0", "--key", "//Bob")
    assert "CollaborativeModels.ClassOutOfRange" in one_line_error(
        capsys, "collab", "add", str(model), "--x", "1,2", "--label", "4", "--key", "//Bob")
    assert "CollaborativeModels.ModelNotFound" in one_line_error(capsys, "collab", "predict", "999", "--x", "1,0")
    assert "CollaborativeModels.ModelNotFound" in one_line_error(capsys, "collab", "show", "999")
    assert "CollaborativeModels.ContributionNotFound" in one_line_error(
        capsys, "collab", "refund", str(model), "5", "--key", "//Bob")
    assert "InvalidMechanism" in one_line_error(capsys, "collab", "deploy", "--kind", "perceptron", "--features",
                                                "2", "--refund-wait", "2d", "--owner-wait", "1d", "--key", "//Alice")
    assert "a perceptron has 2 classes" in one_line_error(capsys, "collab", "deploy", "--kind", "perceptron",
                                                          "--features", "2", "--classes", "3", "--key", "//Alice")


def test_demo_collab_reports_balances_writes_the_pictures_and_exits_0(capsys, tmp_path) -> None:
    code, out, err = run(capsys, "demo", "--collab", "--samples", "150", "--out", str(tmp_path))
    assert code == 0, out + err
    assert "the bad agent lost what the good agent gained" in out and "Good" in out and "Bad" in out
    assert (tmp_path / "collab-accuracy.png").stat().st_size > 10_000
    assert (tmp_path / "collab-balances.png").stat().st_size > 10_000


def test_demo_market_settles_on_chain_writes_the_picture_and_exits_0(capsys, tmp_path) -> None:
    code, out, err = run(capsys, "demo", "--market", "--samples", "40", "--out", str(tmp_path))
    assert code == 0, out + err
    assert "settled by the validators' quorum" in out and "Good" in out and "Bad" in out
    assert (tmp_path / "market-payouts.png").stat().st_size > 10_000
