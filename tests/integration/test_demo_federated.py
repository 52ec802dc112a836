"""`paratrain demo --federated` end to end: the real console script as a subprocess, in its own session and
$TMPDIR (tests/integration/test_demo.py's DemoRun), with every process it starts recorded from /proc.

It must exit 0 (every honest client paid in the robust task, neither poisoner paid in either), print the
payout table with six honest clients and the two poisoners, write a PNG that decodes, and leave no process
(SuperLink, SuperNodes, their SuperExecs, ServerApp and ClientApp processes) and no temporary file behind;
Ctrl-C stops everything too."""
from __future__ import annotations

import os
import re
import signal
import time

import pytest
from test_demo import PNG_SIGNATURE, DemoRun

pytest.importorskip("flwr")
pytest.importorskip("matplotlib")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # 8 SuperNodes, a SuperLink, 2 x 3 Flower rounds


def test_the_federated_demo_pays_the_honest_and_not_the_poisoners(tmp_path):
    png = tmp_path / "fl.png"
    run = DemoRun("--federated", "--rounds", "3", "--png", str(png))
    try:
        started = time.monotonic()
        code = run.wait(1700)
        text = run.text
        print(text)
        print(f"federated demo: exit {code} in {time.monotonic() - started:.1f} s; {len(run.seen)} processes")
        assert code == 0, text[-4000:]
        assert "Traceback" not in text
        for words in ("claimed both tasks", "8 SuperNodes connected", "round 1: committed", "round 3: Accepted",
                      "revealed the holdout", "what each data owner got", "scale:1000", "sign-flip",
                      "every honest client was paid in the robust task", "everything stopped"):
            assert words in text, words
        rows = [line for line in text.splitlines() if re.search(r"│ client \d │", line)]
        assert len(rows) == 8 and sum("│ honest" in row for row in rows) == 6
        data = png.read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 5_000
        import matplotlib.image

        assert matplotlib.image.imread(str(png)).ndim == 3  # it decodes
        assert len(run.seen) >= 18, "a SuperLink and 8 SuperNodes (each with its SuperExec) should have run"
        assert run.survivors(grace=20) == []
        assert list(run.tmpdir.glob("paratrain-fl-demo-*")) == [], "the temporary directory was not removed"
    finally:
        run.kill_leftovers()


def test_ctrl_c_stops_every_flower_process(tmp_path):
    run = DemoRun("--federated", "--rounds", "2", "--png", str(tmp_path / "fl.png"))
    try:
        deadline = time.monotonic() + 300
        while "SuperNodes connected" not in run.text and time.monotonic() < deadline and run.proc.poll() is None:
            time.sleep(1)
        assert "SuperNodes connected" in run.text, run.text
        os.killpg(run.proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C
        code = run.wait(120)
        print(run.text)
        assert code == 130 and "interrupted" in run.text and "Traceback" not in run.text
        assert run.survivors(grace=20) == []
        assert list(run.tmpdir.glob("paratrain-fl-demo-*")) == []
    finally:
        run.kill_leftovers()


def test_the_private_secagg_demo_audits_each_round_and_spends_each_budget_within_the_cap(tmp_path):
    """`paratrain demo --federated --secagg --dp-epsilon 3`: one FedAvg task under SecAgg+ with local DP-SGD on
    every client, half of each round audited. It must exit 0 (every honest client paid, none slashed, the
    unclipped poisoner rejected in every round it was drawn) and show each client's budget of epsilon 8 spent
    above 0 and at most 3, its reservation closed (spent + left = 8). It runs the SecAgg demo's own code
    (paratrain/demo_private.py subclasses paratrain/demo_secagg.py) plus the budgets: one run for both."""
    png = tmp_path / "private.png"
    run = DemoRun("--federated", "--secagg", "--dp-epsilon", "3", "--rounds", "2", "--png", str(png))
    try:
        code = run.wait(1200)
        text = run.text
        print(text)
        assert code == 0, text[-4000:]
        assert "Traceback" not in text and "WARNING" not in text
        for words in ("each data owner set a privacy budget of epsilon 8", "fedavg+secagg+dp",
                      "DP-SGD on every client: noise multiplier", "claimed the task",
                      "round 1: the chain drew clients", "round 2: the chain drew clients", "round 2: Accepted",
                      "every data owner took its stake back", "what each data owner got in task", "scale:4",
                      "everything stopped"):
            assert words in text, words
        assert ("the audit caught client(s) 6" in text) != ("the chain never drew client(s) 6" in text)
        rows = [line for line in text.splitlines() if re.search(r"│ client \d │", line)]
        assert len(rows) == 8 and sum("│ honest" in row for row in rows) == 7
        for row in rows:
            spent, left = (float(cell) for cell in [c.strip() for c in row.split("│")[1:-1]][-2:])
            assert 0 < spent <= 3 and spent + left == pytest.approx(8, abs=2e-3), row
        assert png.read_bytes()[:8] == PNG_SIGNATURE
        assert run.survivors(grace=20) == []
    finally:
        run.kill_leftovers()
